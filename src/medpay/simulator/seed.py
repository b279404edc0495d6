"""Sample insured persons for the simulator, and for the gateway's own person records.

``medpay/samples/persons.json`` is data shared by both systems (each reads it into its
own tables): persons insured in several provinces, employees with personal account
balances and residents (who have none), some eligible for medical assistance, so that
every branch of DOMAIN.md section 3 can be exercised end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from medpay.db.pool import connection
from medpay.simulator.store import PersonRecord, upsert_persons

if TYPE_CHECKING:
    import asyncpg

__all__ = ["SAMPLE_PERSONS", "load_sample_persons", "seed_persons", "seed_sample_persons"]

SAMPLE_PERSONS = Path(__file__).parent.parent / "samples" / "persons.json"


def load_sample_persons(path: str | Path = SAMPLE_PERSONS) -> list[PersonRecord]:
    """Read a persons file (a JSON list of :class:`PersonRecord` objects)."""
    persons = msgspec.json.decode(Path(path).read_bytes(), type=list[PersonRecord])
    numbers = [person.psn_no for person in persons]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate psn_no in {path}")
    return persons


async def seed_persons(pool: asyncpg.Pool, persons: list[PersonRecord]) -> int:
    """Upsert ``persons`` by ``psn_no`` in one transaction; idempotent. Return the count."""
    async with connection(pool) as conn, conn.transaction():
        await upsert_persons(conn, persons)
    return len(persons)


async def seed_sample_persons(pool: asyncpg.Pool, path: str | Path = SAMPLE_PERSONS) -> int:
    """Seed the sample persons (or those of ``path``); idempotent."""
    return await seed_persons(pool, load_sample_persons(path))
