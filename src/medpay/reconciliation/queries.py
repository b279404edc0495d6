"""SQL for reconciliation runs and differences, and for our side of a day's statement."""

from __future__ import annotations

__all__ = [
    "CALLBACKS_TO_REPORT",
    "CLAIM_DAILY_JOB",
    "DIFFERENCES",
    "DIFFERENCES_OF_DAY",
    "DIFFERENCES_OF_PAYMENT",
    "DIFFERENCE_BY_ID",
    "DIFFERENCE_BY_KEY",
    "EXPLAIN_DIFFERENCE",
    "FINISH_DAILY_JOB",
    "FINISH_RUN",
    "INSERT_DIFFERENCE",
    "INSERT_RUN",
    "JOURNAL_OF_PAYMENT",
    "LOCK_DIFFERENCE",
    "OUR_SETTLEMENTS_OF_DAY",
    "PAYMENT_OF_MSGID",
    "RELEASE_DAILY_JOB",
    "RESOLVE_DIFFERENCE",
    "RUN_LOCK",
    "RUN_UNLOCK",
    "SET_DIFFERENCE_OPEN",
]

INSERT_RUN = """
INSERT INTO reconciliation_runs (province, day, triggered_by) VALUES ($1, $2, $3)
RETURNING run_id, started_at
"""

FINISH_RUN = """
UPDATE reconciliation_runs
   SET finished_at = now(), outcome = $2, totals_agreed = $3, report = $4
 WHERE run_id = $1
RETURNING finished_at
"""

# One run of a province's day at a time, across processes (held by a session, not a
# transaction: a run talks to the province in between).
RUN_LOCK = "SELECT pg_advisory_lock(7402, hashtext($1))"
RUN_UNLOCK = "SELECT pg_advisory_unlock(7402, hashtext($1))"

# Our confirmed settlements of the province made on the day, and those reversed on the
# day, with the msgids they were settled and reversed under; corrected ones are not ours.
OUR_SETTLEMENTS_OF_DAY = """
WITH chosen AS (
    SELECT payment_id FROM settlements
     WHERE insured_province = $1 AND settled_at >= $2 AND settled_at < $3
    UNION
    SELECT r.payment_id FROM reversals r JOIN settlements s USING (payment_id)
     WHERE s.insured_province = $1 AND r.reversed_at >= $2 AND r.reversed_at < $3
)
SELECT s.payment_id, m.msgid, rm.msgid AS reversal_msgid, s.setl_id, p.psn_no, p.scheme,
       coalesce(m.request->>'medical_type', '11') AS clearing_type, p.institution_code,
       s.medical_fee_total_fen, s.basic_fund_fen, s.critical_illness_fen,
       s.medical_assistance_fen, s.fund_total_fen, s.personal_account_fen, s.cash_fen,
       s.settled_at, r.reversed_at, p.state
  FROM chosen
  JOIN settlements s USING (payment_id)
  JOIN payments p USING (payment_id)
  JOIN province_messages m
    ON m.payment_id = s.payment_id AND m.infno = '2207' AND m.outcome = 'accepted'
  LEFT JOIN reversals r ON r.payment_id = s.payment_id
  LEFT JOIN province_messages rm
    ON rm.payment_id = s.payment_id AND rm.infno = '2208' AND rm.outcome = 'accepted'
 WHERE NOT EXISTS (SELECT 1 FROM settlement_corrections c WHERE c.payment_id = s.payment_id)
 ORDER BY m.msgid
"""

# What we know of the payment a msgid was sent for.
PAYMENT_OF_MSGID = """
SELECT m.msgid, m.payment_id, m.infno, m.province, m.outcome, p.state, p.insured_area,
       p.treatment_area, p.institution_code, m.request->>'institution_name' AS institution_name,
       s.setl_id, s.settled_at, r.reversed_at, c.corrected_at
  FROM province_messages m
  JOIN payments p USING (payment_id)
  LEFT JOIN settlements s ON s.payment_id = m.payment_id
  LEFT JOIN reversals r ON r.payment_id = m.payment_id
  LEFT JOIN settlement_corrections c ON c.payment_id = m.payment_id
 WHERE m.msgid = $1
"""

