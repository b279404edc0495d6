"""Preparing a settlement: who insures the person, where they are treated, what each item is.

DOMAIN.md sections 2 to 5: the insurance relationship valid on the service date and
its waiting period; the institution (registered, offering that kind of visit, in the
treatment area, designated that day with, for an internet hospital, its physical
one); the treatment place's catalogue; the filing valid that day; and the home
province's adapter. Everything is read on the caller's connection, inside its
transaction, before anything is written; a refusal is a domain error with its code.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from medpay.errors import Refused
from medpay.filings.service import filing_type_on
from medpay.institutions.service import check_may_settle, check_offers, find_institution
from medpay.privacy import masked_number
from medpay.relationships.service import insurer_on, require_fund_payable
from medpay.security.persons import person_ref
from medpay.settlement import queries as settlement_queries
from medpay.settlement.adapters.base import SettlementRequest
from medpay.settlement.catalogue import classify_items
from medpay.wire.national import FEN_MAX, new_msgid

if TYPE_CHECKING:
    from collections.abc import Callable

    from medpay.institutions.service import Institution
    from medpay.payments.schemas import PaymentOrder
    from medpay.relationships.service import InsuranceRelationship
    from medpay.settlement.adapters.base import (
        ClassifiedItem,
        ClearingAdapter,
        FilingType,
        ReversalRequest,
    )
    from medpay.settlement.routing import ProvinceDirectory

__all__ = ["Prepared", "check_order", "new_message", "next_msgid", "prepare", "settlement_request"]

_request_encoder = msgspec.json.Encoder()


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the home province needs besides the order itself."""

    relationship: InsuranceRelationship
    institution: Institution
    items: list[ClassifiedItem]
    adapter: ClearingAdapter
    filing: FilingType | None = None


def check_order(order: PaymentOrder) -> None:
    """Rules a schema cannot say (DOMAIN.md section 4), before anything is recorded.

    Every line is within the wire's bounds by its schema; their sum must be too, or
    the province would refuse the request after the payment was recorded.
    """
    if order.medical_fee_total_fen > FEN_MAX:
        raise Refused(
            "order_total_too_large",
            "The order's total is more than a settlement can carry",
            f"{order.medical_fee_total_fen} fen; at most {FEN_MAX} fen.",
        )
    if order.visit_type == "pharmacy_purchase" and order.prescription_id is None:
        raise Refused(
            "prescription_required",
            "A pharmacy purchase needs an electronic prescription",
            "Send prescription_id.",
        )


async def prepare(
    conn: asyncpg.Connection,
    provinces: ProvinceDirectory,
    *,
    psn_no: str,
    order: PaymentOrder,
    service_date: dt.date,
) -> Prepared:
    """Everything settlement needs, read on ``conn``; a domain error when a rule refuses it."""
    relationship = await insurer_on(conn, psn_no, service_date)
    if relationship is None:
        raise Refused(
            "person_not_insured",
            "The person has no insurance relationship on the service date",
            f"No basic medical insurance is recorded for {masked_number(psn_no)} on {service_date}.",
        )
    require_fund_payable(relationship, service_date)
    institution = await find_institution(conn, order.institution_code)
    if institution is None:
        raise Refused(
            "institution_unknown",
            "The institution is not a designated institution",
            f"{order.institution_code} is not in the institution registry.",
        )
    check_offers(institution, order.visit_type)
    # Designated on the service date, and, for an internet hospital, its physical one too.
    await check_may_settle(conn, order.institution_code, service_date)
    if institution.area != order.treatment_area:
        raise Refused(
            "treatment_area_mismatch",
            "The treatment area is not the institution's area",
            f"{order.institution_code} is in {institution.area}, not {order.treatment_area}.",
        )
    items = await classify_items(conn, order.treatment_area, order.items)
    adapter = provinces.adapter_for(relationship.insured_area)
    # The insured place's policy adjusts the ratio by the filing valid on the day (DOMAIN.md 5).
    filing = await filing_type_on(conn, psn_no, order.treatment_area, service_date)
    return Prepared(
        relationship=relationship,
        institution=institution,
        items=items,
        adapter=adapter,
        filing=filing,
    )


def settlement_request(
    msgid: str,
    *,
    psn_no: str,
    payment_id: uuid.UUID,
    order: PaymentOrder,
    service_date: dt.date,
    prepared: Prepared,
) -> SettlementRequest:
    """The 2206/2207 request for ``order`` (its visit id is the payment's, mdtrt_id)."""
    return SettlementRequest(
        msgid=msgid,
        psn_no=psn_no,
        insured_area=prepared.relationship.insured_area,
        treatment_area=order.treatment_area,
        institution_code=prepared.institution.institution_code,
        institution_name=prepared.institution.name,
        institution_level=prepared.institution.settlement_level,
        insurance_scheme=prepared.relationship.scheme,
        personal_account_allowed=order.personal_account_allowed,
        service_date=service_date,
        offsite_filing_type=prepared.filing,
        visit_id=payment_id.hex,  # mdtrt_id: one visit per payment
        charge_batch_no=payment_id.hex[:20],  # chrg_bchno
        items=prepared.items,
    )


def _kept(request: SettlementRequest | ReversalRequest) -> dict[str, Any]:
    """The request as stored: the person by reference.

    The resolver re-sends it with the number from the payment's own sealed copy. An
    e-voucher settlement carries no certificate number.
    """
    assert not getattr(request, "certificate_no", ""), "a certificate number is never stored"
    document: dict[str, Any] = msgspec.json.decode(_request_encoder.encode(request))
    document["psn_no"] = person_ref(request.psn_no)
    return document


async def next_msgid(conn: asyncpg.Connection, institution_code: str, now: dt.datetime) -> str:
    """A msgid for a message of ``institution_code`` (the serial tells one second apart)."""
    serial = await conn.fetchval(settlement_queries.ALLOCATE_MSGID_SERIAL)
    return new_msgid(institution_code, now, int(serial) % 10000)


async def new_message(
    conn: asyncpg.Connection,
    now: Callable[[], dt.datetime],
    *,
    payment_id: uuid.UUID,
    institution_code: str,
    infno: str,
    province: str,
    build: Callable[[str], SettlementRequest | ReversalRequest],
) -> SettlementRequest | ReversalRequest:
    """Allocate a msgid and store the exact request under it, in the caller's transaction.

    Stored before sending, so the payment is only ever sent as this request under this
    msgid (README, "Exactly once").
    """
    for _ in range(5):
        request = build(await next_msgid(conn, institution_code, now()))
        stored = await conn.fetchval(
            settlement_queries.INSERT_PROVINCE_MESSAGE,
            request.msgid,
            payment_id,
            infno,
            province,
            _kept(request),
        )
        if stored is not None:
            return request
        # The same msgid within the same second (the serial wrapped): draw another.
    raise RuntimeError("could not allocate a unique msgid")
