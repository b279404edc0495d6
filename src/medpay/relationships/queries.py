"""SQL for persons, their insurance segments and the transfers between areas."""

from __future__ import annotations

__all__ = [
    "ACCEPT_TRANSFER",
    "CLOSE_SEGMENT",
    "CLOSE_TRANSFER",
    "EVENTS_OF_TRANSFERS",
    "EVENT_BY_KEY",
    "INSERT_PERSON",
    "INSERT_SEGMENT",
    "INSERT_TRANSFER",
    "INSERT_TRANSFER_EVENT",
    "ISSUE_CERTIFICATE",
    "LIST_TRANSFERS",
    "OPEN_SEGMENT_FOR_UPDATE",
    "OPEN_TRANSFERRED_SEGMENT",
    "OPEN_TRANSFER_OF_PERSON",
    "PERSON_EXISTS",
    "PERSON_KNOWN_TO_AREA",
    "SEGMENTS_OF_PERSON",
    "SEGMENT_FOR_UPDATE",
    "SEGMENT_ON_DATE",
    "TRANSFERS_OF_PERSON",
    "TRANSFER_BY_ID",
    "TRANSFER_FOR_UPDATE",
]

INSERT_PERSON = """
INSERT INTO persons (psn_no, sealed) VALUES ($1, $2)
ON CONFLICT (psn_no) DO NOTHING
"""

PERSON_EXISTS = "SELECT EXISTS (SELECT 1 FROM persons WHERE psn_no = $1)"

# Seeding: open a segment unless the person already has one covering that date.
INSERT_SEGMENT = """
INSERT INTO insurance_segments (psn_no, insured_area, scheme, valid_from, contribution_months)
SELECT $1, $2, $3, $4, $5
 WHERE NOT EXISTS (SELECT 1 FROM insurance_segments
                    WHERE psn_no = $1 AND daterange(valid_from, valid_until, '[)') @> $4::date)
"""

_SEGMENT_COLUMNS = """
s.segment_id, s.psn_no, s.insured_area, s.scheme, s.valid_from, s.valid_until,
s.contribution_months, s.carried_months, s.waiting_until
"""

SEGMENT_ON_DATE = f"""
SELECT {_SEGMENT_COLUMNS}
  FROM insurance_segments s
 WHERE s.psn_no = $1 AND daterange(s.valid_from, s.valid_until, '[)') @> $2::date
"""

# The one open segment of a person (a partial unique index allows no second one).
OPEN_SEGMENT_FOR_UPDATE = f"""
SELECT {_SEGMENT_COLUMNS}
  FROM insurance_segments s
 WHERE s.psn_no = $1 AND s.valid_until IS NULL
   FOR UPDATE
"""

SEGMENT_FOR_UPDATE = f"""
SELECT {_SEGMENT_COLUMNS}
  FROM insurance_segments s
 WHERE s.segment_id = $1
   FOR UPDATE
"""

SEGMENTS_OF_PERSON = f"""
SELECT {_SEGMENT_COLUMNS}, t.transfer_id AS opened_by_transfer_id
  FROM insurance_segments s
  LEFT JOIN relationship_transfers t ON t.to_segment_id = s.segment_id
 WHERE s.psn_no = $1
 ORDER BY s.valid_from, s.segment_id
"""

# Closing is the only change a segment ever sees (a trigger refuses any other).
CLOSE_SEGMENT = """
UPDATE insurance_segments SET valid_until = $2
 WHERE segment_id = $1 AND valid_until IS NULL
RETURNING segment_id
"""

OPEN_TRANSFERRED_SEGMENT = """
INSERT INTO insurance_segments
       (psn_no, insured_area, scheme, valid_from, contribution_months, carried_months, waiting_until)
VALUES ($1, $2, $3, $4, 0, $5, $6)
RETURNING segment_id
"""

