"""HTTP for payments: parse, authenticate, call the service; nothing else.

Imports: ``medpay.payments`` and the layers below it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Response, get
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from medpay.channels.service import PatientApp
from medpay.http import Injected
from medpay.http.openapi import PATIENT_SECURITY
from medpay.http.problems import problem_responses, render
from medpay.http.responses import json_response
from medpay.observability import bind_log_context
from medpay.payments.flow import PaymentFlow, PaymentOutcome, RefundOutcome
from medpay.payments.schemas import (
    EstimateView,
    PaymentOrder,
    PaymentView,
    RefundRequest,
    RefundView,
)
from medpay.security.guards import patient_identity_guard, patient_payment_guard, signed_by
from medpay.security.idempotency import IdempotentPost, Once, idempotent_post
from medpay.security.identity import PatientIdentity
from medpay.security.persons import person_ref

__all__ = ["Payer", "PaymentController"]


def _answer(outcome: PaymentOutcome, success_status: int) -> Response[bytes]:
    """201/200 when settled or reversed, 202 while the province's answer is pending, else the problem."""
    payment = outcome.payment
    bind_log_context(payment_id=payment.payment_id)  # for the access line (issue 12)
    location = f"/v1/payments/{payment.payment_id}"
    if outcome.problem is not None:
        return render(outcome.problem, location, payment_id=str(payment.payment_id))
    status = 202 if payment.state in ("processing", "reversing") else success_status
    return json_response(payment, status, location)


def _refund_answer(outcome: RefundOutcome) -> Response[bytes]:
    """201 once money went back, 202 while the reversal or the new settlement is pending."""
    refund = outcome.refund
    bind_log_context(payment_id=refund.payment_id)
    location = f"/v1/payments/{refund.payment_id}/refunds/{refund.refund_id}"
    if outcome.problem is not None:
        return render(
            outcome.problem,
            location,
            payment_id=str(refund.payment_id),
            refund_id=str(refund.refund_id),
        )
    status = 202 if refund.state in ("reversing", "resettling") else 201
    return json_response(refund, status, location)


def _PENDING(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=PaymentView, description=description)


@dataclasses.dataclass(frozen=True, slots=True)
class Payer:
    """The app and the patient a payment route acts for, and the flow that serves them."""

    app_id: str
    psn_no: str
    flow: PaymentFlow

    async def once(
        self, idempotent: IdempotentPost, run: Callable[[str, str], Awaitable[Response[bytes]]]
    ) -> Response[Any]:
        """``run`` at most once per key of the app; the patient goes into the digest."""
        return await idempotent(scope=self.app_id, principal=person_ref(self.psn_no), run=run)


def _payer(
    caller: Injected[PatientApp],
    patient: Injected[PatientIdentity],
    payment_flow: Injected[PaymentFlow],
) -> Payer:
    return Payer(app_id=caller.app_id, psn_no=patient.psn_no, flow=payment_flow)


