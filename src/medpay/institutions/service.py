"""Designated institutions, pharmacies and their agreements (DOMAIN.md sections 1 and 4).

An institution settles with the fund only on days its agreement is in force and not
suspended; after a dissolution, expenses from the dissolution date on are refused.
An internet hospital is designated through the physical hospital it relies on and
falls with it: :func:`check_may_settle` checks both. Agreements are never rewritten:
a signature, suspension, reinstatement or dissolution appends a history row, in the
same transaction as the state it changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import asyncpg
import msgspec

from medpay.clock import china_today
from medpay.db.pool import transaction
from medpay.errors import Conflict, DomainError, NotFound, Refused
from medpay.institutions import queries
from medpay.institutions.schemas import (
    AgreementEvent,
    AgreementEventView,
    AgreementStatus,
    AgreementStep,
    AgreementView,
    InstitutionKind,
    InstitutionView,
    NewAgreement,
    NewInstitution,
    SuspensionView,
)
from medpay.schemas import VisitType, view_of
from medpay.security.idempotency import RequestInProgress

__all__ = [
    "VISITS_OFFERED",
    "Institution",
    "InstitutionKind",
    "change_agreement",
    "check_may_settle",
    "check_offers",
    "find_institution",
    "get_institution",
    "is_designated_pharmacy",
    "register_institution",
    "register_new_institution",
    "sign_agreement",
    "sign_sample_agreement",
]

_Source = asyncpg.Connection | asyncpg.Pool


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


class InstitutionNotFound(NotFound):
    """No institution is registered under the code."""

    def __init__(self, code: str) -> None:
        super().__init__(
            "institution_not_found", "No such institution", f"{code} is not registered."
        )


class AgreementNotFound(NotFound):
    """The institution has no agreement with that id."""

    def __init__(self) -> None:
        super().__init__("agreement_not_found", "No such agreement of this institution")


# --- reads --------------------------------------------------------------------------------------


async def find_institution(conn: _Source, code: str) -> Institution | None:
    """The institution with ``code``, or None when it is not registered."""
    row = await conn.fetchrow(queries.INSTITUTION_BY_CODE, code)
    return None if row is None else Institution(**dict(row))


def _status_on(
    agreement: asyncpg.Record, suspensions: list[SuspensionView], day: dt.date
) -> AgreementStatus:
    """The agreement's standing on ``day``; the same rule as the query behind check_may_settle."""
    if agreement["dissolved_from"] is not None and agreement["dissolved_from"] <= day:
        return "dissolved"
    if day < agreement["valid_from"]:
        return "not_yet_in_force"
    if agreement["valid_until"] is not None and day >= agreement["valid_until"]:
        return "expired"
    if any(
        s.suspended_from <= day and (s.reinstated_from is None or day < s.reinstated_from)
        for s in suspensions
    ):
        return "suspended"
    return "active"


async def get_institution(conn: _Source, code: str) -> InstitutionView:
    """The institution with every agreement, suspension and recorded step (404 if unknown)."""
    async with transaction(conn) as tx:
        row = await tx.fetchrow(queries.INSTITUTION_WITH_REGISTRATION, code)
        if row is None:
            raise InstitutionNotFound(code)
        agreements = await tx.fetch(queries.AGREEMENTS_OF_INSTITUTION, code)
        suspension_rows = await tx.fetch(queries.SUSPENSIONS_OF_INSTITUTION, code)
        event_rows = await tx.fetch(queries.AGREEMENT_EVENTS_OF_INSTITUTION, code)
    today = china_today()
    views = []
    for agreement in agreements:
        agreement_id = agreement["agreement_id"]
        suspensions = [
            view_of(s, SuspensionView) for s in suspension_rows if s["agreement_id"] == agreement_id
        ]
        history = [
            view_of(e, AgreementEventView) for e in event_rows if e["agreement_id"] == agreement_id
        ]
        assert history and history[0].event == "signed", "an agreement starts with its signature"
        status_today = _status_on(agreement, suspensions, today)
        views.append(
            view_of(
                agreement,
                AgreementView,
                status_today=status_today,
                suspensions=suspensions,
                history=history,
            )
        )
    return view_of(row, InstitutionView, registered_at=row["created_at"], agreements=views)


async def _agreement_view(conn: _Source, code: str, agreement_id: int) -> AgreementView:
    institution = await get_institution(conn, code)
    for agreement in institution.agreements:
        if agreement.agreement_id == agreement_id:
            return agreement
    raise AgreementNotFound()


# --- the checks settlement makes ------------------------------------------------------------------

