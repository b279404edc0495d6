"""Litestar guards: a request is signed, fresh and unreplayed, by a registered caller.

Guards run before the body is decoded into a schema, so an unsigned request is
refused with 401 before anything about its content is said.

Security knows keys and signatures, not which registry holds them: the wiring hands
it a :class:`Gatekeeper` with one lookup per kind of caller (patient apps,
agencies, operators, institutions). The verified caller and the patient are then
provided to handlers by :func:`provide_caller` and :func:`provide_patient`.

Imports: foundations and ``medpay.security`` only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from medpay.errors import Unauthenticated
from medpay.security import queries
from medpay.security.identity import PatientIdentity, require_face
from medpay.security.signatures import (
    NONCE_PATTERN,
    PublicKey,
    canonical_request,
    unauthorized,
    verify_signature,
)

if TYPE_CHECKING:
    import asyncpg
    from litestar import Request
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from medpay.security.identity import IdentityVerifier

__all__ = [
    "GATEKEEPER_STATE_KEY",
    "ID_HEADERS",
    "CallerKind",
    "Gatekeeper",
    "Guard",
    "Signer",
    "SignerLookup",
    "patient_identity_guard",
    "patient_payment_guard",
    "provide_caller",
    "provide_patient",
    "signed_by",
    "single_header",
    "verify_signed_request",
]

CallerKind = Literal["app", "agency", "operator", "institution"]
#: The header that names each kind of caller; all sign the same three other headers.
ID_HEADERS: dict[CallerKind, str] = {
    "app": "x-app-id",
    "agency": "x-agency-id",
    "operator": "x-operator-id",
    "institution": "x-institution-id",
}
#: Where the wiring puts the :class:`Gatekeeper` on the application's state.
GATEKEEPER_STATE_KEY = "gatekeeper"

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

Guard = Callable[["ASGIConnection[Any, Any, Any, Any]", "BaseRouteHandler"], Awaitable[None]]


class Signer(Protocol):
    """What the signature check needs of a caller, whatever its registry."""

    @property
    def status(self) -> str:
        """``active``, or anything else for a caller refused at the door."""
        ...

    @property
    def keys(self) -> tuple[PublicKey, ...]:
        """The caller's active public keys (several while a key is rotated)."""
        ...


SignerLookup = Callable[["asyncpg.Pool", str], Awaitable[Signer | None]]


