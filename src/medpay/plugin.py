"""The gateway's resources as a Litestar plugin: one lifespan each, injected with ``Provide``.

``on_app_init`` adds a lifespan per resource, in the order they depend on each other
(database, outbound HTTP client, payment flow, background work). Litestar enters
them in that order and leaves them in reverse, also when a later one fails to start,
so nothing opened is leaked. Handlers receive what they need as typed parameters
(``pool``, ``payment_flow``, ``provinces``, ``idempotency``, ``settings``, and the
verified ``caller`` and ``patient``); none reaches into ``app.state`` itself.

HTTP wiring: may import every layer below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import msgspec
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from medpay.channels.service import find_app
from medpay.config import Settings
from medpay.console import queries as console_queries
from medpay.console.sessions import CONSOLE_STATE_KEY, Console
from medpay.db.pool import create_pool
from medpay.institutions.keys import find_institution_signer
from medpay.mobile.service import MobileFrontDoor
from medpay.notifications.dispatcher import NotificationDispatcher
from medpay.observability.metrics import forget_this_process, sample_pool_forever
from medpay.observability.routes import Operations
from medpay.parties.service import find_agency, find_operator
from medpay.payments.flow import PaymentFlow
from medpay.payments.resolver import PaymentResolver
from medpay.reconciliation.scheduler import DailyReconciliation, parse_time_of_day
from medpay.reconciliation.service import Reconciler
from medpay.security import queries as security_queries
from medpay.security.guards import (
    GATEKEEPER_STATE_KEY,
    Gatekeeper,
    provide_caller,
    provide_patient,
)
from medpay.security.idempotency import Idempotency
from medpay.security.identity import IdentityVerifier
from medpay.security.limits import LIMITER_STATE_KEY, LimitPolicy, RateLimiter, RouteClasses
from medpay.security.persons import PersonKeyMissing, use_person_key
from medpay.security.secrets import SecretSealer
from medpay.settlement.adapters.national_http import new_http_client
from medpay.settlement.adapters.registry import build_adapters
from medpay.settlement.routing import ProvinceDirectory
from medpay.wire import gm
from medpay.wire.signing import load_private_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from litestar import Litestar
    from litestar.config.app import AppConfig

    from medpay.settlement.adapters.config import ClearingConfig

__all__ = ["GatewayPlugin", "GatewayResources", "resources_of"]

_log = logging.getLogger("medpay")
HOUSEKEEPING_INTERVAL_SECONDS = 600
_RESOURCES = "resources"


class GatewayResources:
    """What the lifespans opened; an attribute is set once its lifespan has entered."""

    pool: asyncpg.Pool
    http_client: httpx.AsyncClient
    idempotency: Idempotency
    provinces: ProvinceDirectory
    payment_flow: PaymentFlow
    resolver: PaymentResolver
    mobile_front_door: MobileFrontDoor
    reconciler: Reconciler
    operations: Operations


def resources_of(app: Litestar) -> GatewayResources:
    """The resources of a running gateway (for the CLI, scripts and tests)."""
    resources: GatewayResources = app.state[_RESOURCES]
    return resources


class GatewayPlugin(InitPluginProtocol):
    """Opens and closes the gateway's resources and provides them to handlers."""

    def __init__(self, settings: Settings, clearing: ClearingConfig | None) -> None:
        assert settings.database_url, "the CLI starts a database before the gateway"
        self._settings = settings
        self._clearing = clearing
        self._resources = GatewayResources()
        self._running = False

    def serve_next(self, settings: Settings, clearing: ClearingConfig | None) -> None:
        """Open the next lifespan on ``settings.database_url`` and ``clearing``'s provinces.

        For the test suite: building a gateway costs 70 ms (Litestar inspects every
        handler), so tests reuse an app and give each run its own database and
        simulator. Everything the app was built from stays as it was: the settings must
        be the app's own but for ``database_url``. What the last lifespan opened is
        forgotten; refused while one is open.
        """
        if self._running:
            raise RuntimeError("the gateway is running; stop it first")
        if msgspec.structs.replace(settings, database_url=self._settings.database_url) != (
            self._settings
        ):
            raise ValueError(
                "only database_url may differ from the settings the app was built with"
            )
        assert settings.database_url, "a database to serve"
        self._settings, self._clearing = settings, clearing
        vars(self._resources).clear()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the lifespans and the dependencies."""
        app_config.state[_RESOURCES] = self._resources
        app_config.lifespan = [
            *app_config.lifespan,
            self._in_use,
            self._person_key,
            self._database,
            self._http_client,
            self._payment_flow,
            self._mobile_front_door,
            self._background_work,
        ]
        providers: dict[str, Callable[..., Any]] = {
            "settings": self._provide_settings,
            "pool": self._provide_pool,
            "idempotency": self._provide_idempotency,
            "provinces": self._provide_provinces,
            "payment_flow": self._provide_payment_flow,
            "mobile_front_door": self._provide_mobile_front_door,
            "operations": self._provide_operations,
            "caller": provide_caller,
            "patient": provide_patient,
        }
        app_config.dependencies = {
            **app_config.dependencies,
            **{name: Provide(f, sync_to_thread=False) for name, f in providers.items()},
        }
        return app_config

    # Providers: read when a request needs them, after the lifespans have run.

    def _provide_settings(self) -> Settings:
        return self._settings

    def _provide_pool(self) -> asyncpg.Pool:
        return self._resources.pool

    def _provide_idempotency(self) -> Idempotency:
        return self._resources.idempotency

    def _provide_provinces(self) -> ProvinceDirectory:
        return self._resources.provinces

    def _provide_payment_flow(self) -> PaymentFlow:
        return self._resources.payment_flow

    def _provide_mobile_front_door(self) -> MobileFrontDoor:
        return self._resources.mobile_front_door

    def _provide_operations(self) -> Operations:
        return self._resources.operations

    @contextlib.asynccontextmanager
    async def _in_use(self, _app: Litestar) -> AsyncIterator[None]:
        """Running from before the first resource opens until the last one closes."""
        self._running = True
        try:
            yield
        finally:
            self._running = False

    @contextlib.asynccontextmanager
    async def _person_key(self, _app: Litestar) -> AsyncIterator[None]:
        """The key persons are kept under (medpay.security.persons): no start without it."""
        key = self._settings.person_key_text()
        if key is None:
            raise PersonKeyMissing()
        use_person_key(key)
        yield

    @contextlib.asynccontextmanager
    async def _database(self, app: Litestar) -> AsyncIterator[None]:
        """The pool, and what needs only the pool: idempotency, the guards' gate, the console."""
        settings = self._settings
        assert settings.database_url is not None
        pool = await create_pool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            application_name="medpay-gateway",
        )
        try:
            self._resources.pool = pool
            self._resources.idempotency = Idempotency(
                pool,
                retention_hours=settings.idempotency_retention_hours,
                lock_seconds=settings.idempotency_lock_seconds,
            )
            app.state[GATEKEEPER_STATE_KEY] = Gatekeeper(
                pool,
                lookups={
                    "app": find_app,
                    "agency": find_agency,
                    "operator": find_operator,
                    "institution": find_institution_signer,
                },
                identity=IdentityVerifier(
                    settings.identity_issuers,
                    settings.identity_audience,
                    settings.identity_leeway_seconds,
                    max_lifetime_seconds=settings.identity_max_lifetime_seconds,
                ),
                signature_window_seconds=settings.signature_window_seconds,
                signer_cache_seconds=settings.signer_cache_seconds,
            )
            if settings.rate_limits:
                app.state[LIMITER_STATE_KEY] = RateLimiter(pool, _limit_policy(settings), ROUTES)
            app.state[CONSOLE_STATE_KEY] = Console.from_settings(pool, settings)
            yield
        finally:
            await pool.close()

    @contextlib.asynccontextmanager
    async def _http_client(self, _app: Litestar) -> AsyncIterator[None]:
        """One pooled outbound client for every province and webhook."""
        client = new_http_client()
        try:
            self._resources.http_client = client
            yield
        finally:
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _payment_flow(self, _app: Litestar) -> AsyncIterator[None]:
        """The province directory (one adapter per province), the flow and its resolver."""
        resources, settings = self._resources, self._settings
        adapters = build_adapters(self._clearing, resources.http_client) if self._clearing else {}
        resources.provinces = ProvinceDirectory(adapters)
        resources.payment_flow = PaymentFlow(
            resources.pool, resources.provinces, settle_grace_seconds=settings.settle_grace_seconds
        )
        resources.resolver = PaymentResolver(
            resources.pool,
            resources.payment_flow,
            interval_seconds=settings.worker_interval_seconds,
        )
        resources.reconciler = Reconciler(resources.pool, resources.payment_flow)
        resources.operations = Operations(
            resources.pool,
            {code: url for code, a in adapters.items() if (url := getattr(a, "url", None))},
            settle_grace_seconds=settings.settle_grace_seconds,
            probe_seconds=settings.readiness_probe_seconds,
            requires_provinces=settings.readiness_requires_provinces,
        )
        yield

    @contextlib.asynccontextmanager
    async def _mobile_front_door(self, _app: Litestar) -> AsyncIterator[None]:
        """The national front door, on the same flow; payAuthNo checked by the same issuers."""
        resources, settings = self._resources, self._settings
        resources.mobile_front_door = MobileFrontDoor(
            resources.pool,
            resources.payment_flow,
            sealer=SecretSealer(settings.app_secret_key) if settings.app_secret_key else None,
            signing_key=(
                gm.load_private_key(settings.mobile_signing_key_pem)
                if settings.mobile_signing_key_pem
                else None
            ),
            pay_auth=IdentityVerifier(
                settings.identity_issuers,
                settings.pay_auth_audience,
                settings.identity_leeway_seconds,
            ),
            window_seconds=settings.signature_window_seconds,
        )
        yield

    @contextlib.asynccontextmanager
    async def _background_work(self, _app: Litestar) -> AsyncIterator[None]:
        """Housekeeping always; the resolver, the dispatcher and the daily reconciliation when configured."""
        resources, settings = self._resources, self._settings
        work = [_housekeeping(resources.pool, settings), sample_pool_forever(resources.pool)]
        if settings.background_workers:
            work.append(resources.resolver.run_forever())
            if settings.reconciliation_daily and self._clearing is not None:
                daily = DailyReconciliation(
                    resources.pool,
                    resources.reconciler,
                    at=parse_time_of_day(settings.reconciliation_at),
                )
                work.append(daily.run_forever())
            if self._clearing is not None:
                dispatcher = NotificationDispatcher(
                    resources.pool,
                    resources.http_client,
                    load_private_key(self._clearing.signing_key_pem),
                    interval_seconds=settings.worker_interval_seconds,
                )
                work.append(dispatcher.run_forever())
        tasks = [asyncio.create_task(job) for job in work]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            forget_this_process()