#: Why a day is refused, by agreement status (None: no agreement covers the day).
_REFUSALS: dict[str | None, tuple[str, str]] = {
    None: ("not_designated", "has no agreement in force on"),
    "suspended": ("suspended", "has its agreement suspended on"),
    "dissolved": ("dissolved", "has its agreement dissolved as of"),
}
_TITLES = {
    "institution_not_designated": "The institution is not designated on the service date",
    "institution_suspended": "The institution's agreement is suspended on the service date",
    "institution_dissolved": "The institution's agreement is dissolved as of the service date",
    "physical_institution_not_designated": "The internet hospital's physical institution is not designated",
    "physical_institution_suspended": "The internet hospital's physical institution is suspended",
    "physical_institution_dissolved": "The internet hospital's physical institution is dissolved",
}


def _refuse(status: str | None, subject: str, code: str, on: dt.date) -> None:
    """Raise the 422 for ``subject`` ("institution" or "physical_institution") unless active."""
    if status == "active":
        return
    suffix, says = _REFUSALS[status]
    problem_code = f"{subject}_{suffix}"
    detail = f"{code} {says} {on.isoformat()}."
    if subject == "physical_institution":
        detail += " An internet hospital falls with the institution it relies on."
    raise Refused(problem_code, _TITLES[problem_code], detail)


#: The kinds of designated institution where each kind of visit happens (DOMAIN.md section 4):
#: online revisits at internet hospitals, purchases on an e-prescription at retail
#: pharmacies, home nursing from a hospital or an internet hospital.
VISITS_OFFERED: dict[VisitType, frozenset[InstitutionKind]] = {
    "online_revisit": frozenset({"internet_hospital"}),
    "pharmacy_purchase": frozenset({"retail_pharmacy"}),
    "home_nursing": frozenset({"hospital", "internet_hospital"}),
}


def check_offers(institution: Institution, visit_type: VisitType) -> None:
    """Refuse (422 ``visit_type_not_offered``) a visit the institution's kind does not offer."""
    kinds = VISITS_OFFERED[visit_type]
    if institution.kind not in kinds:
        raise Refused(
            "visit_type_not_offered",
            "This institution does not offer this kind of visit",
            f"{institution.institution_code} is a {institution.kind.replace('_', ' ')}; "
            f"{visit_type.replace('_', ' ')} is at a "
            f"{' or '.join(sorted(kind.replace('_', ' ') for kind in kinds))}.",
        )


async def check_may_settle(conn: _Source, institution_code: str, on: dt.date) -> None:
    """Refuse (422) a settlement for care at ``institution_code`` on ``on`` unless it is designated.

    DOMAIN.md section 4. Codes: ``institution_unknown`` (not registered),
    ``institution_not_designated`` (no agreement covers the day),
    ``institution_suspended``, ``institution_dissolved`` (the day is on or after the
    dissolution date); for an internet hospital, then the same for the physical
    institution it relies on: ``physical_institution_not_designated``,
    ``physical_institution_suspended``, ``physical_institution_dissolved``.
    """
    row = await conn.fetchrow(queries.DESIGNATION_ON, institution_code, on)
    if row is None:
        raise Refused(
            "institution_unknown",
            "The institution is not a designated institution",
            f"{institution_code} is not in the institution registry.",
        )
    _refuse(row["status"], "institution", institution_code, on)
    if row["kind"] == "internet_hospital":
        _refuse(row["physical_status"], "physical_institution", row["relies_on"], on)


async def is_designated_pharmacy(conn: _Source, code: str, on: dt.date) -> bool:
    """Whether ``code`` is a retail pharmacy whose agreement is in force, unsuspended, on ``on``."""
    row = await conn.fetchrow(queries.DESIGNATION_ON, code, on)
    return row is not None and row["kind"] == "retail_pharmacy" and row["status"] == "active"


# --- the registry --------------------------------------------------------------------------------


async def register_institution(conn: _Source, institution: Institution) -> None:
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


async def sign_sample_agreement(conn: _Source, code: str, valid_from: dt.date) -> None:
    """Give a sample institution an open-ended agreement unless it has one (idempotent; seeding)."""
    await conn.execute(queries.INSERT_SAMPLE_AGREEMENT, code, valid_from)


def _invalid(code: str, title: str, detail: str | None = None) -> DomainError:
    return Refused(code, title, detail)


def _registration(source: object) -> tuple[object, ...]:
    """What a registration says, to tell a repeat from a clash."""
    fields = ("institution_code", "name", "area", "kind", "level", "relies_on")
    if isinstance(source, asyncpg.Record):
        return tuple(source[f] for f in fields)
    return tuple(getattr(source, f) for f in fields)


