"""HTTP for provincial callbacks: ``POST /v1/callbacks/{province}``."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from litestar import Request, post
from litestar.params import FromPath

from medpay.callbacks.service import CallbackOutcome, apply_callback
from medpay.errors import InvalidRequest, NotFound, Unauthenticated
from medpay.http import Injected
from medpay.http.problems import problem_responses
from medpay.payments.service import PaymentFlow
from medpay.settlement.adapters.base import CallbackRejected
from medpay.settlement.routing import ProvinceDirectory

__all__ = ["CallbackAck", "receive_callback"]


class CallbackAck(msgspec.Struct, frozen=True, kw_only=True):
    """Our acknowledgement: any 2xx tells the province to stop delivering this callback."""

    callback_id: str
    result: CallbackOutcome


@post(
    "/v1/callbacks/{province:str}",
    operation_id="receiveProvinceCallback",
    tags=["callbacks"],
    summary="A provincial platform reports a settlement or reversal result",
    status_code=200,
    responses=problem_responses(400, 401, 403, 404, 413),
    security=[{"ProvinceSignature": []}],
)
async def receive_callback(
    request: Request[Any, Any, Any],
    province: FromPath[str],
    provinces: Injected[ProvinceDirectory],
    pool: Injected[asyncpg.Pool],
    payment_flow: Injected[PaymentFlow],
) -> CallbackAck:
    """Signed by the province's key over X-Province-Timestamp and the body; taken exactly once.

    Provinces key their deliveries by ``callback_id``, not by Idempotency-Key.
    """
    adapter = provinces.for_province(province)
    if adapter is None:
        raise NotFound(
            "province_unknown", "No such connected province", f"{province!r} is not connected."
        )
    body = await request.body()
    try:
        callback = adapter.parse_callback(
            body,
            request.headers.get("x-province-timestamp"),
            request.headers.get("x-province-signature"),
        )
    except CallbackRejected as exc:
        refusal = InvalidRequest if exc.code == "callback_malformed" else Unauthenticated
        raise refusal(exc.code, "The callback was refused", exc.message) from exc
    outcome = await apply_callback(pool, payment_flow, province, callback, body)
    return CallbackAck(callback_id=callback.callback_id, result=outcome)
