-- Transfer and continuation of the basic medical insurance relationship (DOMAIN.md
-- section 6): a person moves from one coordination area to another. The old area
-- issues the contribution certificate (the electronic insured-person information
-- form), the new area accepts it and opens its segment counting the old months, and
-- the personal account balance moves. Every step is an event that is never changed;
-- segments are never deleted and a segment is closed once, never reopened.

-- What a segment needs for "who insured this person on date D, with how many months
-- counted": the months carried in from earlier areas, and the waiting period during
-- which the fund pays nothing (a gap of more than 3 months between the segments).
ALTER TABLE insurance_segments
    ADD COLUMN carried_months integer NOT NULL DEFAULT 0 CHECK (carried_months >= 0),
    ADD COLUMN waiting_until  date,
    ADD CONSTRAINT insurance_segments_waiting_after_start
        CHECK (waiting_until IS NULL OR waiting_until > valid_from);

COMMENT ON COLUMN insurance_segments.contribution_months IS
    'Months contributed in this area before valid_from that no earlier segment records (an opening figure, e.g. loaded history); 0 for a segment opened by a transfer.';
COMMENT ON COLUMN insurance_segments.carried_months IS
    'Months carried into this segment from earlier areas by relationship transfers (DOMAIN.md section 6, step 3).';
COMMENT ON COLUMN insurance_segments.waiting_until IS
    'First day the fund pays again after a waiting period; NULL when there is none.';

-- One active relationship at a time: at most one open segment per person (besides the
-- exclusion constraint of 0002, which refuses overlapping periods).
CREATE UNIQUE INDEX insurance_segments_one_open ON insurance_segments (psn_no)
    WHERE valid_until IS NULL;

-- History is never overwritten: a segment is never deleted, and the only change ever
-- made to it is closing it, once (valid_until from NULL to a date).
CREATE FUNCTION insurance_segment_history_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'insurance segments are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.valid_until IS NOT NULL THEN
        RAISE EXCEPTION 'insurance segment % was closed on %; a closed segment is never reopened or rewritten',
            OLD.segment_id, OLD.valid_until USING ERRCODE = 'restrict_violation';
    END IF;
    IF to_jsonb(NEW) - 'valid_until' IS DISTINCT FROM to_jsonb(OLD) - 'valid_until' THEN
        RAISE EXCEPTION 'insurance segment %: only valid_until may be set, once', OLD.segment_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER insurance_segments_history_kept
    BEFORE UPDATE OR DELETE ON insurance_segments
    FOR EACH ROW EXECUTE FUNCTION insurance_segment_history_is_kept();
CREATE TRIGGER insurance_segments_never_truncated
    BEFORE TRUNCATE ON insurance_segments
    FOR EACH STATEMENT EXECUTE FUNCTION insurance_segment_history_is_kept();

-- A transfer of one person's relationship from one coordination area to another. The
-- row is the current state; relationship_transfer_events is the history.
CREATE TABLE relationship_transfers (
    transfer_id              uuid PRIMARY KEY,
    psn_no                   text NOT NULL REFERENCES persons (psn_no),          -- psn_no
    from_area                text NOT NULL CHECK (from_area ~ '^[1-6][0-9]{5}$'),  -- the old insuplc_admdvs
    to_area                  text NOT NULL CHECK (to_area ~ '^[1-6][0-9]{5}$'),    -- the new insuplc_admdvs
    scheme                   text NOT NULL CHECK (scheme IN ('employee', 'resident')),  -- insutype in the new area
    state                    text NOT NULL DEFAULT 'requested'
                             CHECK (state IN ('requested', 'certificate_issued', 'accepted', 'rejected', 'cancelled')),
    applicant_agency_id      text NOT NULL REFERENCES agencies (agency_id),
    from_segment_id          bigint NOT NULL REFERENCES insurance_segments (segment_id),
    requested_at             timestamptz NOT NULL DEFAULT now(),
    requested_on             date NOT NULL,   -- China time: the working-day deadlines count from it
    certificate_due_on       date NOT NULL,   -- 10 working days after requested_on
    -- The contribution certificate (step 2), written once.
    certificate_issued_on    date,
    contribution_months      integer CHECK (contribution_months BETWEEN 0 AND 1200),
    personal_account_fen     bigint CHECK (personal_account_fen >= 0),
    contributions_stopped_on date,            -- first day no longer covered by the old area
    acceptance_due_on        date,            -- 5 working days after the certificate
    -- Acceptance (step 3).
    to_segment_id            bigint UNIQUE REFERENCES insurance_segments (segment_id),
    accepted_on              date,
    -- Rejection or cancellation.
    closing_reason           text CHECK (length(closing_reason) BETWEEN 1 AND 200),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (from_area <> to_area),
    CHECK (certificate_due_on > requested_on),
    CHECK (num_nulls(certificate_issued_on, contribution_months, personal_account_fen,
                     contributions_stopped_on, acceptance_due_on) IN (0, 5)),
    CHECK (state NOT IN ('certificate_issued', 'accepted') OR certificate_issued_on IS NOT NULL),
    CHECK ((state = 'accepted') = (to_segment_id IS NOT NULL)),
    CHECK ((state = 'accepted') = (accepted_on IS NOT NULL)),
    CHECK (state <> 'rejected' OR closing_reason IS NOT NULL)
);
-- At most one open transfer per person: a second, even a concurrent one, is refused.
CREATE UNIQUE INDEX relationship_transfers_one_open ON relationship_transfers (psn_no)
    WHERE state IN ('requested', 'certificate_issued');
