"""What a client sends, taken strictly: one value per query parameter, bodies of exact types.

Litestar converts a body to its schema leniently (``"10000"`` becomes 10000, ``1.0``
an integer, ``"true"`` a boolean) and lets the last of repeated query parameters
win. Our schemas say integer or boolean and mean it, and no route takes a list in
its query, so :func:`strict_request`, an application-wide ``before_request`` hook,
checks every request after its guards and before its handler: a repeated query
parameter is a 400; a body must be JSON (415 otherwise) and decode strictly into the
handler's body type with msgspec (400 otherwise, at any nesting depth). Nothing has
been recorded by then.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.exceptions import HTTPException, ValidationException

from medpay.errors import InvalidRequest

if TYPE_CHECKING:
    from litestar import Request
    from litestar.handlers import HTTPRouteHandler

__all__ = ["body_type", "is_json_media_type", "strict_request"]


class UnsupportedMediaType(HTTPException):
    """The body is not JSON."""

    status_code = 415


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or any ``+json`` type, parameters aside."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


@functools.cache
def body_type(handler: HTTPRouteHandler) -> Any:
    """The type a handler's ``data`` parameter declares, or None when it takes no body."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    return None if parameter is None else parameter.annotation


@functools.cache
def _decoder(target: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(target)


async def strict_request(request: Request[Any, Any, Any]) -> None:
    """Refuse a repeated query parameter, and a body not JSON or not of the handler's type."""
    query = request.query_params
    repeated = sorted(name for name in query if len(query.getall(name)) > 1)
    if repeated:
        raise InvalidRequest(
            "query_parameter_repeated",
            "A query parameter is repeated",
            f"Each is taken once; repeated: {', '.join(repeated)}.",
        )
    target = body_type(request.route_handler)
    if target is None:
        return
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType(detail="Send the body as application/json.")
    body = await request.body()
    try:
        _decoder(target).decode(body)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            detail=str(exc), extra=[{"message": str(exc), "key": "body", "source": "body"}]
        ) from exc
    except msgspec.DecodeError as exc:
        raise ValidationException(detail=f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationException(detail="The body is nested too deeply.") from exc
