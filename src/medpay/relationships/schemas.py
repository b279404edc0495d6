"""What agencies send and what we answer about insurance relationships (DOMAIN.md section 6)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from medpay.schemas import AREA_CODE, ApiAnswer, ApiRequest, SafeText

__all__ = [
    "PSN_NO",
    "ContributionCertificate",
    "ContributionCertificateView",
    "InsurerOnDate",
    "RelationshipHistory",
    "Scheme",
    "SegmentView",
    "TransferAcceptance",
    "TransferApplication",
    "TransferCancellation",
    "TransferEventView",
    "TransferList",
    "TransferRejection",
    "TransferState",
    "TransferView",
]

Scheme = Literal["employee", "resident"]  # insutype 310 / 390
TransferState = Literal["requested", "certificate_issued", "accepted", "rejected", "cancelled"]

#: psn_no: the insured person's number.
PSN_NO = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{6,32}$", examples=["33000000000000000001"])
]
#: Months of contribution (100 years at most).
Months = Annotated[int, msgspec.Meta(ge=0, le=1200)]
#: A personal account balance in fen, at most 100 million yuan.
BalanceFen = Annotated[int, msgspec.Meta(ge=0, le=10_000_000_000)]
#: A waiting period the new area sets after a gap of more than 3 months: at most 6 months.
WaitingMonths = Annotated[int, msgspec.Meta(ge=0, le=6)]


class TransferApplication(ApiRequest, frozen=True, kw_only=True):
    """The new area's agency applies to move a person's relationship to its area (step 1)."""

    psn_no: PSN_NO  # psn_no
    from_area: AREA_CODE  # the old insuplc_admdvs
    to_area: AREA_CODE  # the new insuplc_admdvs: the applying agency's own area
    scheme: Scheme  # insutype in the new area


class ContributionCertificate(ApiRequest, frozen=True, kw_only=True):
    """The old area's electronic insured-person information form (step 2).

    Issuing it stops the enrolment in the old area: contributions there ended on
    ``contributions_stopped_on`` (the first day no longer covered). The old area's
    segment still answers for the person until the new area accepts (step 4).
    """

    contribution_months: Months  # months contributed in the old area
    personal_account_balance_fen: BalanceFen  # the personal account balance handed over
    contributions_stopped_on: dt.date


class TransferAcceptance(ApiRequest, frozen=True, kw_only=True):
    """The new area loads the form and opens its segment (step 3).

    ``valid_from`` is the new segment's first day (default: today, China time; never in
    the past). ``waiting_months`` applies only after a gap of more than 3 months: by
    default the reference 3 months; 0 to 6 when the new area sets its own.
    """

    valid_from: dt.date | None = None
    waiting_months: WaitingMonths | None = None


class TransferRejection(ApiRequest, frozen=True, kw_only=True):
    """Either area's agency refuses the transfer, saying why."""

    reason: SafeText


class TransferCancellation(ApiRequest, frozen=True, kw_only=True):
    """The applicant agency withdraws its application."""

    reason: SafeText | None = None


class ContributionCertificateView(ApiAnswer, frozen=True, kw_only=True):
    """The certificate as the old area issued it."""

    issued_on: dt.date
    contribution_months: int
    personal_account_balance_fen: int
    contributions_stopped_on: dt.date


class TransferEventView(ApiAnswer, frozen=True, kw_only=True):
    """One step of a transfer: who, when, what. Never changed."""

    step: TransferState
    agency_id: str
    occurred_at: dt.datetime
    details: dict[str, Any] = {}


class TransferView(ApiAnswer, frozen=True, kw_only=True):
    """A relationship transfer and, while it is open, its current deadline.

    Deadlines are working days (Monday to Friday): the certificate within 10 of the
    application, the acceptance within 5 of the certificate.
    """

    transfer_id: uuid.UUID
    psn_no: str
    from_area: str
    to_area: str
    scheme: Scheme
    state: TransferState
    applicant_agency_id: str
    from_segment_id: int
    requested_at: dt.datetime
    requested_on: dt.date
    certificate_due_on: dt.date
    updated_at: dt.datetime
    acceptance_due_on: dt.date | None = None
    certificate: ContributionCertificateView | None = None
    to_segment_id: int | None = None
    accepted_on: dt.date | None = None
    closing_reason: str | None = None
    #: While open: what is awaited, by when, and how many working days late (0 if on time).
    awaiting: Literal["certificate", "acceptance"] | None = None
    due_on: dt.date | None = None
    working_days_late: int | None = None
    events: list[TransferEventView] = []


class TransferList(ApiAnswer, frozen=True, kw_only=True):
    """Transfers, with lateness counted on ``as_of`` (China time)."""

    as_of: dt.date
    transfers: list[TransferView]


class SegmentView(ApiAnswer, frozen=True, kw_only=True):
    """A segment of the relationship: one area, one scheme, [valid_from, valid_until)."""

    segment_id: int
    insured_area: str  # insuplc_admdvs
    insured_province: str
    scheme: Scheme
    valid_from: dt.date
    contribution_months: int
    carried_months: int
    valid_until: dt.date | None = None
    waiting_until: dt.date | None = None
    opened_by_transfer_id: uuid.UUID | None = None


class InsurerOnDate(ApiAnswer, frozen=True, kw_only=True):
    """Who insured the person on the date asked, with how many months counted.

    ``months_counted`` = months carried in + the segment's opening months + whole
    calendar months from the segment's start to the date.
    """

    segment_id: int
    insured_area: str  # insuplc_admdvs
    insured_province: str
    scheme: Scheme
    valid_from: dt.date
    months_counted: int
    carried_months: int
    in_waiting_period: bool
    valid_until: dt.date | None = None
    waiting_until: dt.date | None = None


class RelationshipHistory(ApiAnswer, frozen=True, kw_only=True):
    """A person's whole relationship history and the answer for one date."""

    psn_no: str
    on: dt.date
    segments: list[SegmentView]
    transfers: list[TransferView]
    insurer: InsurerOnDate | None = None
