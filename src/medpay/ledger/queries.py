"""SQL for ledger journals and postings."""

from __future__ import annotations

__all__ = [
    "ACCOUNT_BALANCES",
    "BALANCES",
    "CHECKED_COUNTS",
    "INSERT_JOURNAL",
    "INSERT_POSTINGS",
    "INSERT_TRANSFER_JOURNAL",
    "JOURNALS_OF_PAYMENT",
    "JOURNALS_OUT_OF_STATE",
    "JOURNALS_UNBALANCED",
    "NET_NOT_ZERO",
    "POSTINGS_OF_PAYMENT",
    "POSTINGS_OF_TRANSFER",
    "REFUNDS_OUT_OF_STEP",
    "SETTLEMENT_JOURNALS_UNLIKE_BREAKDOWN",
    "TRANSFER_JOURNALS_UNLIKE_BALANCE",
]

# A journal is about one payment or one relationship transfer (its ``owner`` column), at most
# one of each kind: a second write of the same journal does nothing and returns no row.
_INSERT_JOURNAL = """
INSERT INTO ledger_journals ({owner}, kind) VALUES ($1, $2)
ON CONFLICT ({owner}, kind) DO NOTHING
RETURNING journal_id
"""
INSERT_JOURNAL = _INSERT_JOURNAL.format(owner="payment_id")
# A relationship transfer's journal (DOMAIN.md section 6): the personal account balance moved.
INSERT_TRANSFER_JOURNAL = _INSERT_JOURNAL.format(owner="transfer_id")

INSERT_POSTINGS = """
INSERT INTO ledger_postings (journal_id, line_no, account, amount_fen)
SELECT $1, t.line_no, t.account, t.amount_fen
  FROM unnest($2::smallint[], $3::text[], $4::bigint[]) AS t (line_no, account, amount_fen)
"""

POSTINGS_OF_PAYMENT = """
SELECT j.kind, p.account, p.amount_fen
  FROM ledger_journals j JOIN ledger_postings p USING (journal_id)
 WHERE j.payment_id = $1
 ORDER BY j.journal_id, p.line_no
"""

POSTINGS_OF_TRANSFER = """
SELECT j.journal_id, j.kind, p.account, p.amount_fen
  FROM ledger_journals j JOIN ledger_postings p USING (journal_id)
 WHERE j.transfer_id = $1
 ORDER BY j.journal_id, p.line_no
"""

ACCOUNT_BALANCES = (
    "SELECT account, sum(amount_fen)::bigint AS balance_fen FROM ledger_postings GROUP BY account"
)

# Balances by account as of a time: the journals written up to then (a prefix such as
# 'fund_receivable:' takes every province; starts_with, because '_' is a LIKE wildcard).
BALANCES = """
SELECT p.account, sum(p.amount_fen)::bigint AS balance_fen
  FROM ledger_postings p
  JOIN ledger_journals j USING (journal_id)
 WHERE ($1::text IS NULL OR p.account = $1)
   AND ($2::text IS NULL OR starts_with(p.account, $2))
   AND ($3::timestamptz IS NULL OR j.created_at <= $3)
 GROUP BY p.account
 ORDER BY p.account
"""

# Every journal of a payment with its postings, for its story.
JOURNALS_OF_PAYMENT = """
SELECT j.journal_id, j.kind, j.created_at,
       jsonb_agg(jsonb_build_object('account', p.account, 'amount_fen', p.amount_fen)
                 ORDER BY p.line_no) AS postings
  FROM ledger_journals j JOIN ledger_postings p USING (journal_id)
 WHERE j.payment_id = $1
 GROUP BY j.journal_id
 ORDER BY j.journal_id
"""

# --- the invariants (medpay.ledger.check); each lists at most $1 failures ---------------------

CHECKED_COUNTS = """
SELECT (SELECT count(*) FROM ledger_journals) AS journals,
       (SELECT count(*) FROM settlements) AS settlements,
       (SELECT count(*) FROM payments WHERE state IN ('reversed', 'failed')
                                        AND payment_id IN (SELECT payment_id FROM settlements))
           AS undone,
       (SELECT count(*) FROM payments) AS payments,
       (SELECT count(*) FROM relationship_transfers) AS transfers,
       (SELECT count(*) FROM refunds) AS refunds
"""

# A refund whose state does not follow from its two payments' (medpay.payments.refunds):
# what the app is told it got back must be what the journals say went back.
REFUNDS_OUT_OF_STEP = """
SELECT f.refund_id, f.kind, f.state, o.state AS original_state, n.state AS replacement_state
  FROM refunds f
  JOIN payments o ON o.payment_id = f.payment_id
  LEFT JOIN payments n ON n.payment_id = f.replacement_payment_id
 WHERE NOT CASE f.state
       WHEN 'reversing' THEN o.state = 'reversing' AND n.payment_id IS NULL
       WHEN 'refused' THEN n.payment_id IS NULL
       WHEN 'resettling' THEN o.state = 'reversed'
                          AND n.state IN ('received', 'settling', 'unknown')
       WHEN 'refunded' THEN o.state = 'reversed'
                        AND (f.kind = 'full' AND n.payment_id IS NULL
                             OR f.kind = 'partial' AND n.state IN ('settled', 'reversing', 'reversed'))
       WHEN 'resettlement_failed' THEN o.state = 'reversed' AND n.state = 'failed'
       ELSE false END
 ORDER BY f.refund_id
 LIMIT $1
"""


