"""Litestar guards: a patient-app request is signed, fresh, unreplayed and from a known person.

Guards run before the body is decoded into a schema, so an unsigned request is
refused with 401 before anything about its content is said.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from medpay.channels.service import find_app
from medpay.security import queries
from medpay.security.identity import IdentityVerifier, PatientIdentity, require_face
from medpay.security.signatures import (
    NONCE_PATTERN,
    canonical_request,
    unauthorized,
    verify_signature,
)

if TYPE_CHECKING:
    from litestar import Request
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from medpay.channels.service import PatientApp
    from medpay.config import Settings

__all__ = [
    "current_app",
    "current_patient",
    "patient_identity_guard",
    "patient_payment_guard",
    "signed_app_guard",
]

_APP_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def path_with_query(request: Request[Any, Any, Any]) -> str:
    """The request target exactly as the client sent it (the string it signed)."""
    scope = request.scope
    raw = scope.get("raw_path")
    # ASGI's raw_path has no query string, but some servers and test transports add it.
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def signed_app_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Check X-App-Id, X-Timestamp, X-Nonce and X-Signature; each failure has its own code."""
    request = cast("Request[Any, Any, Any]", connection)
    settings: Settings = request.app.state.settings
    headers = request.headers
    app_id = headers.get("x-app-id")
    timestamp = headers.get("x-timestamp")
    nonce = headers.get("x-nonce")
    signature = headers.get("x-signature")
    if not (app_id and timestamp and nonce and signature):
        raise unauthorized(
            "signature_missing",
            "The request is not signed",
            "Send X-App-Id, X-Timestamp, X-Nonce and X-Signature.",
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise unauthorized("timestamp_invalid", "X-Timestamp must be unix seconds")
    skew = abs(int(time.time()) - int(timestamp))
    if skew > settings.signature_window_seconds:
        raise unauthorized(
            "timestamp_out_of_window",
            "X-Timestamp is too far from the server's clock",
            f"Allowed: {settings.signature_window_seconds} s either way; this one is {skew} s away.",
        )
    if not NONCE_PATTERN.match(nonce):
        raise unauthorized(
            "nonce_invalid", "X-Nonce must be 16 to 64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    pool = request.app.state.pool
    app = (
        await find_app(pool, app_id) if len(app_id) <= 64 and set(app_id) <= _APP_ID_CHARS else None
    )
    if app is None:
        raise unauthorized("app_unknown", "No such patient app is registered")
    if app.status != "active":
        raise unauthorized("app_suspended", "The patient app is suspended")
    body = await request.body()
    message = canonical_request(request.method, path_with_query(request), timestamp, nonce, body)
    if not any(verify_signature(key, signature, message) for key in app.keys):
        raise unauthorized("signature_invalid", "The request signature does not verify")
    if await pool.fetchval(queries.SPEND_NONCE, app.app_id, nonce) is None:
        raise unauthorized(
            "nonce_replayed", "This nonce was already used", "Each request needs a new X-Nonce."
        )
    request.state.patient_app = app


async def patient_identity_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Check the patient's identity token."""
    verifier: IdentityVerifier = connection.app.state.identity_verifier
    connection.state.patient = verifier.verify(connection.headers.get("authorization"))


async def patient_payment_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Paying needs a face-verified identity."""
    require_face(connection.state.patient)


def current_app(request: Request[Any, Any, Any]) -> PatientApp:
    """The app that signed this request (set by ``signed_app_guard``)."""
    return cast("PatientApp", request.state.patient_app)


def current_patient(request: Request[Any, Any, Any]) -> PatientIdentity:
    """The person of this request (set by ``patient_identity_guard``)."""
    return cast("PatientIdentity", request.state.patient)
