-- Electronic prescriptions and their redemption at retail pharmacies (DOMAIN.md section 4,
-- "prescription circulation"). History is never rewritten: prescriptions, their items,
-- redemption attempts and redemption events are insert-only (a trigger refuses UPDATE
-- and DELETE), and a redemption's state is derived from its events.

-- The keys a designated institution signs its requests with (prescriptions it issues).
CREATE TABLE institution_keys (
    key_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_code text NOT NULL REFERENCES institutions (institution_code),  -- fixmedins_code
    algorithm        text NOT NULL CHECK (algorithm IN ('ed25519', 'ecdsa-p256')),
    public_key_pem   text NOT NULL,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX institution_keys_active ON institution_keys (institution_code) WHERE status = 'active';

-- A prescription as issued: immutable. Valid on the China dates valid_from ..
-- valid_until inclusive, the day of issue counting as the first (reference: 3 days;
-- a chronic-disease long prescription up to 12 weeks = 84 days).
CREATE TABLE prescriptions (
    prescription_id  text PRIMARY KEY CHECK (prescription_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    institution_code text NOT NULL REFERENCES institutions (institution_code),  -- the issuer
    idempotency_key  text NOT NULL,
    request_digest   text NOT NULL,                 -- of the request first made under the key
    psn_no           text NOT NULL REFERENCES persons (psn_no),  -- psn_no
    kind             text NOT NULL CHECK (kind IN ('standard', 'chronic_long')),
    validity_days    integer NOT NULL,
    issued_at        timestamptz NOT NULL,
    valid_from       date NOT NULL,
    valid_until      date GENERATED ALWAYS AS (valid_from + validity_days - 1) STORED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (institution_code, idempotency_key),
    CHECK ((kind = 'standard' AND validity_days BETWEEN 1 AND 3)
        OR (kind = 'chronic_long' AND validity_days BETWEEN 1 AND 84)),
    CHECK (valid_from = (issued_at AT TIME ZONE 'Asia/Shanghai')::date)
);
CREATE INDEX prescriptions_person ON prescriptions (psn_no, issued_at);

-- What may be dispensed against it: each item at most once, with its maximum quantity.
CREATE TABLE prescription_items (
    prescription_id text NOT NULL REFERENCES prescriptions (prescription_id),
    line_no         integer NOT NULL CHECK (line_no >= 1),
    item_code       text NOT NULL,                             -- med_list_codg
    max_quantity    integer NOT NULL CHECK (max_quantity > 0), -- cnt
    PRIMARY KEY (prescription_id, item_code),
    UNIQUE (prescription_id, line_no)
);

-- A redemption attempt: one payment's claim on a prescription, made in the payment's
-- settling transaction (state "reserved"). Attempts of one prescription are numbered
-- 1, 2, ...; attempt n+1 may only exist once attempt n was released (the foreign key
-- added below), so PostgreSQL itself holds "at most one live redemption per
-- prescription": two racing pharmacies cannot both take attempt n.
CREATE TABLE prescription_redemptions (
    prescription_id        text NOT NULL REFERENCES prescriptions (prescription_id),
    attempt                integer NOT NULL CHECK (attempt >= 1),
    payment_id             uuid NOT NULL UNIQUE REFERENCES payments (payment_id),
    pharmacy_code          text NOT NULL REFERENCES institutions (institution_code),  -- fixmedins_code
    service_date           date NOT NULL,
    reserved_at            timestamptz NOT NULL DEFAULT now(),
    previous_attempt       integer GENERATED ALWAYS AS (nullif(attempt - 1, 0)) STORED,
    previous_attempt_state text GENERATED ALWAYS AS ('released') STORED,
    PRIMARY KEY (prescription_id, attempt)
);

-- What became of an attempt: redeemed (its payment settled) and/or released (its
-- payment failed, or was reversed after settling). Each at most once, never changed.
CREATE TABLE prescription_redemption_events (
    prescription_id text NOT NULL,
    attempt         integer NOT NULL,
    state           text NOT NULL CHECK (state IN ('redeemed', 'released')),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prescription_id, attempt, state),
    FOREIGN KEY (prescription_id, attempt) REFERENCES prescription_redemptions (prescription_id, attempt)
);

-- Attempt n+1 follows a released attempt n (MATCH SIMPLE: attempt 1 has no predecessor).
ALTER TABLE prescription_redemptions
    ADD CONSTRAINT prescription_redemptions_follow_a_release
    FOREIGN KEY (prescription_id, previous_attempt, previous_attempt_state)
    REFERENCES prescription_redemption_events (prescription_id, attempt, state);

-- Each attempt with its state derived from its events: released wins over redeemed.
CREATE VIEW prescription_redemption_states AS
SELECT r.prescription_id, r.attempt, r.payment_id, r.pharmacy_code, r.service_date,
       r.reserved_at, redeemed.recorded_at AS redeemed_at, released.recorded_at AS released_at,
       CASE WHEN released.recorded_at IS NOT NULL THEN 'released'
            WHEN redeemed.recorded_at IS NOT NULL THEN 'redeemed'
            ELSE 'reserved' END AS state
  FROM prescription_redemptions r
  LEFT JOIN prescription_redemption_events redeemed
         ON redeemed.prescription_id = r.prescription_id AND redeemed.attempt = r.attempt
        AND redeemed.state = 'redeemed'
  LEFT JOIN prescription_redemption_events released
         ON released.prescription_id = r.prescription_id AND released.attempt = r.attempt
        AND released.state = 'released';

CREATE FUNCTION prescription_history_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER prescriptions_append_only
    BEFORE UPDATE OR DELETE ON prescriptions
    FOR EACH ROW EXECUTE FUNCTION prescription_history_is_append_only();
CREATE TRIGGER prescription_items_append_only
    BEFORE UPDATE OR DELETE ON prescription_items
    FOR EACH ROW EXECUTE FUNCTION prescription_history_is_append_only();
CREATE TRIGGER prescription_redemptions_append_only
    BEFORE UPDATE OR DELETE ON prescription_redemptions
    FOR EACH ROW EXECUTE FUNCTION prescription_history_is_append_only();
CREATE TRIGGER prescription_redemption_events_append_only
    BEFORE UPDATE OR DELETE ON prescription_redemption_events
    FOR EACH ROW EXECUTE FUNCTION prescription_history_is_append_only();
