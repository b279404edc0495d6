"""SQL for designated institutions, pharmacies and their agreements."""

from __future__ import annotations

from medpay.security.queries import WITH_ACTIVE_KEYS

__all__ = [
    "ADD_INSTITUTION_KEY",
    "AGREEMENTS_OF_INSTITUTION",
    "AGREEMENT_CHANGED_BY_REQUEST",
    "AGREEMENT_EVENTS_OF_INSTITUTION",
    "AGREEMENT_FOR_UPDATE",
    "DESIGNATION_ON",
    "DISSOLVE_AGREEMENT",
    "INSERT_AGREEMENT",
    "INSERT_AGREEMENT_EVENT",
    "INSERT_INSTITUTION",
    "INSERT_SAMPLE_AGREEMENT",
    "INSERT_SUSPENSION",
    "INSTITUTION_BY_CODE",
    "INSTITUTION_EXISTS",
    "INSTITUTION_LOCKED",
    "INSTITUTION_WITH_ACTIVE_KEYS",
    "INSTITUTION_WITH_REGISTRATION",
    "OPEN_SUSPENSION",
    "REGISTER_INSTITUTION",
    "REINSTATE",
    "SUSPENSIONS_OF_INSTITUTION",
]

INSERT_INSTITUTION = """
INSERT INTO institutions (institution_code, name, area, kind, level, relies_on)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (institution_code) DO NOTHING
"""

# The registry API: None when the code is taken.
REGISTER_INSTITUTION = """
INSERT INTO institutions (institution_code, name, area, kind, level, relies_on)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (institution_code) DO NOTHING
RETURNING created_at
"""

INSTITUTION_BY_CODE = """
SELECT institution_code, name, area, kind, level, relies_on
  FROM institutions WHERE institution_code = $1
"""

# The institution, locked so that its agreements change one at a time (the lock
# does not block payments referring to it).
INSTITUTION_LOCKED = """
SELECT institution_code, name, area, kind, level, relies_on
  FROM institutions WHERE institution_code = $1
   FOR NO KEY UPDATE
"""

INSTITUTION_WITH_REGISTRATION = """
SELECT institution_code, name, area, kind, level, relies_on, created_at
  FROM institutions WHERE institution_code = $1
"""

# The status of `code`'s agreement on day `day`: dissolved, suspended, active, or no
# row when no agreement covers the day. An agreement dissolved before the day loses
# to a later one that covers it.
_STATUS_ON = """
SELECT CASE
         WHEN a.dissolved_from <= {day} THEN 'dissolved'
         WHEN EXISTS (SELECT 1 FROM agreement_suspensions s
                       WHERE s.agreement_id = a.agreement_id
                         AND daterange(s.suspended_from, s.reinstated_from, '[)') @> {day})
           THEN 'suspended'
         ELSE 'active'
       END AS status
  FROM institution_agreements a
 WHERE a.institution_code = {code}
   AND daterange(a.valid_from, a.valid_until, '[)') @> {day}
 ORDER BY a.dissolved_from <= {day} NULLS FIRST, a.valid_from DESC
 LIMIT 1
"""

# One round trip: the institution's kind, and its own and its physical institution's
# agreement status on day $2 (DOMAIN.md section 4).
DESIGNATION_ON = f"""
SELECT i.kind, i.relies_on, own.status, physical.status AS physical_status
  FROM institutions i
  LEFT JOIN LATERAL ({_STATUS_ON.format(code="i.institution_code", day="$2::date")}) own ON true
  LEFT JOIN LATERAL ({_STATUS_ON.format(code="i.relies_on", day="$2::date")}) physical ON true
 WHERE i.institution_code = $1
"""

INSERT_AGREEMENT = """
INSERT INTO institution_agreements (institution_code, valid_from, valid_until)
VALUES ($1, $2, $3)
RETURNING agreement_id
"""

# Seeding: an agreement from $2 with no end, unless the institution has one already.
INSERT_SAMPLE_AGREEMENT = """
WITH signed AS (
    INSERT INTO institution_agreements (institution_code, valid_from)
    SELECT $1, $2
     WHERE NOT EXISTS (SELECT 1 FROM institution_agreements WHERE institution_code = $1)
    RETURNING agreement_id, valid_from
)
INSERT INTO agreement_events (agreement_id, event, effective_from)
SELECT agreement_id, 'signed', valid_from FROM signed
"""

INSERT_AGREEMENT_EVENT = """
INSERT INTO agreement_events
       (agreement_id, event, effective_from, valid_until, reason, operator_id, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# The agreement an earlier attempt of the same request already changed.
AGREEMENT_CHANGED_BY_REQUEST = """
SELECT agreement_id FROM agreement_events WHERE operator_id = $1 AND idempotency_key = $2
"""

AGREEMENT_FOR_UPDATE = """
SELECT agreement_id, institution_code, valid_from, valid_until, dissolved_from
  FROM institution_agreements
 WHERE agreement_id = $1 AND institution_code = $2
   FOR UPDATE
"""

OPEN_SUSPENSION = """
SELECT suspended_from FROM agreement_suspensions
 WHERE agreement_id = $1 AND reinstated_from IS NULL
"""

INSERT_SUSPENSION = """
INSERT INTO agreement_suspensions (agreement_id, suspended_from) VALUES ($1, $2)
"""

REINSTATE = """
UPDATE agreement_suspensions SET reinstated_from = $2
 WHERE agreement_id = $1 AND reinstated_from IS NULL
"""

DISSOLVE_AGREEMENT = """
UPDATE institution_agreements SET dissolved_from = $2
 WHERE agreement_id = $1 AND dissolved_from IS NULL
"""

AGREEMENTS_OF_INSTITUTION = """
SELECT agreement_id, valid_from, valid_until, dissolved_from, created_at
  FROM institution_agreements
 WHERE institution_code = $1
 ORDER BY valid_from, agreement_id
"""

SUSPENSIONS_OF_INSTITUTION = """
SELECT s.agreement_id, s.suspended_from, s.reinstated_from
  FROM agreement_suspensions s
  JOIN institution_agreements a USING (agreement_id)
 WHERE a.institution_code = $1
 ORDER BY s.agreement_id, s.suspended_from
"""

AGREEMENT_EVENTS_OF_INSTITUTION = """
SELECT e.event_id, e.agreement_id, e.event, e.effective_from, e.valid_until, e.reason,
       e.operator_id, e.recorded_at
  FROM agreement_events e
  JOIN institution_agreements a USING (agreement_id)
 WHERE a.institution_code = $1
 ORDER BY e.event_id
"""

# --- institution keys (they sign e-prescriptions) ------------------------------------------

INSTITUTION_EXISTS = "SELECT 1 FROM institutions WHERE institution_code = $1"

ADD_INSTITUTION_KEY = """
INSERT INTO institution_keys (institution_code, algorithm, public_key_pem) VALUES ($1, $2, $3)
RETURNING key_id
"""

INSTITUTION_WITH_ACTIVE_KEYS = WITH_ACTIVE_KEYS.format(
    columns="t.institution_code, t.name, t.area, t.kind",
    table="institutions",
    keys="institution_keys",
    id="institution_code",
)
