"""Off-site filings: who may settle off-site, where, and at which reduction (DOMAIN.md section 5).

The insured area's agency files, changes and cancels; settlement asks
:func:`filing_type_on` which filing applies to (person, treatment area, day) and
passes its type to the province, which adjusts the ratio (section 3, step 7).

Choices where DOMAIN.md leaves room (each a module constant or one rule below):

* Periods are half-open, like insurance segments: ``valid_until`` is the first day
  no longer covered. A long-term residence has none; it ends by cancellation.
* A temporary outing filed without an end is valid for
  :data:`TEMPORARY_VALIDITY_MONTHS` (6) months, and never for less.
* A long-term residence cannot be changed or cancelled while today is within
  :data:`LONG_TERM_LOCK_MONTHS` (6) months of its start; before it starts, it can
  still be corrected or withdrawn.
* Filing after the fact is allowed (the insured place's own rules for retroactive
  filing apply, and the agency applies them). "Emergency rescue counts as filed" is
  an ``emergency`` filing: it starts on the day of the rescue, today or earlier
  (even after the visit), never in the future, and keeps the referral ratio.
* A cancellation takes effect today or later, never in the past: settlements already
  made under a filing stay explained by it.
* A filing covers its treatment area: a province its cities and districts, a city
  its districts. The most specific filing wins, then long-term residence over a
  temporary outing, then referral or emergency over other outings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from medpay.clock import add_months, china_today
from medpay.db.pool import transaction
from medpay.errors import Conflict, DomainError, Forbidden, NotFound, Refused
from medpay.filings import queries
from medpay.filings.schemas import (
    FilingCancellation,
    FilingChange,
    FilingClass,
    FilingKind,
    FilingList,
    FilingVersionView,
    FilingView,
    NewFiling,
)
from medpay.security.idempotency import RequestInProgress
from medpay.security.persons import opened, person_ref
from medpay.wire.national import PROVINCES, OutFilType, province_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from medpay.parties.service import SigningParty

__all__ = [
    "LONG_TERM_LOCK_MONTHS",
    "TEMPORARY_VALIDITY_MONTHS",
    "area_covers",
    "cancel_filing",
    "change_filing",
    "create_filing",
    "filing_type_on",
    "filings_of_person",
    "get_filing",
]

#: Reference policy: no change or cancellation of a long-term residence within 6 months.
LONG_TERM_LOCK_MONTHS = 6
#: Reference policy: a temporary outing is valid at least 6 months (and 6 by default).
TEMPORARY_VALIDITY_MONTHS = 6
#: Dates outside these are typing errors, not filings.
EARLIEST_DAY = dt.date(1990, 1, 1)
LATEST_DAY = dt.date(2099, 12, 31)

_LONG_TERM: frozenset[str] = frozenset({"resettled_retiree", "long_term_resident", "posted_staff"})
#: Our filing type -> the type the province adjusts the ratio by (out_fil_type on the wire).
_ADAPTER_TYPE: dict[str, OutFilType] = {
    "resettled_retiree": "long_term",
    "long_term_resident": "long_term",
    "posted_staff": "long_term",
    "referral": "referral",
    "emergency": "emergency",
    "other_temporary": "temporary",
}
_Source = asyncpg.Connection | asyncpg.Pool


def area_covers(filing_area: str, area: str) -> bool:
    """Whether a filing for ``filing_area`` covers ``area`` (a province its cities and districts)."""
    if filing_area == area:
        return True
    if filing_area.endswith("0000"):
        return area[:2] == filing_area[:2]
    if filing_area.endswith("00"):
        return area[:4] == filing_area[:4]
    return False


def filing_class(kind: str) -> FilingClass:
    """Long-term residence or temporary outing."""
    return "long_term" if kind in _LONG_TERM else "temporary"


class FilingNotFound(NotFound):
    """No filing of this agency's area has that id (others' filings look the same)."""

    def __init__(self) -> None:
        super().__init__("filing_not_found", "No such filing")


def _invalid(code: str, title: str, detail: str | None = None) -> DomainError:
    return Refused(code, title, detail)


def _check_days(*days: dt.date | None) -> None:
    for day in days:
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise _invalid(
                "date_out_of_range",
                "A date is out of range",
                f"{day.isoformat()} is not between {EARLIEST_DAY} and {LATEST_DAY}.",
            )


def _period(
    kind: str, valid_from: dt.date, valid_until: dt.date | None, today: dt.date
) -> dt.date | None:
    """The end of a filing's period after the rules of its class; None for long-term residence."""
    if kind == "emergency" and valid_from > today:
        raise _invalid(
            "emergency_not_yet_happened",
            "An emergency is filed from the day of the rescue, not ahead of it",
            "Emergency rescue counts as filed: file it from that day, even after the visit.",
        )
    if kind in _LONG_TERM:
        if valid_until is not None:
            raise _invalid(
                "long_term_filing_has_no_end",
                "A long-term residence filing is valid until cancelled",
                "Send no valid_until; cancel the filing to end it.",
            )
        return None
    shortest = add_months(valid_from, TEMPORARY_VALIDITY_MONTHS)
    if valid_until is None:
        return shortest
    if valid_until < shortest:
        raise _invalid(
            "temporary_filing_too_short",
            f"A temporary outing is valid at least {TEMPORARY_VALIDITY_MONTHS} months",
            f"valid_until is the first day not covered: {shortest.isoformat()} or later.",
        )
    return valid_until