async def register_new_institution(conn: _Source, new: NewInstitution) -> InstitutionView:
    """Register an institution from the operator API (DOMAIN.md section 4).

    A hospital or internet hospital has a level; a pharmacy has none. An internet
    hospital names the registered hospital it relies on; nothing else does. The same
    registration again (a retry) answers as the first did; other data under a taken
    code is a 409.
    """
    if new.kind == "retail_pharmacy" and new.level is not None:
        raise _invalid("pharmacy_has_no_level", "A retail pharmacy has no level")
    if new.kind != "retail_pharmacy" and new.level is None:
        raise _invalid("level_required", f"A {new.kind.replace('_', ' ')} needs a level (1 to 3)")
    if new.kind == "internet_hospital" and new.relies_on is None:
        raise _invalid(
            "relies_on_required", "An internet hospital names the physical hospital it relies on"
        )
    if new.kind != "internet_hospital" and new.relies_on is not None:
        raise _invalid("relies_on_not_allowed", "Only an internet hospital relies on another")
    async with transaction(conn) as tx:
        if new.relies_on is not None:
            physical = await find_institution(tx, new.relies_on)
            if physical is None or physical.kind != "hospital":
                raise _invalid(
                    "relies_on_not_a_hospital",
                    "An internet hospital relies on a registered physical hospital",
                    f"{new.relies_on} is not a registered hospital.",
                )
        created = await tx.fetchval(
            queries.REGISTER_INSTITUTION,
            new.institution_code,
            new.name,
            new.area,
            new.kind,
            new.level,
            new.relies_on,
        )
        if created is None:
            existing = await tx.fetchrow(
                queries.INSTITUTION_WITH_REGISTRATION, new.institution_code
            )
            assert existing is not None  # the insert met this very row
            if _registration(existing) != _registration(new):
                raise Conflict(
                    "institution_exists",
                    "Another institution is registered under this code",
                    f"{new.institution_code} is taken.",
                )
            created = existing["created_at"]  # the same registration again: same answer
    return InstitutionView(**msgspec.structs.asdict(new), registered_at=created)


class _Request(msgspec.Struct, frozen=True, kw_only=True):
    """Who asks, under which Idempotency-Key: a retry of a request that took effect finds it."""

    operator_id: str
    idempotency_key: str


async def _record(
    tx: asyncpg.Connection,
    agreement_id: int,
    event: AgreementEvent,
    effective_from: dt.date,
    reason: str | None,
    request: _Request,
    valid_until: dt.date | None = None,
) -> None:
    try:
        async with tx.transaction():
            await tx.execute(
                queries.INSERT_AGREEMENT_EVENT,
                agreement_id,
                event,
                effective_from,
                valid_until,
                reason,
                request.operator_id,
                request.idempotency_key,
            )
    except asyncpg.UniqueViolationError:
        raise RequestInProgress() from None


async def _earlier_effect(tx: asyncpg.Connection, request: _Request) -> int | None:
    """The agreement this very request already changed, when an earlier attempt took effect."""
    return await tx.fetchval(
        queries.AGREEMENT_CHANGED_BY_REQUEST, request.operator_id, request.idempotency_key
    )


async def sign_agreement(
    pool: _Source, code: str, new: NewAgreement, *, operator_id: str, idempotency_key: str
) -> AgreementView:
    """Sign an agreement covering [valid_from, valid_until) (409 if it overlaps another).

    An internet hospital can only sign while its physical institution is designated
    on the first day (DOMAIN.md section 4).
    """
    if new.valid_until is not None and new.valid_until <= new.valid_from:
        raise _invalid(
            "agreement_period_invalid", "valid_until must be after valid_from (it is exclusive)"
        )
    request = _Request(operator_id=operator_id, idempotency_key=idempotency_key)
    async with transaction(pool) as tx:
        institution = await _lock_institution(tx, code)
        agreement_id = await _earlier_effect(tx, request)
        if agreement_id is None:
            if institution["kind"] == "internet_hospital":
                designation = await tx.fetchrow(queries.DESIGNATION_ON, code, new.valid_from)
                assert designation is not None  # the query always answers one row
                _refuse(
                    designation["physical_status"],
                    "physical_institution",
                    institution["relies_on"],
                    new.valid_from,
                )
            try:
                async with tx.transaction():
                    agreement_id = await tx.fetchval(
                        queries.INSERT_AGREEMENT, code, new.valid_from, new.valid_until
                    )
            except asyncpg.ExclusionViolationError:
                raise Conflict(
                    "agreement_overlaps",
                    "The institution already has an agreement in force in that period",
                    "Dissolve it, or start the new agreement when the other ends.",
                ) from None
            await _record(
                tx, agreement_id, "signed", new.valid_from, new.reason, request, new.valid_until
            )
    return await _agreement_view(pool, code, agreement_id)


