"""SQL for payments, their fee items, settlements and reversals."""

from __future__ import annotations

from medpay.payments.states import UNFINISHED_STATES

__all__ = [
    "CLAIM_UNFINISHED",
    "COUNT_UNFINISHED",
    "ENQUEUE_EVENT",
    "INSERT_CORRECTION",
    "INSERT_ITEMS",
    "INSERT_PAYMENT",
    "INSERT_REVERSAL",
    "INSERT_SETTLEMENT",
    "LOCK_PAYMENT_FOR_SETTLEMENT",
    "LOCK_PAYMENT_STATE",
    "PAYMENT_BY_ID",
    "PAYMENT_BY_IDEMPOTENCY_KEY",
    "PAYMENT_FOR_NOTIFICATION",
    "PAYMENT_STATE",
    "RECORD_PAYMENT",
    "RESCHEDULE",
    "SETTLEMENT_POSTINGS",
    "SET_INSURED",
    "SET_STATE",
    "START_SETTLING",
]

#: The states the resolver watches, as SQL (the partial index payments_unfinished says the same).
_UNFINISHED = ", ".join(f"'{state}'" for state in sorted(UNFINISHED_STATES))

# A retried request under the same key finds the first payment (see security.idempotency).
INSERT_PAYMENT = """
INSERT INTO payments (payment_id, app_id, idempotency_key, request_digest, psn_no, institution_code,
                      treatment_area, visit_type, prescription_id, personal_account_allowed,
                      medical_fee_total_fen, service_date, next_check_at, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'received')
ON CONFLICT (app_id, idempotency_key) DO NOTHING
RETURNING payment_id
"""

INSERT_ITEMS = """
INSERT INTO payment_items (payment_id, line_no, item_code, quantity, unit_price_fen, total_fen)
SELECT $1, t.line_no, t.item_code, t.quantity, t.unit_price_fen, t.quantity::bigint * t.unit_price_fen
  FROM unnest($2::int[], $3::text[], $4::int[], $5::bigint[])
       AS t (line_no, item_code, quantity, unit_price_fen)
"""

# The payment and its lines in one statement, as what it is once prepared: settling, or
# failed with the refusal (it never rests in "received"). Nothing comes back when an
# earlier request of the app used the key (see payments.flow).
RECORD_PAYMENT = """
WITH payment AS (
    INSERT INTO payments (payment_id, app_id, idempotency_key, request_digest, psn_no,
                          institution_code, treatment_area, visit_type, prescription_id,
                          personal_account_allowed, medical_fee_total_fen, service_date,
                          next_check_at, state, insured_area, scheme, failure_code, failure_detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    ON CONFLICT (app_id, idempotency_key) DO NOTHING
    RETURNING payment_id
), lines AS (
    INSERT INTO payment_items (payment_id, line_no, item_code, quantity, unit_price_fen, total_fen)
    SELECT payment.payment_id, t.line_no, t.item_code, t.quantity, t.unit_price_fen,
           t.quantity::bigint * t.unit_price_fen
      FROM payment, unnest($19::int[], $20::text[], $21::int[], $22::bigint[])
           AS t (line_no, item_code, quantity, unit_price_fen)
)
SELECT payment_id FROM payment
"""

_PAYMENT_COLUMNS = """
       p.payment_id, p.app_id, p.psn_no, p.institution_code, p.treatment_area, p.visit_type,
       p.prescription_id, p.personal_account_allowed, p.medical_fee_total_fen, p.state,
       p.failure_code, p.failure_detail, p.created_at, p.updated_at, p.request_digest,
       p.service_date, p.insured_area, p.scheme,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'line_no', i.line_no, 'item_code', i.item_code, 'quantity', i.quantity,
                   'unit_price_fen', i.unit_price_fen, 'total_fen', i.total_fen) ORDER BY i.line_no), '[]')
          FROM payment_items i WHERE i.payment_id = p.payment_id) AS items,
       s.setl_id, s.full_own_pay_fen, s.over_limit_self_pay_fen, s.pre_self_pay_fen, s.in_scope_fen,
       s.deductible_fen, s.reimbursement_ratio_bp, s.basic_fund_fen, s.critical_illness_fen,
       s.medical_assistance_fen, s.fund_total_fen, s.personal_share_fen, s.personal_account_fen,
       s.cash_fen, s.account_balance_after_fen, s.settled_at, r.reversed_at
"""

_PAYMENT_FROM = """
  FROM payments p
  LEFT JOIN settlements s ON s.payment_id = p.payment_id
  LEFT JOIN reversals r ON r.payment_id = p.payment_id
"""

