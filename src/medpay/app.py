"""The gateway's Litestar application: wiring only (routes, the resources plugin, errors)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from litestar import Litestar, Request, get, head

from medpay.books.routes import books_router
from medpay.callbacks.routes import receive_callback
from medpay.clearing.routes import clearing_router
from medpay.console.rendering import template_config
from medpay.console.routes import console_router
from medpay.filings.routes import filings_router
from medpay.http import Injected
from medpay.http.deadlines import body_deadline
from medpay.http.openapi import ClosedStructSchemaPlugin, openapi_config
from medpay.http.problems import exception_handlers
from medpay.http.strict import strict_request
from medpay.institutions.routes import institutions_router
from medpay.mobile.routes import MobileController
from medpay.observability.metrics import prometheus_config
from medpay.observability.middleware import request_context
from medpay.observability.routes import operations_routes
from medpay.observability.tracing import configure_tracing
from medpay.payments.routes import PaymentController
from medpay.plugin import GatewayPlugin
from medpay.prescriptions.routes import prescriptions_router
from medpay.reconciliation.routes import reconciliation_router
from medpay.relationships.routes import relationships_router
from medpay.security.limits import RateLimitMiddleware, count_request
from medpay.settlement.adapters.config import ClearingConfig
from medpay.settlement.adapters.registry import load_clearing_config

if TYPE_CHECKING:
    from medpay.config import Settings

__all__ = ["create_app", "medpay_version"]


def medpay_version() -> str:
    """The installed package version."""
    try:
        return version("medpay")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


class Health(msgspec.Struct, frozen=True):
    """Liveness and database reachability."""

    status: str
    database: str


@get("/health", operation_id="getHealth", tags=["operations"], summary="Is the gateway up")
async def health(pool: Injected[asyncpg.Pool]) -> Health:
    """The gateway answers and its database does too."""
    await pool.fetchval("SELECT 1")
    return Health(status="ok", database="ok")


@head(
    "/health", operation_id="headHealth", tags=["operations"], summary="Is the gateway up (no body)"
)
async def health_head(pool: Injected[asyncpg.Pool]) -> None:
    """What ``GET /health`` says, as a status only (load balancers probe with HEAD)."""
    await pool.fetchval("SELECT 1")


async def _before_handler(request: Request[Any, Any, Any]) -> None:
    """After the guards: count the request against its limits, then take it strictly."""
    await count_request(request)
    await strict_request(request)


def create_app(settings: Settings, *, clearing: ClearingConfig | None = None) -> Litestar:
    """Build the gateway for ``settings`` (``database_url`` must be set by now).

    ``clearing`` says which adapter reaches each province; without it, the file named
    by ``settings.clearing_config_file`` is read, and without that no province is
    connected (every settlement is refused with ``province_not_connected``).
    """
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url; the CLI starts a database first")
    if clearing is None and settings.clearing_config_file:
        clearing = load_clearing_config(settings.clearing_config_file)
    configure_tracing(settings.otel_exporter, service_name=settings.otel_service_name)
    return Litestar(
        route_handlers=[
            health,
            health_head,
            *operations_routes,
            receive_callback,
            PaymentController,
            MobileController,
            prescriptions_router,
            filings_router,
            institutions_router,
            relationships_router,
            books_router,
            reconciliation_router,
            clearing_router,
            console_router,
        ],
        plugins=[GatewayPlugin(settings, clearing), ClosedStructSchemaPlugin()],
        before_request=_before_handler,
        middleware=[
            request_context(log_requests=settings.log_requests),
            prometheus_config().middleware,
            RateLimitMiddleware,
            body_deadline(settings.request_body_seconds),
        ],
        exception_handlers=exception_handlers,
        template_config=template_config(),
        openapi_config=openapi_config(medpay_version()),
        request_max_body_size=settings.max_request_bytes,
        logging_config=None,  # the entry points call observability.logs.configure_logging
        debug=False,
    )
