"""Rate limits shared by every gateway process: per source, per caller, per person (issue 12).

What is counted, per fixed window of ``window_seconds`` (default a minute):

- every request to a limited route, against its **source** address (IPv6: the /64);
- once its signature verified, against its **caller** (the app, agency, operator or
  institution that signed), and once its identity token verified, against the
  **person**;
- an **estimate** (it calls a province) besides against the caller's and the person's
  estimate buckets, whose limits are lower;
- a request refused for a bad signature or identity token (401) costs ``failure_cost``
  against the source, and against the app when only the token failed: a source that
  sends garbage is locked out, for every route, until its window ends.

The counters are rows of an UNLOGGED table (migration 0050), added to by one upsert per
request (:data:`~medpay.security.queries.COUNT_RATE_LIMIT_HITS`), so the limits hold
across workers and machines on one database, and no two processes can both read "one
left" (Litestar's ``RateLimitMiddleware`` reads, then writes, a Store under a lock of its
own process: two round trips, and lost updates between processes). A refusal is also
remembered in the process until its window ends, so a burst past the limit costs the
database nothing more.

Counting happens after the guards (:func:`count_request`, a ``before_request`` hook),
because only then is it known who the caller and the person are; counting an unverified
``X-App-Id`` would let anyone spend a genuine app's allowance. The source-wide lockout and
the failure cost are applied by :class:`RateLimitMiddleware`, which sees every answer.

Answers carry ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (the
tightest bucket; the fields of the IETF httpapi draft as most clients read them) and
``RateLimit-Policy`` (``limit;w=window``); a refusal is a 429 problem with ``Retry-After``.

Imports: foundations and ``medpay.security`` only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import time
from typing import TYPE_CHECKING, Any, cast

import msgspec

from medpay.errors import RateLimited
from medpay.http.problems import PROBLEM_MEDIA_TYPE, problem_headers, problem_of
from medpay.observability import observe_rate_limited
from medpay.security import queries
from medpay.security.identity import PatientIdentity
from medpay.security.persons import person_ref

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import asyncpg
    from litestar import Request
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LIMITER_STATE_KEY",
    "Bucket",
    "LimitPolicy",
    "RateLimitMiddleware",
    "RateLimiter",
    "RouteClasses",
    "Verdict",
    "count_request",
    "refusal",
    "source_of",
]

#: Where the wiring puts the :class:`RateLimiter` on the application's state.
LIMITER_STATE_KEY = "rate_limiter"
#: Where a request's verdict waits for its answer's headers (``scope["state"]``).
_VERDICT = "rate_limit_verdict"
_log = logging.getLogger("medpay.limits")
#: Refusals remembered in the process at most (the oldest are forgotten first).
_BLOCKED_MAX = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The limits, per window; 0 is no limit (see :class:`medpay.config.Settings`)."""

    window_seconds: int = 60
    per_source: int = 1200
    per_caller: int = 12000
    per_person: int = 120
    estimates_per_caller: int = 1200
    estimates_per_person: int = 20
    failure_cost: int = 20
    trusted_proxies: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RouteClasses:
    """Which operations (by ``operation_id``) are treated how; the wiring names them.

    ``exempt``: never counted nor refused (health probes). ``uncounted``: only refused
    credentials count (provincial callbacks, whose volume follows our own traffic).
    ``costly``: counted in the estimate buckets too (they call a province).
    """

    exempt: frozenset[str] = frozenset()
    uncounted: frozenset[str] = frozenset()
    costly: frozenset[str] = frozenset()


class Bucket(msgspec.Struct, frozen=True):
    """One counter a request falls in: its key, its limit, what this request costs."""

    key: str
    limit: int
    cost: int = 1


class Verdict(msgspec.Struct, frozen=True):
    """The tightest bucket after counting: allowed or not, and the header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    window_s: int
    #: The kind of the tightest bucket (``source``, ``caller``, ``person``,
    #: ``estimate-caller``, ``estimate-person``): the label of the refusals' counter.
    bucket: str = ""

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit fields as ASGI headers."""
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
            (b"ratelimit-policy", f"{self.limit};w={self.window_s}".encode()),
        ]


