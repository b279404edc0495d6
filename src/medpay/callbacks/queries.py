"""SQL for provincial callbacks."""

from __future__ import annotations

__all__ = ["INSERT_CALLBACK", "SET_CALLBACK_OUTCOME"]

# The unique (province, callback_id) makes a duplicate delivery a no-op.
INSERT_CALLBACK = """
INSERT INTO province_callbacks (province, callback_id, ref_msgid, payment_id, result, outcome, body)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (province, callback_id) DO NOTHING
RETURNING callback_row
"""

# $3: why a conflict is one (for reconciliation), or NULL.
SET_CALLBACK_OUTCOME = (
    "UPDATE province_callbacks SET outcome = $2, detail = $3 WHERE callback_row = $1"
)
