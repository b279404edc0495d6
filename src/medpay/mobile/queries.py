"""SQL for fee uploads (``mobile_orders``): the orders 6201 records and 6202 pays."""

from __future__ import annotations

__all__ = [
    "CANCEL_UPLOAD",
    "CLAIM_REFUND",
    "INSERT_UPLOAD",
    "SUBMIT_UPLOAD",
    "UPLOAD_BY_ID",
    "UPLOAD_BY_ORDER_NUMBER",
]

_COLUMNS = """pay_ord_id, app_id, med_org_ord, upload_digest, psn_no, payment_order,
       medical_fee_total_fen, state, refund_sn,
       person_sealed"""

# A repeated 6201 (same app, same medOrgOrd) finds the first upload instead.
INSERT_UPLOAD = """
INSERT INTO mobile_orders (pay_ord_id, app_id, med_org_ord, upload_digest, psn_no, pay_auth_id,
                           payment_order, medical_fee_total_fen, person_sealed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (app_id, med_org_ord) DO NOTHING
RETURNING pay_ord_id
"""

UPLOAD_BY_ORDER_NUMBER = f"""
SELECT {_COLUMNS} FROM mobile_orders WHERE app_id = $1 AND med_org_ord = $2
"""

UPLOAD_BY_ID = f"SELECT {_COLUMNS} FROM mobile_orders WHERE pay_ord_id = $1"

# 6202 hands the upload to the payment flow; a repeat finds it handed already. The row
# lock orders it against a concurrent 6401: one of the two wins.
SUBMIT_UPLOAD = """
UPDATE mobile_orders SET state = 'submitted', updated_at = now()
 WHERE pay_ord_id = $1 AND state IN ('uploaded', 'submitted')
RETURNING 1
"""

CANCEL_UPLOAD = """
UPDATE mobile_orders SET state = 'cancelled', updated_at = now()
 WHERE pay_ord_id = $1 AND state IN ('uploaded', 'cancelled')
RETURNING 1
"""

# The first appRefdSn is the order's refund; the same one again finds it.
CLAIM_REFUND = """
UPDATE mobile_orders SET refund_sn = $2, updated_at = now()
 WHERE pay_ord_id = $1 AND (refund_sn IS NULL OR refund_sn = $2)
RETURNING 1
"""
