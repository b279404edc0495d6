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

from typing import TYPE_CHECKING

from medpay.ledger import queries
from medpay.ledger.schemas import InvariantCheck, InvariantFailure

if TYPE_CHECKING:
    import asyncpg

__all__ = ["FAILURES_PER_INVARIANT", "check_ledger"]

#: How many failures of one invariant are listed (the first ones, in a stable order).
FAILURES_PER_INVARIANT = 20


async def check_ledger(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int = FAILURES_PER_INVARIANT
) -> InvariantCheck:
    """Check every invariant of the ledger; list at most ``limit`` failures of each."""
    counts = await conn.fetchrow(queries.CHECKED_COUNTS)
    assert counts is not None
    failures: list[InvariantFailure] = []
    for row in await conn.fetch(queries.JOURNALS_UNBALANCED, limit):
        failures.append(
            InvariantFailure(
                invariant="journal_balanced",
                subject=f"journal {row['journal_id']}",
                detail=(
                    f"{row['kind']} journal has no postings"
                    if row["lines"] == 0
                    else f"{row['kind']} journal is off by {row['imbalance_fen']} fen"
                ),
            )
        )
    for row in await conn.fetch(queries.SETTLEMENT_JOURNALS_UNLIKE_BREAKDOWN, limit):
        failures.append(
            InvariantFailure(
                invariant="settlement_matches_breakdown",
                subject=f"payment {row['payment_id']}",
                detail=(
                    f"{row['account']}: the breakdown says {row['expected_fen'] or 0} fen, "
                    f"the settlement journal posts {row['actual_fen'] or 0}"
                ),
            )
        )
    for row in await conn.fetch(queries.JOURNALS_OUT_OF_STATE, limit):
        records = [name for name in ("settled", "reversed", "corrected") if row[name]] or [
            "no settlement"
        ]
        failures.append(
            InvariantFailure(
                invariant="journals_match_state",
                subject=f"payment {row['payment_id']}",
                detail=(
                    f"state {row['state']} with journals {list(row['kinds'])} and records {records}"
                ),
            )
        )
    for row in await conn.fetch(queries.NET_NOT_ZERO, limit):
        failures.append(
            InvariantFailure(
                invariant="undone_nets_to_zero",
                subject=f"payment {row['payment_id']}",
                detail=f"{row['account']} is left at {row['net_fen']} fen",
            )
        )
    for row in await conn.fetch(queries.TRANSFER_JOURNALS_UNLIKE_BALANCE, limit):
        failures.append(
            InvariantFailure(
                invariant="transfer_matches_balance",
                subject=f"transfer {row['transfer_id']}",
                detail=(
                    f"{row['account']}: the balance moved is {row['expected_fen'] or 0} fen, "
                    f"the journal posts {row['actual_fen'] or 0}"
                ),
            )
        )
    for row in await conn.fetch(queries.REFUNDS_OUT_OF_STEP, limit):
        failures.append(
            InvariantFailure(
                invariant="refund_matches_payments",
                subject=f"refund {row['refund_id']}",
                detail=(
                    f"{row['kind']} refund {row['state']} with the original "
                    f"{row['original_state']} and the lines kept "
                    f"{row['replacement_state'] or 'not recorded'}"
                ),
            )
        )
    return InvariantCheck(
        checked={
            "journal_balanced": counts["journals"],
            "settlement_matches_breakdown": counts["settlements"],
            "journals_match_state": counts["payments"],
            "undone_nets_to_zero": counts["undone"],
            "transfer_matches_balance": counts["transfers"],
            "refund_matches_payments": counts["refunds"],
        },
        failures=failures,
    )
