"""What a prescribing institution sends and what we answer about prescriptions (DOMAIN.md section 4)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from medpay.schemas import ApiAnswer, ApiRequest, ItemCode, Quantity

__all__ = [
    "MAX_VALIDITY_DAYS",
    "STANDARD_VALIDITY_DAYS",
    "PrescribedItem",
    "PrescribedItemView",
    "PrescriptionKind",
    "PrescriptionOrder",
    "PrescriptionStatus",
    "PrescriptionView",
    "RedemptionState",
    "RedemptionView",
]

PrescriptionKind = Literal["standard", "chronic_long"]
RedemptionState = Literal["reserved", "redeemed", "released"]
PrescriptionStatus = Literal["open", "reserved", "redeemed", "expired"]

#: Reference validity of a standard prescription: the day of issue and the two after.
STANDARD_VALIDITY_DAYS = 3
#: A chronic-disease long prescription: up to 12 weeks.
MAX_VALIDITY_DAYS = 84

#: psn_no as the gateway's person registry holds it.
PersonNumber = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{6,32}$", examples=["33000000000000000001"])
]
ValidityDays = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_VALIDITY_DAYS,
        description="Days it may be redeemed, the day of issue counting as the first: "
        "standard at most 3 (default 3); chronic_long 1 to 84, required.",
    ),
]


class PrescribedItem(ApiRequest, frozen=True, kw_only=True):
    """A drug (or consumable) that may be dispensed, up to ``max_quantity``."""

    item_code: ItemCode  # med_list_codg
    max_quantity: Quantity  # cnt


class PrescriptionOrder(ApiRequest, frozen=True, kw_only=True):
    """An electronic prescription issued by a designated hospital or internet hospital."""

    psn_no: PersonNumber  # psn_no
    kind: PrescriptionKind = "standard"
    validity_days: ValidityDays | None = None
    items: Annotated[list[PrescribedItem], msgspec.Meta(min_length=1, max_length=100)]


class PrescribedItemView(ApiAnswer, frozen=True, kw_only=True):
    """An item of a prescription as recorded."""

    item_code: str
    max_quantity: int


class RedemptionView(ApiAnswer, frozen=True, kw_only=True):
    """One payment's redemption attempt; a released attempt leaves the prescription open again."""

    attempt: int
    payment_id: uuid.UUID
    pharmacy_code: str  # fixmedins_code of the dispensing pharmacy
    service_date: dt.date
    state: RedemptionState
    reserved_at: dt.datetime
    redeemed_at: dt.datetime | None = None
    released_at: dt.datetime | None = None


class PrescriptionView(ApiAnswer, frozen=True, kw_only=True):
    """A prescription, its items and the history of its redemption (never rewritten)."""

    prescription_id: str
    institution_code: str  # fixmedins_code of the issuer
    psn_no: str
    kind: PrescriptionKind
    validity_days: int
    issued_at: dt.datetime
    valid_from: dt.date  # China date of issue
    valid_until: dt.date  # the last China date it may be redeemed on
    status: PrescriptionStatus
    items: list[PrescribedItemView]
    redemptions: list[RedemptionView]
