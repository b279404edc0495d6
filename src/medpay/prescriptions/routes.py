"""HTTP for e-prescriptions: institutions issue and read them; pharmacies redeem them by paying.

Imports: ``medpay.prescriptions`` and the layers below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Router
from litestar.params import FromPath

from medpay.clock import china_now, china_today
from medpay.errors import Forbidden
from medpay.http.openapi import INSTITUTION_SECURITY
from medpay.institutions.keys import InstitutionSigner
from medpay.prescriptions.schemas import PrescriptionOrder, PrescriptionView
from medpay.prescriptions.service import get_prescription, issue_prescription
from medpay.security.actions import Act, Signers, signed_get, signed_post
from medpay.security.guards import provide_caller

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = ["prescriber_guard", "prescriptions_router"]


async def prescriber_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Only hospitals and internet hospitals issue prescriptions; a pharmacy dispenses (DOMAIN.md section 4)."""
    institution: InstitutionSigner = provide_caller(connection)  # type: ignore[arg-type]
    if not institution.may_prescribe:
        raise Forbidden(
            "institution_cannot_prescribe",
            "This institution may not issue prescriptions",
            f"{institution.institution_code} is a {institution.kind.replace('_', ' ')}; "
            "only hospitals and internet hospitals prescribe.",
        )


Institution = Act[InstitutionSigner]
_PRESCRIBERS = Signers(
    kinds=("institution",),
    security=INSTITUTION_SECURITY,
    problems=(400, 401, 403, 409, 413, 422),
    location=lambda view, **_: f"/v1/prescriptions/{view.prescription_id}",
)


@signed_post("/", "issuePrescription", "Issue an electronic prescription", _PRESCRIBERS, status=201, guards=[prescriber_guard])  # fmt: skip
async def issue(act: Institution, data: PrescriptionOrder) -> PrescriptionView:
    """Record a prescription for one person; any designated retail pharmacy may redeem it once."""
    return await issue_prescription(
        act.pool,
        institution_code=act.caller.institution_code,
        idempotency_key=act.key,
        request_digest=act.digest,
        order=data,
        now=china_now(),
    )


@signed_get("/{prescription_id:str}", "getPrescription", "A prescription this institution issued, with its redemptions", _PRESCRIBERS)  # fmt: skip
async def get_one(act: Institution, prescription_id: FromPath[str]) -> PrescriptionView:
    """Only the issuing institution sees a prescription here."""
    return await get_prescription(
        act.pool,
        prescription_id,
        institution_code=act.caller.institution_code,
        today=china_today(),
    )


#: Electronic prescriptions, signed by the institution that issues them (X-Institution-Id).
prescriptions_router = Router(
    path="/v1/prescriptions", tags=["prescriptions"], route_handlers=[issue, get_one]
)