CREATE INDEX relationship_transfers_person ON relationship_transfers (psn_no);
CREATE INDEX relationship_transfers_from_area ON relationship_transfers (from_area);
CREATE INDEX relationship_transfers_to_area ON relationship_transfers (to_area);

-- A closed transfer never changes, what was applied for never changes, an issued
-- certificate never changes, and no transfer is deleted.
CREATE FUNCTION relationship_transfer_history_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'relationship transfers are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state IN ('accepted', 'rejected', 'cancelled') THEN
        RAISE EXCEPTION 'relationship transfer % is %; a closed transfer never changes',
            OLD.transfer_id, OLD.state USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.transfer_id, NEW.psn_no, NEW.from_area, NEW.to_area, NEW.scheme,
        NEW.applicant_agency_id, NEW.from_segment_id, NEW.requested_at, NEW.requested_on,
        NEW.certificate_due_on)
       IS DISTINCT FROM
       (OLD.transfer_id, OLD.psn_no, OLD.from_area, OLD.to_area, OLD.scheme,
        OLD.applicant_agency_id, OLD.from_segment_id, OLD.requested_at, OLD.requested_on,
        OLD.certificate_due_on) THEN
        RAISE EXCEPTION 'relationship transfer %: what was applied for never changes', OLD.transfer_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.certificate_issued_on IS NOT NULL AND
       (NEW.certificate_issued_on, NEW.contribution_months, NEW.personal_account_fen,
        NEW.contributions_stopped_on, NEW.acceptance_due_on)
       IS DISTINCT FROM
       (OLD.certificate_issued_on, OLD.contribution_months, OLD.personal_account_fen,
        OLD.contributions_stopped_on, OLD.acceptance_due_on) THEN
        RAISE EXCEPTION 'relationship transfer %: an issued certificate never changes', OLD.transfer_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER relationship_transfers_history_kept
    BEFORE UPDATE OR DELETE ON relationship_transfers
    FOR EACH ROW EXECUTE FUNCTION relationship_transfer_history_is_kept();
CREATE TRIGGER relationship_transfers_never_truncated
    BEFORE TRUNCATE ON relationship_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION relationship_transfer_history_is_kept();

-- Every step of a transfer: who (the agency), when, what (the step and its figures).
-- Append-only. The Idempotency-Key a step was made under lets a retry after a crash
-- find the step it already made.
CREATE TABLE relationship_transfer_events (
    event_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id     uuid NOT NULL REFERENCES relationship_transfers (transfer_id),
    step            text NOT NULL
                    CHECK (step IN ('requested', 'certificate_issued', 'accepted', 'rejected', 'cancelled')),
    agency_id       text NOT NULL REFERENCES agencies (agency_id),
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key text,
    UNIQUE (transfer_id, step),
    UNIQUE (agency_id, idempotency_key)
);

CREATE FUNCTION relationship_transfer_events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'relationship transfer events are never changed or deleted'
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER relationship_transfer_events_append_only
    BEFORE UPDATE OR DELETE ON relationship_transfer_events
    FOR EACH ROW EXECUTE FUNCTION relationship_transfer_events_are_append_only();
CREATE TRIGGER relationship_transfer_events_never_truncated
    BEFORE TRUNCATE ON relationship_transfer_events
    FOR EACH STATEMENT EXECUTE FUNCTION relationship_transfer_events_are_append_only();

-- The ledger records the personal account balance moved by a transfer: a journal is
-- now about a payment or about a transfer, exactly one of the two.
ALTER TABLE ledger_journals
    ALTER COLUMN payment_id DROP NOT NULL,
    ADD COLUMN transfer_id uuid REFERENCES relationship_transfers (transfer_id),
    DROP CONSTRAINT ledger_journals_kind_check,
    ADD CONSTRAINT ledger_journals_kind_check
        CHECK (kind IN ('settlement', 'reversal', 'account_transfer')),
    ADD CONSTRAINT ledger_journals_one_subject CHECK (num_nonnulls(payment_id, transfer_id) = 1),
    ADD CONSTRAINT ledger_journals_kind_of_subject
        CHECK ((kind = 'account_transfer') = (transfer_id IS NOT NULL)),
    ADD CONSTRAINT ledger_journals_transfer_id_kind_key UNIQUE (transfer_id, kind);
