"""Litestar guards: a patient-app request is signed, fresh, unreplayed and from a known person.

Guards run before the body is decoded into a schema, so an unsigned request is
refused with 401 before anything about its content is said.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from medpay.channels.service import find_app
from medpay.parties.service import SigningParty, find_agency, find_operator
from medpay.prescriptions.institution_keys import find_institution_signer
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
    from medpay.prescriptions.institution_keys import InstitutionSigner

__all__ = [
    "agency_guard",
    "current_agency",
    "current_app",
    "current_institution",
    "current_operator",
    "current_patient",
    "institution_guard",
    "operator_guard",
    "patient_identity_guard",
    "patient_payment_guard",
    "signed_app_guard",
    "verify_signed_request",
]

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def path_with_query(request: Request[Any, Any, Any]) -> str:
    """The request target exactly as the client sent it (the string it signed)."""
    scope = request.scope
    raw = scope.get("raw_path")
    # ASGI's raw_path has no query string, but some servers and test transports add it.
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class _Signer(Protocol):
    """What the signature check needs of a caller, whatever its registry."""

    @property
    def status(self) -> str: ...

    @property
    def keys(self) -> tuple[Any, ...]: ...


async def verify_signed_request(
    request: Request[Any, Any, Any],
    *,
    id_header: str,
    kind: str,
    lookup: Callable[[Any, str], Awaitable[_Signer | None]],
) -> _Signer:
    """Check ``id_header``, X-Timestamp, X-Nonce and X-Signature against ``kind``'s registry.

    The order is fixed: the caller, the clock, the signature, and only then the nonce,
    so a forger cannot spend a genuine caller's nonces. Each failure has its own code.
    """
    settings: Settings = request.app.state.settings
    headers = request.headers
    caller_id = headers.get(id_header)
    timestamp = headers.get("x-timestamp")
    nonce = headers.get("x-nonce")
    signature = headers.get("x-signature")
    if not (caller_id and timestamp and nonce and signature):
        raise unauthorized(
            "signature_missing",
            "The request is not signed",
            f"Send {id_header}, X-Timestamp, X-Nonce and X-Signature.",
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
    well_formed = len(caller_id) <= 64 and set(caller_id) <= _ID_CHARS
    caller = await lookup(pool, caller_id) if well_formed else None
    if caller is None:
        raise unauthorized(f"{kind}_unknown", f"No such {kind} is registered")
    if caller.status != "active":
        raise unauthorized(f"{kind}_suspended", f"The {kind} is suspended")
    body = await request.body()
    message = canonical_request(request.method, path_with_query(request), timestamp, nonce, body)
    if not any(verify_signature(key, signature, message) for key in caller.keys):
        raise unauthorized("signature_invalid", "The request signature does not verify")
    # Apps keep their bare id as the nonce scope; other kinds are prefixed (ids have no ':').
    scope = caller_id if kind == "app" else f"{kind}:{caller_id}"
    if await pool.fetchval(queries.SPEND_NONCE, scope, nonce) is None:
        raise unauthorized(
            "nonce_replayed", "This nonce was already used", "Each request needs a new X-Nonce."
        )
    return caller


async def signed_app_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A request from a registered, active patient app (X-App-Id)."""
    request = cast("Request[Any, Any, Any]", connection)
    request.state.patient_app = await verify_signed_request(
        request, id_header="x-app-id", kind="app", lookup=find_app
    )


async def agency_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A request from a registered, active insurance agency (X-Agency-Id)."""
    request = cast("Request[Any, Any, Any]", connection)
    request.state.agency = await verify_signed_request(
        request, id_header="x-agency-id", kind="agency", lookup=find_agency
    )


async def operator_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A request from a registered, active medpay operator (X-Operator-Id)."""
    request = cast("Request[Any, Any, Any]", connection)
    request.state.operator = await verify_signed_request(
        request, id_header="x-operator-id", kind="operator", lookup=find_operator
    )


async def institution_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A request from a registered designated institution with its own key (X-Institution-Id)."""
    request = cast("Request[Any, Any, Any]", connection)
    request.state.institution = await verify_signed_request(
        request, id_header="x-institution-id", kind="institution", lookup=find_institution_signer
    )


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


def current_agency(request: Request[Any, Any, Any]) -> SigningParty:
    """The agency that signed this request (set by ``agency_guard``)."""
    return cast("SigningParty", request.state.agency)


def current_operator(request: Request[Any, Any, Any]) -> SigningParty:
    """The operator that signed this request (set by ``operator_guard``)."""
    return cast("SigningParty", request.state.operator)


def current_institution(request: Request[Any, Any, Any]) -> InstitutionSigner:
    """The institution that signed this request (set by ``institution_guard``)."""
    return cast("InstitutionSigner", request.state.institution)
