"""Idempotency-Key handling for every POST (foundation issue, item 6).

The first outcome of a key is stored with a digest of the request. A repeat with the
same request gets the same status and body and causes nothing; a different request
under the same key is a 409; a repeat while the first is still running is a 409 with
``Retry-After``. Keys are scoped to the app and kept at least 24 hours.

A crash between the effect and storing its outcome leaves the key ``in_progress``;
once its lock is stale the next repeat runs the operation again, and operations are
written to find their own earlier effect by the same key (payments carry the key
under a unique constraint), so a retry never doubles an effect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from litestar import Request, Response, post
from litestar.di import Provide
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema

from medpay.db.pool import transaction
from medpay.errors import Conflict, DomainError, InvalidRequest
from medpay.http import Injected
from medpay.http.openapi import add_resource_links
from medpay.http.problems import BODY_PROBLEMS, PROBLEM_MEDIA_TYPE, problem_document, render
from medpay.http.responses import json_response
from medpay.security import queries
from medpay.security.persons import person_key

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "Idempotency",
    "IdempotencyKeyReused",
    "IdempotentOperation",
    "IdempotentPost",
    "Once",
    "RequestInProgress",
    "idempotent_post",
    "provide_idempotent_post",
    "request_digest",
    "validate_idempotency_key",
]

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
REPLAY_HEADER = "Idempotent-Replayed"
#: Failures that say nothing about the request: the client may retry it under the same key.
_NOT_AN_OUTCOME = frozenset({"upstream_failed", "upstream_unavailable"})


def validate_idempotency_key(key: str | None) -> str:
    """The key, or a 400 problem when it is missing or malformed."""
    if key is None:
        raise InvalidRequest(
            "idempotency_key_missing",
            "An Idempotency-Key header is required",
            "Every POST takes one.",
        )
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise InvalidRequest(
            "idempotency_key_invalid",
            "The Idempotency-Key header is not valid",
            "Use 8 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'.",
        )
    return key


def request_digest(method: str, path: str, principal: str, body: bytes) -> str:
    """What makes two requests "the same request" under one key."""
    hasher = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), principal.encode()):
        hasher.update(part)
        hasher.update(b"\n")
    hasher.update(body)
    return hasher.hexdigest()


class IdempotencyKeyReused(Conflict):
    """The key was first used for a different request."""

    def __init__(self) -> None:
        super().__init__(
            "idempotency_key_reused",
            "The Idempotency-Key was used for a different request",
            "Use a new key for a new request.",
        )


class RequestInProgress(Conflict):
    """A request with the same key is still running: ask again in a moment for its outcome."""

    def __init__(self) -> None:
        super().__init__(
            "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still being processed",
            "Retry after a moment to get its outcome.",
            retry_after_s=1,
        )


class Idempotency:
    """Runs an operation at most once per (app, key) and replays its first outcome."""

    def __init__(self, pool: asyncpg.Pool, *, retention_hours: int, lock_seconds: int) -> None:
        self._pool = pool
        self._retention_hours = retention_hours
        self._lock_seconds = lock_seconds

    async def run(
        self,
        *,
        app_id: str,
        key: str,
        digest: str,
        operation: Callable[[], Awaitable[Response[bytes]]],
    ) -> Response[bytes]:
        """Replay the stored outcome of ``key``, or run ``operation`` and store its outcome."""
        async with transaction(self._pool) as conn:
            stored = await self.claim_in(conn, app_id, key, digest)
        if stored is not None:
            return stored
        try:
            response = await operation()
        except DomainError as exc:
            if exc.kind in _NOT_AN_OUTCOME:
                await self._release(app_id, key)
                raise
            response = render(exc)
        except BaseException:
            # Not an outcome: the client may retry the same request under the same key.
            await self._release(app_id, key)
            raise
        await self.complete_in(self._pool, app_id, key, response)
        return response

    async def claim_in(
        self, conn: asyncpg.Connection, app_id: str, key: str, digest: str
    ) -> Response[bytes] | None:
        """In the caller's transaction: claim ``key`` (None) or answer with its first outcome.

        The claim holds until the transaction ends; committed, it is ``in_progress``
        until :meth:`complete_in` stores the outcome.

        Raises:
            IdempotencyKeyReused: the key was first used for another request.
            Conflict: ``idempotency_request_in_progress``, the first request still runs.
        """
        if await conn.fetchval(
            queries.CLAIM_IDEMPOTENCY_KEY, app_id, key, digest, self._retention_hours
        ):
            return None
        row = await conn.fetchrow(
            queries.LOCK_IDEMPOTENCY_KEY, app_id, key, float(self._lock_seconds)
        )
        if row is None:  # purged between the two statements: treat as new
            await conn.execute(
                queries.CLAIM_IDEMPOTENCY_KEY, app_id, key, digest, self._retention_hours
            )
            return None
        if row["expired"]:
            await conn.execute(
                queries.RECLAIM_IDEMPOTENCY_KEY, app_id, key, digest, self._retention_hours
            )
            return None
        if row["request_digest"] != digest:
            raise IdempotencyKeyReused()
        if row["state"] == "completed":
            return Response(
                content=person_key().open_bytes(bytes(row["response_body"]), f"{app_id}/{key}"),
                status_code=row["response_status"],
                media_type=row["response_type"],
                headers={REPLAY_HEADER: "true"}
                | ({"Location": row["response_location"]} if row["response_location"] else {}),
            )
        if not row["lock_is_stale"]:
            raise RequestInProgress()
        await conn.execute(
            queries.RECLAIM_IDEMPOTENCY_KEY, app_id, key, digest, self._retention_hours
        )
        return None

    async def complete_in(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        app_id: str,
        key: str,
        response: Response[bytes],
    ) -> None:
        """Store ``response`` as the outcome of ``key`` (in the caller's transaction, if any)."""
        body = response.content if isinstance(response.content, bytes) else b""
        await conn.execute(
            queries.COMPLETE_IDEMPOTENCY_KEY,
            app_id,
            key,
            response.status_code,
            person_key().seal_bytes(body, f"{app_id}/{key}"),  # an answer may name the person
            str(response.media_type or PROBLEM_MEDIA_TYPE),
            next((v for k, v in response.headers.items() if k.lower() == "location"), None),
        )

    async def _release(self, app_id: str, key: str) -> None:
        await self._pool.execute(queries.RELEASE_IDEMPOTENCY_KEY, app_id, key)


OutcomeT = TypeVar("OutcomeT")


class Once(Generic[OutcomeT]):
    """The idempotency of one POST, kept inside the operation's own transactions.

    An operation that writes before and after a slow call (a payment: record, ask the
    province, record the answer) claims the key in its first transaction and stores
    the answer in its last, instead of spending two transactions of its own on them.
    """

    def __init__(
        self,
        store: Idempotency,
        scope: str,
        key: str,
        digest: str,
        answer: Callable[[OutcomeT], Response[bytes]],
    ) -> None:
        self._store, self._scope, self.key, self.digest = store, scope, key, digest
        self._answer = answer

    async def claim(self, conn: asyncpg.Connection) -> Response[bytes] | None:
        """Claim the key in ``conn``'s transaction, or answer with its first outcome."""
        return await self._store.claim_in(conn, self._scope, self.key, self.digest)

    async def complete(self, conn: asyncpg.Connection, outcome: OutcomeT) -> Response[bytes]:
        """Store what ``outcome`` is answered with, in ``conn``'s transaction; return it."""
        response = self._answer(outcome)
        await self._store.complete_in(conn, self._scope, self.key, response)
        return response

    async def refuse(self, conn: asyncpg.Connection, refusal: DomainError) -> Response[bytes]:
        """Store a refusal (its problem document) as the outcome, in ``conn``'s transaction."""
        response = render(refusal)
        await self._store.complete_in(conn, self._scope, self.key, response)
        return response


class IdempotentPost:
    """One POST under its Idempotency-Key: the key checked, the request digested, run once.

    Handlers receive it by injection (``idempotent``) and call it with whose keys these
    are and the operation; a repeat of the same request gets the first outcome.
    """

    def __init__(self, request: Request[Any, Any, Any], store: Idempotency) -> None:
        self._request = request
        self._store = store

    async def __call__(
        self,
        *,
        scope: str,
        principal: str | None = None,
        run: Callable[[str, str], Awaitable[Response[bytes]]],
    ) -> Response[Any]:
        """Run ``run(key, digest)`` at most once per (``scope``, key); replay its outcome.

        ``scope`` is whose keys these are (an app id, ``agency:<id>``, ...); ``principal``
        (default: the scope) goes into the digest, so the same key for another principal
        is a different request (the patient, for an app).
        """
        key = validate_idempotency_key(self._key_header())
        request = self._request
        digest = request_digest(
            request.method, request.url.path, principal or scope, await request.body()
        )
        return await self._store.run(
            app_id=scope, key=key, digest=digest, operation=lambda: run(key, digest)
        )

    async def answer(
        self,
        *,
        scope: str,
        status: int,
        run: Callable[[str, str], Awaitable[Any]],
        location: Callable[[Any], str] | None = None,
        principal: str | None = None,
    ) -> Response[Any]:
        """Like calling it, for an operation that returns a view: answered as JSON, ``status``."""

        async def respond(key: str, digest: str) -> Response[bytes]:
            view = await run(key, digest)
            return json_response(view, status, location(view) if location else None)

        return await self(scope=scope, principal=principal, run=respond)

    async def within(
        self,
        *,
        scope: str,
        answer: Callable[[OutcomeT], Response[bytes]],
        principal: str | None = None,
    ) -> Once[OutcomeT]:
        """The key checked and the request digested, for an operation that keeps it itself.

        The operation claims and completes the key in its own transactions (:class:`Once`).
        """
        key = validate_idempotency_key(self._key_header())
        request = self._request
        digest = request_digest(
            request.method, request.url.path, principal or scope, await request.body()
        )
        return Once(self._store, scope, key, digest, answer)

    def _key_header(self) -> str | None:
        values = self._request.headers.getall("idempotency-key", [])
        if len(values) > 1:
            raise InvalidRequest(
                "idempotency_key_repeated",
                "The Idempotency-Key header is repeated",
                "Send one Idempotency-Key.",
            )
        return values[0] if values else None


@dataclasses.dataclass
class IdempotentOperation(Operation):
    """The OpenAPI operation of an idempotent POST: it documents the required key as enforced."""

    def __post_init__(self) -> None:
        key = Parameter(
            name="Idempotency-Key",
            param_in=ParamType.HEADER,
            required=True,
            description=(
                "Required on every POST: 8 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' "
                "or '-'; a repeat of the same request returns the first outcome."
            ),
            schema=Schema(
                type=OpenAPIType.STRING,
                min_length=8,
                max_length=128,
                pattern=IDEMPOTENCY_KEY_PATTERN.pattern,
            ),
        )
        others = [p for p in self.parameters or [] if getattr(p, "name", None) != key.name]
        self.parameters = [*others, key]
        if self.request_body is not None:  # what any body may be answered
            self.responses = self.responses or {}
            for status in BODY_PROBLEMS:
                self.responses.setdefault(str(status), problem_document(status))
        add_resource_links(self)


def idempotent_post(path: str, **kwargs: Any) -> Any:
    """``@post`` for an idempotent operation: the key documented, ``idempotent`` injected."""
    dependencies = {
        "idempotent": Provide(provide_idempotent_post, sync_to_thread=False),
        **kwargs.pop("dependencies", {}),
    }
    return post(path, operation_class=IdempotentOperation, dependencies=dependencies, **kwargs)


def provide_idempotent_post(
    request: Request[Any, Any, Any], idempotency: Injected[Idempotency]
) -> IdempotentPost:
    """The ``idempotent`` dependency of every POST handler."""
    return IdempotentPost(request, idempotency)
