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
    "INSERT_REFUND",
    "INSERT_REVERSAL",
    "INSERT_SETTLEMENT",
    "LOCK_PAYMENT_FOR_SETTLEMENT",
    "LOCK_PAYMENT_STATE",
    "PAYMENT_BY_ID",
    "PAYMENT_BY_IDEMPOTENCY_KEY",
    "PAYMENT_FOR_NOTIFICATION",
    "PAYMENT_STATE",
    "RECORD_PAYMENT",
    "RECORD_REPLACEMENT",
    "REFUND_AWAITING_REVERSAL",
    "REFUND_BY_ID",
    "REFUND_BY_IDEMPOTENCY_KEY",
    "REFUND_ENDS",
    "REFUND_OF_REPLACEMENT_ENDS",
    "REFUND_REFUSED",
    "REPLACEMENT_OF_PAYMENT",
    "RESCHEDULE",
    "SETTLEMENT_POSTINGS",
    "SET_INSURED",
    "SET_REFUND_RESETTLING",
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
                          next_check_at, state, insured_area, scheme, failure_code, failure_detail,
                          person_sealed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $23)
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
       p.service_date, p.insured_area, p.scheme, p.replaces_payment_id,
       p.person_sealed,
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
       p.treatment_area, p.medical_fee_total_fen, p.prescription_id, p.replaces_payment_id,
       s.setl_id, a.webhook_url, p.person_sealed
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

# --- refunds (medpay.payments.refunds) -------------------------------------------------------

REFUND_BY_IDEMPOTENCY_KEY = """
SELECT refund_id, payment_id, request_digest FROM refunds WHERE app_id = $1 AND idempotency_key = $2
"""

# A refund waiting for its payment's reversal (the payment row is locked by the caller).
REFUND_AWAITING_REVERSAL = """
SELECT refund_id, kind FROM refunds WHERE payment_id = $1 AND state = 'reversing' FOR UPDATE
"""

INSERT_REFUND = """
WITH refund AS (
    INSERT INTO refunds (refund_id, payment_id, app_id, idempotency_key, request_digest, kind,
                         reason, state)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'reversing')
    RETURNING refund_id
)
INSERT INTO refund_items (refund_id, line_no, quantity_returned)
SELECT refund.refund_id, t.line_no, t.quantity
  FROM refund, unnest($8::int[], $9::int[]) AS t (line_no, quantity)
"""

# The lines a partial refund keeps, as a payment of their own: recorded "received" (so the
# resolver continues it if nobody else does), for the original's person, place, insurer and
# service date, under a key no app can send ('/' is not allowed in an Idempotency-Key).
RECORD_REPLACEMENT = """
WITH kept AS (
    SELECT i.line_no, i.item_code, i.quantity - coalesce(r.quantity_returned, 0) AS quantity,
           i.unit_price_fen
      FROM payment_items i
      LEFT JOIN refund_items r ON r.refund_id = $2 AND r.line_no = i.line_no
     WHERE i.payment_id = (SELECT payment_id FROM refunds WHERE refund_id = $2)
       AND i.quantity > coalesce(r.quantity_returned, 0)
), payment AS (
    INSERT INTO payments (payment_id, app_id, idempotency_key, request_digest, psn_no,
                          institution_code, treatment_area, visit_type, prescription_id,
                          personal_account_allowed, medical_fee_total_fen, service_date,
                          next_check_at, state, insured_area, scheme, replaces_payment_id,
                          person_sealed)
    SELECT $1, o.app_id, 'refund/' || f.refund_id, f.request_digest, o.psn_no,
           o.institution_code, o.treatment_area, o.visit_type, o.prescription_id,
           o.personal_account_allowed,
           (SELECT sum(k.quantity::bigint * k.unit_price_fen) FROM kept k),
           o.service_date, now(), 'received', o.insured_area, o.scheme, o.payment_id,
           o.person_sealed
      FROM refunds f JOIN payments o USING (payment_id)
     WHERE f.refund_id = $2
    RETURNING payment_id
)
INSERT INTO payment_items (payment_id, line_no, item_code, quantity, unit_price_fen, total_fen)
SELECT payment.payment_id, k.line_no, k.item_code, k.quantity, k.unit_price_fen,
       k.quantity::bigint * k.unit_price_fen
  FROM payment, kept k
"""

REPLACEMENT_OF_PAYMENT = "SELECT payment_id, state FROM payments WHERE replaces_payment_id = $1"

SET_REFUND_RESETTLING = """
UPDATE refunds SET state = 'resettling', replacement_payment_id = $2, updated_at = now()
 WHERE refund_id = $1
"""

# $1 a refund's id, or (REFUND_OF_REPLACEMENT_ENDS) the replacement payment's.
REFUND_ENDS = """
UPDATE refunds SET state = $2, failure_code = $3, failure_detail = $4, updated_at = now()
 WHERE refund_id = $1
"""

REFUND_OF_REPLACEMENT_ENDS = """
UPDATE refunds SET state = $2, failure_code = $3, failure_detail = $4, updated_at = now()
 WHERE replacement_payment_id = $1 AND state IN ('resettling', 'refunded')
"""

REFUND_REFUSED = """
UPDATE refunds SET state = 'refused', failure_code = $2, failure_detail = $3, updated_at = now()
 WHERE payment_id = $1 AND state = 'reversing'
"""

# A refund as its app sees it: the lines given back (priced as they were bought), and, once
# it is done, what went back where: the original settlement less the replacement's.
REFUND_BY_ID = """
SELECT f.refund_id, f.payment_id, f.app_id, p.psn_no, f.kind, f.reason, f.state,
       f.replacement_payment_id, f.failure_code, f.failure_detail, f.created_at, f.updated_at,
       r.items, r.returned_total_fen,
       o.medical_fee_total_fen - coalesce(n.medical_fee_total_fen, 0) AS medical_fee_total_fen,
       o.fund_total_fen - coalesce(n.fund_total_fen, 0) AS fund_total_fen,
       o.basic_fund_fen - coalesce(n.basic_fund_fen, 0) AS basic_fund_fen,
       o.critical_illness_fen - coalesce(n.critical_illness_fen, 0) AS critical_illness_fen,
       o.medical_assistance_fen - coalesce(n.medical_assistance_fen, 0) AS medical_assistance_fen,
       o.personal_account_fen - coalesce(n.personal_account_fen, 0) AS personal_account_fen,
       o.cash_fen - coalesce(n.cash_fen, 0) AS cash_fen
  FROM refunds f
  JOIN payments p ON p.payment_id = f.payment_id
  JOIN settlements o ON o.payment_id = f.payment_id
  LEFT JOIN settlements n ON n.payment_id = f.replacement_payment_id AND f.state = 'refunded'
 CROSS JOIN LATERAL (
       SELECT jsonb_agg(jsonb_build_object(
                  'line_no', i.line_no, 'item_code', i.item_code, 'quantity', ri.quantity_returned,
                  'unit_price_fen', i.unit_price_fen,
                  'total_fen', ri.quantity_returned::bigint * i.unit_price_fen) ORDER BY i.line_no)
                  AS items,
              sum(ri.quantity_returned::bigint * i.unit_price_fen)::bigint AS returned_total_fen
         FROM refund_items ri
         JOIN payment_items i ON i.payment_id = f.payment_id AND i.line_no = ri.line_no
        WHERE ri.refund_id = f.refund_id) r
 WHERE f.refund_id = $1
"""
