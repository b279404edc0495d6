"""SQL for clearing periods, their entries and frozen matrices (migration 0032)."""

from __future__ import annotations

__all__ = [
    "CLOSED_LINES_UNLIKE_ENTRIES",
    "CLOSE_PERIOD",
    "CLOSING_LOCK",
    "COUNTS",
    "ENSURE_PERIOD",
    "ENTRIES_OF_PAYMENT",
    "ENTRIES_UNLIKE_RECORDS",
    "FREEZE_LINES",
    "LINES_OF_CLOSED_PERIOD",
    "LINES_OF_OPEN_PERIOD",
    "LOCK_PERIOD",
    "PERIOD",
    "PERIODS",
]

#: Closing takes the lock every writer of an entry holds shared (clearing_period_for, key 7401).
CLOSING_LOCK = "SELECT pg_advisory_xact_lock(7401)"

PERIOD = "SELECT period, state, closed_at, closed_by FROM clearing_periods WHERE period = $1"

PERIODS = "SELECT period FROM clearing_periods ORDER BY period"

ENSURE_PERIOD = "INSERT INTO clearing_periods (period) VALUES ($1) ON CONFLICT DO NOTHING"

LOCK_PERIOD = PERIOD + " FOR UPDATE"

_LINE_SUMS = """
       count(*) FILTER (WHERE kind = 'settlement') - count(*) FILTER (WHERE kind <> 'settlement')
           AS settlements,
       count(*) AS entries,
       sum(employee_basic_fen)::bigint AS employee_basic_fen,
       sum(resident_basic_fen)::bigint AS resident_basic_fen,
       sum(critical_illness_fen)::bigint AS critical_illness_fen,
       sum(medical_assistance_fen)::bigint AS medical_assistance_fen,
       sum(fund_total_fen)::bigint AS fund_total_fen
"""

# An open period's matrix, from its entries so far.
LINES_OF_OPEN_PERIOD = f"""
SELECT insured_province, treatment_province, {_LINE_SUMS}
  FROM clearing_entries
 WHERE period = $1
 GROUP BY insured_province, treatment_province
 ORDER BY insured_province, treatment_province
"""

# A closed period's matrix, as frozen when it closed.
LINES_OF_CLOSED_PERIOD = """
SELECT insured_province, treatment_province, settlements, entries, employee_basic_fen,
       resident_basic_fen, critical_illness_fen, medical_assistance_fen, fund_total_fen
  FROM clearing_period_lines
 WHERE period = $1
 ORDER BY insured_province, treatment_province
"""

FREEZE_LINES = f"""
INSERT INTO clearing_period_lines (period, insured_province, treatment_province, settlements,
                                   entries, employee_basic_fen, resident_basic_fen,
                                   critical_illness_fen, medical_assistance_fen, fund_total_fen)
SELECT period, insured_province, treatment_province, {_LINE_SUMS}
  FROM clearing_entries
 WHERE period = $1
 GROUP BY period, insured_province, treatment_province
"""

CLOSE_PERIOD = """
UPDATE clearing_periods SET state = 'closed', closed_at = now(), closed_by = $2
 WHERE period = $1 AND state = 'open'
"""

ENTRIES_OF_PAYMENT = """
SELECT entry_id, period, kind, insured_province, treatment_province, fund_total_fen, occurred_at
  FROM clearing_entries
 WHERE payment_id = $1
 ORDER BY entry_id
"""

# --- invariants (medpay.clearing.service.check_clearing); each lists at most $1 failures ----

COUNTS = """
SELECT (SELECT count(*) FROM clearing_entries) AS entries,
       (SELECT count(*) FROM clearing_periods WHERE state = 'closed') AS closed_periods,
       (SELECT count(*) FROM clearing_periods) AS periods
"""

# What the entries should be, from the records: every off-site settlement, and the
# reversal or correction of each, with the settlement's fund amounts (negated to undo).
ENTRIES_UNLIKE_RECORDS = """
WITH offsite AS (
    SELECT s.payment_id, s.insured_province, s.treatment_province,
           CASE WHEN p.scheme = 'resident' THEN 0 ELSE s.basic_fund_fen END AS employee_basic_fen,
           CASE WHEN p.scheme = 'resident' THEN s.basic_fund_fen ELSE 0 END AS resident_basic_fen,
           s.critical_illness_fen, s.medical_assistance_fen, s.fund_total_fen
      FROM settlements s JOIN payments p USING (payment_id)
     WHERE p.insured_area <> p.treatment_area
), expected AS (
    SELECT payment_id, 'settlement' AS kind, insured_province, treatment_province,
           employee_basic_fen, resident_basic_fen, critical_illness_fen,
           medical_assistance_fen, fund_total_fen
      FROM offsite
    UNION ALL
    SELECT o.payment_id, u.kind, o.insured_province, o.treatment_province,
           -o.employee_basic_fen, -o.resident_basic_fen, -o.critical_illness_fen,
           -o.medical_assistance_fen, -o.fund_total_fen
      FROM offsite o
      JOIN (SELECT payment_id, 'reversal' AS kind FROM reversals
            UNION ALL
            SELECT payment_id, 'correction' FROM settlement_corrections) u USING (payment_id)
)
SELECT coalesce(x.payment_id, e.payment_id) AS payment_id, coalesce(x.kind, e.kind) AS kind,
       x.fund_total_fen AS expected_fen, e.fund_total_fen AS actual_fen,
       e.entry_id IS NULL AS missing, x.payment_id IS NULL AS unexpected
  FROM expected x
  FULL JOIN clearing_entries e ON e.payment_id = x.payment_id AND e.kind = x.kind
 WHERE x.payment_id IS NULL OR e.entry_id IS NULL
    OR (x.insured_province, x.treatment_province, x.employee_basic_fen, x.resident_basic_fen,
        x.critical_illness_fen, x.medical_assistance_fen, x.fund_total_fen)
       IS DISTINCT FROM
       (e.insured_province, e.treatment_province, e.employee_basic_fen, e.resident_basic_fen,
        e.critical_illness_fen, e.medical_assistance_fen, e.fund_total_fen)
 ORDER BY 1, 2
 LIMIT $1
"""

# A closed period's frozen lines are the sums of its entries, pair by pair.
CLOSED_LINES_UNLIKE_ENTRIES = f"""
WITH sums AS (
    SELECT period, insured_province, treatment_province, {_LINE_SUMS}
      FROM clearing_entries
     WHERE period IN (SELECT period FROM clearing_periods WHERE state = 'closed')
     GROUP BY period, insured_province, treatment_province
)
SELECT coalesce(s.period, l.period) AS period,
       coalesce(s.insured_province, l.insured_province) AS insured_province,
       coalesce(s.treatment_province, l.treatment_province) AS treatment_province,
       s.fund_total_fen AS entries_fen, l.fund_total_fen AS frozen_fen
  FROM sums s
  FULL JOIN clearing_period_lines l USING (period, insured_province, treatment_province)
 WHERE (s.settlements, s.entries, s.employee_basic_fen, s.resident_basic_fen,
        s.critical_illness_fen, s.medical_assistance_fen, s.fund_total_fen)
       IS DISTINCT FROM
       (l.settlements, l.entries, l.employee_basic_fen, l.resident_basic_fen,
        l.critical_illness_fen, l.medical_assistance_fen, l.fund_total_fen)
 ORDER BY 1, 2, 3
 LIMIT $1
"""
