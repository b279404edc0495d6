"""The double-entry ledger: every money movement as a balanced journal.

A journal's postings are signed amounts in fen (debit > 0, credit < 0) that sum to
zero; we assert it here and PostgreSQL checks it again at commit. Journals are
written by the caller inside the same transaction as the state change they record.

Accounts of a settlement (DOMAIN.md sections 3 and 7):

| account | meaning |
| --- | --- |
| ``fund_receivable:<insured province>`` | what the insured province's funds owe (cleared monthly) |
| ``personal_account_receivable:<insured province>`` | paid from the person's personal account |
| ``patient_cash_receivable`` | the cash share, paid by card or wallet outside medpay |
| ``institution_payable:<fixmedins_code>`` | what the treating institution is owed in all |

A reversal posts the exact mirror of the settlement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.ledger import queries

if TYPE_CHECKING:
    import uuid

    import asyncpg

__all__ = ["Posting", "post_journal", "reversal_postings", "settlement_postings"]

Posting = tuple[str, int]  # (account, signed amount in fen)


def settlement_postings(
    *,
    insured_province: str,
    institution_code: str,
    fund_total_fen: int,
    personal_account_fen: int,
    cash_fen: int,
    medical_fee_total_fen: int,
) -> list[Posting]:
    """The journal of a confirmed settlement; zero lines are left out."""
    postings = [
        (f"fund_receivable:{insured_province}", fund_total_fen),
        (f"personal_account_receivable:{insured_province}", personal_account_fen),
        ("patient_cash_receivable", cash_fen),
        (f"institution_payable:{institution_code}", -medical_fee_total_fen),
    ]
    return [(account, amount) for account, amount in postings if amount != 0]


def reversal_postings(settlement: list[Posting]) -> list[Posting]:
    """The exact mirror of a settlement's journal."""
    return [(account, -amount) for account, amount in settlement]


async def post_journal(
    conn: asyncpg.Connection, payment_id: uuid.UUID, kind: str, postings: list[Posting]
) -> int | None:
    """Write one balanced journal for ``payment_id``; None if this kind was already posted.

    Must run inside the caller's transaction, beside the state change it records.
    """
    assert conn.is_in_transaction(), (
        "a journal is written in the same transaction as its state change"
    )
    assert sum(amount for _, amount in postings) == 0, f"unbalanced journal: {postings}"
    assert all(amount != 0 for _, amount in postings)
    journal_id: int | None = await conn.fetchval(queries.INSERT_JOURNAL, payment_id, kind)
    if journal_id is None:
        return None
    await conn.execute(
        queries.INSERT_POSTINGS,
        journal_id,
        list(range(1, len(postings) + 1)),
        [account for account, _ in postings],
        [amount for _, amount in postings],
    )
    return journal_id
