-- Monthly clearing between provinces (DOMAIN.md section 7): the fund amounts of off-site
-- settlements per pair (insured province, treatment province), netted to one figure per
-- province. Every off-site settlement, reversal and correction becomes a clearing entry
-- of one period when it is recorded, written by PostgreSQL in the same transaction; a
-- closed period never changes, and PostgreSQL refuses the write.
--
-- Which period: the China month of the event (settled_at, reversed_at, corrected_at),
-- or, when that month is closed, the first open period after it; an undoing never
-- lands before the period of the settlement it undoes.

CREATE TABLE clearing_periods (
    period    text PRIMARY KEY CHECK (period ~ '^2[0-9]{3}-(0[1-9]|1[0-2])$'),  -- YYYY-MM
    state     text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    closed_at timestamptz,
    closed_by text CHECK (length(closed_by) BETWEEN 1 AND 200),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL AND closed_by IS NOT NULL))
);

-- Fund amounts by national fund code; an undoing (reversal, correction) is the negative
-- of the settlement's entry.
CREATE TABLE clearing_entries (
    entry_id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period                 text NOT NULL REFERENCES clearing_periods (period),
    payment_id             uuid NOT NULL REFERENCES payments (payment_id),
    kind                   text NOT NULL CHECK (kind IN ('settlement', 'reversal', 'correction')),
    insured_province       text NOT NULL CHECK (insured_province ~ '^[1-6][0-9]0000$'),
    treatment_province     text NOT NULL CHECK (treatment_province ~ '^[1-6][0-9]0000$'),
    employee_basic_fen     bigint NOT NULL,  -- 310100: hifp_pay of an employee
    resident_basic_fen     bigint NOT NULL,  -- 390100: hifp_pay of a resident
    critical_illness_fen   bigint NOT NULL,  -- 390200: hifmi_pay
    medical_assistance_fen bigint NOT NULL,  -- 610100: maf_pay
    fund_total_fen         bigint NOT NULL,  -- fund_pay_sumamt
    occurred_at            timestamptz NOT NULL,
    recorded_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, kind),
    CHECK (fund_total_fen = employee_basic_fen + resident_basic_fen + critical_illness_fen
                            + medical_assistance_fen),
    CHECK (CASE WHEN kind = 'settlement'
                THEN least(employee_basic_fen, resident_basic_fen, critical_illness_fen,
                           medical_assistance_fen) >= 0
                ELSE greatest(employee_basic_fen, resident_basic_fen, critical_illness_fen,
                              medical_assistance_fen) <= 0 END)
);
CREATE INDEX clearing_entries_period ON clearing_entries (period, insured_province, treatment_province);

-- A closed period's matrix, frozen when it closed.
CREATE TABLE clearing_period_lines (
    period                 text NOT NULL REFERENCES clearing_periods (period),
    insured_province       text NOT NULL,
    treatment_province     text NOT NULL,
    settlements            integer NOT NULL,  -- settlements less reversals and corrections
    entries                integer NOT NULL CHECK (entries > 0),
    employee_basic_fen     bigint NOT NULL,
    resident_basic_fen     bigint NOT NULL,
    critical_illness_fen   bigint NOT NULL,
    medical_assistance_fen bigint NOT NULL,
    fund_total_fen         bigint NOT NULL,
    PRIMARY KEY (period, insured_province, treatment_province)
);

-- Writers of entries hold this lock shared until they commit; closing a period takes it
-- exclusively, so no entry can land in a period while it closes (key 7401, the same as
-- medpay.clearing.queries.CLOSING_LOCK).
CREATE FUNCTION clearing_period_for(occurred timestamptz, not_before text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    candidate date := date_trunc('month', occurred AT TIME ZONE 'Asia/Shanghai')::date;
    chosen text;
    chosen_state text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7401);
    IF not_before IS NOT NULL AND to_date(not_before || '-01', 'YYYY-MM-DD') > candidate THEN
        candidate := to_date(not_before || '-01', 'YYYY-MM-DD');
    END IF;
    LOOP
        chosen := to_char(candidate, 'YYYY-MM');
        INSERT INTO clearing_periods (period) VALUES (chosen) ON CONFLICT DO NOTHING;
        SELECT p.state INTO chosen_state FROM clearing_periods p WHERE p.period = chosen;
        EXIT WHEN chosen_state = 'open';
        candidate := (candidate + interval '1 month')::date;
    END LOOP;
    RETURN chosen;
END $$;

