"""Who insures a person on a given date: the one place that answers it.

Settlement routes each payment to the province of the relationship valid on the
service date (DOMAIN.md sections 2 and 6). Segments never overlap (a PostgreSQL
exclusion constraint), so the answer is unique.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.db.pool import transaction
from medpay.relationships import queries

if TYPE_CHECKING:
    import asyncpg

__all__ = ["InsuranceRelationship", "insurer_on", "register_person"]

Scheme = Literal["employee", "resident"]


class InsuranceRelationship(msgspec.Struct, frozen=True, kw_only=True):
    """A person's basic medical insurance segment."""

    psn_no: str  # psn_no
    insured_area: str  # insuplc_admdvs
    scheme: Scheme  # insutype 310 employee / 390 resident
    valid_from: dt.date
    valid_until: dt.date | None
    contribution_months: int

    @property
    def insured_province(self) -> str:
        """The province of the insured area (DOMAIN.md section 1)."""
        return self.insured_area[:2] + "0000"


async def insurer_on(
    conn: asyncpg.Connection | asyncpg.Pool, psn_no: str, on: dt.date
) -> InsuranceRelationship | None:
    """The relationship that insures ``psn_no`` on ``on``, or None."""
    row = await conn.fetchrow(queries.SEGMENT_ON_DATE, psn_no, on)
    return None if row is None else InsuranceRelationship(**dict(row))


async def register_person(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    psn_no: str,
    name: str,
    insured_area: str,
    scheme: Scheme,
    valid_from: dt.date,
    contribution_months: int = 0,
) -> None:
    """Record a person insured in ``insured_area`` from ``valid_from`` (idempotent; for seeding)."""
    async with transaction(pool) as conn:
        await conn.execute(queries.INSERT_PERSON, psn_no, name)
        await conn.execute(
            queries.INSERT_SEGMENT, psn_no, insured_area, scheme, valid_from, contribution_months
        )
