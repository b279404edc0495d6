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

A reversal posts the exact mirror of the settlement, and so does a ``correction``: the
journal reconciliation writes when the province never made a settlement we recorded
(DOMAIN.md section 7). Nothing is ever changed: a correction is a new journal.

A relationship transfer (DOMAIN.md section 6) moves the personal account balance
from the old coordination area to the new one, as a journal of kind
``account_transfer`` about the transfer rather than a payment:

| account | meaning |
| --- | --- |
| ``personal_account:<new area>`` | debited: the balance the new area now holds |
| ``personal_account:<old area>`` | credited: the balance the old area handed over |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.ledger import queries
from medpay.ledger.schemas import AccountBalance, Balances

if TYPE_CHECKING:
    import datetime as dt
    import uuid

    import asyncpg

__all__ = [
    "Posting",
    "account_transfer_postings",
    "balances",
    "post_journal",
    "reversal_postings",
    "settlement_postings",
]

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


def account_transfer_postings(*, old_area: str, new_area: str, balance_fen: int) -> list[Posting]:
    """The journal of a personal account balance moved by a relationship transfer."""
    assert balance_fen > 0, "a zero balance moves nothing and has no journal"
    return [
        (f"personal_account:{new_area}", balance_fen),
        (f"personal_account:{old_area}", -balance_fen),
    ]


async def post_journal(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID | None,
    kind: str,
    postings: list[Posting],
    *,
    transfer_id: uuid.UUID | None = None,
) -> int | None:
    """Write one balanced journal for ``payment_id`` (or ``transfer_id``); None if already posted.

    A journal is about exactly one payment or one relationship transfer, at most one
    of each kind. Must run inside the caller's transaction, beside the state change
    it records.
    """
    assert conn.is_in_transaction(), (
        "a journal is written in the same transaction as its state change"
    )
    assert (payment_id is None) != (transfer_id is None), (
        "a journal is about one payment or one transfer"
    )
    assert sum(amount for _, amount in postings) == 0, f"unbalanced journal: {postings}"
    assert all(amount != 0 for _, amount in postings)
    journal_id: int | None
    if transfer_id is None:
        journal_id = await conn.fetchval(queries.INSERT_JOURNAL, payment_id, kind)
    else:
        journal_id = await conn.fetchval(queries.INSERT_TRANSFER_JOURNAL, transfer_id, kind)
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


async def balances(
    conn: asyncpg.Pool | asyncpg.Connection,
    *,
    account: str | None = None,
    prefix: str | None = None,
    as_of: dt.datetime | None = None,
) -> Balances:
    """Account balances from the journals written up to ``as_of`` (default: all of them).

    ``account`` asks for one account, ``prefix`` for every account it begins
    (``fund_receivable:`` is every province's funds); neither: every account.
    """
    rows = await conn.fetch(queries.BALANCES, account, prefix, as_of)
    accounts = [
        AccountBalance(account=row["account"], balance_fen=row["balance_fen"]) for row in rows
    ]
    return Balances(
        as_of=as_of,
        account=account,
        prefix=prefix,
        accounts=accounts,
        total_fen=sum(entry.balance_fen for entry in accounts),
    )
