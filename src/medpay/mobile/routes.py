"""HTTP for the national front door: ``POST /v1/mobile/{6201,6202,6203,6301,6401}``.

The body is read raw and answered by :class:`~medpay.mobile.service.MobileFrontDoor`,
so that every failure, a malformed or oversized body included, is answered in the
national envelope (HTTP 200, ``code`` and ``errCode``), never as problem+json.

The OpenAPI document describes each transaction's envelope both ways; the business
data inside ``encData`` is given as its ``contentSchema`` (JSON Schema 2020-12: the
schema of the string's decoded content), inline.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import msgspec
from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody

from medpay.http import Injected
from medpay.http.problems import problem_document
from medpay.mobile import schemas
from medpay.mobile.service import MobileFrontDoor
from medpay.wire import mobile

__all__ = ["MobileController"]

_JSON = "application/json"


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` into its ``$defs`` replaced by the definition."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = resolve(definitions[node["$ref"].rsplit("/", 1)[1]])
                rest = {k: resolve(v) for k, v in node.items() if k not in ("$ref", "$defs")}
                return {**target, **rest}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return cast("dict[str, Any]", resolve(schema))


def _envelope_schema(envelope: type[msgspec.Struct], data: type[msgspec.Struct]) -> dict[str, Any]:
    schema = _inline(msgspec.json.schema(envelope, schema_hook=schemas.schema_hook))
    business = _inline(msgspec.json.schema(data, schema_hook=schemas.schema_hook))
    schema["properties"]["encData"] = {
        **schema["properties"]["encData"],
        "description": (
            "Upper-case hex of SM4-ECB (PKCS#7) of the business data as JSON, under the "
            "app's SM4 key (derived from appId and appSecret); contentSchema is that data."
        ),
        "contentMediaType": _JSON,
        "contentSchema": business,
    }
    return schema


def _operation(data: type[msgspec.Struct], answer: type[msgspec.Struct]) -> type[Operation]:
    """An OpenAPI operation documenting one transaction's envelopes as they travel."""
    request_schema = _envelope_schema(mobile.Envelope, data)
    answer_schema = _envelope_schema(mobile.AnswerEnvelope, answer)

    @dataclasses.dataclass
    class MobileOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={_JSON: OpenAPIMediaType(schema=cast("Any", request_schema))},
                required=True,
                description="The national envelope, signed with the app's SM2 key.",
            )
            self.responses = {
                "200": OpenAPIResponse(
                    description=(
                        "Every answer, success (code 0, encData) or failure (code and errCode), "
                        "signed with the gateway's SM2 key."
                    ),
                    content={_JSON: OpenAPIMediaType(schema=cast("Any", answer_schema))},
                ),
                # The gateway's limit of one source, before any envelope is read.
                "429": problem_document(429),
            }

    MobileOperation.__name__ = f"MobileOperation{data.__name__}"
    return MobileOperation


async def _body(request: Request[Any, Any, Any]) -> bytes | None:
    """The raw body, or None when it is over the size limit (answered as such)."""
    try:
        return await request.body()
    except HTTPException:
        return None


def _answer(content: bytes) -> Response[bytes]:
    return Response(content=content, status_code=200, media_type=_JSON)


_DESCRIPTION = (
    "The national envelope (appId, timestamp in ms, encType SM4, signType SM2, encData, "
    "signData), checked in this order: app, clock (300 s), SM4 and SM2, replay. Every "
    "answer is HTTP 200; `code` 0 is success, any other `code` is a failure named by "
    "`errCode` (see the document's description for the list). Amounts are yuan with at "
    "most two decimals."
)


#: What each transaction does, as the document's summary says it.
_SUMMARIES = {
    "6201": "6201 fee upload: record an order to pay, with the patient's payAuthNo",
    "6202": "6202 pay: settle an uploaded order with the home province",
    "6203": "6203 refund: reverse a settled order in full",
    "6301": "6301 order query: the order's state and split",
    "6401": "6401 upload cancel: withdraw an order before it is paid",
}


def _transaction(
    infno: str, operation_id: str, data: type[msgspec.Struct], answer: type[msgspec.Struct]
) -> HTTPRouteHandler:
    """The route of one transaction: the five differ only in what they carry."""

    async def handler(
        self: Controller,
        request: Request[Any, Any, Any],
        mobile_front_door: Injected[MobileFrontDoor],
    ) -> Response[bytes]:
        return _answer(await mobile_front_door.answer(infno, await _body(request)))

    return post(
        f"/{infno}",
        operation_id=operation_id,
        summary=_SUMMARIES[infno],
        description=_DESCRIPTION,
        status_code=200,
        operation_class=_operation(data, answer),
    )(handler)


class MobileController(Controller):
    """The national mobile-payment interface, for apps built against it (DOMAIN.md section 8).

    6201 records the upload, nothing is sent to any province until 6202; 6202 settles
    through the payment flow, exactly once per payOrdId; 6203 reverses (2208) in full,
    so balance and totals return exactly; 6301 answers what the gateway knows now;
    6401 cancels an upload that 6202 has not taken.
    """

    path = "/v1/mobile"
    tags = ["national mobile payment"]

    upload_fees = _transaction(
        "6201", "mobileUploadFees", schemas.FeeUpload, schemas.FeeUploadAnswer
    )
    pay_order = _transaction("6202", "mobilePayOrder", schemas.PayOrder, schemas.OrderAnswer)
    refund_order = _transaction(
        "6203", "mobileRefundOrder", schemas.RefundOrder, schemas.RefundAnswer
    )
    query_order = _transaction("6301", "mobileQueryOrder", schemas.OrderQuery, schemas.OrderAnswer)
    cancel_upload = _transaction(
        "6401", "mobileCancelUpload", schemas.CancelUpload, schemas.CancelUploadAnswer
    )