PAYMENT_BY_ID = f"SELECT {_PAYMENT_COLUMNS} {_PAYMENT_FROM} WHERE p.payment_id = $1"

PAYMENT_BY_IDEMPOTENCY_KEY = (
    f"SELECT {_PAYMENT_COLUMNS} {_PAYMENT_FROM} WHERE p.app_id = $1 AND p.idempotency_key = $2"
)

# Every state change first locks the payment row, so two workers cannot both move it.
LOCK_PAYMENT_STATE = "SELECT state FROM payments WHERE payment_id = $1 FOR UPDATE"

# What a recorder needs of a payment it is about to move (see payments.recording.lock).
LOCK_PAYMENT_FOR_SETTLEMENT = """
SELECT p.payment_id, p.app_id, p.state, p.psn_no, p.institution_code, p.insured_area,
       p.treatment_area, p.medical_fee_total_fen, p.prescription_id, s.setl_id, a.webhook_url
  FROM payments p
  JOIN apps a USING (app_id)
  LEFT JOIN settlements s USING (payment_id)
 WHERE p.payment_id = $1
   FOR UPDATE OF p
"""

# A payment recorded "received" (by an earlier version) learns its insurer once prepared.
SET_INSURED = "UPDATE payments SET insured_area = $2, scheme = $3 WHERE payment_id = $1"

START_SETTLING = """
UPDATE payments SET state = 'settling', insured_area = $2, scheme = $3, next_check_at = $4, updated_at = now()
 WHERE payment_id = $1
"""

# $5: when the resolver should look at it next (NULL for a final state).
SET_STATE = """
UPDATE payments SET state = $2, failure_code = $3, failure_detail = $4, next_check_at = $5,
                    check_attempts = CASE WHEN $5::timestamptz IS NULL THEN check_attempts ELSE 0 END,
                    updated_at = now()
 WHERE payment_id = $1
"""

PAYMENT_STATE = "SELECT state FROM payments WHERE payment_id = $1"

# The resolver claims due payments for a lease, so several gateway processes share the
# work without holding locks across network calls.
CLAIM_UNFINISHED = f"""
UPDATE payments p
   SET next_check_at = now() + make_interval(secs => $2), check_attempts = p.check_attempts + 1
  FROM (SELECT payment_id FROM payments
         WHERE state IN ({_UNFINISHED}) AND next_check_at <= now()
         ORDER BY next_check_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED) due
 WHERE p.payment_id = due.payment_id
RETURNING p.payment_id, p.check_attempts
"""

RESCHEDULE = f"""
UPDATE payments SET next_check_at = now() + make_interval(secs => $2)
 WHERE payment_id = $1 AND state IN ({_UNFINISHED})
"""

COUNT_UNFINISHED = f"""
SELECT count(*) FROM payments WHERE state IN ({_UNFINISHED})
"""

INSERT_SETTLEMENT = """
INSERT INTO settlements (payment_id, setl_id, insured_province, treatment_province, medical_fee_total_fen,
                         full_own_pay_fen, over_limit_self_pay_fen, pre_self_pay_fen, in_scope_fen,
                         deductible_fen, basic_fund_fen, reimbursement_ratio_bp, critical_illness_fen,
                         medical_assistance_fen, fund_total_fen, personal_share_fen, personal_account_fen,
                         cash_fen, account_balance_after_fen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
"""

SETTLEMENT_POSTINGS = """
SELECT p.account, p.amount_fen
  FROM ledger_journals j JOIN ledger_postings p USING (journal_id)
 WHERE j.payment_id = $1 AND j.kind = 'settlement'
 ORDER BY p.line_no
"""

INSERT_REVERSAL = "INSERT INTO reversals (payment_id) VALUES ($1)"

INSERT_CORRECTION = "INSERT INTO settlement_corrections (payment_id, reason) VALUES ($1, $2)"

# --- the outbox (medpay.payments.events) ---------------------------------------------------

PAYMENT_FOR_NOTIFICATION = """
SELECT p.app_id, a.webhook_url FROM payments p JOIN apps a USING (app_id) WHERE p.payment_id = $1
"""

# The payment row is locked by the caller, so max(sequence) + 1 cannot race.
ENQUEUE_EVENT = """
INSERT INTO notification_outbox (event_id, payment_id, app_id, sequence, event_type, payload)
SELECT $1, $2, $3, coalesce(max(sequence), 0) + 1, $4, $5
  FROM notification_outbox WHERE payment_id = $2
"""
