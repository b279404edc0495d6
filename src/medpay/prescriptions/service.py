"""Electronic prescriptions: issued by an institution, redeemed once at any pharmacy.

DOMAIN.md section 4, "prescription circulation": a designated retail pharmacy may sell
drugs against an electronic prescription issued by a designated institution, in any
region (mutual recognition). A prescription is redeemed once, before it expires
(reference: 3 days; up to 12 weeks for a chronic-disease long prescription).

History is never rewritten. A prescription is immutable; each payment that redeems it
makes one *attempt* row (``reserved``, in the payment's settling transaction) and then
events: ``redeemed`` when the payment settles, ``released`` when it fails or is
reversed. Only the latest attempt can be live, and PostgreSQL holds that (migration
0006); the row lock on the prescription only decides who goes first and gives the
loser a clear answer.

For the payment flow, inside its own transactions (lock order: payment, then
prescription):

- ``reserve_prescription`` in the ``settling`` transaction;
- ``confirm_redemption`` in the ``settled`` transaction;
- ``release_redemption`` in the ``failed`` transaction, and in the ``reversed`` one: a
  reversed settlement dispensed nothing at the fund's cost, so the prescription may be
  redeemed again (for example by the corrected settlement that usually follows).

A payment whose outcome is ``unknown`` keeps its reservation until it is resolved.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter
from typing import TYPE_CHECKING

import msgspec

from medpay.clock import CHINA
from medpay.db.pool import transaction
from medpay.errors import Conflict, NotFound, Refused
from medpay.prescriptions import queries
from medpay.prescriptions.schemas import (
    STANDARD_VALIDITY_DAYS,
    PrescriptionOrder,
    PrescriptionStatus,
    PrescriptionView,
    RedemptionView,
)
from medpay.privacy import masked_number
from medpay.schemas import view_of
from medpay.security.idempotency import IdempotencyKeyReused
from medpay.security.persons import person_ref, psn_no_of

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "REDEMPTION_TRANSITIONS",
    "IllegalRedemptionTransition",
    "PrescriptionNotFound",
    "check_prescription_order",
    "confirm_redemption",
    "get_prescription",
    "issue_prescription",
    "pass_redemption",
    "release_redemption",
    "reserve_prescription",
]

#: Prescriptions are dated in China time, like payments' service dates.

#: reserved -> redeemed | released; redeemed -> released (the payment was reversed).
REDEMPTION_TRANSITIONS: dict[str, frozenset[str]] = {
    "reserved": frozenset({"redeemed", "released"}),
    "redeemed": frozenset({"released"}),
    "released": frozenset(),
}


class IllegalRedemptionTransition(AssertionError):
    """A redemption change the table above does not allow: a bug, never a client error."""


def _check_transition(current: str, target: str) -> None:
    if target not in REDEMPTION_TRANSITIONS.get(current, frozenset()):
        raise IllegalRedemptionTransition(f"redemption state {current} -> {target} is not allowed")


class PrescriptionNotFound(NotFound):
    """No prescription of this institution has that id (others' look the same)."""

    def __init__(self) -> None:
        super().__init__("prescription_not_found", "No such prescription")


# --- issuing ------------------------------------------------------------------------------


def _validity_days(order: PrescriptionOrder) -> int:
    if order.kind == "standard":
        days = STANDARD_VALIDITY_DAYS if order.validity_days is None else order.validity_days
        if days > STANDARD_VALIDITY_DAYS:
            raise Refused(
                "prescription_validity_too_long",
                "A standard prescription is valid for at most 3 days",
                "Issue a chronic_long prescription for a chronic disease (up to 84 days).",
            )
        return days
    if order.validity_days is None:
        raise Refused(
            "prescription_validity_required",
            "A chronic_long prescription needs validity_days",
            "Give 1 to 84 days (12 weeks).",
        )
    return order.validity_days


def check_prescription_order(order: PrescriptionOrder) -> int:
    """Rules a schema cannot say; returns the validity in days."""
    repeated = sorted(
        code for code, n in Counter(i.item_code for i in order.items).items() if n > 1
    )
    if repeated:
        raise Refused(
            "prescription_item_repeated",
            "An item appears more than once on the prescription",
            f"Give each item once with its total quantity: {', '.join(repeated)}.",
        )
    return _validity_days(order)


def _status(
    row: asyncpg.Record, redemptions: list[RedemptionView], today: dt.date
) -> PrescriptionStatus:
    latest = redemptions[-1].state if redemptions else "released"
    if latest in ("reserved", "redeemed"):
        return latest
    return "expired" if today > row["valid_until"] else "open"


def _view(row: asyncpg.Record, today: dt.date) -> PrescriptionView:
    redemptions = msgspec.convert(row["redemptions"], list[RedemptionView])
    return view_of(
        row,
        PrescriptionView,
        psn_no=psn_no_of(row),
        status=_status(row, redemptions, today),
        redemptions=redemptions,
    )


async def issue_prescription(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    institution_code: str,
    idempotency_key: str,
    request_digest: str,
    order: PrescriptionOrder,
    now: dt.datetime,
) -> PrescriptionView:
    """Record a prescription issued at ``now``; a repeat under the same key returns the first.

    The issuer must be allowed to prescribe (the route's guard checks it); the person
    must be known to the gateway, or the prescription could never be paid for.
    """
    validity_days = check_prescription_order(order)
    issued_on = now.astimezone(CHINA).date()
    person = person_ref(order.psn_no)
    async with transaction(pool) as conn:
        if await conn.fetchval(queries.PERSON_EXISTS, person) is None:
            raise Refused(
                "person_unknown",
                "The person is not known to the gateway",
                f"No insured person {masked_number(order.psn_no)} is registered.",
            )
        prescription_id = f"rx_{secrets.token_hex(16)}"
        inserted = await conn.fetchval(
            queries.INSERT_PRESCRIPTION,
            prescription_id,
            institution_code,
            idempotency_key,
            request_digest,
            person,
            order.kind,
            validity_days,
            now,
            issued_on,
        )
        if inserted is not None:
            await conn.execute(
                queries.INSERT_PRESCRIPTION_ITEMS,
                prescription_id,
                list(range(1, len(order.items) + 1)),
                [item.item_code for item in order.items],
                [item.max_quantity for item in order.items],
            )
        row = await conn.fetchrow(
            queries.PRESCRIPTION_BY_IDEMPOTENCY_KEY, institution_code, idempotency_key
        )
    assert row is not None
    if row["request_digest"] != request_digest:
        raise IdempotencyKeyReused()
    return _view(row, issued_on)


async def get_prescription(
    pool: asyncpg.Pool | asyncpg.Connection,
    prescription_id: str,
    *,
    institution_code: str,
    today: dt.date,
) -> PrescriptionView:
    """The prescription, if ``institution_code`` issued it; otherwise not found."""
    row = await pool.fetchrow(queries.PRESCRIPTION_BY_ID, prescription_id)
    if row is None or row["institution_code"] != institution_code:
        raise PrescriptionNotFound()
    return _view(row, today)


# --- redeeming (called by the payment flow, inside its transactions) ------------------------


def _check_items(
    prescribed: dict[str, int], items: Sequence[tuple[str, int]], prescription_id: str
) -> None:
    """Every item sold is on the prescription, in at most the prescribed quantity in all."""
    if not items:
        raise Refused(
            "prescription_items_missing",
            "No prescribed item is being sold",
            f"The sale names none of the items of {prescription_id}.",
        )
    wanted: Counter[str] = Counter()
    for item_code, quantity in items:
        assert quantity > 0, f"quantity {quantity} of {item_code}"
        wanted[item_code] += quantity
    not_prescribed = sorted(code for code in wanted if code not in prescribed)
    too_many = sorted(
        f"{code} ({wanted[code]} > {prescribed[code]})"
        for code in wanted
        if code in prescribed and wanted[code] > prescribed[code]
    )
    if not_prescribed or too_many:
        parts = []
        if not_prescribed:
            parts.append(f"not prescribed: {', '.join(not_prescribed)}")
        if too_many:
            parts.append(f"more than prescribed: {', '.join(too_many)}")
        raise Refused(
            "prescription_item_not_prescribed",
            "An item is not on the prescription, or more is sold than prescribed",
            f"{prescription_id}: {'; '.join(parts)}.",
        )


async def reserve_prescription(
    conn: asyncpg.Connection,
    *,
    prescription_id: str,
    psn_no: str,
    pharmacy_code: str,
    items: Sequence[tuple[str, int]],
    payment_id: uuid.UUID,
    on: dt.date,
) -> None:
    """Reserve ``prescription_id`` for ``payment_id``, or raise a DomainError saying why not.

    Call it inside the payment's ``settling`` transaction (a refusal raised here rolls
    that transaction back). ``items`` are the (item_code, quantity) lines the
    prescription covers: pass the drug and consumable lines, not non-medical fees such
    as drug delivery. ``on`` is the payment's service date (China). Any retail pharmacy
    in any province may redeem (mutual recognition). Calling it again for the same
    payment, while its reservation stands, changes nothing.
    """
    prescription = await conn.fetchrow(queries.LOCK_PRESCRIPTION, prescription_id)
    if prescription is None:
        raise Refused(
            "prescription_unknown",
            "No such prescription",
            f"{prescription_id} was never issued.",
        )
    if prescription["psn_no"] != person_ref(psn_no):
        # Say nothing else about another person's prescription.
        raise Refused(
            "prescription_not_for_this_person",
            "The prescription was issued to someone else",
            f"{prescription_id} is not a prescription of {masked_number(psn_no)}.",
        )
    if await conn.fetchval(queries.INSTITUTION_KIND, pharmacy_code) != "retail_pharmacy":
        raise Refused(
            "pharmacy_not_designated",
            "The seller is not a designated retail pharmacy",
            f"{pharmacy_code} may not dispense against an electronic prescription.",
        )
    valid_from, valid_until = prescription["valid_from"], prescription["valid_until"]
    if not valid_from <= on <= valid_until:
        when = "not valid until" if on < valid_from else "expired after"
        day = valid_from if on < valid_from else valid_until
        raise Refused(
            "prescription_expired",
            "The prescription is not valid on the service date",
            f"{prescription_id} is {when} {day.isoformat()}; the service date is {on.isoformat()}.",
        )
    latest = await conn.fetchrow(queries.LATEST_REDEMPTION, prescription_id)
    if latest is not None and latest["state"] != "released":
        if latest["payment_id"] == payment_id:
            return  # this payment's own reservation (or redemption) stands
        raise Conflict(
            "prescription_already_redeemed",
            "The prescription was already redeemed",
            f"{prescription_id} is {latest['state']} by another payment; a prescription is redeemed once.",
        )
    prescribed = {
        row["item_code"]: row["max_quantity"]
        for row in await conn.fetch(queries.PRESCRIPTION_ITEMS, prescription_id)
    }
    _check_items(prescribed, items, prescription_id)
    attempt = 1 if latest is None else latest["attempt"] + 1
    await conn.execute(
        queries.INSERT_REDEMPTION, prescription_id, attempt, payment_id, pharmacy_code, on
    )


async def _record(conn: asyncpg.Connection, payment_id: uuid.UUID, target: str) -> None:
    prescription_id = await conn.fetchval(queries.LOCK_PRESCRIPTION_OF_PAYMENT, payment_id)
    if prescription_id is None:
        return  # the payment redeems no prescription
    row = await conn.fetchrow(queries.REDEMPTION_OF_PAYMENT, payment_id)
    assert row is not None and row["prescription_id"] == prescription_id
    if row["state"] == target:
        return  # already recorded: a repeated call changes nothing
    _check_transition(row["state"], target)
    await conn.execute(queries.INSERT_REDEMPTION_EVENT, prescription_id, row["attempt"], target)


async def confirm_redemption(conn: asyncpg.Connection, payment_id: uuid.UUID) -> None:
    """The payment settled: its reservation becomes a redemption.

    Call it inside the ``settled`` transaction. A payment with no reservation (not a
    prescription sale) is left alone; a repeat changes nothing.
    """
    await _record(conn, payment_id, "redeemed")


async def release_redemption(conn: asyncpg.Connection, payment_id: uuid.UUID) -> None:
    """The payment failed or was reversed: the prescription may be redeemed again.

    Call it inside the ``failed`` transaction and the ``reversed`` one. A payment with
    no reservation is left alone; a repeat changes nothing.
    """
    await _record(conn, payment_id, "released")


async def pass_redemption(
    conn: asyncpg.Connection, payment_id: uuid.UUID, replacement_id: uuid.UUID
) -> None:
    """A partial return: the reversed payment's redemption passes to its replacement.

    Call it inside the ``reversed`` transaction, once the replacement (the lines kept)
    is recorded. The prescription is released and reserved again for the replacement in
    one step, so it is never free in between; nothing is checked again, since the lines
    kept are fewer than those the reversed payment redeemed, on the same service date.
    A payment with no reservation is left alone.
    """
    row = await conn.fetchrow(queries.REDEMPTION_OF_PAYMENT, payment_id)
    if row is None:
        return
    await release_redemption(conn, payment_id)  # the live attempt: the latest one
    await conn.execute(
        queries.INSERT_REDEMPTION,
        row["prescription_id"],
        row["attempt"] + 1,
        replacement_id,
        row["pharmacy_code"],
        row["service_date"],
    )
