"""Metrics, logs, traces and health: what an operator reads from outside (issue 12, item 4).

Foundation package: it knows Litestar, asyncpg, prometheus_client, structlog and the
OpenTelemetry API, and no domain. The domains call its small functions
(:func:`~medpay.observability.metrics.observe_rate_limited`, :func:`province_call`) and the
wiring mounts its routes and middleware.
"""

from __future__ import annotations

from medpay.observability.context import bind_log_context
from medpay.observability.metrics import observe_rate_limited
from medpay.observability.provinces import province_call

__all__ = ["bind_log_context", "observe_rate_limited", "province_call"]
