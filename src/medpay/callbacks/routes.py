"""HTTP for provincial callbacks: ``POST /v1/callbacks/{province}``."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import msgspec
from litestar import Request, post
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath

from medpay.callbacks.service import CallbackOutcome, apply_callback
from medpay.errors import InvalidRequest, NotFound, Unauthenticated
from medpay.http import Injected
from medpay.http.problems import BODY_PROBLEMS, problem_document, problem_responses
from medpay.payments.flow import PaymentFlow
from medpay.settlement.adapters.base import CallbackRejected
from medpay.settlement.routing import ProvinceDirectory

__all__ = ["CallbackAck", "receive_callback"]


class CallbackAck(msgspec.Struct, frozen=True, kw_only=True):
    """Our acknowledgement: any 2xx tells the province to stop delivering this callback."""

    callback_id: str
    result: CallbackOutcome


@dataclasses.dataclass
class CallbackOperation(Operation):
    """The callback's OpenAPI operation: its body is read raw (its signature covers the bytes)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description=(
                "The province's signed report in its wire format. For provinces on the "
                "national profile (DOMAIN.md section 8): callback_id, ref_msgid (our msgid), "
                "infno 2207 or 2208, ord_stas settled, failed or reversed, setlinfo and "
                "setldetail for a success, err_code and err_msg for a failure, callback_time "
                "(yyyyMMddHHmmssSSS). A result is applied only if it describes the payment "
                "its msgid belongs to; otherwise it is acknowledged as a conflict."
            ),
            content={"application/json": OpenAPIMediaType(schema=_CALLBACK_SCHEMA)},
        )
        self.responses = self.responses or {}
        for status in BODY_PROBLEMS:
            self.responses.setdefault(str(status), problem_document(status))


_TEXT = Schema(type=OpenAPIType.STRING)
_CALLBACK_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["callback_id", "ref_msgid", "infno", "ord_stas", "callback_time"],
    properties={
        "callback_id": _TEXT,
        "ref_msgid": Schema(type=OpenAPIType.STRING, pattern=r"^[0-9A-Z]{12}[0-9]{18}$"),
        "infno": Schema(type=OpenAPIType.STRING, enum=["2207", "2208"]),
        "ord_stas": Schema(type=OpenAPIType.STRING, enum=["settled", "failed", "reversed"]),
        "setlinfo": Schema(type=OpenAPIType.OBJECT),
        "setldetail": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)),
        "err_code": Schema(type=OpenAPIType.INTEGER),
        "err_msg": _TEXT,
        "callback_time": Schema(type=OpenAPIType.STRING, pattern=r"^[0-9]{17}$"),
    },
)


@post(
    "/v1/callbacks/{province:str}",
    operation_class=CallbackOperation,
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
