"""What operators send and what we answer about designated institutions (DOMAIN.md section 4)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from medpay.schemas import AREA_CODE, ApiAnswer, ApiRequest, SafeText

__all__ = [
    "INSTITUTION_CODE_PATTERN",
    "AgreementEvent",
    "AgreementEventView",
    "AgreementStatus",
    "AgreementStep",
    "AgreementView",
    "InstitutionCode",
    "InstitutionKind",
    "InstitutionView",
    "NewAgreement",
    "NewInstitution",
    "SuspensionView",
]

InstitutionKind = Literal["hospital", "internet_hospital", "retail_pharmacy"]
INSTITUTION_CODE_PATTERN = r"^[A-Z][0-9]{11}$"
#: fixmedins_code: a letter for the kind of institution and 11 digits.
InstitutionCode = Annotated[
    str, msgspec.Meta(pattern=INSTITUTION_CODE_PATTERN, examples=["H11010800123"])
]
Level = Annotated[int, msgspec.Meta(ge=1, le=3, description="1 to 3; none for a pharmacy")]
AgreementEvent = Literal["signed", "suspended", "reinstated", "dissolved"]
#: An agreement's standing on a given day.
AgreementStatus = Literal["not_yet_in_force", "active", "suspended", "dissolved", "expired"]


class NewInstitution(ApiRequest, frozen=True, kw_only=True):
    """An institution to add to the registry; it settles nothing until it signs an agreement."""

    institution_code: InstitutionCode  # fixmedins_code
    name: SafeText  # fixmedins_name
    area: AREA_CODE  # the treatment place that supervises it
    kind: InstitutionKind
    level: Level | None = None
    #: The physical hospital an internet hospital relies on (and falls with).
    relies_on: InstitutionCode | None = None


class NewAgreement(ApiRequest, frozen=True, kw_only=True):
    """An agreement signed with the institution, covering [valid_from, valid_until)."""

    valid_from: dt.date
    #: The first day no longer covered; none for an agreement without an agreed end.
    valid_until: dt.date | None = None
    reason: SafeText | None = None


class AgreementStep(ApiRequest, frozen=True, kw_only=True):
    """A suspension, reinstatement or dissolution, taking effect on ``effective_from``."""

    effective_from: dt.date
    reason: SafeText | None = None


class SuspensionView(ApiAnswer, frozen=True, kw_only=True):
    """A suspension: no settlement from ``suspended_from`` until ``reinstated_from``."""

    suspended_from: dt.date
    reinstated_from: dt.date | None = None


class AgreementEventView(ApiAnswer, frozen=True, kw_only=True):
    """One recorded step of an agreement; these rows are never changed."""

    event: AgreementEvent
    effective_from: dt.date
    recorded_at: dt.datetime
    valid_until: dt.date | None = None
    reason: str | None = None
    operator_id: str | None = None  # none: loaded by the sample seed


class AgreementView(ApiAnswer, frozen=True, kw_only=True):
    """An agreement, its standing today (China time), its suspensions and its history."""

    agreement_id: int
    valid_from: dt.date
    status_today: AgreementStatus
    history: list[AgreementEventView]
    valid_until: dt.date | None = None
    dissolved_from: dt.date | None = None
    suspensions: list[SuspensionView] = []


class InstitutionView(ApiAnswer, frozen=True, kw_only=True):
    """A registered institution with every agreement it has had."""

    institution_code: str  # fixmedins_code
    name: str  # fixmedins_name
    area: str
    kind: InstitutionKind
    registered_at: dt.datetime
    level: int | None = None
    relies_on: str | None = None
    agreements: list[AgreementView] = []
