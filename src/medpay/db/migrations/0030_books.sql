-- Books that close (issue 11): corrections as journals of their own, every state a
-- payment passed through, and the indexes statements by day need.

-- A correction is a journal of its own (DOMAIN.md section 7): when reconciliation finds
-- that the province never made a settlement we recorded, the payment fails and its
-- settlement journal is mirrored by a new journal; no journal is ever changed.
ALTER TABLE ledger_journals
    DROP CONSTRAINT ledger_journals_kind_check,
    ADD CONSTRAINT ledger_journals_kind_check
        CHECK (kind IN ('settlement', 'reversal', 'account_transfer', 'correction'));

-- A settlement the province never made, as reconciliation found it: the payment failed
-- and its journal was mirrored by a 'correction' journal in the same transaction.
CREATE TABLE settlement_corrections (
    payment_id   uuid PRIMARY KEY REFERENCES settlements (payment_id),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    corrected_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION books_history_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is history: never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER settlement_corrections_kept
    BEFORE UPDATE OR DELETE ON settlement_corrections
    FOR EACH ROW EXECUTE FUNCTION books_history_is_kept();
CREATE TRIGGER settlement_corrections_never_truncated
    BEFORE TRUNCATE ON settlement_corrections
    FOR EACH STATEMENT EXECUTE FUNCTION books_history_is_kept();

-- Every state a payment passed through and when, written by PostgreSQL on each change,
-- so that a payment's story (the operator's view) needs nothing from the code paths.
CREATE TABLE payment_state_changes (
    change_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id   uuid NOT NULL REFERENCES payments (payment_id),
    from_state   text,
    to_state     text NOT NULL,
    failure_code text,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payment_state_changes_payment ON payment_state_changes (payment_id, change_id);

CREATE FUNCTION payment_state_is_recorded() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_state_changes (payment_id, from_state, to_state, failure_code)
    VALUES (NEW.payment_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state,
            NEW.failure_code);
    RETURN NULL;
END $$;

CREATE TRIGGER payments_state_recorded_on_insert
    AFTER INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION payment_state_is_recorded();
CREATE TRIGGER payments_state_recorded_on_change
    AFTER UPDATE OF state ON payments
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION payment_state_is_recorded();

CREATE TRIGGER payment_state_changes_kept
    BEFORE UPDATE OR DELETE ON payment_state_changes
    FOR EACH ROW EXECUTE FUNCTION books_history_is_kept();

-- A day's payments (the operator's volumes), settlements and reversals of one province,
-- and its callbacks (reconciliation).
CREATE INDEX payments_service_date ON payments (service_date);
CREATE INDEX settlements_province_settled_at ON settlements (insured_province, settled_at);
CREATE INDEX reversals_reversed_at ON reversals (reversed_at);
CREATE INDEX province_callbacks_province_received_at ON province_callbacks (province, received_at);
