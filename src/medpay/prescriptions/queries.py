"""SQL for prescriptions and their redemptions (migration 0006)."""

from __future__ import annotations

__all__ = [
    "INSERT_PRESCRIPTION",
    "INSERT_PRESCRIPTION_ITEMS",
    "INSERT_REDEMPTION",
    "INSERT_REDEMPTION_EVENT",
    "INSTITUTION_KIND",
    "LATEST_REDEMPTION",
    "LOCK_PRESCRIPTION",
    "LOCK_PRESCRIPTION_OF_PAYMENT",
    "PERSON_EXISTS",
    "PRESCRIPTION_BY_ID",
    "PRESCRIPTION_BY_IDEMPOTENCY_KEY",
    "PRESCRIPTION_ITEMS",
    "REDEMPTION_OF_PAYMENT",
]

INSTITUTION_KIND = "SELECT kind FROM institutions WHERE institution_code = $1"

# --- issuing --------------------------------------------------------------------------------

PERSON_EXISTS = "SELECT 1 FROM persons WHERE psn_no = $1"

# A retried request under the same key finds the first prescription (see security.idempotency).
INSERT_PRESCRIPTION = """
INSERT INTO prescriptions (prescription_id, institution_code, idempotency_key, request_digest,
                           psn_no, kind, validity_days, issued_at, valid_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (institution_code, idempotency_key) DO NOTHING
RETURNING prescription_id
"""

INSERT_PRESCRIPTION_ITEMS = """
INSERT INTO prescription_items (prescription_id, line_no, item_code, max_quantity)
SELECT $1, t.line_no, t.item_code, t.max_quantity
  FROM unnest($2::int[], $3::text[], $4::int[]) AS t (line_no, item_code, max_quantity)
"""

_PRESCRIPTION_COLUMNS = """
SELECT p.prescription_id, p.institution_code, p.request_digest, p.psn_no, p.kind,
       (SELECT sealed FROM persons WHERE persons.psn_no = p.psn_no) AS person_sealed,
       p.validity_days, p.issued_at, p.valid_from, p.valid_until,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'item_code', i.item_code, 'max_quantity', i.max_quantity) ORDER BY i.line_no), '[]')
          FROM prescription_items i WHERE i.prescription_id = p.prescription_id) AS items,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'attempt', r.attempt, 'payment_id', r.payment_id, 'pharmacy_code', r.pharmacy_code,
                   'service_date', r.service_date, 'state', r.state, 'reserved_at', r.reserved_at,
                   'redeemed_at', r.redeemed_at, 'released_at', r.released_at) ORDER BY r.attempt), '[]')
          FROM prescription_redemption_states r WHERE r.prescription_id = p.prescription_id) AS redemptions
  FROM prescriptions p
"""

PRESCRIPTION_BY_ID = f"{_PRESCRIPTION_COLUMNS} WHERE p.prescription_id = $1"

PRESCRIPTION_BY_IDEMPOTENCY_KEY = (
    f"{_PRESCRIPTION_COLUMNS} WHERE p.institution_code = $1 AND p.idempotency_key = $2"
)

# --- redeeming ------------------------------------------------------------------------------
# Lock order, everywhere: the payment row (the payment flow takes it), then the
# prescription row. Every redemption change of a prescription first locks its row, so
# two pharmacies' settling transactions take turns; the second reads what the first
# committed (each statement after the lock has a fresh snapshot under READ COMMITTED).

LOCK_PRESCRIPTION = """
SELECT prescription_id, psn_no, valid_from, valid_until
  FROM prescriptions WHERE prescription_id = $1
   FOR UPDATE
"""

PRESCRIPTION_ITEMS = """
SELECT item_code, max_quantity FROM prescription_items WHERE prescription_id = $1
"""

LATEST_REDEMPTION = """
SELECT attempt, payment_id, pharmacy_code, state
  FROM prescription_redemption_states
 WHERE prescription_id = $1
 ORDER BY attempt DESC
 LIMIT 1
"""

INSERT_REDEMPTION = """
INSERT INTO prescription_redemptions (prescription_id, attempt, payment_id, pharmacy_code, service_date)
VALUES ($1, $2, $3, $4, $5)
"""

LOCK_PRESCRIPTION_OF_PAYMENT = """
SELECT p.prescription_id
  FROM prescription_redemptions r
  JOIN prescriptions p ON p.prescription_id = r.prescription_id
 WHERE r.payment_id = $1
   FOR UPDATE OF p
"""

REDEMPTION_OF_PAYMENT = """
SELECT prescription_id, attempt, state, pharmacy_code, service_date
  FROM prescription_redemption_states
 WHERE payment_id = $1
"""

INSERT_REDEMPTION_EVENT = """
INSERT INTO prescription_redemption_events (prescription_id, attempt, state) VALUES ($1, $2, $3)
"""
