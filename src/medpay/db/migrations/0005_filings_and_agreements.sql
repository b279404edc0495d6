-- Agreements of designated institutions (DOMAIN.md section 4) and off-site filings
-- (section 5). Each keeps its current state in rows that PostgreSQL constrains
-- (no overlapping agreements, suspensions or filings) and every step in history rows
-- that are only ever appended. Periods are half-open: [from, until).

-- History rows are appended, never changed or deleted.
CREATE FUNCTION registry_history_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

-- An agreement between the treatment place's agency and an institution. Once signed,
-- its only change is the date of its dissolution, set once; suspensions live beside it.
CREATE TABLE institution_agreements (
    agreement_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_code text NOT NULL REFERENCES institutions (institution_code),  -- fixmedins_code
    valid_from       date NOT NULL,
    valid_until      date,               -- the first day not covered; NULL: no end agreed
    dissolved_from   date,               -- expenses from this day on are not settled
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_until > valid_from),
    CHECK (dissolved_from IS NULL
           OR (dissolved_from >= valid_from AND (valid_until IS NULL OR dissolved_from < valid_until))),
    -- No two agreements of one institution in force on the same day.
    CONSTRAINT institution_agreements_no_overlap EXCLUDE USING gist (
        institution_code WITH =,
        daterange(valid_from, least(valid_until, dissolved_from), '[)') WITH &&)
);

-- A suspension of an agreement from a day, until it is reinstated (NULL: still suspended).
CREATE TABLE agreement_suspensions (
    agreement_id    bigint NOT NULL REFERENCES institution_agreements (agreement_id),
    suspended_from  date NOT NULL,
    reinstated_from date,
    PRIMARY KEY (agreement_id, suspended_from),
    CHECK (reinstated_from IS NULL OR reinstated_from > suspended_from),
    CONSTRAINT agreement_suspensions_no_overlap EXCLUDE USING gist (
        agreement_id WITH =,
        daterange(suspended_from, reinstated_from, '[)') WITH &&)
);

-- Every step of every agreement, in the order it was recorded.
CREATE TABLE agreement_events (
    event_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agreement_id    bigint NOT NULL REFERENCES institution_agreements (agreement_id),
    event           text NOT NULL CHECK (event IN ('signed', 'suspended', 'reinstated', 'dissolved')),
    effective_from  date NOT NULL,
    valid_until     date CHECK (valid_until IS NULL OR event = 'signed'),
    reason          text CHECK (length(reason) BETWEEN 1 AND 200),
    operator_id     text REFERENCES operators (operator_id),  -- NULL: loaded by the sample seed
    idempotency_key text,  -- of the request that made this step: a retry finds it
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (operator_id, idempotency_key)
);
CREATE INDEX agreement_events_agreement ON agreement_events (agreement_id, event_id);

CREATE TRIGGER agreement_events_append_only
    BEFORE UPDATE OR DELETE ON agreement_events
    FOR EACH ROW EXECUTE FUNCTION registry_history_is_append_only();
CREATE TRIGGER agreement_events_never_truncated
    BEFORE TRUNCATE ON agreement_events
    FOR EACH STATEMENT EXECUTE FUNCTION registry_history_is_append_only();

-- An agreement row changes once at most: its dissolution date, from NULL to a day.
CREATE FUNCTION institution_agreement_only_dissolves() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.dissolved_from IS NOT NULL
       OR to_jsonb(NEW) - 'dissolved_from' IS DISTINCT FROM to_jsonb(OLD) - 'dissolved_from' THEN
        RAISE EXCEPTION 'an agreement only ever changes by recording its dissolution, once'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER institution_agreements_only_dissolve
    BEFORE UPDATE OR DELETE ON institution_agreements
    FOR EACH ROW EXECUTE FUNCTION institution_agreement_only_dissolves();

-- A suspension row changes once at most: its reinstatement date, from NULL to a day.
CREATE FUNCTION agreement_suspension_only_ends() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.reinstated_from IS NOT NULL
       OR to_jsonb(NEW) - 'reinstated_from' IS DISTINCT FROM to_jsonb(OLD) - 'reinstated_from' THEN
        RAISE EXCEPTION 'a suspension only ever changes by recording its reinstatement, once'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER agreement_suspensions_only_end
    BEFORE UPDATE OR DELETE ON agreement_suspensions
    FOR EACH ROW EXECUTE FUNCTION agreement_suspension_only_ends();