class Gatekeeper:
    """Everything the guards need, handed over by the wiring.

    A caller found in its registry is remembered for ``signer_cache_seconds``: every
    request of an app needs its keys, which change rarely; a suspension or a revoked
    key takes effect within that time (0: ask the registry every time). A caller not
    found is never remembered, so a new one is known at once.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        lookups: Mapping[CallerKind, SignerLookup],
        identity: IdentityVerifier,
        signature_window_seconds: int,
        signer_cache_seconds: float = 0.0,
        signer_cache_size: int = 10_000,
    ) -> None:
        self.pool = pool
        self.lookups = dict(lookups)
        self.identity = identity
        self.signature_window_seconds = signature_window_seconds
        self._cache_seconds = signer_cache_seconds
        self._cache_size = signer_cache_size
        self._signers: dict[tuple[CallerKind, str], tuple[Signer, float]] = {}

    async def signer(self, kind: CallerKind, caller_id: str) -> Signer | None:
        """The registered caller ``caller_id`` of ``kind``, or None."""
        now = time.monotonic()
        remembered = self._signers.get((kind, caller_id))
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        found = await self.lookups[kind](self.pool, caller_id)
        if found is not None and self._cache_seconds > 0:
            if len(self._signers) >= self._cache_size:
                self._signers.clear()  # rare: a fresh start beats bookkeeping
            self._signers[(kind, caller_id)] = (found, now + self._cache_seconds)
        return found


def _gatekeeper(connection: ASGIConnection[Any, Any, Any, Any]) -> Gatekeeper:
    return cast("Gatekeeper", connection.app.state[GATEKEEPER_STATE_KEY])


def single_header(connection: ASGIConnection[Any, Any, Any, Any], name: str) -> str | None:
    """The one value of header ``name``; a repeated security header is refused.

    With two ``X-App-Id`` (or two signatures, or two tokens), which one a server takes
    depends on header order: refuse rather than guess.
    """
    values = connection.headers.getall(name, [])
    if len(values) > 1:
        raise Unauthenticated(
            "security_header_repeated",
            "A security header is repeated",
            f"Send {name} once.",
            credential="identity" if name == "authorization" else "signature",
        )
    return values[0] if values else None


async def verify_signed_request(
    request: Request[Any, Any, Any], *, kind: CallerKind, gatekeeper: Gatekeeper
) -> Signer:
    """Check the caller's id header, X-Timestamp, X-Nonce and X-Signature against its registry.

    The order is fixed: the caller, the clock, the signature, and only then the nonce,
    so a forger cannot spend a genuine caller's nonces. Each failure has its own code.
    """
    id_header = ID_HEADERS[kind]
    caller_id = single_header(request, id_header)
    timestamp = single_header(request, "x-timestamp")
    nonce = single_header(request, "x-nonce")
    signature = single_header(request, "x-signature")
    if not (caller_id and timestamp and nonce and signature):
        raise unauthorized(
            "signature_missing",
            "The request is not signed",
            f"Send {id_header}, X-Timestamp, X-Nonce and X-Signature.",
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise unauthorized("timestamp_invalid", "X-Timestamp must be unix seconds")
    window = gatekeeper.signature_window_seconds
    skew = abs(int(time.time()) - int(timestamp))
    if skew > window:
        raise unauthorized(
            "timestamp_out_of_window",
            "X-Timestamp is too far from the server's clock",
            f"Allowed: {window} s either way; this one is {skew} s away.",
        )
    if not NONCE_PATTERN.match(nonce):
        raise unauthorized(
            "nonce_invalid", "X-Nonce must be 16 to 64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    well_formed = len(caller_id) <= 64 and set(caller_id) <= _ID_CHARS
    caller = await gatekeeper.signer(kind, caller_id) if well_formed else None
    if caller is None:
        raise unauthorized(f"{kind}_unknown", f"No such {kind} is registered")
    if caller.status != "active":
        raise unauthorized(f"{kind}_suspended", f"The {kind} is suspended")
    body = await request.body()
    message = canonical_request(request.method, _path_with_query(request), timestamp, nonce, body)
    if not any(verify_signature(key, signature, message) for key in caller.keys):
        raise unauthorized("signature_invalid", "The request signature does not verify")
    # Apps keep their bare id as the nonce scope; other kinds are prefixed (ids have no ':').
    scope = caller_id if kind == "app" else f"{kind}:{caller_id}"
    if await gatekeeper.pool.fetchval(queries.SPEND_NONCE, scope, nonce) is None:
        raise unauthorized(
            "nonce_replayed", "This nonce was already used", "Each request needs a new X-Nonce."
        )
    return caller


def _path_with_query(request: Request[Any, Any, Any]) -> str:
    """The request target exactly as the client sent it (the string it signed)."""
    scope = request.scope
    raw = scope.get("raw_path")
    # ASGI's raw_path has no query string, but some servers and test transports add it.
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def signed_by(*kinds: CallerKind) -> Guard:
    """A guard: the request is signed by a registered, active caller of one of ``kinds``.

    With several kinds, the id header present says which registry to ask; both
    present is ambiguous and refused.
    """
    assert kinds, "a guard needs at least one kind of caller"

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        present = [kind for kind in kinds if ID_HEADERS[kind] in connection.headers]
        if len(present) > 1:
            raise unauthorized(
                "caller_ambiguous",
                "The request names more than one kind of caller",
                f"Send one of {', '.join(ID_HEADERS[k] for k in present)}.",
            )
        kind = present[0] if present else kinds[0]
        request = cast("Request[Any, Any, Any]", connection)
        request.state.caller = await verify_signed_request(
            request, kind=kind, gatekeeper=_gatekeeper(connection)
        )
        request.state.caller_kind = kind
        request.state.caller_id = single_header(request, ID_HEADERS[kind])  # for the rate limits

    guard.__name__ = f"signed_by_{'_or_'.join(kinds)}"
    return guard


async def patient_identity_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Check the patient's identity token."""
    authorization = single_header(connection, "authorization")
    connection.state.patient = _gatekeeper(connection).identity.verify(authorization)


async def patient_payment_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Paying needs a face-verified identity."""
    require_face(connection.state.patient)


def provide_caller(request: Request[Any, Any, Any]) -> Any:
    """The caller a ``signed_by`` guard verified (the registry's own record of it)."""
    return request.state.caller


def provide_patient(request: Request[Any, Any, Any]) -> PatientIdentity:
    """The person of this request (set by ``patient_identity_guard``)."""
    return cast("PatientIdentity", request.state.patient)
