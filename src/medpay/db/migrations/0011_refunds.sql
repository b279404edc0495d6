-- Returns (issue 11, item 5). A refund gives back part or all of a settled payment: the
-- settlement is reversed (2208) and, for a partial refund, the lines kept are settled
-- anew under a new msgid as a payment of their own (the replacement), linked to the
-- original. Both settlements keep their journals; the refund only ties them together.
--
-- reversing            the original's 2208 is under way
-- resettling           the original is reversed; the replacement is being settled
-- refunded             done: the original reversed, the replacement (if any) settled
-- refused              the province refused the reversal: the original stands, nothing changed
-- resettlement_failed  the original is reversed in full; the lines kept could not be settled
CREATE TABLE refunds (
    refund_id              uuid PRIMARY KEY,
    payment_id             uuid NOT NULL REFERENCES settlements (payment_id),  -- the original
    app_id                 text NOT NULL REFERENCES apps (app_id),
    idempotency_key        text NOT NULL,
    request_digest         text NOT NULL,
    kind                   text NOT NULL CHECK (kind IN ('full', 'partial')),
    reason                 text NOT NULL CHECK (reason IN ('returned', 'bill_corrected')),
    state                  text NOT NULL CHECK (state IN
                               ('reversing', 'resettling', 'refunded', 'refused', 'resettlement_failed')),
    replacement_payment_id uuid UNIQUE REFERENCES payments (payment_id),
    failure_code           text,
    failure_detail         text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, idempotency_key),
    -- a full refund has no replacement; a partial one has one from "resettling" on
    CHECK (kind = 'partial' OR replacement_payment_id IS NULL),
    CHECK (kind = 'full' OR state IN ('reversing', 'refused') OR replacement_payment_id IS NOT NULL)
);
-- A payment is given back at most once; a refused refund leaves it to be tried again.
CREATE UNIQUE INDEX refunds_one_per_payment ON refunds (payment_id) WHERE state <> 'refused';

-- What was given back, line by line (the original's line numbers).
CREATE TABLE refund_items (
    refund_id         uuid NOT NULL REFERENCES refunds (refund_id),
    line_no           integer NOT NULL CHECK (line_no >= 1),
    quantity_returned integer NOT NULL CHECK (quantity_returned > 0),
    PRIMARY KEY (refund_id, line_no)
);

-- The replacement names the payment it replaces; its lines keep the original's numbers.
ALTER TABLE payments ADD COLUMN replaces_payment_id uuid UNIQUE REFERENCES payments (payment_id);
