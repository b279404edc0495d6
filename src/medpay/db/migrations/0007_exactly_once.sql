-- Exactly once under faults: resolving unknown outcomes, provincial callbacks, and
-- notifications to patient apps through a transactional outbox.

-- The resolver's bookkeeping: when to look at an unfinished payment next, and how
-- often it has looked. Kept in the database so a restarted resolver picks up.
ALTER TABLE payments
    ADD COLUMN next_check_at  timestamptz,
    ADD COLUMN check_attempts integer NOT NULL DEFAULT 0 CHECK (check_attempts >= 0);
CREATE INDEX payments_unfinished ON payments (next_check_at)
    WHERE state IN ('received', 'settling', 'unknown', 'reversing');

-- The exact request sent under each msgid, so a resend is the same request, byte for
-- byte (the province answers a repeated msgid from its log).
ALTER TABLE province_messages ADD COLUMN request jsonb;

-- Every callback a province made, taken exactly once: a duplicate hits the unique key.
CREATE TABLE province_callbacks (
    callback_row bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    province     text NOT NULL CHECK (province ~ '^[1-6][0-9]0000$'),
    callback_id  text NOT NULL,                 -- the province's id of this callback
    ref_msgid    text NOT NULL,                 -- the msgid of our request it reports on
    payment_id   uuid REFERENCES payments (payment_id),
    result       text NOT NULL,                 -- what the province says: settled, failed, reversed
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'already_final', 'unmatched', 'conflict')),
    body         jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (province, callback_id)
);
CREATE INDEX province_callbacks_unmatched ON province_callbacks (received_at) WHERE outcome IN ('unmatched', 'conflict');

-- Notifications of final states to the app that made the payment, written in the
-- same transaction as the state change, delivered in order per payment.
CREATE TABLE notification_outbox (
    event_id        uuid PRIMARY KEY,
    payment_id      uuid NOT NULL REFERENCES payments (payment_id),
    app_id          text NOT NULL REFERENCES apps (app_id),
    sequence        integer NOT NULL CHECK (sequence >= 1),
    event_type      text NOT NULL CHECK (event_type IN ('payment.settled', 'payment.failed', 'payment.reversed')),
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (payment_id, sequence)
);
CREATE INDEX notification_outbox_pending ON notification_outbox (next_attempt_at) WHERE delivered_at IS NULL;
