"""HTTP for e-prescriptions: institutions issue and read them; pharmacies redeem them by paying.

Imports: ``medpay.prescriptions`` and the layers below it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar import Controller, Response, get
from litestar.params import FromPath, JSONBody

from medpay.clock import CHINA
from medpay.errors import Forbidden
from medpay.http import Injected
from medpay.http.openapi import INSTITUTION_SECURITY
from medpay.http.problems import problem_responses
from medpay.institutions.keys import InstitutionSigner
from medpay.prescriptions.schemas import PrescriptionOrder, PrescriptionView
from medpay.prescriptions.service import get_prescription, issue_prescription
from medpay.security.guards import provide_caller, signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = ["PrescriptionController", "prescriber_guard"]


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


class PrescriptionController(Controller):
    """Electronic prescriptions, signed by the institution that issues them (X-Institution-Id)."""

    path = "/v1/prescriptions"
    security = INSTITUTION_SECURITY
    tags = ["prescriptions"]
    guards = [signed_by("institution")]

    @idempotent_post(
        "/",
        operation_id="issuePrescription",
        summary="Issue an electronic prescription",
        guards=[prescriber_guard],
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 422),
    )
    async def issue_prescription(
        self,
        data: JSONBody[PrescriptionOrder],
        caller: Injected[InstitutionSigner],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[PrescriptionView]:
        """Record a prescription for one person; any designated retail pharmacy may redeem it once."""
        # Idempotency keys are scoped per caller; an institution's scope cannot meet an app's.
        return await idempotent.answer(
            scope=f"institution:{caller.institution_code}",
            status=201,
            run=lambda key, digest: issue_prescription(
                pool,
                institution_code=caller.institution_code,
                idempotency_key=key,
                request_digest=digest,
                order=data,
                now=dt.datetime.now(CHINA),
            ),
            location=lambda view: f"/v1/prescriptions/{view.prescription_id}",
        )

    @get(
        "/{prescription_id:str}",
        operation_id="getPrescription",
        summary="A prescription this institution issued, with its redemptions",
        responses=problem_responses(401, 404),
    )
    async def get_prescription(
        self,
        prescription_id: FromPath[str],
        caller: Injected[InstitutionSigner],
        pool: Injected[asyncpg.Pool],
    ) -> PrescriptionView:
        """Only the issuing institution sees a prescription here."""
        return await get_prescription(
            pool,
            prescription_id,
            institution_code=caller.institution_code,
            today=dt.datetime.now(CHINA).date(),
        )
