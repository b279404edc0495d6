"""Prometheus metrics: what the gateway counts, and the one function the limits code calls.

Requests and their latency by route *template* and status come from Litestar's own
``PrometheusMiddleware`` (:func:`prometheus_config`: ``group_path`` so that
``/v1/payments/{payment_id}`` is one series, not one per payment). The rest is ours:

=========================================  =========================================
``medpay_province_calls_total``            province calls by province, infno, outcome
``medpay_province_call_duration_seconds``  their latency by province and infno
``medpay_rate_limited_total``              refusals by the limits, by scope
``medpay_db_pool_connections``             this pool's connections, ``in_use``/``idle``
``medpay_db_pool_max_connections``         the pools' ceilings
``medpay_unresolved_payments`` and age     computed at scrape (:mod:`.routes`)
``medpay_outbox_pending_events`` and age   computed at scrape
``medpay_province_reachable``              the readiness view of each province
=========================================  =========================================

Labels never carry a person, a payment or a message id: only provinces (31), infnos,
outcomes, scopes, states and route templates, so every series stays bounded.

**Several workers.** With ``PROMETHEUS_MULTIPROC_DIR`` set (before the server starts, to
an empty folder the workers can write), prometheus_client keeps each worker's values
in memory-mapped files there and ``/metrics``, answered by any worker, sums them
(``MultiProcessCollector``; gauges ``livesum``). Without it, one process, the values
are in memory. A worker that ends cleanly removes its live gauges
(:func:`forget_this_process`); one killed leaves its last pool figures until the folder
is emptied at the next start (the Dockerfile does).
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import TYPE_CHECKING

from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import Counter, Gauge, Histogram, multiprocess

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PROVINCE_OUTCOMES",
    "forget_this_process",
    "multiprocess_dir",
    "observe_province_call",
    "observe_rate_limited",
    "prometheus_config",
    "sample_pool",
    "sample_pool_forever",
]

#: What became of a province call: an answer (``ok``), a refusal with nothing done
#: (``rejected``), an answer we could not believe (``invalid``), no connection
#: (``unavailable``), or no answer after sending (``unknown``).
PROVINCE_OUTCOMES = ("ok", "rejected", "invalid", "unavailable", "unknown")
_SCOPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

PROVINCE_CALLS = Counter(
    "medpay_province_calls",
    "Calls to the provinces' platforms, by province, transaction (infno) and outcome",
    ["province", "infno", "outcome"],
)
PROVINCE_CALL_SECONDS = Histogram(
    "medpay_province_call_duration_seconds",
    "Time from sending a province its request to its answer or the failure, in seconds",
    ["province", "infno"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "medpay_rate_limited",
    "Requests refused with 429 by the limits, by scope (app, person, address, estimate, ...)",
    ["scope"],
)
POOL_CONNECTIONS = Gauge(
    "medpay_db_pool_connections",
    "Database connections open in the gateway's pools, in use or idle (sampled every 5 s)",
    ["state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "medpay_db_pool_max_connections",
    "The most connections the gateway's pools may open (all workers)",
    multiprocess_mode="livesum",
)
POOL_SAMPLE_SECONDS = 5.0


def prometheus_config() -> PrometheusConfig:
    """Litestar's request metrics: ``medpay_requests_total`` and ``..._duration_seconds``.

    Labels: method, route template (``path``), status code and app name. ``/metrics``
    itself is not counted; a path no route matches never reaches the middleware
    (Litestar answers 404 before it), so probes of random paths add no series.
    """
    return PrometheusConfig(
        app_name="medpay", prefix="medpay", group_path=True, exclude="^/metrics"
    )


def observe_rate_limited(scope: str) -> None:
    """Count one request refused by a limit of ``scope`` (a short name, never an identifier).

    For the limits code: ``observe_rate_limited("app")``, ``("person")``,
    ``("address")``, ``("estimate")``, ``("bad_signature")``.

    Raises:
        ValueError: ``scope`` is not 1-32 lower-case letters, digits or ``_`` (an app id or
            a person's number must not become a label).
    """
    if not _SCOPE.match(scope):
        raise ValueError(f"rate-limit scope must be a short lower-case name: {scope!r}")
    RATE_LIMITED.labels(scope).inc()


def observe_province_call(province: str, infno: str, outcome: str, seconds: float) -> None:
    """Count one province call and its latency."""
    assert outcome in PROVINCE_OUTCOMES, outcome
    PROVINCE_CALLS.labels(province, infno, outcome).inc()
    PROVINCE_CALL_SECONDS.labels(province, infno).observe(seconds)


def sample_pool(pool: asyncpg.Pool) -> None:
    """Record this process's pool: connections open, in use and idle, and its ceiling."""
    size, idle = pool.get_size(), pool.get_idle_size()
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)
    POOL_MAX.set(pool.get_max_size())


async def sample_pool_forever(pool: asyncpg.Pool) -> None:
    """Sample the pool every few seconds (each worker its own; ``/metrics`` sums them)."""
    while True:
        sample_pool(pool)
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, or None in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def forget_this_process() -> None:
    """At a clean exit in multiprocess mode: drop this worker's live gauges from the sums."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())
