"""The gateway's Litestar application: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

import msgspec
from litestar import Litestar, get
from litestar.datastructures import State

from medpay.callbacks.routes import receive_callback
from medpay.config import Settings
from medpay.db.pool import create_pool
from medpay.filings.routes import FilingController
from medpay.http.openapi import openapi_config
from medpay.http.problems import exception_handlers
from medpay.institutions.routes import InstitutionController
from medpay.notifications.dispatcher import NotificationDispatcher
from medpay.payments.resolver import PaymentResolver
from medpay.payments.routes import PaymentController
from medpay.payments.service import PaymentFlow
from medpay.prescriptions.routes import PrescriptionController
from medpay.relationships.routes import relationships_router
from medpay.security import queries as security_queries
from medpay.security.idempotency import Idempotency
from medpay.security.identity import IdentityVerifier
from medpay.settlement.adapters.national_http import new_http_client
from medpay.settlement.adapters.registry import ClearingConfig, build_adapters, load_clearing_config
from medpay.settlement.routing import ProvinceDirectory
from medpay.wire.signing import load_private_key

__all__ = ["create_app", "medpay_version"]

_log = logging.getLogger("medpay")
HOUSEKEEPING_INTERVAL_SECONDS = 600


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
async def health(state: State) -> Health:
    """The gateway answers and its database does too."""
    await state.pool.fetchval("SELECT 1")
    return Health(status="ok", database="ok")


async def _housekeeping(app: Litestar) -> None:
    """Forget nonces past any valid window and idempotency keys past retention."""
    settings: Settings = app.state.settings
    nonce_horizon = float(2 * settings.signature_window_seconds + 60)
    while True:
        try:
            await app.state.pool.execute(security_queries.PURGE_OLD_NONCES, nonce_horizon)
            await app.state.pool.execute(security_queries.PURGE_EXPIRED_IDEMPOTENCY_KEYS)
        except Exception:  # a passing database error must not stop housekeeping
            _log.exception("housekeeping failed; will try again")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)


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

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        assert settings.database_url is not None
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        app.state.idempotency = Idempotency(
            app.state.pool,
            retention_hours=settings.idempotency_retention_hours,
            lock_seconds=settings.idempotency_lock_seconds,
        )
        http_client = new_http_client()
        adapters = build_adapters(clearing, http_client) if clearing else {}
        app.state.provinces = ProvinceDirectory(adapters)
        app.state.payment_flow = flow = PaymentFlow(
            app.state.pool, app.state.provinces, settle_grace_seconds=settings.settle_grace_seconds
        )
        app.state.resolver = resolver = PaymentResolver(
            app.state.pool, flow, interval_seconds=settings.worker_interval_seconds
        )
        workers = [asyncio.create_task(_housekeeping(app), name="medpay-housekeeping")]
        if settings.background_workers:
            workers.append(asyncio.create_task(resolver.run_forever(), name="medpay-resolver"))
            if clearing is not None:
                dispatcher = NotificationDispatcher(
                    app.state.pool,
                    http_client,
                    load_private_key(clearing.signing_key_pem),
                    interval_seconds=settings.worker_interval_seconds,
                )
                workers.append(
                    asyncio.create_task(dispatcher.run_forever(), name="medpay-notifications")
                )
        try:
            yield
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await http_client.aclose()
            await app.state.pool.close()

    app = Litestar(
        route_handlers=[
            health,
            receive_callback,
            PaymentController,
            PrescriptionController,
            FilingController,
            InstitutionController,
            relationships_router,
        ],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        openapi_config=openapi_config(medpay_version()),
        request_max_body_size=settings.max_request_bytes,
        debug=False,
    )
    app.state.settings = settings
    app.state.identity_verifier = IdentityVerifier(
        settings.identity_issuers, settings.identity_audience, settings.identity_leeway_seconds
    )
    return app