class PaymentController(Controller):
    """Payments made by patients from their apps.

    Keys are the app's; the patient goes into the request digest, so a key is theirs alone.
    """

    path = "/v1/payments"
    tags = ["payments"]
    guards = [signed_by("app"), patient_identity_guard]
    security = PATIENT_SECURITY
    dependencies = {"payer": Provide(_payer, sync_to_thread=False)}

    @idempotent_post(
        "/",
        operation_id="createPayment",
        summary="Pay for care with basic medical insurance",
        guards=[patient_payment_guard],
        status_code=201,
        response_description="Settled with the home province",
        responses={
            202: _PENDING("Recorded; the home province's answer is pending (processing)"),
            **problem_responses(400, 401, 403, 409, 413, 422, 502, 503),
        },
    )
    async def create_payment(
        self,
        data: JSONBody[PaymentOrder],
        payer: Injected[Payer],
        idempotent: Injected[IdempotentPost],
    ) -> Response[PaymentView]:
        """Settle a payment with the insured person's home province and answer with the split.

        The Idempotency-Key is claimed and answered inside the flow's own two transactions.
        """
        once: Once[PaymentOutcome] = await idempotent.within(
            scope=payer.app_id,
            principal=person_ref(payer.psn_no),  # the digest names nobody
            answer=lambda outcome: _answer(outcome, 201),
        )
        answer: Response[PaymentView] = await payer.flow.pay(
            app_id=payer.app_id,
            psn_no=payer.psn_no,
            order=data,
            idempotency_key=once.key,
            request_digest=once.digest,
            once=once,
        )
        return answer

    @idempotent_post(
        "/estimate",
        operation_id="estimatePayment",
        summary="Pre-settle: the split the home province would give, without effect",
        status_code=200,
        responses=problem_responses(400, 401, 409, 413, 422, 502, 503),
    )
    async def estimate_payment(
        self,
        data: JSONBody[PaymentOrder],
        payer: Injected[Payer],
        idempotent: Injected[IdempotentPost],
    ) -> Response[EstimateView]:
        """A pre-settlement (2206): nothing is recorded here or at the province."""

        async def estimate(_key: str, _digest: str) -> Response[bytes]:
            view = await payer.flow.estimate(psn_no=payer.psn_no, order=data)
            return json_response(view, 200)

        return await payer.once(idempotent, estimate)

    @idempotent_post(
        "/{payment_id:str}/reversal",
        operation_id="reversePayment",
        summary="Reverse a settled payment; balance and year-to-date totals return exactly",
        guards=[patient_payment_guard],
        status_code=200,
        responses={
            202: _PENDING("The reversal is under way (reversing); its outcome follows"),
            **problem_responses(400, 401, 403, 404, 409, 422, 502, 503),
        },
    )
    async def reverse_payment(
        self,
        payment_id: FromPath[str],
        payer: Injected[Payer],
        idempotent: Injected[IdempotentPost],
    ) -> Response[PaymentView]:
        """Reverse (2208) a settled payment of this app and patient."""

        async def reverse(_key: str, _digest: str) -> Response[bytes]:
            outcome = await payer.flow.reverse(payment_id, app_id=payer.app_id, psn_no=payer.psn_no)
            return _answer(outcome, 200)

        return await payer.once(idempotent, reverse)

    @idempotent_post(
        "/{payment_id:str}/refunds",
        operation_id="refundPayment",
        summary="Give back part of a settled payment (a return, a corrected bill)",
        guards=[patient_payment_guard],
        status_code=201,
        response_description=(
            "Given back: refunded, or resettlement_failed (the whole payment given back; "
            "the lines kept could not be settled again and are to be paid anew)"
        ),
        responses={
            202: ResponseSpec(
                data_container=RefundView,
                description="Under way (reversing, then resettling); its outcome follows",
            ),
            **problem_responses(400, 401, 403, 404, 409, 422, 502, 503),
        },
    )
    async def refund_payment(
        self,
        payment_id: FromPath[str],
        data: JSONBody[RefundRequest],
        payer: Injected[Payer],
        idempotent: Injected[IdempotentPost],
    ) -> Response[RefundView]:
        """Reverse the settlement (2208) and settle the lines kept anew, as one refund.

        Returning every line in full is a full refund: the reversal alone.
        """

        async def refund(key: str, digest: str) -> Response[bytes]:
            outcome = await payer.flow.refund(
                payment_id,
                app_id=payer.app_id,
                psn_no=payer.psn_no,
                request=data,
                idempotency_key=key,
                request_digest=digest,
            )
            return _refund_answer(outcome)

        return await payer.once(idempotent, refund)

    @get(
        "/{payment_id:str}/refunds/{refund_id:str}",
        operation_id="getRefund",
        summary="A refund of a payment of this app and patient",
        responses=problem_responses(401, 404),
    )
    async def get_refund(
        self,
        payment_id: FromPath[str],
        refund_id: FromPath[str],
        payer: Injected[Payer],
    ) -> RefundView:
        """Only the app and the person whose payment it refunds can see it."""
        return await payer.flow.get_refund(
            payment_id, refund_id, app_id=payer.app_id, psn_no=payer.psn_no
        )

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        summary="A payment of this app and patient",
        responses=problem_responses(401, 404),
    )
    async def get_payment(
        self,
        payment_id: FromPath[str],
        payer: Injected[Payer],
    ) -> PaymentView:
        """Only the app and the person that made a payment can see it."""
        return await payer.flow.get(payment_id, app_id=payer.app_id, psn_no=payer.psn_no)
