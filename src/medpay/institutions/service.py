"""Designated institutions and pharmacies (DOMAIN.md sections 1 and 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.institutions import queries

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Institution", "InstitutionKind", "find_institution", "register_institution"]

InstitutionKind = Literal["hospital", "internet_hospital", "retail_pharmacy"]


class Institution(msgspec.Struct, frozen=True, kw_only=True):
    """A designated institution as settlement needs it."""

    institution_code: str  # fixmedins_code
    name: str  # fixmedins_name
    area: str
    kind: InstitutionKind
    level: int | None  # 1 to 3; None for a retail pharmacy
    relies_on: str | None = None  # the physical institution behind an internet hospital

    @property
    def settlement_level(self) -> Literal[1, 2, 3]:
        """The level whose ratio applies: a pharmacy purchase takes the level-1 ratio."""
        level = self.level or 1
        assert level in (1, 2, 3)
        return level  # type: ignore[return-value]


async def find_institution(
    conn: asyncpg.Connection | asyncpg.Pool, code: str
) -> Institution | None:
    """The institution with ``code``, or None when it is not registered."""
    row = await conn.fetchrow(queries.INSTITUTION_BY_CODE, code)
    return None if row is None else Institution(**dict(row))


async def register_institution(
    conn: asyncpg.Connection | asyncpg.Pool, institution: Institution
) -> None:
    """Add an institution (idempotent; for seeding)."""
    await conn.execute(
        queries.INSERT_INSTITUTION,
        institution.institution_code,
        institution.name,
        institution.area,
        institution.kind,
        institution.level,
        institution.relies_on,
    )
