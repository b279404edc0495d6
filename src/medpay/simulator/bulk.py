"""Bulk loading of insured persons into the simulator's registry (schema ``simulator``).

For synthetic populations of tens of thousands of persons: ``COPY`` into a temporary
table, then one ``INSERT ... ON CONFLICT DO NOTHING``. A person already known keeps
everything (balance, area, scheme): those belong to the settlements since made and to
relationship transfers (DOMAIN.md sections 3 and 6), not to re-seeding. That differs
on purpose from :func:`medpay.simulator.store.upsert_persons`, which refreshes the
sample persons' names and assistance flags.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

    from medpay.simulator.store import PersonRecord

__all__ = ["load_persons"]

_CREATE_STAGE = """
CREATE TEMPORARY TABLE simulator_persons_stage (
    psn_no text, name text, insuplc_admdvs text, insutype text,
    acct_balance_fen bigint, maf_eligible boolean
) ON COMMIT DROP
"""
_INSERT_NEW = """
INSERT INTO simulator.persons (psn_no, name, insuplc_admdvs, insutype, acct_balance_fen, maf_eligible)
SELECT psn_no, name, insuplc_admdvs, insutype, acct_balance_fen, maf_eligible FROM simulator_persons_stage
ON CONFLICT (psn_no) DO NOTHING
"""


async def load_persons(conn: asyncpg.Connection, persons: Iterable[PersonRecord]) -> int:
    """Add the persons not yet known, in the caller's transaction; return how many were new."""
    await conn.execute(_CREATE_STAGE)
    await conn.copy_records_to_table(
        "simulator_persons_stage",
        records=(
            (p.psn_no, p.name, p.insuplc_admdvs, p.insutype, p.acct_balance_fen, p.maf_eligible)
            for p in persons
        ),
    )
    status = await conn.execute(_INSERT_NEW)
    return int(status.rsplit(" ", 1)[1])
