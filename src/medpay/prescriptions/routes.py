"""HTTP for prescriptions: parse, authenticate, call the service; nothing else."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from medpay.errors import Forbidden
from medpay.http.openapi import INSTITUTION_SECURITY
from medpay.http.problems import problem_responses
from medpay.http.responses import json_response
from medpay.prescriptions.schemas import PrescriptionOrder, PrescriptionView
from medpay.prescriptions.service import CHINA, get_prescription, issue_prescription
from medpay.security.guards import current_institution, institution_guard
from medpay.security.idempotency import IdempotencyKeyHeader, run_idempotent

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = ["PrescriptionController", "prescriber_guard"]


async def prescriber_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Only hospitals and internet hospitals issue prescriptions; a pharmacy dispenses (DOMAIN.md section 4)."""
    institution = current_institution(connection)  # type: ignore[arg-type]
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
    guards = [institution_guard]

    @post(
        "/",
        operation_id="issuePrescription",
        summary="Issue an electronic prescription",
        guards=[prescriber_guard],
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 422),
    )
    async def issue_prescription(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PrescriptionOrder],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PrescriptionView]:
        """Record a prescription for one person; any designated retail pharmacy may redeem it once."""
        institution = current_institution(request)

        async def operation(key: str, digest: str) -> Response[bytes]:
            view = await issue_prescription(
                request.app.state.pool,
                institution_code=institution.institution_code,
                idempotency_key=key,
                request_digest=digest,
                order=data,
                now=dt.datetime.now(CHINA),
            )
            return json_response(view, 201, f"/v1/prescriptions/{view.prescription_id}")

        # Idempotency keys are scoped per caller; an institution's scope cannot meet an app's.
        return await run_idempotent(
            request,
            scope=f"institution:{institution.institution_code}",
            principal=institution.institution_code,
            idempotency_key=idempotency_key,
            operation=operation,
        )

    @get(
        "/{prescription_id:str}",
        operation_id="getPrescription",
        summary="A prescription this institution issued, with its redemptions",
        responses=problem_responses(401, 404),
    )
    async def get_prescription(
        self, request: Request[Any, Any, Any], prescription_id: FromPath[str]
    ) -> PrescriptionView:
        """Only the issuing institution sees a prescription here."""
        return await get_prescription(
            request.app.state.pool,
            prescription_id,
            institution_code=current_institution(request).institution_code,
            today=dt.datetime.now(CHINA).date(),
        )