JOURNAL_OF_PAYMENT = "SELECT journal_id FROM ledger_journals WHERE payment_id = $1 AND kind = $2"

# Callbacks the province made on the day that matched nothing or contradicted us.
CALLBACKS_TO_REPORT = """
SELECT callback_row, callback_id, ref_msgid, payment_id, result, outcome, received_at
  FROM province_callbacks
 WHERE province = $1 AND received_at >= $2 AND received_at < $3
   AND outcome IN ('unmatched', 'conflict')
 ORDER BY callback_row
"""

_DIFFERENCE_COLUMNS = """
difference_id, province, day, kind, subject, payment_id, settlement_id, ours, theirs,
found_in_run, found_at, status, awaiting, note, resolution, resolution_detail, resolved_by,
resolved_at, journal_id
"""

INSERT_DIFFERENCE = f"""
INSERT INTO reconciliation_differences (province, day, kind, subject, payment_id, settlement_id,
                                        ours, theirs, found_in_run, awaiting, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'province', 'found; not yet examined')
ON CONFLICT (province, day, kind, subject) DO NOTHING
RETURNING {_DIFFERENCE_COLUMNS}
"""

DIFFERENCE_BY_KEY = f"""
SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences
 WHERE province = $1 AND day = $2 AND kind = $3 AND subject = $4
"""

LOCK_DIFFERENCE = f"""
SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences WHERE difference_id = $1 FOR UPDATE
"""

DIFFERENCE_BY_ID = (
    f"SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences WHERE difference_id = $1"
)

SET_DIFFERENCE_OPEN = """
UPDATE reconciliation_differences SET awaiting = $2, note = $3
 WHERE difference_id = $1 AND status = 'open'
"""

RESOLVE_DIFFERENCE = """
UPDATE reconciliation_differences
   SET status = 'resolved', awaiting = NULL, resolution = $2, resolution_detail = $3,
       resolved_by = $4, resolved_at = now(), journal_id = $5
 WHERE difference_id = $1 AND status = 'open'
"""

EXPLAIN_DIFFERENCE = f"""
UPDATE reconciliation_differences
   SET status = 'resolved', awaiting = NULL, resolution = 'explained_by_operator',
       resolution_detail = $2, resolved_by = $3, resolved_at = now()
 WHERE difference_id = $1 AND status = 'open'
RETURNING {_DIFFERENCE_COLUMNS}
"""

DIFFERENCES_OF_DAY = f"""
SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences
 WHERE province = $1 AND day = $2
 ORDER BY difference_id
"""

# For operators: filtered, newest first, at most $5.
DIFFERENCES = f"""
SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences
 WHERE ($1::text IS NULL OR status = $1)
   AND ($2::text IS NULL OR province = $2)
   AND ($3::date IS NULL OR day = $3)
   AND ($4::bigint IS NULL OR difference_id < $4)
 ORDER BY difference_id DESC
 LIMIT $5
"""

DIFFERENCES_OF_PAYMENT = f"""
SELECT {_DIFFERENCE_COLUMNS} FROM reconciliation_differences
 WHERE payment_id = $1
 ORDER BY difference_id
"""

# --- the daily job's lease (medpay.reconciliation.scheduler) ----------------------------------

# Take the day's job unless it is done or another holder's lease is still live.
CLAIM_DAILY_JOB = """
INSERT INTO daily_jobs (job, day, holder, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (job, day) DO UPDATE
   SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until,
       attempts = daily_jobs.attempts + 1
 WHERE daily_jobs.finished_at IS NULL AND daily_jobs.lease_until < now()
RETURNING attempts
"""

FINISH_DAILY_JOB = """
UPDATE daily_jobs SET finished_at = now(), last_error = NULL
 WHERE job = $1 AND day = $2 AND holder = $3
"""

# Let the job be tried again after $4 seconds, noting why it did not finish.
RELEASE_DAILY_JOB = """
UPDATE daily_jobs SET lease_until = now() + make_interval(secs => $4), last_error = $5
 WHERE job = $1 AND day = $2 AND holder = $3 AND finished_at IS NULL
"""
