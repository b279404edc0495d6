"""SQL for off-site filings and their versions (DOMAIN.md section 5).

Every statement that changes a filing also appends its version to filing_changes,
copied from the row it just wrote, in the same statement.
"""

from __future__ import annotations

__all__ = [
    "CANCEL_FILING",
    "CHANGE_FILING",
    "FILINGS_OF_PERSON",
    "FILING_BY_ID",
    "FILING_CHANGED_BY_REQUEST",
    "FILING_FOR_UPDATE",
    "FILING_HISTORY",
    "FILING_TYPE_ON",
    "INSERT_FILING",
    "PERSON_INSURED_IN_AREA",
]

_COLUMNS = """filing_id, psn_no, insured_area, treatment_area, filing_type, filing_class,
       valid_from, valid_until, cancelled_from, agency_id, version, created_at, updated_at"""

#: The sealed copy of the row's person (medpay.security.persons.psn_no_of opens it).
_SEALED = "(SELECT sealed FROM persons WHERE persons.psn_no = {table}.psn_no) AS person_sealed"
_SEALED_FILINGS = _SEALED.format(table="filings")

# Appends the version just written by the CTE `written`, with the reason, the agency
# that made the change and its Idempotency-Key (parameter numbers given by each use).
_APPEND_VERSION = """
history AS (
    INSERT INTO filing_changes (filing_id, version, change, treatment_area, filing_type,
                                valid_from, valid_until, cancelled_from, reason, agency_id,
                                idempotency_key)
    SELECT filing_id, version, '{change}', treatment_area, filing_type,
           valid_from, valid_until, cancelled_from, {reason}, {agency}, {key}
      FROM written
)
"""

INSERT_FILING = f"""
WITH written AS (
    INSERT INTO filings (filing_id, psn_no, insured_area, treatment_area, filing_type,
                         valid_from, valid_until, agency_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING *
), {_APPEND_VERSION.format(change="filed", reason="$9", agency="$8", key="$10")}
SELECT {_COLUMNS}, {_SEALED.format(table="written")} FROM written
"""

CHANGE_FILING = f"""
WITH written AS (
    UPDATE filings
       SET treatment_area = $2, filing_type = $3, valid_from = $4, valid_until = $5,
           version = version + 1, updated_at = now()
     WHERE filing_id = $1
    RETURNING *
), {_APPEND_VERSION.format(change="changed", reason="$6", agency="$7", key="$8")}
SELECT {_COLUMNS}, {_SEALED.format(table="written")} FROM written
"""

CANCEL_FILING = f"""
WITH written AS (
    UPDATE filings
       SET cancelled_from = $2, version = version + 1, updated_at = now()
     WHERE filing_id = $1
    RETURNING *
), {_APPEND_VERSION.format(change="cancelled", reason="$3", agency="$4", key="$5")}
SELECT {_COLUMNS}, {_SEALED.format(table="written")} FROM written
"""

FILING_BY_ID = f"SELECT {_COLUMNS}, {_SEALED_FILINGS} FROM filings WHERE filing_id = $1"

FILING_FOR_UPDATE = (
    f"SELECT {_COLUMNS}, {_SEALED_FILINGS} FROM filings WHERE filing_id = $1 FOR UPDATE"
)

# The filing an earlier attempt of the same request already wrote.
FILING_CHANGED_BY_REQUEST = """
SELECT filing_id FROM filing_changes WHERE agency_id = $1 AND idempotency_key = $2
"""

FILING_HISTORY = """
SELECT version, change, treatment_area, filing_type, valid_from, valid_until, cancelled_from,
       reason, agency_id, recorded_at
  FROM filing_changes
 WHERE filing_id = $1
 ORDER BY version
"""

# $2: only filings of this insured area (an agency's view); NULL: all (an operator's).
FILINGS_OF_PERSON = f"""
SELECT {_COLUMNS}, {_SEALED_FILINGS} FROM filings
 WHERE psn_no = $1 AND ($2::text IS NULL OR insured_area = $2)
 ORDER BY valid_from, created_at
"""

# Whether the person is insured in area $2 at some time in [$3, $4).
PERSON_INSURED_IN_AREA = """
SELECT EXISTS (
    SELECT 1 FROM insurance_segments
     WHERE psn_no = $1 AND insured_area = $2
       AND daterange(valid_from, valid_until, '[)') && daterange($3::date, $4::date, '[)'))
"""

# The filing that applies to care in treatment area $2 on day $3: one of the person's
# insured area on that day, covering the area (a province covers its cities and
# districts, a city its districts) and in force that day. The most specific area
# wins; then long-term residence, then referral or emergency, then other outings
# (the order of the ratio each keeps); then the most recent.
FILING_TYPE_ON = """
SELECT f.filing_type
  FROM filings f
  JOIN insurance_segments s
    ON s.psn_no = f.psn_no AND s.insured_area = f.insured_area
   AND daterange(s.valid_from, s.valid_until, '[)') @> $3::date
 WHERE f.psn_no = $1
   AND daterange(f.valid_from, least(f.valid_until, f.cancelled_from), '[)') @> $3::date
   AND (f.treatment_area = $2
        OR (f.treatment_area LIKE '__0000' AND left(f.treatment_area, 2) = left($2, 2))
        OR (f.treatment_area LIKE '____00' AND left(f.treatment_area, 4) = left($2, 4)))
 ORDER BY CASE WHEN f.treatment_area LIKE '__0000' THEN 1
               WHEN f.treatment_area LIKE '____00' THEN 2
               ELSE 3 END DESC,
          CASE f.filing_class WHEN 'long_term' THEN 0 ELSE 1 END,
          CASE f.filing_type WHEN 'referral' THEN 0 WHEN 'emergency' THEN 0 ELSE 1 END,
          f.valid_from DESC, f.created_at DESC
 LIMIT 1
"""
