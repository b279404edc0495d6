"""Every routed request: a request id (echoed), its hop of the trace, one access line.

``X-Request-Id`` from the client is kept when it is 1-128 characters of
``A-Z a-z 0-9 . _ : -``, else one is made (32 hex digits); the answer carries it back.
The ``traceparent`` and ``tracestate`` headers start this request's hop
(:func:`~medpay.observability.tracing.server_span`). A ``payment_id`` path parameter
that is a UUID is bound to the log context (anything else in that place is a client's
text and is not logged). The access line (``medpay.access``, INFO) gives method,
route template, status and milliseconds; it can be turned off with
``MEDPAY_LOG_REQUESTS=false``.

Litestar runs application middleware after routing, so the route template is known;
a path no route matches is answered 404 before this and carries no request id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from medpay.observability.context import bind_log_context, clear_log_context
from medpay.observability.tracing import server_span

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "request_context"]

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_access = logging.getLogger("medpay.access")


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers this middleware reads (the last of each, as latin-1)."""
    wanted = {b"x-request-id", b"traceparent", b"tracestate"}
    return {
        name.decode(): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in wanted
    }


def request_context(*, log_requests: bool = True) -> Any:
    """The middleware factory for ``Litestar(middleware=[...])``."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            clear_log_context()
            headers = _headers(scope)
            given = headers.get("x-request-id", "").encode("latin-1")
            request_id = given.decode() if _REQUEST_ID.match(given) else uuid.uuid4().hex
            payment_id = scope.get("path_params", {}).get("payment_id")
            bind_log_context(
                request_id=request_id,
                payment_id=payment_id
                if isinstance(payment_id, str) and _UUID.match(payment_id)
                else None,
            )
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "")
            status = 500
            started = time.perf_counter()

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"x-request-id", request_id.encode()),
                    ]
                await send(message)

            with server_span(
                f"{method} {route}", headers, {"http.method": method, "http.route": route}
            ) as span:
                try:
                    await app(scope, receive, send_with_id)
                finally:
                    if span is not None:
                        span.set_attribute("http.status_code", status)
                    if log_requests and _access.isEnabledFor(logging.INFO):
                        _access.info(
                            "request",
                            extra={
                                "method": method,
                                "route": route,
                                "status": status,
                                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                            },
                        )

        return handle

    return middleware
