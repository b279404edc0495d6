"""``/health/live``, ``/health/ready`` and ``/metrics``: the operator's view from outside.

* ``/health/live``: the process answers; nothing else is asked (a container's health
  check and a restart policy want exactly this: a province down is no reason to
  restart the gateway).
* ``/health/ready``: the database answers ``SELECT 1`` within 2 s, and each province's
  endpoint is reachable, judged from the last real call to it within
  ``readiness_probe_seconds`` (30 s), or else by one TCP connect now (no request is
  sent, and none at all for a province with traffic). 503 when not ready; the body
  says which part is not. With ``MEDPAY_READINESS_REQUIRES_PROVINCES=false`` an
  unreachable province is reported but keeps the gateway ready (then a load balancer
  does not take every gateway out because one province is down).
* ``/metrics``: the Prometheus text format (see :mod:`.metrics`); the backlogs are read
  with one statement, at most once every 2 s however often it is scraped.

``HEAD`` is answered on both health routes with the status alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Literal

import asyncpg
import msgspec
from litestar import Response, get, head
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from medpay.http import Injected
from medpay.observability.metrics import multiprocess_dir, sample_pool
from medpay.observability.provinces import ProvinceReachability, reachability
from medpay.observability.queries import BACKLOG, UNRESOLVED_STATES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ["Liveness", "Operations", "Readiness", "operations_routes"]

_log = logging.getLogger("medpay.operations")
DATABASE_TIMEOUT_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 2.0  # as the adapters connect
BACKLOG_CACHE_SECONDS = 2.0


class Liveness(msgspec.Struct, frozen=True):
    """The process answers."""

    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this gateway can take payments, and which part cannot."""

    status: Literal["ready", "unready"]
    database: Literal["ok", "unreachable"]
    #: Each connected province (insured-place code) and whether its endpoint is reachable.
    provinces: dict[str, Literal["reachable", "unreachable"]]

    @property
    def status_code(self) -> int:
        """200 when ready, 503 when not: a load balancer reads the status alone."""
        return 200 if self.status == "ready" else 503


class Operations:
    """Readiness and metrics of one gateway: its pool and its provinces' endpoints."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        province_urls: Mapping[str, str],
        *,
        settle_grace_seconds: float,
        probe_seconds: float = 30.0,
        requires_provinces: bool = True,
        seen: ProvinceReachability = reachability,
    ) -> None:
        self._pool = pool
        self._urls = dict(province_urls)
        self._grace = settle_grace_seconds
        self._probe_seconds = probe_seconds
        self._requires_provinces = requires_provinces
        self._seen = seen
        self._backlog: tuple[float, list[Metric]] | None = None
        self._backlog_lock = asyncio.Lock()

    async def readiness(self) -> Readiness:
        """Ask the database, and each province unless seen lately (module docstring)."""
        database_ok, provinces = await asyncio.gather(
            self._database_ok(),
            self._seen.check(
                self._urls, fresh_seconds=self._probe_seconds, timeout_seconds=PROBE_TIMEOUT_SECONDS
            ),
        )
        provinces_ok = all(provinces.values()) or not self._requires_provinces
        return Readiness(
            status="ready" if database_ok and provinces_ok else "unready",
            database="ok" if database_ok else "unreachable",
            provinces={
                code: "reachable" if reached else "unreachable"
                for code, reached in sorted(provinces.items())
            },
        )

    async def _database_ok(self) -> bool:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                await self._pool.fetchval("SELECT 1")
        except Exception as exc:  # whatever stops SELECT 1 (asyncpg has errors of several trees)
            _log.warning("readiness: the database did not answer: %s", type(exc).__name__)
            return False
        return True

    async def metrics(self) -> bytes:
        """The Prometheus text of this process (or, in multiprocess mode, of all workers)."""
        sample_pool(self._pool)
        families = [*await self._backlog_families(), self._reachable_family()]
        registry = CollectorRegistry(auto_describe=False)
        if multiprocess_dir():
            MultiProcessCollector(registry)
        else:
            registry.register(_Families(REGISTRY.collect))
        registry.register(_Families(lambda: iter(families)))
        return generate_latest(registry)

    async def _backlog_families(self) -> list[Metric]:
        async with self._backlog_lock:  # concurrent scrapes share one query
            cached = self._backlog
            if cached is not None and time.monotonic() - cached[0] < BACKLOG_CACHE_SECONDS:
                return cached[1]
            try:
                async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                    rows = await self._pool.fetch(BACKLOG, self._grace)
            except Exception as exc:  # a scrape still answers: the other series
                _log.warning("metrics: the backlog query failed: %s", type(exc).__name__)
                return []
            families = _backlog(rows)
            self._backlog = (time.monotonic(), families)
            return families

    def _reachable_family(self) -> Metric:
        family = GaugeMetricFamily(
            "medpay_province_reachable",
            "1 if the province's endpoint was reached when last called or probed, else 0",
            labels=["province"],
        )
        window = max(self._probe_seconds * 4, 120.0)
        for code, url in sorted(self._urls.items()):
            reached = self._seen.last(url, within_seconds=window)
            if reached is not None:
                family.add_metric([code], 1.0 if reached else 0.0)
        return family


def _backlog(rows: Iterable[asyncpg.Record]) -> list[Metric]:
    by_state = {row["state"]: row for row in rows if row["kind"] == "payment"}
    outbox = next((row for row in rows if row["kind"] == "outbox"), None)
    count = GaugeMetricFamily(
        "medpay_unresolved_payments",
        "Payments whose outcome is not known yet: unknown, or in another unfinished state past the settle grace",
        labels=["state"],
    )
    age = GaugeMetricFamily(
        "medpay_unresolved_payment_oldest_age_seconds",
        "Seconds since the oldest of them entered its state (0 when there is none)",
        labels=["state"],
    )
    for state in UNRESOLVED_STATES:
        row = by_state.get(state)
        count.add_metric([state], float(row["n"]) if row else 0.0)
        age.add_metric([state], float(row["oldest_s"]) if row else 0.0)
    pending = GaugeMetricFamily(
        "medpay_outbox_pending_events", "Webhook events not yet acknowledged by the apps"
    )
    pending.add_metric([], float(outbox["n"]) if outbox else 0.0)
    oldest = GaugeMetricFamily(
        "medpay_outbox_oldest_pending_age_seconds",
        "Seconds since the oldest unacknowledged event was written (0 when there is none)",
    )
    oldest.add_metric([], float(outbox["oldest_s"]) if outbox else 0.0)
    return [count, age, pending, oldest]


class _Families(Collector):
    """Hands a registry the families of another source at collection time."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return self._source()


