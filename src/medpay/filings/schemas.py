"""What agencies send and what we answer about off-site filings (DOMAIN.md section 5)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from medpay.schemas import AREA_CODE, ApiAnswer, ApiRequest, SafeText

__all__ = [
    "PSN_NO_PATTERN",
    "FilingCancellation",
    "FilingChange",
    "FilingChangeKind",
    "FilingClass",
    "FilingKind",
    "FilingList",
    "FilingVersionView",
    "FilingView",
    "NewFiling",
    "PsnNo",
]

#: What the filing is for. Long-term residence: a retiree resettled off-site, a
#: long-term resident, staff posted off-site. Temporary outing: a referral, an
#: emergency rescue (filed after the fact), any other outing.
FilingKind = Literal[
    "resettled_retiree",
    "long_term_resident",
    "posted_staff",
    "referral",
    "emergency",
    "other_temporary",
]
FilingClass = Literal["long_term", "temporary"]
FilingChangeKind = Literal["filed", "changed", "cancelled"]
PSN_NO_PATTERN = r"^[0-9A-Za-z]{6,32}$"
#: psn_no: the insured person's number.
PsnNo = Annotated[str, msgspec.Meta(pattern=PSN_NO_PATTERN, examples=["33000000000000000001"])]
#: A treatment area: a province (330000), a city (330100) or a district (330106).
TreatmentArea = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[1-6][0-9]{5}$",
        examples=["440000", "440300"],
        description="mdtrtarea_admvs: a province (covers its cities), a city or a district",
    ),
]


class NewFiling(ApiRequest, frozen=True, kw_only=True):
    """An off-site filing by the insured area's agency.

    Periods are half-open: ``valid_until`` is the first day no longer covered. A
    long-term residence has none (valid until cancelled); a temporary outing without
    one is valid for 6 months.
    """

    psn_no: PsnNo  # psn_no
    treatment_area: TreatmentArea  # mdtrtarea_admvs
    filing_type: FilingKind
    valid_from: dt.date
    valid_until: dt.date | None = None
    #: insuplc_admdvs; the agency's own area, the only one it may file for.
    insured_area: AREA_CODE | None = None
    reason: SafeText | None = None


class FilingChange(ApiRequest, frozen=True, kw_only=True):
    """A change to a filing: only what is sent changes; the old version stays readable."""

    treatment_area: TreatmentArea | None = None
    #: Another type of the same class (a long-term residence stays long-term).
    filing_type: FilingKind | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    reason: SafeText | None = None


class FilingCancellation(ApiRequest, frozen=True, kw_only=True):
    """Cancel a filing from ``effective_from`` (today when absent; never in the past)."""

    effective_from: dt.date | None = None
    reason: SafeText | None = None


class FilingVersionView(ApiAnswer, frozen=True, kw_only=True):
    """A filing as it stood after one change; these rows are never changed."""

    version: int
    change: FilingChangeKind
    treatment_area: str
    filing_type: FilingKind
    valid_from: dt.date
    agency_id: str
    recorded_at: dt.datetime
    valid_until: dt.date | None = None
    cancelled_from: dt.date | None = None
    reason: str | None = None


class FilingView(ApiAnswer, frozen=True, kw_only=True):
    """A filing as it stands, and (when asked for one filing) every version of it."""

    filing_id: uuid.UUID
    psn_no: str  # psn_no
    insured_area: str  # insuplc_admdvs
    treatment_area: str  # mdtrtarea_admvs
    filing_type: FilingKind
    filing_class: FilingClass
    status: Literal["filed", "cancelled"]
    valid_from: dt.date
    version: int
    agency_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    valid_until: dt.date | None = None
    cancelled_from: dt.date | None = None
    history: list[FilingVersionView] = []


class FilingList(ApiAnswer, frozen=True, kw_only=True):
    """A person's filings, oldest first."""

    filings: list[FilingView]
