"""What the operator's view and ``medpay ledger check`` ask of the books."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.clearing.service import check_clearing
from medpay.ledger.check import FAILURES_PER_INVARIANT, check_ledger

if TYPE_CHECKING:
    import asyncpg

    from medpay.ledger.schemas import InvariantCheck

__all__ = ["check_books"]


async def check_books(
    pool: asyncpg.Pool | asyncpg.Connection, *, limit: int = FAILURES_PER_INVARIANT
) -> InvariantCheck:
    """Every invariant: the ledger's (journals against records) and clearing's, in one report."""
    ledger = await check_ledger(pool, limit=limit)
    return ledger.merged(await check_clearing(pool, limit=limit))
