"""HTTP for payments: parse, authenticate, call the service; nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from medpay.http.problems import problem_responses, render
from medpay.http.responses import json_response
from medpay.payments.schemas import EstimateView, PaymentOrder, PaymentView
from medpay.payments.service import PaymentFlow, PaymentOutcome, get_payment
from medpay.security.guards import (
    current_app,
    current_patient,
    patient_identity_guard,
    patient_payment_guard,
    signed_app_guard,
)
from medpay.security.idempotency import IdempotencyKeyHeader, run_idempotent

__all__ = ["PATIENT_SECURITY", "PaymentController"]

#: Both the app's signature and the patient's token are required.
PATIENT_SECURITY: list[dict[str, list[str]]] = [
    {"AppId": [], "AppTimestamp": [], "AppNonce": [], "AppSignature": [], "PatientToken": []}
]


def _answer(outcome: PaymentOutcome, success_status: int) -> Response[bytes]:
    """201/200 when settled or reversed, 202 while the province's answer is pending, else the problem."""
    payment = outcome.payment
    if outcome.problem is not None:
        return render(
            outcome.problem,
            f"/v1/payments/{payment.payment_id}",
            payment_id=str(payment.payment_id),
        )
    status = 202 if payment.state in ("processing", "reversing") else success_status
    return json_response(payment, status, f"/v1/payments/{payment.payment_id}")


def _idempotent(
    request: Request[Any, Any, Any],
    idempotency_key: str | None,
    operation: Callable[[str, str], Awaitable[Response[bytes]]],
) -> Awaitable[Response[Any]]:
    """Keys are the app's; the patient goes into the digest, so their key is theirs alone."""
    return run_idempotent(
        request,
        scope=current_app(request).app_id,
        principal=current_patient(request).psn_no,
        idempotency_key=idempotency_key,
        operation=operation,
    )


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
        response_description="Settled with the home province; 202 while its answer is pending",
        responses=problem_responses(400, 401, 403, 409, 413, 422, 502, 503),
    )
    async def create_payment(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PaymentOrder],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PaymentView]:
        """Settle a payment with the insured person's home province and answer with the split."""
        flow: PaymentFlow = request.app.state.payment_flow

        async def operation(key: str, digest: str) -> Response[bytes]:
            outcome = await flow.pay(
                app_id=current_app(request).app_id,
                idempotency_key=key,
                request_digest=digest,
                psn_no=current_patient(request).psn_no,
                order=data,
            )
            return _answer(outcome, 201)

        return await _idempotent(request, idempotency_key, operation)

    @post(
        "/estimate",
        operation_id="estimatePayment",
        summary="Pre-settle: the split the home province would give, without effect",
        status_code=200,
        responses=problem_responses(400, 401, 409, 413, 422, 502, 503),
    )
    async def estimate_payment(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PaymentOrder],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[EstimateView]:
        """A pre-settlement (2206): nothing is recorded here or at the province."""
        flow: PaymentFlow = request.app.state.payment_flow

        async def operation(_key: str, _digest: str) -> Response[bytes]:
            breakdown, insured_area = await flow.estimate(
                psn_no=current_patient(request).psn_no, order=data
            )
            view = EstimateView(
                insured_area=insured_area,
                medical_fee_total_fen=breakdown.medfee_total_fen,
                full_own_pay_fen=breakdown.full_own_pay_fen,
                over_limit_self_pay_fen=breakdown.over_limit_self_pay_fen,
                pre_self_pay_fen=breakdown.pre_self_pay_fen,
                in_scope_fen=breakdown.in_scope_fen,
                deductible_fen=breakdown.deductible_applied_fen,
                reimbursement_ratio_bp=breakdown.ratio_bp,
                basic_fund_fen=breakdown.basic_fund_fen,
                critical_illness_fen=breakdown.critical_illness_fen,
                medical_assistance_fen=breakdown.medical_assistance_fen,
                fund_total_fen=breakdown.fund_total_fen,
                personal_share_fen=breakdown.personal_part_fen,
                personal_account_fen=breakdown.personal_account_fen,
                cash_fen=breakdown.cash_fen,
                account_balance_after_fen=breakdown.balance_after_fen,
            )
            return json_response(view, 200)

        return await _idempotent(request, idempotency_key, operation)

    @post(
        "/{payment_id:str}/reversal",
        operation_id="reversePayment",
        summary="Reverse a settled payment; balance and year-to-date totals return exactly",
        guards=[patient_payment_guard],
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 422, 502, 503),
    )
    async def reverse_payment(
        self,
        request: Request[Any, Any, Any],
        payment_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PaymentView]:
        """Reverse (2208) a settled payment of this app and patient."""
        flow: PaymentFlow = request.app.state.payment_flow

        async def operation(_key: str, _digest: str) -> Response[bytes]:
            outcome = await flow.reverse(
                payment_id,
                app_id=current_app(request).app_id,
                psn_no=current_patient(request).psn_no,
            )
            return _answer(outcome, 200)

        return await _idempotent(request, idempotency_key, operation)

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
        return await get_payment(
            request.app.state.pool,
            payment_id,
            app_id=current_app(request).app_id,
            psn_no=current_patient(request).psn_no,
        )
