"""SQL for payments and their fee items."""

from __future__ import annotations

__all__ = ["INSERT_ITEMS", "INSERT_PAYMENT", "PAYMENT_BY_ID", "PAYMENT_BY_IDEMPOTENCY_KEY"]

# A retried request under the same key finds the first payment (see security.idempotency).
INSERT_PAYMENT = """
INSERT INTO payments (payment_id, app_id, idempotency_key, request_digest, psn_no, institution_code,
                      treatment_area, visit_type, prescription_id, personal_account_allowed,
                      medical_fee_total_fen, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'received')
ON CONFLICT (app_id, idempotency_key) DO NOTHING
RETURNING payment_id
"""

INSERT_ITEMS = """
INSERT INTO payment_items (payment_id, line_no, item_code, quantity, unit_price_fen, total_fen)
SELECT $1, t.line_no, t.item_code, t.quantity, t.unit_price_fen, t.quantity::bigint * t.unit_price_fen
  FROM unnest($2::int[], $3::text[], $4::int[], $5::bigint[])
       AS t (line_no, item_code, quantity, unit_price_fen)
"""

_PAYMENT_COLUMNS = """
       p.payment_id, p.app_id, p.psn_no, p.institution_code, p.treatment_area, p.visit_type,
       p.prescription_id, p.personal_account_allowed, p.medical_fee_total_fen, p.state,
       p.failure_code, p.created_at, p.updated_at, p.request_digest,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'line_no', i.line_no, 'item_code', i.item_code, 'quantity', i.quantity,
                   'unit_price_fen', i.unit_price_fen, 'total_fen', i.total_fen) ORDER BY i.line_no), '[]')
          FROM payment_items i WHERE i.payment_id = p.payment_id) AS items
"""

PAYMENT_BY_ID = f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.payment_id = $1"

PAYMENT_BY_IDEMPOTENCY_KEY = (
    f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.app_id = $1 AND p.idempotency_key = $2"
)