def source_of(scope: Scope, trusted_proxies: Sequence[ipaddress._BaseNetwork]) -> str:
    """The address a request is counted against: the peer, or the client a trusted proxy names.

    IPv6 sources are counted by /64, the block one subscriber gets; an unknown peer (a
    test transport, a Unix socket) is ``unknown``.
    """
    client = scope.get("client")
    address = _address(client[0]) if client else None
    if address is not None and any(address in net for net in trusted_proxies):
        for header, value in scope.get("headers", ()):
            if header == b"x-forwarded-for":
                for hop in reversed(value.decode("latin-1").split(",")):
                    named = _address(hop.strip())
                    if named is None:
                        break
                    address = named
                    if not any(named in net for net in trusted_proxies):
                        break
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class RateLimiter:
    """Counts requests in PostgreSQL, one statement per request, and remembers refusals."""

    def __init__(self, pool: asyncpg.Pool, policy: LimitPolicy, routes: RouteClasses) -> None:
        assert policy.window_seconds > 0, "a rate-limit window lasts at least a second"
        self.pool = pool
        self.policy = policy
        self.routes = routes
        self._proxies = tuple(ipaddress.ip_network(p, strict=False) for p in policy.trusted_proxies)
        #: bucket key -> monotonic time its refusal ends, in this process.
        self._blocked: dict[str, float] = {}

    def source(self, scope: Scope) -> str:
        """The source bucket's key of a request."""
        return f"source:{source_of(scope, self._proxies)}"

    def buckets(
        self,
        source: str,
        *,
        caller: str | None = None,
        person: str | None = None,
        costly: bool = False,
        cost: int = 1,
    ) -> list[Bucket]:
        """The buckets of one request (those with a limit), sorted by key."""
        policy = self.policy
        wanted = [(source, policy.per_source)]
        if caller is not None:
            wanted.append((f"caller:{caller}", policy.per_caller))
            if costly:
                wanted.append((f"estimate-caller:{caller}", policy.estimates_per_caller))
        if person is not None:
            wanted.append((f"person:{person}", policy.per_person))
            if costly:
                wanted.append((f"estimate-person:{person}", policy.estimates_per_person))
        return [Bucket(key, limit, cost) for key, limit in sorted(wanted) if limit > 0]

    def blocked(self, keys: Iterable[str]) -> Verdict | None:
        """A refusal this process already knows of for one of ``keys``, without asking."""
        now = time.monotonic()
        for key in keys:
            until = self._blocked.get(key)
            if until is None:
                continue
            if until <= now:
                del self._blocked[key]
                continue
            return Verdict(
                allowed=False,
                limit=self._limit_of(key),
                remaining=0,
                reset_s=max(1, math.ceil(until - now)),
                window_s=self.policy.window_seconds,
                bucket=key.split(":", 1)[0],
            )
        return None

    async def count(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """Add each bucket's cost (one round trip); the tightest bucket's verdict."""
        if not buckets:
            return None
        rows = await self.pool.fetch(
            queries.COUNT_RATE_LIMIT_HITS,
            [b.key for b in buckets],
            [b.cost for b in buckets],
            self.policy.window_seconds,
        )
        limits = {b.key: b.limit for b in buckets}
        tightest: Verdict | None = None
        now = time.monotonic()
        for row in rows:
            limit = limits[row["bucket"]]
            reset_s = max(1, math.ceil(row["reset_s"]))
            verdict = Verdict(
                allowed=row["hits"] <= limit,
                limit=limit,
                remaining=max(0, limit - row["hits"]),
                reset_s=reset_s,
                window_s=self.policy.window_seconds,
                bucket=row["bucket"].split(":", 1)[0],
            )
            if not verdict.allowed:
                self._remember(row["bucket"], now + row["reset_s"])
            if tightest is None or _tighter(verdict, tightest):
                tightest = verdict
        return tightest

    def _remember(self, key: str, until: float) -> None:
        if len(self._blocked) >= _BLOCKED_MAX:
            now = time.monotonic()
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            while len(self._blocked) >= _BLOCKED_MAX:
                del self._blocked[next(iter(self._blocked))]
        self._blocked[key] = until

    def _limit_of(self, key: str) -> int:
        policy = self.policy
        kind = key.split(":", 1)[0]
        return {
            "source": policy.per_source,
            "caller": policy.per_caller,
            "person": policy.per_person,
            "estimate-caller": policy.estimates_per_caller,
            "estimate-person": policy.estimates_per_person,
        }[kind]


def _tighter(a: Verdict, b: Verdict) -> bool:
    """A refusal before an allowance, then fewer requests left."""
    return (not a.allowed, -a.remaining) > (not b.allowed, -b.remaining)


def refusal(verdict: Verdict) -> RateLimited:
    """The 429 problem of a refused request (counted in ``medpay_rate_limited_total``)."""
    observe_rate_limited(verdict.bucket.replace("-", "_") or "unknown")
    return RateLimited(
        "rate_limited",
        "Too many requests",
        f"At most {verdict.limit} requests per {verdict.window_s} s; "
        f"try again in {verdict.reset_s} s.",
        retry_after_s=verdict.reset_s,
    )


def _limiter(scope: Scope) -> RateLimiter | None:
    app = scope.get("litestar_app")
    return None if app is None else app.state.get(LIMITER_STATE_KEY)


def _operation(scope: Scope) -> str | None:
    handler = scope.get("route_handler")
    operation = getattr(handler, "operation_id", None)
    return operation if isinstance(operation, str) else None


async def count_request(request: Request[Any, Any, Any]) -> None:
    """A ``before_request`` hook: count a request whose guards passed; refuse it past a limit.

    Runs after the guards, so the caller and the person are the verified ones.
    """
    scope = request.scope
    limiter = _limiter(scope)
    operation = _operation(scope)
    if (
        limiter is None
        or operation in limiter.routes.exempt
        or operation in limiter.routes.uncounted
    ):
        return
    state = request.state
    kind, caller_id = state.get("caller_kind"), state.get("caller_id")
    patient = state.get("patient")
    buckets = limiter.buckets(
        limiter.source(scope),
        caller=f"{kind}:{caller_id}" if kind and caller_id else None,
        person=person_ref(patient.psn_no) if isinstance(patient, PatientIdentity) else None,
        costly=operation in limiter.routes.costly,
    )
    verdict = limiter.blocked(b.key for b in buckets) or await limiter.count(buckets)
    if verdict is None:
        return
    state[_VERDICT] = verdict
    if not verdict.allowed:
        raise refusal(verdict)


_problem_encoder = msgspec.json.Encoder()


class RateLimitMiddleware:
    """The lockout of a source and the cost of refused credentials, around every route.

    Before the route: a source this process knows to be over its limit is refused at
    once (no signature is checked, no database asked). On the answer: a 401 costs the
    source (and an app whose signature verified) ``failure_cost``; once that passes the
    limit the answer becomes the 429. Every counted answer gets the RateLimit headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a locked-out source at once; otherwise watch the answer."""
        limiter = _limiter(scope) if scope["type"] == "http" else None
        if limiter is None or _operation(scope) in limiter.routes.exempt:
            await self.app(scope, receive, send)
            return
        source = limiter.source(scope)
        locked = limiter.blocked([source])
        if locked is not None:
            await _send_refusal(send, locked, scope)
            return
        await self.app(scope, receive, _Answer(limiter, source, scope, send))


class _Answer:
    """The ``send`` of a limited request: headers added, a refused credential charged."""

    def __init__(self, limiter: RateLimiter, source: str, scope: Scope, send: Send) -> None:
        self._limiter = limiter
        self._source = source
        self._scope = scope
        self._send = send
        self._replaced = False

    async def __call__(self, message: Message) -> None:
        if self._replaced:  # the body of the answer the 429 stands in for
            return
        if message["type"] == "http.response.start":
            state = self._scope.get("state") or {}
            verdict = cast("Verdict | None", state.get(_VERDICT))
            if message["status"] == 401:
                verdict = await self._charge_failure(state) or verdict
                if verdict is not None and not verdict.allowed:
                    self._replaced = True
                    await _send_refusal(self._send, verdict, self._scope)
                    return
            if verdict is not None:
                message = {**message, "headers": [*message.get("headers", ()), *verdict.headers()]}
        await self._send(message)

    async def _charge_failure(self, state: dict[str, Any]) -> Verdict | None:
        limiter = self._limiter
        kind, caller_id = state.get("caller_kind"), state.get("caller_id")
        # The caller is charged only when its own signature verified (then the token failed).
        caller = f"{kind}:{caller_id}" if kind == "app" and caller_id else None
        buckets = limiter.buckets(self._source, caller=caller, cost=limiter.policy.failure_cost)
        try:
            return await limiter.count(buckets)
        except Exception:  # the 401 stands; a passing database error must not turn it into none
            _log.exception("could not charge a refused credential to %s", self._source)
            return None


async def _send_refusal(send: Send, verdict: Verdict, scope: Scope) -> None:
    """A 429 problem, sent as raw ASGI (the route never ran, or its answer is replaced)."""
    exc = refusal(verdict)
    body = _problem_encoder.encode(problem_of(exc, scope.get("path")))
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in problem_headers(exc).items()),
        *verdict.headers(),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