# Agencies see the persons their area insures or insured, or who applied to move in.
PERSON_KNOWN_TO_AREA = """
SELECT EXISTS (SELECT 1 FROM insurance_segments WHERE psn_no = $1 AND insured_area = $2)
    OR EXISTS (SELECT 1 FROM relationship_transfers
                WHERE psn_no = $1 AND (from_area = $2 OR to_area = $2))
"""

# --- transfers -----------------------------------------------------------------------------

_TRANSFER_COLUMNS = """
transfer_id, psn_no, from_area, to_area, scheme, state, applicant_agency_id, from_segment_id,
requested_at, requested_on, certificate_due_on, certificate_issued_on, contribution_months,
personal_account_fen, contributions_stopped_on, acceptance_due_on, to_segment_id, accepted_on,
closing_reason, updated_at,
(SELECT sealed FROM persons WHERE persons.psn_no = relationship_transfers.psn_no) AS person_sealed
"""

INSERT_TRANSFER = f"""
INSERT INTO relationship_transfers
       (transfer_id, psn_no, from_area, to_area, scheme, applicant_agency_id, from_segment_id,
        requested_on, certificate_due_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {_TRANSFER_COLUMNS}
"""

OPEN_TRANSFER_OF_PERSON = """
SELECT transfer_id FROM relationship_transfers
 WHERE psn_no = $1 AND state IN ('requested', 'certificate_issued')
"""

TRANSFER_BY_ID = f"SELECT {_TRANSFER_COLUMNS} FROM relationship_transfers WHERE transfer_id = $1"
TRANSFER_FOR_UPDATE = TRANSFER_BY_ID + " FOR UPDATE"

ISSUE_CERTIFICATE = f"""
UPDATE relationship_transfers
   SET state = $2, certificate_issued_on = $3, contribution_months = $4,
       personal_account_fen = $5, contributions_stopped_on = $6, acceptance_due_on = $7,
       updated_at = now()
 WHERE transfer_id = $1
RETURNING {_TRANSFER_COLUMNS}
"""

ACCEPT_TRANSFER = f"""
UPDATE relationship_transfers
   SET state = $2, to_segment_id = $3, accepted_on = $4, updated_at = now()
 WHERE transfer_id = $1
RETURNING {_TRANSFER_COLUMNS}
"""

CLOSE_TRANSFER = f"""
UPDATE relationship_transfers
   SET state = $2, closing_reason = $3, updated_at = now()
 WHERE transfer_id = $1
RETURNING {_TRANSFER_COLUMNS}
"""

TRANSFERS_OF_PERSON = f"""
SELECT {_TRANSFER_COLUMNS} FROM relationship_transfers
 WHERE psn_no = $1
 ORDER BY requested_at, transfer_id
"""

# $1: an agency's area, or NULL for every area; $2: only open transfers past a deadline
# before this date (the caller counts working days), or NULL for all; $3: at most.
LIST_TRANSFERS = f"""
SELECT {_TRANSFER_COLUMNS} FROM relationship_transfers
 WHERE ($1::text IS NULL OR from_area = $1 OR to_area = $1)
   AND ($2::date IS NULL
        OR (state = 'requested' AND certificate_due_on < $2)
        OR (state = 'certificate_issued' AND acceptance_due_on < $2))
 ORDER BY requested_at DESC, transfer_id
 LIMIT $3
"""

# --- events ------------------------------------------------------------------------------

INSERT_TRANSFER_EVENT = """
INSERT INTO relationship_transfer_events (transfer_id, step, agency_id, details, idempotency_key)
VALUES ($1, $2, $3, $4, $5)
"""

EVENT_BY_KEY = """
SELECT transfer_id, step FROM relationship_transfer_events
 WHERE agency_id = $1 AND idempotency_key = $2
"""

EVENTS_OF_TRANSFERS = """
SELECT transfer_id, step, agency_id, occurred_at, details
  FROM relationship_transfer_events
 WHERE transfer_id = any($1::uuid[])
 ORDER BY event_id
"""