_READINESS_RESPONSES = {
    503: ResponseSpec(
        data_container=Readiness, description="Not ready: the database or a province is unreachable"
    )
}


@get("/health/live", operation_id="getHealthLive", tags=["operations"], summary="Is the process up")
async def live() -> Liveness:
    """The process answers; nothing else is asked (the container's health check)."""
    return Liveness(status="ok")


@head(
    "/health/live",
    operation_id="headHealthLive",
    tags=["operations"],
    summary="Is the process up (no body)",
)
async def live_head() -> None:
    """What ``GET /health/live`` says, as a status only."""


@get(
    "/health/ready",
    operation_id="getHealthReady",
    tags=["operations"],
    summary="Can this gateway take payments: its database and the provinces",
    responses=_READINESS_RESPONSES,
)
async def ready(operations: Injected[Operations]) -> Response[Readiness]:
    """200 when ready, 503 naming what is not.

    Ready: the database answers within 2 s and each province's endpoint is reachable
    (answered a real call lately, or accepts a TCP connection now).
    """
    readiness = await operations.readiness()
    return Response(readiness, status_code=readiness.status_code)


@head(
    "/health/ready",
    operation_id="headHealthReady",
    tags=["operations"],
    summary="Can this gateway take payments (no body)",
    responses={503: ResponseSpec(data_container=None, description="Not ready")},
)
async def ready_head(operations: Injected[Operations]) -> Response[None]:
    """What ``GET /health/ready`` says, as a status only."""
    return Response(None, status_code=(await operations.readiness()).status_code)


@get(
    "/metrics",
    operation_id="getMetrics",
    tags=["operations"],
    summary="Prometheus metrics (text exposition format)",
    media_type=CONTENT_TYPE_LATEST,
)
async def metrics(operations: Injected[Operations]) -> Response[bytes]:
    """Requests, province calls, limits, pool, backlogs (see docs/operations.md)."""
    return Response(await operations.metrics(), media_type=CONTENT_TYPE_LATEST)


#: The routes, for the app's ``route_handlers``.
operations_routes = [live, live_head, ready, ready_head, metrics]