-- An off-site filing by the insured area's agency: the current version of it. Its
-- versions, the first included, are in filing_changes.
CREATE TABLE filings (
    filing_id      uuid PRIMARY KEY,
    psn_no         text NOT NULL REFERENCES persons (psn_no),                   -- psn_no
    insured_area   text NOT NULL CHECK (insured_area ~ '^[1-6][0-9]{5}$'),      -- insuplc_admdvs
    treatment_area text NOT NULL CHECK (treatment_area ~ '^[1-6][0-9]{5}$'),    -- a province, a city or a district
    filing_type    text NOT NULL CHECK (filing_type IN (
                       'resettled_retiree', 'long_term_resident', 'posted_staff',
                       'referral', 'emergency', 'other_temporary')),
    filing_class   text NOT NULL GENERATED ALWAYS AS (
                       CASE WHEN filing_type IN ('resettled_retiree', 'long_term_resident', 'posted_staff')
                            THEN 'long_term' ELSE 'temporary' END) STORED,
    valid_from     date NOT NULL,
    valid_until    date,                 -- temporary only: the first day not covered
    cancelled_from date,                 -- set once, by a cancellation
    agency_id      text NOT NULL REFERENCES agencies (agency_id),               -- who filed it
    version        integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (treatment_area <> insured_area),
    -- Long-term residence is valid until cancelled; a temporary outing has an end.
    CHECK ((filing_class = 'long_term') = (valid_until IS NULL)),
    CHECK (valid_until IS NULL OR valid_until > valid_from),
    CHECK (cancelled_from IS NULL OR cancelled_from >= valid_from),
    -- One long-term residence at a time per person.
    CONSTRAINT filings_one_long_term_residence EXCLUDE USING gist (
        psn_no WITH =,
        daterange(valid_from, least(valid_until, cancelled_from), '[)') WITH &&)
        WHERE (filing_class = 'long_term'),
    -- No two overlapping temporary filings of one type for the same treatment area.
    CONSTRAINT filings_no_duplicate_outing EXCLUDE USING gist (
        psn_no WITH =, treatment_area WITH =, filing_type WITH =,
        daterange(valid_from, least(valid_until, cancelled_from), '[)') WITH &&)
        WHERE (filing_class = 'temporary')
);
CREATE INDEX filings_person ON filings (psn_no, valid_from);

-- Every version of every filing, as it was after each change.
CREATE TABLE filing_changes (
    filing_id       uuid NOT NULL REFERENCES filings (filing_id),
    version         integer NOT NULL CHECK (version >= 1),
    change          text NOT NULL CHECK (change IN ('filed', 'changed', 'cancelled')),
    treatment_area  text NOT NULL,
    filing_type     text NOT NULL,
    valid_from      date NOT NULL,
    valid_until     date,
    cancelled_from  date,
    reason          text CHECK (length(reason) BETWEEN 1 AND 200),
    agency_id       text NOT NULL REFERENCES agencies (agency_id),  -- who made this change
    idempotency_key text,  -- of the request that made it: a retry finds it
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (filing_id, version),
    UNIQUE (agency_id, idempotency_key),
    CHECK ((change = 'filed') = (version = 1)),
    CHECK ((change = 'cancelled') = (cancelled_from IS NOT NULL))
);

CREATE TRIGGER filing_changes_append_only
    BEFORE UPDATE OR DELETE ON filing_changes
    FOR EACH ROW EXECUTE FUNCTION registry_history_is_append_only();
CREATE TRIGGER filing_changes_never_truncated
    BEFORE TRUNCATE ON filing_changes
    FOR EACH STATEMENT EXECUTE FUNCTION registry_history_is_append_only();

-- A filing is never deleted; each update is the next version, a cancelled one is final,
-- and who it is for, where they are insured and who filed it never change.
CREATE FUNCTION filing_changes_by_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.cancelled_from IS NOT NULL
       OR NEW.version <> OLD.version + 1
       OR (NEW.filing_id, NEW.psn_no, NEW.insured_area, NEW.agency_id, NEW.created_at)
          IS DISTINCT FROM (OLD.filing_id, OLD.psn_no, OLD.insured_area, OLD.agency_id, OLD.created_at) THEN
        RAISE EXCEPTION 'a filing changes only version by version, and not once cancelled'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER filings_change_by_version
    BEFORE UPDATE OR DELETE ON filings
    FOR EACH ROW EXECUTE FUNCTION filing_changes_by_version();