def _posted_unlike_expected(subject: str, posted: str, expected: str) -> str:
    """Where the journals post, per (``subject``, account), other than ``expected`` says.

    ``expected`` selects (``subject``, account, amount_fen) and ``posted`` picks the
    journals (alias ``j``) to compare; ``$1`` is how many rows at most.
    """
    return f"""
WITH expected AS (
{expected.strip(chr(10))}
), actual AS (
    SELECT j.{subject}, p.account, sum(p.amount_fen)::bigint AS amount_fen
      FROM ledger_journals j JOIN ledger_postings p USING (journal_id)
     WHERE {posted}
     GROUP BY j.{subject}, p.account
)
SELECT coalesce(e.{subject}, a.{subject}) AS {subject},
       coalesce(e.account, a.account) AS account,
       e.amount_fen AS expected_fen, a.amount_fen AS actual_fen
  FROM expected e FULL JOIN actual a ON a.{subject} = e.{subject} AND a.account = e.account
 WHERE e.amount_fen IS DISTINCT FROM a.amount_fen
 ORDER BY 1, 2
 LIMIT $1
"""


# A journal whose postings do not sum to zero, or that has none.
JOURNALS_UNBALANCED = """
SELECT j.journal_id, j.kind, coalesce(sum(p.amount_fen), 0)::bigint AS imbalance_fen,
       count(p.journal_id) AS lines
  FROM ledger_journals j LEFT JOIN ledger_postings p USING (journal_id)
 GROUP BY j.journal_id
HAVING coalesce(sum(p.amount_fen), 0) <> 0 OR count(p.journal_id) = 0
 ORDER BY j.journal_id
 LIMIT $1
"""

# The settlement journal of each recorded settlement against its breakdown, account by
# account (medpay.ledger.service.settlement_postings says which accounts).
SETTLEMENT_JOURNALS_UNLIKE_BREAKDOWN = _posted_unlike_expected(
    "payment_id",
    "j.kind = 'settlement'",
    """
    SELECT s.payment_id, e.account, e.amount_fen
      FROM settlements s
      JOIN payments pay USING (payment_id),
   LATERAL (VALUES ('fund_receivable:' || s.insured_province, s.fund_total_fen),
                   ('personal_account_receivable:' || s.insured_province, s.personal_account_fen),
                   ('patient_cash_receivable', s.cash_fen),
                   ('institution_payable:' || pay.institution_code, -s.medical_fee_total_fen))
           AS e (account, amount_fen)
     WHERE e.amount_fen <> 0
""",
)

# The journals a payment has must be those of its state: none before it settles, the
# settlement's while settled, the settlement's and its mirror once reversed or corrected.
JOURNALS_OUT_OF_STATE = """
WITH kinds AS (
    SELECT payment_id, array_agg(kind ORDER BY kind) AS kinds
      FROM ledger_journals WHERE payment_id IS NOT NULL GROUP BY payment_id
), facts AS (
    SELECT p.payment_id, p.state, coalesce(k.kinds, '{}') AS kinds,
           s.payment_id IS NOT NULL AS settled, r.payment_id IS NOT NULL AS reversed,
           c.payment_id IS NOT NULL AS corrected
      FROM payments p
      LEFT JOIN kinds k USING (payment_id)
      LEFT JOIN settlements s USING (payment_id)
      LEFT JOIN reversals r USING (payment_id)
      LEFT JOIN settlement_corrections c USING (payment_id)
)
SELECT payment_id, state, kinds, settled, reversed, corrected
  FROM facts
 WHERE NOT (
       (state IN ('received', 'settling', 'unknown') AND kinds = '{}' AND NOT settled)
    OR (state IN ('settled', 'reversing') AND kinds = '{settlement}' AND settled
        AND NOT reversed AND NOT corrected)
    OR (state = 'reversed' AND kinds = '{reversal,settlement}' AND settled AND reversed
        AND NOT corrected)
    OR (state = 'failed' AND kinds = '{}' AND NOT settled)
    OR (state = 'failed' AND kinds = '{correction,settlement}' AND settled AND corrected
        AND NOT reversed))
 ORDER BY payment_id
 LIMIT $1
"""

# A payment reversed or corrected owes nothing on any account.
NET_NOT_ZERO = """
SELECT j.payment_id, p.account, sum(p.amount_fen)::bigint AS net_fen
  FROM ledger_journals j
  JOIN ledger_postings p USING (journal_id)
  JOIN payments pay ON pay.payment_id = j.payment_id
 WHERE pay.state IN ('reversed', 'failed')
 GROUP BY j.payment_id, p.account
HAVING sum(p.amount_fen) <> 0
 ORDER BY 1, 2
 LIMIT $1
"""

# An accepted transfer that moved a balance has its journal of that balance; no other has one.
TRANSFER_JOURNALS_UNLIKE_BALANCE = _posted_unlike_expected(
    "transfer_id",
    "j.transfer_id IS NOT NULL",
    """
    SELECT t.transfer_id, e.account, e.amount_fen
      FROM relationship_transfers t,
   LATERAL (VALUES ('personal_account:' || t.to_area, t.personal_account_fen),
                   ('personal_account:' || t.from_area, -t.personal_account_fen))
           AS e (account, amount_fen)
     WHERE t.state = 'accepted' AND t.personal_account_fen > 0
""",
)