#: How the rate limits treat operations: health probes and the metrics scrape are free
#: (a limiter that needs the database must not fail them while it is down), provinces'
#: callbacks pay only for refused signatures, estimates (they call a province) have
#: limits of their own.
ROUTES = RouteClasses(
    exempt=frozenset(
        {
            "getHealth",
            "headHealth",
            "getHealthLive",
            "headHealthLive",
            "getHealthReady",
            "headHealthReady",
            "getMetrics",
        }
    ),
    uncounted=frozenset({"receiveProvinceCallback"}),
    costly=frozenset({"estimatePayment"}),
)


def _limit_policy(settings: Settings) -> LimitPolicy:
    return LimitPolicy(
        window_seconds=settings.rate_limit_window_seconds,
        per_source=settings.rate_limit_per_source,
        per_caller=settings.rate_limit_per_caller,
        per_person=settings.rate_limit_per_person,
        estimates_per_caller=settings.rate_limit_estimates_per_caller,
        estimates_per_person=settings.rate_limit_estimates_per_person,
        failure_cost=settings.rate_limit_failure_cost,
        trusted_proxies=settings.trusted_proxies,
    )


async def _housekeeping(pool: asyncpg.Pool, settings: Settings) -> None:
    """Forget what no longer protects anything: old nonces, idempotency keys, counters, sessions."""
    nonce_horizon = float(2 * settings.signature_window_seconds + 60)
    while True:
        try:
            await pool.execute(security_queries.PURGE_OLD_NONCES, nonce_horizon)
            await pool.execute(security_queries.PURGE_EXPIRED_IDEMPOTENCY_KEYS)
            await pool.execute(
                security_queries.PURGE_OLD_RATE_LIMIT_WINDOWS, settings.rate_limit_window_seconds
            )
            await pool.execute(console_queries.PURGE_OLD_SESSIONS)
            await pool.execute(console_queries.PURGE_OLD_ATTEMPTS, settings.console_lockout_seconds)
        except Exception:  # a passing database error must not stop housekeeping
            _log.exception("housekeeping failed; will try again")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
