"""One province call, observed: its metrics, its span and traceparent, its msgid in the logs.

The adapters wrap every HTTP exchange with a province in :func:`province_call`; what it
learns also feeds readiness (:class:`ProvinceReachability`): a province that answered
a real call lately needs no probe.

"Reached" means an HTTP answer came back and could be read as the province's (``ok``,
``rejected``, ``invalid``); no connection (``unavailable``) or no answer after sending
(``unknown``: a timeout, a reset, a 5xx) is "not reached".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from medpay.observability.context import bind_log_context
from medpay.observability.metrics import PROVINCE_OUTCOMES, observe_province_call
from medpay.observability.tracing import client_span

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

__all__ = ["ProvinceCall", "ProvinceReachability", "province_call", "reachability"]

_REACHED = frozenset({"ok", "rejected", "invalid"})


@dataclass
class ProvinceCall:
    """What the adapter sets while the call runs: its ``outcome``; what it sends: ``headers``."""

    headers: dict[str, str]
    outcome: str = "unknown"


@dataclass
class _Seen:
    reached: bool
    at: float  # time.monotonic()


@dataclass
class ProvinceReachability:
    """The last thing known about each province endpoint (by URL), from real calls and probes.

    Keyed by the endpoint's URL, not the province code, so that two gateways in one
    process (tests) with different endpoints never see each other's provinces.
    """

    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def record(self, url: str, *, reached: bool) -> None:
        """A call to or probe of ``url`` reached it, or not."""
        self._seen[url] = _Seen(reached, self.clock())

    def last(self, url: str, *, within_seconds: float) -> bool | None:
        """Whether ``url`` was reached when last seen, if that was within ``within_seconds``."""
        seen = self._seen.get(url)
        if seen is None or self.clock() - seen.at > within_seconds:
            return None
        return seen.reached

    async def probe(self, url: str, *, timeout_seconds: float) -> bool:
        """Open one TCP connection to ``url``'s host and port, close it; record what happened.

        No request is sent: a province's platform sees a connection and its close, nothing
        it must answer or log as a transaction.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        reached = False
        try:
            async with asyncio.timeout(timeout_seconds):
                _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            reached = True
        except (OSError, TimeoutError):
            reached = False
        self.record(url, reached=reached)
        return reached

    async def check(
        self, urls: Mapping[str, str], *, fresh_seconds: float, timeout_seconds: float = 1.0
    ) -> dict[str, bool]:
        """Each province's reachability: the last word if fresh, else a probe now (concurrently)."""
        known = {code: self.last(url, within_seconds=fresh_seconds) for code, url in urls.items()}
        stale = [code for code, reached in known.items() if reached is None]
        probed = await asyncio.gather(
            *(self.probe(urls[code], timeout_seconds=timeout_seconds) for code in stale)
        )
        return {
            **{code: bool(reached) for code, reached in known.items()},
            **dict(zip(stale, probed, strict=True)),
        }


#: One per process: every adapter reports here.
reachability = ProvinceReachability()


@contextlib.asynccontextmanager
async def province_call(
    province: str, infno: str, url: str, msgid: str
) -> AsyncIterator[ProvinceCall]:
    """Observe one call: bind ``msgid`` to the logs, open a client span, count and time it.

    The adapter sends ``call.headers`` (``traceparent``) and sets ``call.outcome`` to one
    of :data:`~medpay.observability.metrics.PROVINCE_OUTCOMES` before leaving.
    """
    bind_log_context(msgid=msgid)
    started = time.perf_counter()
    with client_span(f"province {infno}", {"medpay.province": province, "medpay.infno": infno}) as (
        headers,
        span,
    ):
        call = ProvinceCall(headers=headers)
        try:
            yield call
        finally:
            outcome = call.outcome if call.outcome in PROVINCE_OUTCOMES else "unknown"
            observe_province_call(province, infno, outcome, time.perf_counter() - started)
            reachability.record(url, reached=outcome in _REACHED)
            if span is not None:
                span.set_attribute("medpay.outcome", outcome)