def _check_areas(insured_area: str, treatment_area: str) -> None:
    if province_of(treatment_area) not in PROVINCES:
        raise _invalid(
            "treatment_area_unknown",
            "The treatment area is in no province",
            f"{treatment_area} is not in any of the 31 provinces.",
        )
    if area_covers(treatment_area, insured_area) or area_covers(insured_area, treatment_area):
        raise _invalid(
            "filing_not_offsite",
            "A filing is for treatment outside the insured area",
            f"{treatment_area} covers or lies within the insured area {insured_area}.",
        )


def _check_unlocked(row: asyncpg.Record, today: dt.date) -> None:
    """Reference rule: a long-term residence stands for 6 months from its start."""
    if row["filing_class"] != "long_term":
        return
    opens = add_months(row["valid_from"], LONG_TERM_LOCK_MONTHS)
    if row["valid_from"] <= today < opens:
        raise _invalid(
            "long_term_filing_locked",
            f"A long-term residence filing cannot change within {LONG_TERM_LOCK_MONTHS} months of its start",
            f"It can be changed or cancelled from {opens.isoformat()}.",
        )


def _overlap(exc: asyncpg.ExclusionViolationError) -> DomainError:
    if getattr(exc, "constraint_name", None) == "filings_one_long_term_residence":
        detail = "The person already has a long-term residence filing in force in that period."
    else:
        detail = (
            "The person already has a filing of this type for this treatment area in that period."
        )
    return Conflict("filing_overlaps", "The filing overlaps another", detail)


async def _view(conn: asyncpg.Connection, row: asyncpg.Record) -> FilingView:
    history = [
        FilingVersionView(**dict(version))
        for version in await conn.fetch(queries.FILING_HISTORY, row["filing_id"])
    ]
    assert history and history[-1].version == row["version"], "every version is in the history"
    return _current(row, history)


def _current(row: asyncpg.Record, history: list[FilingVersionView] | None = None) -> FilingView:
    return FilingView(
        **opened(row),
        status="filed" if row["cancelled_from"] is None else "cancelled",
        history=history or [],
    )


class _Filer(msgspec.Struct, frozen=True, kw_only=True):
    """The agency asking, under which Idempotency-Key."""

    agency_id: str
    area: str
    idempotency_key: str


def _filer(agency: SigningParty, idempotency_key: str) -> _Filer:
    assert agency.kind == "agency" and agency.area is not None
    return _Filer(agency_id=agency.party_id, area=agency.area, idempotency_key=idempotency_key)


