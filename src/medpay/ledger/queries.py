"""SQL for ledger journals and postings."""

from __future__ import annotations

__all__ = [
    "ACCOUNT_BALANCES",
    "INSERT_JOURNAL",
    "INSERT_POSTINGS",
    "INSERT_TRANSFER_JOURNAL",
    "POSTINGS_OF_PAYMENT",
    "POSTINGS_OF_TRANSFER",
]

INSERT_JOURNAL = """
INSERT INTO ledger_journals (payment_id, kind) VALUES ($1, $2)
ON CONFLICT (payment_id, kind) DO NOTHING
RETURNING journal_id
"""

# A relationship transfer's journal (DOMAIN.md section 6): the personal account balance moved.
INSERT_TRANSFER_JOURNAL = """
INSERT INTO ledger_journals (transfer_id, kind) VALUES ($1, $2)
ON CONFLICT (transfer_id, kind) DO NOTHING
RETURNING journal_id
"""

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
