"""Who insures a person on a given date: the one place that answers it.

Settlement routes each payment to the province of the relationship valid on the
service date (DOMAIN.md sections 2 and 6). Segments never overlap and a person has
at most one open segment (PostgreSQL holds both), so the answer is unique. Until a
transfer is accepted the old area's segment answers; from the new segment's first
day, the new area's does.

Months counted on a date D (DOMAIN.md section 6: "with how many months counted") =
the months carried in by transfers + the segment's opening months (history loaded
with it; 0 for a segment opened by a transfer) + the whole calendar months from the
segment's start to D (from 15 March, a month is complete on 15 April).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from typing import TYPE_CHECKING

import msgspec

from medpay.clock import china_today
from medpay.db.pool import transaction
from medpay.errors import DomainError, NotFound, Refused
from medpay.privacy import masked_number
from medpay.relationships import queries
from medpay.relationships.schemas import (
    InsurerOnDate,
    RelationshipHistory,
    Scheme,
    SegmentView,
)
from medpay.relationships.transfers import transfer_views
from medpay.relationships.workdays import NO_HOLIDAYS, whole_months_between
from medpay.schemas import view_of
from medpay.security.persons import person_ref, seal_person
from medpay.wire.national import province_of

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "InsuranceRelationship",
    "insurer_on",
    "months_counted",
    "register_person",
    "relationship_history",
    "require_fund_payable",
]


class InsuranceRelationship(msgspec.Struct, frozen=True, kw_only=True):
    """A person's basic medical insurance segment, as it stands on one date."""

    psn_no: str  # psn_no
    insured_area: str  # insuplc_admdvs
    scheme: Scheme  # insutype 310 employee / 390 resident
    valid_from: dt.date
    valid_until: dt.date | None
    contribution_months: int
    segment_id: int | None = None
    #: Months carried in from earlier areas by transfers.
    carried_months: int = 0
    #: Months counted on the date asked (module docstring).
    months_counted: int = 0
    #: The fund pays nothing before this day (a waiting period after a long gap).
    waiting_until: dt.date | None = None

    @property
    def insured_province(self) -> str:
        """The province of the insured area (DOMAIN.md section 1)."""
        return province_of(self.insured_area)

    def in_waiting_period(self, on: dt.date) -> bool:
        """Whether ``on`` falls in the segment's waiting period (the fund pays nothing)."""
        return self.waiting_until is not None and on < self.waiting_until


def months_counted(segment: asyncpg.Record, on: dt.date) -> int:
    """Months counted on ``on`` for a segment valid that day (module docstring)."""
    return (
        segment["carried_months"]
        + segment["contribution_months"]
        + whole_months_between(segment["valid_from"], on)
    )


async def insurer_on(
    conn: asyncpg.Connection | asyncpg.Pool, psn_no: str, on: dt.date
) -> InsuranceRelationship | None:
    """The relationship that insures ``psn_no`` on ``on``, with months counted then; or None."""
    row = await conn.fetchrow(queries.SEGMENT_ON_DATE, person_ref(psn_no), on)
    if row is None:
        return None
    return InsuranceRelationship(
        **(dict(row) | {"psn_no": psn_no}), months_counted=months_counted(row, on)
    )


def require_fund_payable(relationship: InsuranceRelationship, on: dt.date) -> None:
    """Refuse fund payment on a service date in the waiting period (DOMAIN.md section 6).

    Raises a 422 problem ``insurance_waiting_period``.
    """
    if relationship.in_waiting_period(on):
        raise Refused(
            "insurance_waiting_period",
            "The insurance fund pays nothing during the waiting period",
            f"The relationship in {relationship.insured_area} is in a waiting period until "
            f"{relationship.waiting_until}; the service date is {on}.",
        )


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
    person = person_ref(psn_no)
    async with transaction(pool) as conn:
        await conn.execute(queries.INSERT_PERSON, person, seal_person(psn_no, name))
        await conn.execute(
            queries.INSERT_SEGMENT, person, insured_area, scheme, valid_from, contribution_months
        )


def _segment_view(row: asyncpg.Record) -> SegmentView:
    return view_of(row, SegmentView, insured_province=province_of(row["insured_area"]))


_PSN_NO = re.compile(r"^[0-9A-Za-z]{6,32}$")


def _person_not_found(psn_no: str) -> DomainError:
    return NotFound(
        "person_not_found", "No such insured person", f"{masked_number(psn_no)} is not known."
    )


async def relationship_history(
    pool: asyncpg.Pool | asyncpg.Connection,
    psn_no: str,
    *,
    on: dt.date | None = None,
    viewer_area: str | None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> RelationshipHistory:
    """A person's whole history, and who insured them on ``on`` (default today).

    The history is every segment and every transfer with its events; the answer for
    ``on`` says with how many months counted. An agency (``viewer_area`` set) sees only persons its area insures or insured, or
    who applied to move in; anyone else is 404 ``person_not_found``, as is an unknown
    person.
    """
    today = today or china_today()
    on = on or today
    if not _PSN_NO.match(psn_no):
        raise _person_not_found(psn_no[:40])
    person = person_ref(psn_no)
    async with transaction(pool) as conn:  # one snapshot of segments and transfers
        if not await conn.fetchval(queries.PERSON_EXISTS, person):
            raise _person_not_found(psn_no)
        if viewer_area is not None and not await conn.fetchval(
            queries.PERSON_KNOWN_TO_AREA, person, viewer_area
        ):
            raise _person_not_found(psn_no)
        segments = await conn.fetch(queries.SEGMENTS_OF_PERSON, person)
        transfers = await transfer_views(
            conn,
            await conn.fetch(queries.TRANSFERS_OF_PERSON, person),
            today=today,
            holidays=holidays,
        )
        relationship = await insurer_on(conn, psn_no, on)
    insurer = None
    if relationship is not None:
        assert relationship.segment_id is not None
        insurer = InsurerOnDate(
            segment_id=relationship.segment_id,
            insured_area=relationship.insured_area,
            insured_province=relationship.insured_province,
            scheme=relationship.scheme,
            valid_from=relationship.valid_from,
            months_counted=relationship.months_counted,
            carried_months=relationship.carried_months,
            in_waiting_period=relationship.in_waiting_period(on),
            valid_until=relationship.valid_until,
            waiting_until=relationship.waiting_until,
        )
    return RelationshipHistory(
        psn_no=psn_no,
        on=on,
        segments=[_segment_view(s) for s in segments],
        transfers=transfers,
        insurer=insurer,
    )