-- An off-site settlement (insured area differs from treatment area, DOMAIN.md section 1)
-- is cleared; an on-site one concerns one area's fund and institutions only.
CREATE FUNCTION clearing_entry_of_settlement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pay record;
BEGIN
    SELECT insured_area, treatment_area, scheme INTO pay FROM payments WHERE payment_id = NEW.payment_id;
    IF pay.insured_area = pay.treatment_area THEN
        RETURN NULL;
    END IF;
    INSERT INTO clearing_entries (period, payment_id, kind, insured_province, treatment_province,
                                  employee_basic_fen, resident_basic_fen, critical_illness_fen,
                                  medical_assistance_fen, fund_total_fen, occurred_at)
    VALUES (clearing_period_for(NEW.settled_at), NEW.payment_id, 'settlement',
            NEW.insured_province, NEW.treatment_province,
            CASE WHEN pay.scheme = 'resident' THEN 0 ELSE NEW.basic_fund_fen END,
            CASE WHEN pay.scheme = 'resident' THEN NEW.basic_fund_fen ELSE 0 END,
            NEW.critical_illness_fen, NEW.medical_assistance_fen, NEW.fund_total_fen,
            NEW.settled_at);
    RETURN NULL;
END $$;

CREATE TRIGGER settlements_cleared
    AFTER INSERT ON settlements
    FOR EACH ROW EXECUTE FUNCTION clearing_entry_of_settlement();

-- A reversal (2208) or a correction (reconciliation) undoes the settlement's entry.
CREATE FUNCTION clearing_entry_of_undoing() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    origin clearing_entries%ROWTYPE;
    occurred timestamptz;
    undoing text;
BEGIN
    IF TG_TABLE_NAME = 'reversals' THEN
        occurred := NEW.reversed_at;
        undoing := 'reversal';
    ELSE
        occurred := NEW.corrected_at;
        undoing := 'correction';
    END IF;
    SELECT * INTO origin FROM clearing_entries
     WHERE payment_id = NEW.payment_id AND kind = 'settlement';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO clearing_entries (period, payment_id, kind, insured_province, treatment_province,
                                  employee_basic_fen, resident_basic_fen, critical_illness_fen,
                                  medical_assistance_fen, fund_total_fen, occurred_at)
    VALUES (clearing_period_for(occurred, origin.period), NEW.payment_id, undoing,
            origin.insured_province, origin.treatment_province,
            -origin.employee_basic_fen, -origin.resident_basic_fen, -origin.critical_illness_fen,
            -origin.medical_assistance_fen, -origin.fund_total_fen, occurred);
    RETURN NULL;
END $$;

CREATE TRIGGER reversals_cleared
    AFTER INSERT ON reversals
    FOR EACH ROW EXECUTE FUNCTION clearing_entry_of_undoing();
CREATE TRIGGER settlement_corrections_cleared
    AFTER INSERT ON settlement_corrections
    FOR EACH ROW EXECUTE FUNCTION clearing_entry_of_undoing();

-- A closed period never changes: no entry or line is added to it, nothing is changed or
-- deleted, and the period does not reopen.
CREATE FUNCTION clearing_closed_period_is_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF (SELECT state FROM clearing_periods WHERE period = NEW.period) = 'closed' THEN
            RAISE EXCEPTION 'clearing period % is closed; a closed period never changes', NEW.period
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% are never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER clearing_entries_frozen
    BEFORE INSERT OR UPDATE OR DELETE ON clearing_entries
    FOR EACH ROW EXECUTE FUNCTION clearing_closed_period_is_frozen();
CREATE TRIGGER clearing_entries_never_truncated
    BEFORE TRUNCATE ON clearing_entries
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_closed_period_is_frozen();
CREATE TRIGGER clearing_period_lines_frozen
    BEFORE INSERT OR UPDATE OR DELETE ON clearing_period_lines
    FOR EACH ROW EXECUTE FUNCTION clearing_closed_period_is_frozen();
CREATE TRIGGER clearing_period_lines_never_truncated
    BEFORE TRUNCATE ON clearing_period_lines
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_closed_period_is_frozen();

CREATE FUNCTION clearing_period_closes_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'clearing periods are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state = 'closed' THEN
        RAISE EXCEPTION 'clearing period % is closed; a closed period never changes', OLD.period
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.period <> OLD.period OR NEW.state <> 'closed' THEN
        RAISE EXCEPTION 'clearing period %: the only change is closing it', OLD.period
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER clearing_periods_close_once
    BEFORE UPDATE OR DELETE ON clearing_periods
    FOR EACH ROW EXECUTE FUNCTION clearing_period_closes_once();
CREATE TRIGGER clearing_periods_never_truncated
    BEFORE TRUNCATE ON clearing_periods
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_period_closes_once();
