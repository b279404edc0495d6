"""Transfer and continuation of the insurance relationship (DOMAIN.md section 6).

A person moves from one coordination area to another:

1. the new area's agency applies (``request_transfer``);
2. the old area's agency issues the contribution certificate: months, personal
   account balance, the day contributions stopped (``issue_certificate``), within
   10 working days;
3. the new area's agency accepts (``accept_transfer``) within 5 working days: in one
   transaction the old segment is closed on the day the new one opens, the new
   segment counts the old months, and the balance moved is journalled;
4. until then the old area's segment answers for the person.

Either agency may reject an open transfer, and the applicant may cancel it. The
states and who may take each step are one table (``TRANSITIONS``, ``ACTORS``),
checked in ``_take_step`` only. Each step is an append-only event (who, when, what)
in the transaction that makes it; PostgreSQL refuses a second open transfer of a
person, a second open segment, overlapping segments and any rewrite of history.

Where the domain is silent we chose:

- the certificate's ``contribution_months`` are the months contributed in the old
  area; the new segment carries them plus what the old segment had carried in;
- the gap is counted from ``contributions_stopped_on`` (the first day the old area
  no longer covers) to the new segment's first day, in calendar months: it exceeds
  3 months when the new start is after ``stopped_on + 3 months``; the waiting period
  then runs from the new start for ``waiting_months`` (reference 3, at most 6);
- a new segment never starts in the past (the old segment answered until then).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, Unpack

import asyncpg

from medpay.clock import add_months, china_today
from medpay.db.pool import transaction
from medpay.errors import Conflict, DomainError, Forbidden, NotFound, Refused
from medpay.ledger.service import account_transfer_postings, post_journal
from medpay.privacy import masked_number
from medpay.relationships import queries
from medpay.relationships.schemas import (
    ContributionCertificate,
    ContributionCertificateView,
    TransferAcceptance,
    TransferApplication,
    TransferCancellation,
    TransferEventView,
    TransferRejection,
    TransferState,
    TransferView,
)
from medpay.relationships.workdays import (
    NO_HOLIDAYS,
    add_working_days,
    whole_months_between,
    working_days_between,
)
from medpay.schemas import view_of
from medpay.security.idempotency import IdempotencyKeyReused
from medpay.security.persons import person_ref, psn_no_of

if TYPE_CHECKING:
    from medpay.parties.service import SigningParty

__all__ = [
    "ACCEPTANCE_WORKING_DAYS",
    "ACTORS",
    "CERTIFICATE_WORKING_DAYS",
    "CONTINUITY_GAP_MONTHS",
    "MAX_WAITING_MONTHS",
    "OPEN_STATES",
    "REFERENCE_WAITING_MONTHS",
    "TRANSITIONS",
    "TransferStep",
    "accept_transfer",
    "cancel_transfer",
    "get_transfer",
    "issue_certificate",
    "list_transfers",
    "next_state",
    "reject_transfer",
    "request_transfer",
    "transfer_views",
    "waiting_until",
]

TransferStep = Literal["issue_certificate", "accept", "reject", "cancel"]
#: Who may take a step: the old area's agency, the new area's, or the applicant agency.
Actor = Literal["old_area", "new_area", "applicant"]

#: The allowed transitions, (state, step) -> the state it leads to; nothing else is allowed.
TRANSITIONS: Final[Mapping[tuple[TransferState, TransferStep], TransferState]] = MappingProxyType(
    {
        ("requested", "issue_certificate"): "certificate_issued",
        ("certificate_issued", "accept"): "accepted",
        ("requested", "reject"): "rejected",
        ("certificate_issued", "reject"): "rejected",
        ("requested", "cancel"): "cancelled",
        ("certificate_issued", "cancel"): "cancelled",
    }
)
ACTORS: Final[Mapping[TransferStep, frozenset[Actor]]] = MappingProxyType(
    {
        "issue_certificate": frozenset({"old_area"}),
        "accept": frozenset({"new_area"}),
        "reject": frozenset({"old_area", "new_area"}),
        "cancel": frozenset({"applicant"}),
    }
)
OPEN_STATES: Final = frozenset({"requested", "certificate_issued"})
#: Each step leads to one state whatever it starts from; its event is named after it.
_OUTCOME: Final[Mapping[TransferStep, TransferState]] = {
    step: target for (_, step), target in TRANSITIONS.items()
}
assert all(
    target == _OUTCOME[step] and state in OPEN_STATES
    for (state, step), target in TRANSITIONS.items()
), "each step has one outcome, and only open transfers move"

CERTIFICATE_WORKING_DAYS: Final = 10
ACCEPTANCE_WORKING_DAYS: Final = 5
#: A longer gap between the segments lets the new area set a waiting period.
CONTINUITY_GAP_MONTHS: Final = 3
REFERENCE_WAITING_MONTHS: Final = 3
MAX_WAITING_MONTHS: Final = 6

_STEP_WORDS: Final[Mapping[TransferStep, str]] = {
    "issue_certificate": "have its certificate issued",
    "accept": "be accepted",
    "reject": "be rejected",
    "cancel": "be cancelled",
}


def next_state(state: TransferState, step: TransferStep) -> TransferState:
    """The state ``step`` leads to from ``state``, or a 409 problem when it is not allowed."""
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        raise Conflict(
            "transfer_transition_not_allowed",
            "The transfer's state does not allow this step",
            f"A transfer that is {state} cannot {_STEP_WORDS[step]}.",
        ) from None


def _check_actor(transfer: asyncpg.Record, step: TransferStep, agency: SigningParty) -> None:
    """403 unless ``agency`` is one of the parties that may take ``step``."""
    parties = {
        "old_area": agency.area == transfer["from_area"],
        "new_area": agency.area == transfer["to_area"],
        "applicant": agency.party_id == transfer["applicant_agency_id"],
    }
    if any(parties[actor] for actor in ACTORS[step]):
        return
    if ACTORS[step] == {"applicant"}:
        raise Forbidden(
            "agency_not_applicant",
            "Only the agency that applied may cancel the transfer",
            f"The transfer was applied for by {transfer['applicant_agency_id']}.",
        )
    areas = {"old_area": transfer["from_area"], "new_area": transfer["to_area"]}
    allowed = " or ".join(areas[actor] for actor in sorted(ACTORS[step]) if actor in areas)
    raise Forbidden(
        "agency_not_for_area",
        "The agency does not act for the area this step belongs to",
        f"Only the agency of {allowed} may do this; {agency.party_id} acts for {agency.area}.",
    )


def _transfer_not_found(transfer_id: object) -> DomainError:
    return NotFound(
        "transfer_not_found", "No such relationship transfer", f"{transfer_id} is not known."
    )


def _parse_id(transfer_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(transfer_id, uuid.UUID):
        return transfer_id
    try:
        return uuid.UUID(transfer_id)
    except ValueError:
        raise _transfer_not_found(transfer_id) from None


# --- views ---------------------------------------------------------------------------------


def _view(
    row: asyncpg.Record,
    psn_no: str,
    events: list[TransferEventView],
    today: dt.date,
    holidays: Collection[dt.date],
) -> TransferView:
    certificate = None
    if row["certificate_issued_on"] is not None:
        certificate = ContributionCertificateView(
            issued_on=row["certificate_issued_on"],
            contribution_months=row["contribution_months"],
            personal_account_balance_fen=row["personal_account_fen"],
            contributions_stopped_on=row["contributions_stopped_on"],
        )
    awaiting: Literal["certificate", "acceptance"] | None = None
    due_on = late = None
    if row["state"] == "requested":
        awaiting, due_on = "certificate", row["certificate_due_on"]
    elif row["state"] == "certificate_issued":
        awaiting, due_on = "acceptance", row["acceptance_due_on"]
    if due_on is not None:
        late = working_days_between(due_on, today, holidays)
    return view_of(
        row,
        TransferView,
        psn_no=psn_no,
        certificate=certificate,
        awaiting=awaiting,
        due_on=due_on,
        working_days_late=late,
        events=events,
    )


async def transfer_views(
    conn: asyncpg.Connection | asyncpg.Pool,
    rows: list[asyncpg.Record],
    *,
    today: dt.date,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
    with_events: bool = True,
) -> list[TransferView]:
    """Views of transfer rows, with their events in the order they happened."""
    events: dict[uuid.UUID, list[TransferEventView]] = {row["transfer_id"]: [] for row in rows}
    numbers = {row["transfer_id"]: psn_no_of(row) for row in rows}
    if with_events and rows:
        for event in await conn.fetch(queries.EVENTS_OF_TRANSFERS, list(events)):
            details = event["details"]
            if "psn_no" in details:  # kept by reference; the agency reads the number
                details = details | {"psn_no": numbers[event["transfer_id"]]}
            events[event["transfer_id"]].append(
                TransferEventView(
                    step=event["step"],
                    agency_id=event["agency_id"],
                    occurred_at=event["occurred_at"],
                    details=details,
                )
            )
    return [
        _view(row, numbers[row["transfer_id"]], events[row["transfer_id"]], today, holidays)
        for row in rows
    ]


async def _current_view(
    conn: asyncpg.Connection, transfer_id: uuid.UUID, today: dt.date, holidays: Collection[dt.date]
) -> TransferView:
    row = await conn.fetchrow(queries.TRANSFER_BY_ID, transfer_id)
    assert row is not None, transfer_id
    (view,) = await transfer_views(conn, [row], today=today, holidays=holidays)
    return view


async def _record_event(
    conn: asyncpg.Connection,
    transfer_id: uuid.UUID,
    step: TransferState,
    agency: SigningParty,
    details: dict[str, Any],
    idempotency_key: str | None,
) -> None:
    try:
        await conn.execute(
            queries.INSERT_TRANSFER_EVENT,
            transfer_id,
            step,
            agency.party_id,
            details,
            idempotency_key,
        )
    except asyncpg.UniqueViolationError as exc:
        # The same agency's key already made another step (the Idempotency layer
        # normally answers this first).
        raise IdempotencyKeyReused() from exc


async def _earlier_step(
    conn: asyncpg.Connection, agency: SigningParty, idempotency_key: str | None
) -> asyncpg.Record | None:
    """The event an earlier attempt under this key already made, if any (crash recovery)."""
    if idempotency_key is None:
        return None
    return await conn.fetchrow(queries.EVENT_BY_KEY, agency.party_id, idempotency_key)


# --- step 1: the application --------------------------------------------------------------


async def request_transfer(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    application: TransferApplication,
    *,
    idempotency_key: str | None = None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> TransferView:
    """The new area's agency applies to move ``application.psn_no`` into its area (step 1).

    Problems: 403 ``agency_not_for_area`` (``to_area`` is not the agency's area), 422
    ``transfer_within_area``, ``person_not_insured``, ``relationship_not_in_area``,
    409 ``transfer_in_progress`` (the person already has an open transfer).
    """
    today = today or china_today()
    if application.to_area != agency.area:
        raise Forbidden(
            "agency_not_for_area",
            "Only the new area's agency applies for a transfer into its area",
            f"{agency.party_id} acts for {agency.area}, not {application.to_area}.",
        )
    if application.from_area == application.to_area:
        raise Refused(
            "transfer_within_area",
            "A transfer moves a relationship to another coordination area",
            f"From and to are both {application.to_area}.",
        )
    async with transaction(pool) as conn:
        earlier = await _earlier_step(conn, agency, idempotency_key)
        if earlier is not None:
            view = await _current_view(conn, earlier["transfer_id"], today, holidays)
            applied = (view.psn_no, view.from_area, view.to_area, view.scheme)
            if earlier["step"] != "requested" or applied != (
                application.psn_no,
                application.from_area,
                application.to_area,
                application.scheme,
            ):
                raise IdempotencyKeyReused()
            return view
        person = person_ref(application.psn_no)
        segment = await conn.fetchrow(queries.OPEN_SEGMENT_FOR_UPDATE, person)
        if segment is None:
            raise Refused(
                "person_not_insured",
                "The person has no open insurance relationship to transfer",
                f"No open basic medical insurance segment is recorded for {masked_number(application.psn_no)}.",
            )
        if segment["insured_area"] != application.from_area:
            raise Refused(
                "relationship_not_in_area",
                "The person is not insured in the area the transfer is from",
                f"{masked_number(application.psn_no)} is insured in {segment['insured_area']}, "
                f"not {application.from_area}.",
            )
        open_transfer = await conn.fetchval(queries.OPEN_TRANSFER_OF_PERSON, person)
        if open_transfer is not None:
            raise _in_progress(open_transfer)
        transfer_id = uuid.uuid4()
        due_on = add_working_days(today, CERTIFICATE_WORKING_DAYS, holidays)
        try:
            await conn.execute(
                queries.INSERT_TRANSFER,
                transfer_id,
                person,
                application.from_area,
                application.to_area,
                application.scheme,
                agency.party_id,
                segment["segment_id"],
                today,
                due_on,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "relationship_transfers_one_open":
                raise
            raise _in_progress(None) from exc  # a concurrent application won
        await _record_event(
            conn,
            transfer_id,
            "requested",
            agency,
            {
                "psn_no": person,
                "from_area": application.from_area,
                "to_area": application.to_area,
                "scheme": application.scheme,
                "from_segment_id": segment["segment_id"],
                "certificate_due_on": due_on.isoformat(),
            },
            idempotency_key,
        )
        return await _current_view(conn, transfer_id, today, holidays)


def _in_progress(transfer_id: uuid.UUID | None) -> DomainError:
    which = f" ({transfer_id})" if transfer_id else ""
    return Conflict(
        "transfer_in_progress",
        "The person already has a relationship transfer in progress",
        f"Finish, reject or cancel the open transfer{which} first.",
    )


# --- steps 2, 3 and the closings: one skeleton -------------------------------------------

StepEffect = Callable[
    [asyncpg.Connection, asyncpg.Record, TransferState], Awaitable[dict[str, Any]]
]


async def _take_step(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    step: TransferStep,
    effect: StepEffect,
    *,
    idempotency_key: str | None,
    today: dt.date,
    holidays: Collection[dt.date],
) -> TransferView:
    """Lock the transfer, check who and what (the one place), apply ``effect``, record the event.

    Everything happens in one transaction: the state change, its effects (segments,
    ledger) and the event, or none of them.
    """
    transfer_id = _parse_id(transfer_id)
    async with transaction(pool) as conn:
        earlier = await _earlier_step(conn, agency, idempotency_key)
        if earlier is not None:
            if (earlier["transfer_id"], earlier["step"]) != (transfer_id, _OUTCOME[step]):
                raise IdempotencyKeyReused()
            return await _current_view(conn, transfer_id, today, holidays)
        transfer = await conn.fetchrow(queries.TRANSFER_FOR_UPDATE, transfer_id)
        if transfer is None:
            raise _transfer_not_found(transfer_id)
        _check_actor(transfer, step, agency)
        state = next_state(transfer["state"], step)
        details = await effect(conn, transfer, state)
        await _record_event(conn, transfer_id, state, agency, details, idempotency_key)
        view = await _current_view(conn, transfer_id, today, holidays)
        assert view.state == state, (view.state, state)
        return view


async def _open_from_segment(conn: asyncpg.Connection, transfer: asyncpg.Record) -> asyncpg.Record:
    """The segment the transfer moves from, locked; 409 if it is no longer open."""
    segment = await conn.fetchrow(queries.SEGMENT_FOR_UPDATE, transfer["from_segment_id"])
    assert segment is not None, "a foreign key holds it"
    if segment["valid_until"] is not None:
        raise Conflict(
            "relationship_changed",
            "The relationship the transfer moves from has ended meanwhile",
            f"Segment {segment['segment_id']} closed on {segment['valid_until']}; "
            "reject this transfer and apply again.",
        )
    return segment


async def issue_certificate(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    certificate: ContributionCertificate,
    *,
    idempotency_key: str | None = None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> TransferView:
    """The old area stops the enrolment and issues the certificate (step 2).

    Problems: 404 ``transfer_not_found``, 403 ``agency_not_for_area``, 409
    ``transfer_transition_not_allowed``, ``relationship_changed``, 422
    ``certificate_invalid``, ``personal_account_not_held``.
    """
    today = today or china_today()

    async def effect(
        conn: asyncpg.Connection, transfer: asyncpg.Record, state: TransferState
    ) -> dict[str, Any]:
        segment = await _open_from_segment(conn, transfer)
        stopped_on = certificate.contributions_stopped_on
        if not segment["valid_from"] <= stopped_on <= today:
            raise Refused(
                "certificate_invalid",
                "Contributions cannot have stopped on that day",
                f"contributions_stopped_on must lie between the segment's start "
                f"{segment['valid_from']} and today {today}.",
            )
        if segment["scheme"] == "resident" and certificate.personal_account_balance_fen:
            raise Refused(
                "personal_account_not_held",
                "Residents have no personal account",
                "The certificate of a resident scheme moves no balance.",
            )
        due_on = add_working_days(today, ACCEPTANCE_WORKING_DAYS, holidays)
        await conn.execute(
            queries.ISSUE_CERTIFICATE,
            transfer["transfer_id"],
            state,
            today,
            certificate.contribution_months,
            certificate.personal_account_balance_fen,
            stopped_on,
            due_on,
        )
        return {
            "contribution_months": certificate.contribution_months,
            "personal_account_balance_fen": certificate.personal_account_balance_fen,
            "contributions_stopped_on": stopped_on.isoformat(),
            "acceptance_due_on": due_on.isoformat(),
        }

    return await _take_step(
        pool,
        agency,
        transfer_id,
        "issue_certificate",
        effect,
        idempotency_key=idempotency_key,
        today=today,
        holidays=holidays,
    )


def waiting_until(
    contributions_stopped_on: dt.date, valid_from: dt.date, waiting_months: int | None
) -> tuple[dt.date | None, int]:
    """The waiting period's end (None: none) and the months it lasts, for a new segment.

    A gap of at most 3 months continues benefits with no waiting; a longer one gets
    the reference 3 months unless the new area sets 0 to 6.
    """
    gap_exceeded = valid_from > add_months(contributions_stopped_on, CONTINUITY_GAP_MONTHS)
    if not gap_exceeded:
        if waiting_months:
            raise Refused(
                "waiting_period_not_allowed",
                "No waiting period after a gap of at most 3 months",
                f"Contributions stopped on {contributions_stopped_on} and the new segment "
                f"starts on {valid_from}: benefits continue.",
            )
        return None, 0
    months = REFERENCE_WAITING_MONTHS if waiting_months is None else waiting_months
    if not 0 <= months <= MAX_WAITING_MONTHS:
        raise Refused(
            "waiting_period_too_long",
            "A waiting period lasts at most 6 months",
            f"{months} months were asked for.",
        )
    return (add_months(valid_from, months) if months else None), months


async def accept_transfer(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    acceptance: TransferAcceptance,
    *,
    idempotency_key: str | None = None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> TransferView:
    """The new area opens its segment, counting the old months, and credits the balance (step 3).

    In one transaction: the old segment closes on the new segment's first day, the new
    segment opens, and the balance moved is journalled (none when it is zero).
    Problems: 404 ``transfer_not_found``, 403 ``agency_not_for_area``, 409
    ``transfer_transition_not_allowed``, ``relationship_changed``, ``relationship_overlap``,
    422 ``segment_start_invalid``, ``waiting_period_not_allowed``, ``waiting_period_too_long``.
    """
    today = today or china_today()

    async def effect(
        conn: asyncpg.Connection, transfer: asyncpg.Record, state: TransferState
    ) -> dict[str, Any]:
        old = await _open_from_segment(conn, transfer)
        valid_from = acceptance.valid_from or today
        if valid_from < today or valid_from <= old["valid_from"]:
            raise Refused(
                "segment_start_invalid",
                "The new segment cannot start on that day",
                f"It starts today ({today}) or later, and after the old segment's start "
                f"{old['valid_from']}: the old area answers until then.",
            )
        stopped_on: dt.date = transfer["contributions_stopped_on"]
        until, months = waiting_until(stopped_on, valid_from, acceptance.waiting_months)
        carried = old["carried_months"] + transfer["contribution_months"]
        closed = await conn.fetchval(queries.CLOSE_SEGMENT, old["segment_id"], valid_from)
        assert closed == old["segment_id"]
        try:
            new_segment_id = await conn.fetchval(
                queries.OPEN_TRANSFERRED_SEGMENT,
                transfer["psn_no"],
                transfer["to_area"],
                transfer["scheme"],
                valid_from,
                carried,
                until,
            )
        except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError) as exc:
            raise Conflict(
                "relationship_overlap",
                "The new segment would overlap another of the person's segments",
                "A person has one active relationship at a time (DOMAIN.md section 6).",
            ) from exc
        await conn.execute(
            queries.ACCEPT_TRANSFER, transfer["transfer_id"], state, new_segment_id, today
        )
        balance = transfer["personal_account_fen"]
        journal_id = None
        if balance:
            journal_id = await post_journal(
                conn,
                None,
                "account_transfer",
                account_transfer_postings(
                    old_area=transfer["from_area"],
                    new_area=transfer["to_area"],
                    balance_fen=balance,
                ),
                transfer_id=transfer["transfer_id"],
            )
            assert journal_id is not None, "one journal per transfer, made here"
        return {
            "closed_segment_id": old["segment_id"],
            "to_segment_id": new_segment_id,
            "valid_from": valid_from.isoformat(),
            "carried_months": carried,
            "gap_months": whole_months_between(stopped_on, valid_from),
            "waiting_months": months,
            "waiting_until": until.isoformat() if until else None,
            "personal_account_balance_fen": balance,
            "journal_id": journal_id,
        }

    return await _take_step(
        pool,
        agency,
        transfer_id,
        "accept",
        effect,
        idempotency_key=idempotency_key,
        today=today,
        holidays=holidays,
    )


def _closing(reason: str | None) -> StepEffect:
    async def effect(
        conn: asyncpg.Connection, transfer: asyncpg.Record, state: TransferState
    ) -> dict[str, Any]:
        await conn.execute(queries.CLOSE_TRANSFER, transfer["transfer_id"], state, reason)
        return {"from_state": transfer["state"], "reason": reason}

    return effect


async def reject_transfer(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    rejection: TransferRejection,
    **when: Unpack[StepOptions],
) -> TransferView:
    """Either area's agency refuses an open transfer; the old segment goes on (DOMAIN.md section 6).

    Problems: 404 ``transfer_not_found``, 403 ``agency_not_for_area``, 409
    ``transfer_transition_not_allowed``.
    """
    return await _close(pool, agency, transfer_id, "reject", rejection.reason, **when)


async def cancel_transfer(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    cancellation: TransferCancellation,
    **when: Unpack[StepOptions],
) -> TransferView:
    """The applicant withdraws an open transfer; the old segment goes on.

    Problems: 404 ``transfer_not_found``, 403 ``agency_not_applicant``, 409
    ``transfer_transition_not_allowed``.
    """
    return await _close(pool, agency, transfer_id, "cancel", cancellation.reason, **when)


class StepOptions(TypedDict, total=False):
    """What every step may be given besides its own input."""

    idempotency_key: str | None
    today: dt.date | None
    holidays: Collection[dt.date]


async def _close(
    pool: asyncpg.Pool | asyncpg.Connection,
    agency: SigningParty,
    transfer_id: str | uuid.UUID,
    step: Literal["reject", "cancel"],
    reason: str | None,
    *,
    idempotency_key: str | None = None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> TransferView:
    """End an open transfer without moving anything: rejected or cancelled, with its reason."""
    return await _take_step(
        pool,
        agency,
        transfer_id,
        step,
        _closing(reason),
        idempotency_key=idempotency_key,
        today=today or china_today(),
        holidays=holidays,
    )


# --- reading ------------------------------------------------------------------------------


async def get_transfer(
    pool: asyncpg.Pool | asyncpg.Connection,
    transfer_id: str | uuid.UUID,
    *,
    viewer_area: str | None,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> TransferView:
    """A transfer with its events; an agency sees only those of its own area (else 404)."""
    transfer_id = _parse_id(transfer_id)
    row = await pool.fetchrow(queries.TRANSFER_BY_ID, transfer_id)
    if row is None or viewer_area not in (None, row["from_area"], row["to_area"]):
        raise _transfer_not_found(transfer_id)
    (view,) = await transfer_views(pool, [row], today=today or china_today(), holidays=holidays)
    return view


async def list_transfers(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    viewer_area: str | None,
    overdue: bool = False,
    limit: int = 100,
    today: dt.date | None = None,
    holidays: Collection[dt.date] = NO_HOLIDAYS,
) -> list[TransferView]:
    """Transfers newest first (an agency's: those from or to its area).

    With ``overdue``, only open transfers at least one working day past the deadline
    of the step they await.
    """
    today = today or china_today()
    rows = await pool.fetch(queries.LIST_TRANSFERS, viewer_area, today if overdue else None, limit)
    views = await transfer_views(pool, rows, today=today, holidays=holidays, with_events=False)
    if overdue:
        views = [view for view in views if view.working_days_late]
    return views
