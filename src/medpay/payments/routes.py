"""HTTP for payments: parse, authenticate, call the service; nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from medpay.payments import service
from medpay.payments.schemas import PaymentOrder, PaymentView
from medpay.schemas import encoder
from medpay.security.guards import (
    current_app,
    current_patient,
    patient_identity_guard,
    patient_payment_guard,
    signed_app_guard,
)
from medpay.security.idempotency import request_digest, validate_idempotency_key
from medpay.security.problems import problem_responses

__all__ = ["PATIENT_SECURITY", "PaymentController"]

#: Both the app's signature and the patient's token are required.
PATIENT_SECURITY: list[dict[str, list[str]]] = [
    {"AppId": [], "AppTimestamp": [], "AppNonce": [], "AppSignature": [], "PatientToken": []}
]

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Required on every POST: 8 to 128 characters; a repeat returns the first outcome.",
    ),
]


class PaymentController(Controller):
    """Payments made by patients from their apps."""

    path = "/v1/payments"
    tags = ["payments"]
    guards = [signed_app_guard, patient_identity_guard]
    security = PATIENT_SECURITY

    @post(
        "/",
        operation_id="createPayment",
        summary="Pay for care with basic medical insurance",
        guards=[patient_payment_guard],
        status_code=201,
        response_description="The payment as recorded",
        responses=problem_responses(400, 401, 403, 409, 413, 422),
    )
    async def create_payment(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PaymentOrder],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PaymentView]:
        """Record a payment order; a repeat under the same Idempotency-Key returns the first answer."""
        key = validate_idempotency_key(idempotency_key)
        app, patient = current_app(request), current_patient(request)
        body = await request.body()
        pool = request.app.state.pool
        digest = request_digest(request.method, request.url.path, patient.psn_no, body)

        async def operation() -> Response[bytes]:
            payment = await service.receive_payment(
                pool,
                app_id=app.app_id,
                idempotency_key=key,
                request_digest=digest,
                psn_no=patient.psn_no,
                order=data,
            )
            return Response(
                content=encoder.encode(payment),
                status_code=201,
                media_type="application/json",
                headers={"Location": f"/v1/payments/{payment.payment_id}"},
            )

        return await request.app.state.idempotency.run(  # type: ignore[no-any-return]
            app_id=app.app_id,
            key=key,
            digest=digest,
            operation=operation,
        )

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        summary="A payment of this app and patient",
        responses=problem_responses(401, 404),
    )
    async def get_payment(
        self, request: Request[Any, Any, Any], payment_id: FromPath[str]
    ) -> PaymentView:
        """Only the app and the person that made a payment can see it."""
        return await service.get_payment(
            request.app.state.pool,
            payment_id,
            app_id=current_app(request).app_id,
            psn_no=current_patient(request).psn_no,
        )
