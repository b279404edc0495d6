"""SQL for the operator's view: a day's volumes, and what a payment's story is made of."""

from __future__ import annotations

__all__ = [
    "CALLBACKS_OF_PAYMENT",
    "CORRECTION_OF_PAYMENT",
    "MESSAGES_OF_PAYMENT",
    "REFUNDS_OF_PAYMENT",
    "STATES_OF_PAYMENT",
    "VOLUMES_OF_DAY",
]

# Payments of a service date (China) by the insured province that settles them; amounts
# of those settled now (settled or reversing) and of those reversed.
VOLUMES_OF_DAY = """
SELECT CASE WHEN p.insured_area IS NULL THEN NULL ELSE substr(p.insured_area, 1, 2) || '0000' END
           AS province,
       count(*) AS payments,
       count(*) FILTER (WHERE p.state IN ('settled', 'reversing')) AS settled,
       count(*) FILTER (WHERE p.state = 'reversed') AS reversed,
       count(*) FILTER (WHERE p.state = 'failed') AS failed,
       count(*) FILTER (WHERE p.state IN ('received', 'settling', 'unknown')) AS processing,
       coalesce(sum(s.medical_fee_total_fen) FILTER (WHERE p.state IN ('settled', 'reversing')), 0)::bigint
           AS medical_fee_total_fen,
       coalesce(sum(s.fund_total_fen) FILTER (WHERE p.state IN ('settled', 'reversing')), 0)::bigint
           AS fund_total_fen,
       coalesce(sum(s.personal_account_fen) FILTER (WHERE p.state IN ('settled', 'reversing')), 0)::bigint
           AS personal_account_fen,
       coalesce(sum(s.cash_fen) FILTER (WHERE p.state IN ('settled', 'reversing')), 0)::bigint
           AS cash_fen,
       coalesce(sum(s.medical_fee_total_fen) FILTER (WHERE p.state = 'reversed'), 0)::bigint
           AS reversed_fee_total_fen
  FROM payments p
  LEFT JOIN settlements s USING (payment_id)
 WHERE p.service_date = $1
 GROUP BY 1
 ORDER BY 1 NULLS LAST
"""

STATES_OF_PAYMENT = """
SELECT from_state, to_state, failure_code, changed_at
  FROM payment_state_changes
 WHERE payment_id = $1
 ORDER BY change_id
"""

MESSAGES_OF_PAYMENT = """
SELECT msgid, infno, province, outcome, created_at, request
  FROM province_messages
 WHERE payment_id = $1
 ORDER BY created_at, msgid
"""

# A callback is the payment's when it was matched to it, or reports on one of its msgids.
CALLBACKS_OF_PAYMENT = """
SELECT province, callback_id, ref_msgid, result, outcome, received_at, body
  FROM province_callbacks
 WHERE payment_id = $1
    OR ref_msgid IN (SELECT msgid FROM province_messages WHERE payment_id = $1)
 ORDER BY callback_row
"""

# The refunds that gave the payment back, or whose lines kept it is.
REFUNDS_OF_PAYMENT = """
SELECT refund_id, payment_id, kind, reason, state, replacement_payment_id, failure_code,
       created_at, updated_at
  FROM refunds
 WHERE payment_id = $1 OR replacement_payment_id = $1
 ORDER BY created_at
"""

CORRECTION_OF_PAYMENT = """
SELECT reason, corrected_at FROM settlement_corrections WHERE payment_id = $1
"""