async def _lock_institution(tx: asyncpg.Connection, code: str) -> asyncpg.Record:
    """The institution, locked: its agreements change one request at a time."""
    institution = await tx.fetchrow(queries.INSTITUTION_LOCKED, code)
    if institution is None:
        raise InstitutionNotFound(code)
    return institution


async def _locked_agreement(tx: asyncpg.Connection, code: str, agreement_id: int) -> asyncpg.Record:
    """The agreement, locked, if it belongs to ``code`` and is not dissolved."""
    agreement = await tx.fetchrow(queries.AGREEMENT_FOR_UPDATE, agreement_id, code)
    if agreement is None:
        raise AgreementNotFound()
    if agreement["dissolved_from"] is not None:
        raise Conflict(
            "agreement_dissolved",
            "The agreement is dissolved; it does not change any more",
            f"Dissolved from {agreement['dissolved_from'].isoformat()}.",
        )
    return agreement


def _within(agreement: asyncpg.Record, day: dt.date) -> None:
    until = agreement["valid_until"]
    if day < agreement["valid_from"] or (until is not None and day >= until):
        period = f"[{agreement['valid_from'].isoformat()}, {until.isoformat() if until else '…'})"
        raise _invalid(
            "date_outside_agreement",
            "The date is outside the agreement's period",
            f"{day.isoformat()} is not in {period}.",
        )


async def _suspend(tx: asyncpg.Connection, agreement: asyncpg.Record, day: dt.date) -> None:
    _within(agreement, day)
    agreement_id = agreement["agreement_id"]
    if (suspended := await tx.fetchval(queries.OPEN_SUSPENSION, agreement_id)) is not None:
        raise Conflict(
            "agreement_already_suspended",
            "The agreement is already suspended",
            f"Suspended from {suspended.isoformat()}; reinstate it first.",
        )
    try:
        async with tx.transaction():
            await tx.execute(queries.INSERT_SUSPENSION, agreement_id, day)
    except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError):
        raise Conflict(
            "suspension_overlaps",
            "The agreement was already suspended on that day",
            "A suspension starts on or after the last reinstatement.",
        ) from None


async def _reinstate(tx: asyncpg.Connection, agreement: asyncpg.Record, day: dt.date) -> None:
    agreement_id = agreement["agreement_id"]
    suspended = await tx.fetchval(queries.OPEN_SUSPENSION, agreement_id)
    if suspended is None:
        raise Conflict("agreement_not_suspended", "The agreement is not suspended")
    if day <= suspended:
        raise _invalid(
            "reinstatement_before_suspension",
            "A reinstatement takes effect after the suspension began",
            f"Suspended from {suspended.isoformat()}.",
        )
    await tx.execute(queries.REINSTATE, agreement_id, day)


async def _dissolve(tx: asyncpg.Connection, agreement: asyncpg.Record, day: dt.date) -> None:
    _within(agreement, day)
    await tx.execute(queries.DISSOLVE_AGREEMENT, agreement["agreement_id"], day)


_STEPS = {"suspended": _suspend, "reinstated": _reinstate, "dissolved": _dissolve}


async def change_agreement(
    pool: _Source,
    code: str,
    agreement_id: int,
    event: Literal["suspended", "reinstated", "dissolved"],
    step: AgreementStep,
    *,
    operator_id: str,
    idempotency_key: str,
) -> AgreementView:
    """Suspend, reinstate or dissolve an agreement from ``step.effective_from`` (section 4).

    A suspension lasts until a reinstatement; from a dissolution's date on, expenses
    are not settled and the agreement changes no more. The new state and its history
    row are written in one transaction.
    """
    request = _Request(operator_id=operator_id, idempotency_key=idempotency_key)
    async with transaction(pool) as tx:
        await _lock_institution(tx, code)
        if await _earlier_effect(tx, request) is None:
            agreement = await _locked_agreement(tx, code, agreement_id)
            await _STEPS[event](tx, agreement, step.effective_from)
            await _record(tx, agreement_id, event, step.effective_from, step.reason, request)
    return await _agreement_view(pool, code, agreement_id)
