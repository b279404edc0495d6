"""``medpay ledger check``: every invariant of the journals, checked against the records.

Invariants (issue 11, item 1; DOMAIN.md sections 3, 6 and 7):

- ``journal_balanced``: every journal has postings, and they sum to zero;
- ``settlement_matches_breakdown``: the settlement journal of every recorded settlement
  posts exactly its breakdown (fund, personal account, cash, institution), account by
  account, and no settlement journal exists without a recorded settlement;
- ``journals_match_state``: a payment has the journals of its state and no others;
- ``undone_nets_to_zero``: a payment reversed or corrected nets to zero on every account;
- ``transfer_matches_balance``: an accepted relationship transfer that moved a balance
  has one journal moving exactly that balance; no other transfer has a journal;
- ``refund_matches_payments``: a refund's state follows from its payments': refunded
  means the original is reversed and the lines kept (if any) settled, and so on.

PostgreSQL already refuses an unbalanced journal and any change to a posting; checking
again here catches what a constraint cannot see (a journal that disagrees with the
record it documents) and anything written around the application.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from medpay.ledger import queries
from medpay.ledger.schemas import InvariantCheck, InvariantFailure

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import asyncpg

__all__ = ["FAILURES_PER_INVARIANT", "Invariant", "check_ledger", "failures_of"]

#: How many failures of one invariant are listed (the first ones, in a stable order).
FAILURES_PER_INVARIANT = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Invariant:
    """One invariant checked by a query that lists its failures (``$1``: how many at most)."""

    name: str
    query: str
    #: The column of the counts row that says how many things it checked.
    counted: str
    #: What a failure is about: ``"payment"`` and ``"payment_id"`` read "payment <id>".
    subject: str
    subject_column: str
    detail: Callable[[asyncpg.Record], str]


async def failures_of(
    conn: asyncpg.Pool | asyncpg.Connection, invariants: Sequence[Invariant], limit: int
) -> list[InvariantFailure]:
    """The first ``limit`` failures of each invariant, in the order they are listed."""
    return [
        InvariantFailure(
            invariant=invariant.name,
            subject=f"{invariant.subject} {row[invariant.subject_column]}",
            detail=invariant.detail(row),
        )
        for invariant in invariants
        for row in await conn.fetch(invariant.query, limit)
    ]


def _journal_records(row: asyncpg.Record) -> list[str]:
    return [name for name in ("settled", "reversed", "corrected") if row[name]] or ["no settlement"]


_INVARIANTS = (
    Invariant(
        "journal_balanced",
        queries.JOURNALS_UNBALANCED,
        "journals",
        "journal",
        "journal_id",
        lambda row: (
            f"{row['kind']} journal has no postings"
            if row["lines"] == 0
            else f"{row['kind']} journal is off by {row['imbalance_fen']} fen"
        ),
    ),
    Invariant(
        "settlement_matches_breakdown",
        queries.SETTLEMENT_JOURNALS_UNLIKE_BREAKDOWN,
        "settlements",
        "payment",
        "payment_id",
        lambda row: (
            f"{row['account']}: the breakdown says {row['expected_fen'] or 0} fen, "
            f"the settlement journal posts {row['actual_fen'] or 0}"
        ),
    ),
    Invariant(
        "journals_match_state",
        queries.JOURNALS_OUT_OF_STATE,
        "payments",
        "payment",
        "payment_id",
        lambda row: (
            f"state {row['state']} with journals {list(row['kinds'])} "
            f"and records {_journal_records(row)}"
        ),
    ),
    Invariant(
        "undone_nets_to_zero",
        queries.NET_NOT_ZERO,
        "undone",
        "payment",
        "payment_id",
        lambda row: f"{row['account']} is left at {row['net_fen']} fen",
    ),
    Invariant(
        "transfer_matches_balance",
        queries.TRANSFER_JOURNALS_UNLIKE_BALANCE,
        "transfers",
        "transfer",
        "transfer_id",
        lambda row: (
            f"{row['account']}: the balance moved is {row['expected_fen'] or 0} fen, "
            f"the journal posts {row['actual_fen'] or 0}"
        ),
    ),
    Invariant(
        "refund_matches_payments",
        queries.REFUNDS_OUT_OF_STEP,
        "refunds",
        "refund",
        "refund_id",
        lambda row: (
            f"{row['kind']} refund {row['state']} with the original "
            f"{row['original_state']} and the lines kept "
            f"{row['replacement_state'] or 'not recorded'}"
        ),
    ),
)


async def check_ledger(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int = FAILURES_PER_INVARIANT
) -> InvariantCheck:
    """Check every invariant of the ledger; list at most ``limit`` failures of each."""
    counts = await conn.fetchrow(queries.CHECKED_COUNTS)
    assert counts is not None
    return InvariantCheck(
        checked={invariant.name: counts[invariant.counted] for invariant in _INVARIANTS},
        failures=await failures_of(conn, _INVARIANTS, limit),
    )
