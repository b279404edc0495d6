"""Errors as ``application/problem+json`` (RFC 9457) with our stable ``code``.

Every error leaves the gateway through here. Services raise
:class:`medpay.errors.DomainError`; this module is the one place that says which
HTTP status each kind of domain error is, and maps Litestar's own HTTP errors and
anything unexpected to the same shape, so a client never sees HTML, a stack trace
or a bare 500.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Reference

from medpay.errors import DomainError, ErrorKind, Unauthenticated
from medpay.privacy import masked_text

if TYPE_CHECKING:
    from litestar import Request

__all__ = [
    "BODY_PROBLEMS",
    "PROBLEM_MEDIA_TYPE",
    "STATUS_OF_KIND",
    "Problem",
    "exception_handlers",
    "problem_document",
    "problem_headers",
    "problem_of",
    "problem_response",
    "problem_responses",
    "render",
    "status_of",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:medpay:problem:"
_log = logging.getLogger("medpay.problems")
#: The detail of the InternalServerException Litestar raises when a body stops arriving.
_CLIENT_DISCONNECTED = "client disconnected prematurely"

#: The one mapping from a kind of domain error to its HTTP status.
STATUS_OF_KIND: dict[ErrorKind, int] = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "refused": 422,
    "rate_limited": 429,
    "upstream_failed": 502,
    "upstream_unavailable": 503,
}
_CHALLENGE = {
    "signature": 'MedpaySignature realm="medpay"',
    "identity": 'Bearer realm="medpay"',
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document, plus ``code``, the stable machine-readable name."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    #: The payment this problem is about, when one was recorded.
    payment_id: str | None = None
    #: The refund this problem is about, when one was recorded.
    refund_id: str | None = None


def status_of(exc: DomainError) -> int:
    """The HTTP status a domain error is answered with."""
    return STATUS_OF_KIND[exc.kind]


def problem_of(
    exc: DomainError,
    instance: str | None = None,
    *,
    payment_id: str | None = None,
    refund_id: str | None = None,
) -> Problem:
    """The document a domain error is answered with (person and phone numbers masked)."""
    return Problem(
        type=PROBLEM_TYPE_BASE + exc.code,
        title=exc.title,
        status=status_of(exc),
        code=exc.code,
        detail=_masked(exc.detail),
        instance=_masked(instance),
        payment_id=payment_id,
        refund_id=refund_id,
    )


def _masked(text: str | None) -> str | None:
    """A detail as it may be answered: a person's numbers may come from a province's text."""
    return masked_text(text) if text else text


def problem_headers(exc: DomainError) -> dict[str, str]:
    """The headers a domain error brings: the scheme to authenticate with, when to retry."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = _CHALLENGE[exc.credential]
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return headers


_problem_encoder = msgspec.json.Encoder()


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    """Encode ``problem`` as the body of a problem+json response."""
    return Response(
        content=_problem_encoder.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers or None,
    )


def render(
    exc: DomainError,
    instance: str | None = None,
    *,
    payment_id: str | None = None,
    refund_id: str | None = None,
) -> Response[bytes]:
    """A domain error as its problem+json response, headers included."""
    problem = problem_of(exc, instance, payment_id=payment_id, refund_id=refund_id)
    return problem_response(problem, problem_headers(exc))


def _on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    return render(exc, request.url.path)


# Litestar's own errors, by status, with the code a client can rely on.
_HTTP_CODES = {
    400: ("request_invalid", "The request is not valid"),
    401: ("unauthenticated", "Authentication is required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "No such resource"),
    405: ("method_not_allowed", "Method not allowed"),
    408: ("request_timeout", "The request did not arrive in time"),
    413: ("request_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("too_many_requests", "Too many requests"),
}


def _answer(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    title: str,
    detail: str | None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """A problem about ``request`` that no domain error carried."""
    if errors:
        errors = [
            {**e, "message": _masked(e["message"])} if isinstance(e.get("message"), str) else e
            for e in errors
        ]
    problem = Problem(
        type=PROBLEM_TYPE_BASE + code,
        title=title,
        status=status,
        code=code,
        detail=_masked(detail),
        instance=_masked(request.url.path),
        errors=errors,
    )
    return problem_response(problem, headers)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    code, title = _HTTP_CODES.get(status, ("http_error", "HTTP error"))
    if status >= 500 and exc.detail == _CLIENT_DISCONNECTED:
        # Litestar's word when the client went away mid-body: no one hears the answer.
        _log.info(
            "client disconnected before its request arrived: %s %s",
            request.method,
            request.url.path,
        )
        return _answer(request, 400, "client_disconnected", "The client disconnected", None)
    if status >= 500:
        return _on_unexpected(request, exc)
    errors = None
    detail = exc.detail if exc.detail and exc.detail != title else None
    if isinstance(exc, ValidationException):
        code, title = "request_invalid", "The request does not match the schema"
        extra = exc.extra if isinstance(exc.extra, list) else None
        errors = [dict(e) for e in extra if isinstance(e, dict)] if extra else None
        detail = "; ".join(str(e.get("message")) for e in errors or []) or detail
    headers = dict(exc.headers) if exc.headers else None
    return _answer(request, status, code, title, detail, errors=errors, headers=headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    detail = "The request could not be completed; nothing was changed that cannot be retried."
    return _answer(request, 500, "internal_error", "Internal error", detail)


def _on_unrepresentable_text(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Refuse text PostgreSQL cannot store (a NUL character, say) as the client's error.

    The query's transaction has rolled back, so nothing was half-written.
    """
    detail = "The request contains characters that cannot be stored (such as NUL)."
    return _answer(request, 400, "request_invalid", "The request is not valid", detail)


exception_handlers: dict[type[Exception] | int, Any] = {
    DomainError: _on_domain_error,
    asyncpg.exceptions.CharacterNotInRepertoireError: _on_unrepresentable_text,
    asyncpg.exceptions.UntranslatableCharacterError: _on_unrepresentable_text,
    HTTPException: _on_http_exception,
    Exception: _on_unexpected,
}


_STATUS_TEXT = {
    400: "Malformed request, schema violation or missing Idempotency-Key",
    401: "The app's signature or the patient's token was refused (see code)",
    403: "Authenticated but not allowed (see code)",
    404: "No such resource, or not yours",
    409: "Idempotency-Key conflict, or a state that does not allow this",
    408: "The request body did not arrive in time; the connection is closed",
    413: "Request body too large",
    415: "The body is not JSON",
    422: "Understood but refused by a domain rule (see code)",
    429: (
        "Too many requests from this source, caller or person (or too many refused credentials "
        "from this source): Retry-After and RateLimit-Reset say when to return"
    ),
    502: "The province refused or answered badly",
    503: "The province could not be reached",
}


#: What any request with a body may be answered, whatever its route.
BODY_PROBLEMS = (400, 408, 413, 415)


def problem_document(status: int) -> OpenAPIResponse:
    """An OpenAPI response entry: ``status`` answers with a problem document."""
    return OpenAPIResponse(
        description=_STATUS_TEXT.get(status, "Problem"),
        content={
            PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Problem")
            )
        },
    )


def problem_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI response entries saying these statuses answer with a problem document.

    A route that authenticates its caller (401) is rate-limited too (429).
    """
    from litestar.openapi.datastructures import ResponseSpec

    if 401 in statuses and 429 not in statuses:
        statuses = (*statuses, 429)

    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_STATUS_TEXT.get(status, "Problem"),
            generate_examples=False,
        )
        for status in statuses
    }