async def _earlier_effect(tx: asyncpg.Connection, filer: _Filer) -> FilingView | None:
    """The filing this very request already wrote, when an earlier attempt took effect."""
    filing_id = await tx.fetchval(
        queries.FILING_CHANGED_BY_REQUEST, filer.agency_id, filer.idempotency_key
    )
    if filing_id is None:
        return None
    row = await tx.fetchrow(queries.FILING_BY_ID, filing_id)
    assert row is not None
    return await _view(tx, row)


async def _write(tx: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    """Run a statement that writes a filing and its version; its conflicts become problems."""
    try:
        async with tx.transaction():
            row = await tx.fetchrow(query, *args)
            assert row is not None, "a write returns its row"
            return row
    except asyncpg.ExclusionViolationError as exc:
        raise _overlap(exc) from None
    except asyncpg.UniqueViolationError:
        # Only the (agency, Idempotency-Key) of a version can clash: a concurrent attempt.
        raise RequestInProgress() from None


async def create_filing(
    pool: _Source,
    new: NewFiling,
    *,
    agency: SigningParty,
    idempotency_key: str,
    today: dt.date | None = None,
) -> FilingView:
    """File for a person insured in the agency's own area (403 for anyone else)."""
    today = today or china_today()
    filer = _filer(agency, idempotency_key)
    insured_area = new.insured_area or filer.area
    if insured_area != filer.area:
        raise Forbidden(
            "agency_not_of_insured_area",
            "An agency files only for persons insured in its own area",
            f"This agency runs {filer.area}, not {insured_area}.",
        )
    _check_days(new.valid_from, new.valid_until)
    valid_until = _period(new.filing_type, new.valid_from, new.valid_until, today)
    _check_areas(insured_area, new.treatment_area)
    async with transaction(pool) as tx:
        if (earlier := await _earlier_effect(tx, filer)) is not None:
            return earlier
        person = person_ref(new.psn_no)
        if not await tx.fetchval(
            queries.PERSON_INSURED_IN_AREA, person, insured_area, new.valid_from, valid_until
        ):
            raise Forbidden(
                "person_not_insured_here",
                "The person is not insured in this agency's area",
                "An agency files only for persons insured in its own area during the filing.",
            )
        row = await _write(
            tx,
            queries.INSERT_FILING,
            uuid.uuid4(),
            person,
            insured_area,
            new.treatment_area,
            new.filing_type,
            new.valid_from,
            valid_until,
            filer.agency_id,
            new.reason,
            filer.idempotency_key,
        )
        return await _view(tx, row)


def _filing_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise FilingNotFound() from None


async def _own_filing(tx: asyncpg.Connection, filing_id: str, filer: _Filer) -> asyncpg.Record:
    """The filing, locked, if it is of the agency's area and not cancelled."""
    row = await tx.fetchrow(queries.FILING_FOR_UPDATE, _filing_id(filing_id))
    if row is None or row["insured_area"] != filer.area:
        raise FilingNotFound()
    if row["cancelled_from"] is not None:
        raise Conflict(
            "filing_cancelled",
            "The filing is cancelled; it does not change any more",
            f"Cancelled from {row['cancelled_from'].isoformat()}. File anew.",
        )
    return row


async def change_filing(
    pool: _Source,
    filing_id: str,
    change: FilingChange,
    *,
    agency: SigningParty,
    idempotency_key: str,
    today: dt.date | None = None,
) -> FilingView:
    """Change a filing's area, type (within its class) or dates; the old version stays readable."""
    today = today or china_today()
    _check_days(change.valid_from, change.valid_until)

    def version(row: asyncpg.Record) -> tuple[object, ...]:
        kind: FilingKind = change.filing_type or row["filing_type"]
        if filing_class(kind) != row["filing_class"]:
            raise _invalid(
                "filing_class_change",
                "A filing keeps its class",
                "Cancel it and file anew to move between long-term residence and a temporary outing.",
            )
        treatment_area = change.treatment_area or row["treatment_area"]
        valid_from = change.valid_from or row["valid_from"]
        valid_until = _period(kind, valid_from, change.valid_until or row["valid_until"], today)
        unchanged = (
            row["treatment_area"],
            row["filing_type"],
            row["valid_from"],
            row["valid_until"],
        )
        if (treatment_area, kind, valid_from, valid_until) == unchanged:
            raise _invalid("filing_change_empty", "The change changes nothing")
        _check_areas(row["insured_area"], treatment_area)
        return (queries.CHANGE_FILING, treatment_area, kind, valid_from, valid_until, change.reason)

    return await _amend(pool, filing_id, _filer(agency, idempotency_key), today, version)


async def cancel_filing(
    pool: _Source,
    filing_id: str,
    cancellation: FilingCancellation,
    *,
    agency: SigningParty,
    idempotency_key: str,
    today: dt.date | None = None,
) -> FilingView:
    """Cancel a filing from ``effective_from`` (today by default, never in the past)."""
    today = today or china_today()
    filer = _filer(agency, idempotency_key)
    effective = cancellation.effective_from or today
    _check_days(effective)
    if effective < today:
        raise _invalid(
            "cancellation_in_the_past",
            "A cancellation takes effect today or later",
            "Settlements already made under a filing stay as they were.",
        )

    def version(row: asyncpg.Record) -> tuple[object, ...]:
        if row["valid_until"] is not None and effective >= row["valid_until"]:
            raise _invalid(
                "filing_already_ends",
                "The filing ends on its own before the cancellation would take effect",
                f"It is valid until {row['valid_until'].isoformat()} (exclusive).",
            )
        # Cancelled before it starts: withdrawn, never in force.
        return (queries.CANCEL_FILING, max(effective, row["valid_from"]), cancellation.reason)

    return await _amend(pool, filing_id, filer, today, version)


async def _amend(
    pool: _Source,
    filing_id: str,
    filer: _Filer,
    today: dt.date,
    version: Callable[[asyncpg.Record], tuple[object, ...]],
) -> FilingView:
    """Write the next version of one of the agency's own filings, once per Idempotency-Key.

    ``version`` checks the filing as it stands and returns the statement that writes
    the new version with its own arguments (the filing, the agency and the key follow).
    """
    async with transaction(pool) as tx:
        if (earlier := await _earlier_effect(tx, filer)) is not None:
            return earlier
        row = await _own_filing(tx, filing_id, filer)
        _check_unlocked(row, today)
        query, *args = version(row)
        written = await _write(
            tx, str(query), row["filing_id"], *args, filer.agency_id, filer.idempotency_key
        )
        return await _view(tx, written)


async def get_filing(conn: _Source, filing_id: str, *, area: str | None) -> FilingView:
    """One filing with every version; ``area``: only if of that insured area (None: any)."""
    async with transaction(conn) as tx:
        row = await tx.fetchrow(queries.FILING_BY_ID, _filing_id(filing_id))
        if row is None or (area is not None and row["insured_area"] != area):
            raise FilingNotFound()
        return await _view(tx, row)


async def filings_of_person(conn: _Source, psn_no: str, *, area: str | None) -> FilingList:
    """A person's filings as they stand; ``area``: only those of that insured area (None: all)."""
    rows = await conn.fetch(queries.FILINGS_OF_PERSON, person_ref(psn_no), area)
    return FilingList(filings=[_current(row) for row in rows])


async def filing_type_on(
    conn: _Source, psn_no: str, treatment_area: str, on: dt.date
) -> OutFilType | None:
    """The type of the filing that applies to care in ``treatment_area`` on ``on``, or None.

    For the payment flow: pass the result as ``offsite_filing_type`` (DOMAIN.md
    section 3, step 7). Only filings of the person's insured area on ``on`` count;
    long-term residence of any kind is ``"long_term"``, other outings ``"temporary"``.
    """
    kind = await conn.fetchval(queries.FILING_TYPE_ON, person_ref(psn_no), treatment_area, on)
    return None if kind is None else _ADAPTER_TYPE[kind]
