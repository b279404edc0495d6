-- Daily reconciliation with each province (DOMAIN.md section 7): every run, every
-- difference found one by one and what resolved it, kept for operators.

CREATE TABLE reconciliation_runs (
    run_id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    province               text NOT NULL CHECK (province ~ '^[1-6][0-9]0000$'),
    day                    date NOT NULL,            -- a China day
    triggered_by           text NOT NULL CHECK (length(triggered_by) BETWEEN 1 AND 200),
    started_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz,
    outcome                text CHECK (outcome IN ('balanced', 'explained', 'unexplained',
                                                   'statement_unavailable')),
    totals_agreed          boolean,                  -- the province's stmt_rslt at the end
    report                 jsonb,                    -- the run's machine report
    CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX reconciliation_runs_day ON reconciliation_runs (day, province, run_id);

-- One difference between our books and a province's statement of one day, found once
-- (its key), then resolved by the rules in force or by a person.
CREATE TABLE reconciliation_differences (
    difference_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    province          text NOT NULL CHECK (province ~ '^[1-6][0-9]0000$'),
    day               date NOT NULL,
    kind              text NOT NULL CHECK (kind IN (
                          'missing_here',          -- the province has a settlement we do not
                          'missing_there',         -- we have a settlement the province does not
                          'figures_differ',        -- both have it, with other figures
                          'reversed_there_only',   -- the province reversed it, we did not
                          'reversed_here_only',    -- we reversed it, the province did not
                          'statement_inconsistent',-- the province's details disagree with its totals
                          'callback_unmatched',    -- a callback about a msgid we never sent
                          'callback_conflict')),   -- a callback contradicting our record
    subject           text NOT NULL CHECK (length(subject) BETWEEN 1 AND 100),  -- msgid, callback id
    payment_id        uuid REFERENCES payments (payment_id),
    settlement_id     text,                          -- setl_id
    ours              jsonb,                         -- our record as compared
    theirs            jsonb,                         -- the province's as compared
    found_in_run      bigint NOT NULL REFERENCES reconciliation_runs (run_id),
    found_at          timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    awaiting          text CHECK (awaiting IN ('province', 'person')),  -- why it is still open
    note              text CHECK (length(note) <= 1000),
    resolution        text CHECK (resolution IN (
                          'recorded_from_province',  -- an unfinished payment recorded by 6301
                          'reversal_recorded',       -- an unfinished reversal recorded by 6301
                          'annulled',                -- the province never made it: failed, corrected
                          'recorded_on_another_day', -- both have it; the days differ
                          'confirmed_by_province',   -- 6301 agrees with our record
                          'no_longer_present',       -- a later run found no difference
                          'explained_by_operator')),
    resolution_detail text CHECK (length(resolution_detail) <= 1000),
    resolved_by       text,
    resolved_at       timestamptz,
    journal_id        bigint REFERENCES ledger_journals (journal_id),
    UNIQUE (province, day, kind, subject),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL AND resolved_at IS NOT NULL
                                    AND resolved_by IS NOT NULL)),
    CHECK ((status = 'open') = (awaiting IS NOT NULL))
);
CREATE INDEX reconciliation_differences_open ON reconciliation_differences (day, province)
    WHERE status = 'open';
CREATE INDEX reconciliation_differences_payment ON reconciliation_differences (payment_id)
    WHERE payment_id IS NOT NULL;

-- What was found stays found: a difference is never deleted, what it is about never
-- changes, and once resolved it never changes again.
CREATE FUNCTION reconciliation_difference_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'reconciliation differences are never deleted'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status = 'resolved' THEN
        RAISE EXCEPTION 'reconciliation difference % is resolved; it never changes again',
            OLD.difference_id USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.province, NEW.day, NEW.kind, NEW.subject, NEW.found_in_run, NEW.found_at)
       IS DISTINCT FROM (OLD.province, OLD.day, OLD.kind, OLD.subject, OLD.found_in_run, OLD.found_at)
    THEN
        RAISE EXCEPTION 'reconciliation difference %: what was found never changes',
            OLD.difference_id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER reconciliation_differences_kept
    BEFORE UPDATE OR DELETE ON reconciliation_differences
    FOR EACH ROW EXECUTE FUNCTION reconciliation_difference_is_kept();
CREATE TRIGGER reconciliation_differences_never_truncated
    BEFORE TRUNCATE ON reconciliation_differences
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_difference_is_kept();

-- Daily background jobs, one row per job and day: a process takes the lease, and only
-- the holder of a live lease runs it (several gateway processes, one run).
CREATE TABLE daily_jobs (
    job         text NOT NULL CHECK (job ~ '^[a-z_]{1,64}$'),
    day         date NOT NULL,
    holder      text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    lease_until timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    finished_at timestamptz,
    last_error  text,
    PRIMARY KEY (job, day)
);
