"""Fixtures for the gateway over real HTTP: a gateway and a simulator per test, on its own database.

Both servers run in the test's event loop on loopback sockets and the tests talk to
them with httpx. (Litestar's AsyncTestClient runs the app in a blocking portal on
another thread, which would starve a simulator sharing the test's loop.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from medpay.app import create_app
from medpay.channels.service import RegisteredApp, register_app
from medpay.client import AgencySignatureAuth, AppSignatureAuth, OperatorSignatureAuth
from medpay.config import Settings
from medpay.parties.service import RegisteredParty, register_agency, register_operator
from medpay.plugin import GatewayPlugin
from medpay.relationships.service import register_person
from medpay.security.identity import DevelopmentIssuer
from medpay.security.secrets import generate_key
from medpay.serving import RunningServer, start_server
from medpay.settlement.adapters.config import ClearingConfig
from medpay.simulator.app import create_simulator_app
from medpay.simulator.app import serve_next as serve_simulator_next
from medpay.simulator.config import SimulatorConfig, clearing_provinces, default_config
from medpay.wire import gm
from medpay.wire.signing import (
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_pem,
)

from ..conftest import PERSON_KEY

ZHEJIANG_EMPLOYEE = "33000000000000000001"
OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


@pytest.fixture(scope="session")
def identity_issuer() -> DevelopmentIssuer:
    """A throw-away identity service trusted by the test gateway."""
    return DevelopmentIssuer.generate()


@pytest.fixture(scope="session")
def app_secret_key() -> str:
    """The test gateway's key sealing national apps' appSecrets."""
    return generate_key()


@pytest.fixture(scope="session")
def mobile_signing_key() -> gm.Sm2PrivateKey:
    """The test gateway's SM2 key signing the national front door's answers."""
    return gm.generate_private_key()


@pytest.fixture
def settings(
    database_url: str,
    identity_issuer: DevelopmentIssuer,
    app_secret_key: str,
    mobile_signing_key: gm.Sm2PrivateKey,
) -> Settings:
    return Settings(
        database_url=database_url,
        identity_issuers=(identity_issuer.trusted(),),
        app_secret_key=app_secret_key,
        mobile_signing_key_pem=gm.private_key_pem(mobile_signing_key),
        person_key=PERSON_KEY,
        max_request_bytes=16 * 1024,
        pool_min_size=1,
        pool_max_size=5,
        background_workers=False,  # tests drive the resolver and the dispatcher themselves
    )


@pytest.fixture(scope="session")
def gateway_signing_key() -> str:
    """The gateway's key for cainfo, trusted by the test simulator."""
    return private_key_pem(generate_private_key())


@pytest.fixture(scope="session")
def gateway_sm2_signing_key() -> str:
    """The gateway's SM2 key for cainfo towards provinces on the national profile."""
    return gm.private_key_pem(gm.generate_private_key())


@pytest.fixture(scope="session")
def simulator_config(gateway_signing_key: str, gateway_sm2_signing_key: str) -> SimulatorConfig:
    """All 31 provinces on the reference policy and our profile, trusting the test gateway's keys."""
    gateway_public = public_key_pem(load_private_key(gateway_signing_key))
    return default_config(
        gateway_public_keys=[gateway_public],
        gateway_sm2_public_keys=[gm.public_key_pem(gm.load_private_key(gateway_sm2_signing_key))],
        seed=7,
    )


@pytest.fixture
async def simulator(
    simulator_shelf: AppShelf, db_pool: asyncpg.Pool, simulator_config: SimulatorConfig
) -> AsyncIterator[RunningServer]:
    """The provincial platform simulator over real HTTP on loopback, on this test's database."""
    with simulator_shelf.lend_simulator(simulator_config, db_pool) as app:
        # At the test's end, a request the drop fault still holds is cancelled, not
        # waited for (up to 2 s): its test is over.
        server = await start_server(app, graceful_shutdown_s=0)
        try:
            yield server
        finally:
            await server.stop()


@pytest.fixture
def clearing(
    simulator: RunningServer,
    simulator_config: SimulatorConfig,
    gateway_signing_key: str,
    gateway_sm2_signing_key: str,
) -> ClearingConfig:
    """Every province reached through the adapter of its profile at the simulator."""
    return msgspec.convert(
        {
            "signing_key_pem": gateway_signing_key,
            "sm2_signing_key_pem": gateway_sm2_signing_key,
            "provinces": clearing_provinces(simulator_config, simulator.url, read_timeout_s=2.0),
        },
        ClearingConfig,
    )


class AppShelf:
    """Apps built in this worker, lent to one test at a time.

    Building the gateway costs 70 ms and the simulator 20 to 40 (Litestar inspects
    every handler), more than most tests take. A lent app serves the borrowing test's
    database only, its lifespan opens everything afresh (``GatewayPlugin.serve_next``,
    ``simulator.app.serve_next``); one still running when its test ends is not lent again.
    """

    def __init__(self) -> None:
        self._idle: list[Litestar] = []

    @contextlib.contextmanager
    def _lend(
        self, serves: Callable[[Litestar], bool], build: Callable[[], Litestar]
    ) -> Iterator[Litestar]:
        app = next((a for a in self._idle if serves(a)), None)
        if app is None:
            app = build()
        else:
            self._idle.remove(app)
        try:
            yield app
        finally:
            self._idle.append(app)

    def lend(
        self, settings: Settings, clearing: ClearingConfig | None = None
    ) -> contextlib.AbstractContextManager[Litestar]:
        """A gateway built from equal settings, or a new one; back on the shelf afterwards."""

        def serves(app: Litestar) -> bool:
            try:
                app.plugins.get(GatewayPlugin).serve_next(settings, clearing)
            except (ValueError, RuntimeError):
                return False
            return True

        return self._lend(serves, lambda: create_app(settings, clearing=clearing))

    def lend_simulator(
        self, config: SimulatorConfig, database: asyncpg.Pool
    ) -> contextlib.AbstractContextManager[Litestar]:
        """A simulator built from an equal config, or a new one; back on the shelf afterwards."""

        def serves(app: Litestar) -> bool:
            if app.state.simulator.config != config:
                return False
            try:
                serve_simulator_next(app, database)
            except RuntimeError:
                return False
            return True

        return self._lend(serves, lambda: create_simulator_app(config, database))


@pytest.fixture(scope="session")
def gateway_shelf() -> AppShelf:
    return AppShelf()


@pytest.fixture(scope="session")
def simulator_shelf() -> AppShelf:
    return AppShelf()


@pytest.fixture
def gateway(
    gateway_shelf: AppShelf, settings: Settings, clearing: ClearingConfig
) -> Iterator[Litestar]:
    with gateway_shelf.lend(settings, clearing) as app:
        yield app


#: Every (method, path, status) the gateway answered in this run, checked against the
#: committed OpenAPI document when the run ends (``documented_answers``).
ANSWERS: set[tuple[str, str, int]] = set()


async def _remember(response: httpx.Response) -> None:
    ANSWERS.add((response.request.method, response.request.url.path, response.status_code))


#: httpx's TLS settings, made once: each client would read the CA bundle again (20 ms).
_TLS = httpx.create_ssl_context()


@contextlib.asynccontextmanager
async def running_gateway(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` on a loopback port for the ``with`` block; yield a client for it."""
    server = await start_server(app)
    try:
        async with httpx.AsyncClient(
            base_url=server.url,
            timeout=30,
            event_hooks={"response": [_remember]},
            verify=_TLS,
        ) as http:
            yield http
    finally:
        await server.stop()


def _undocumented(answers: set[tuple[str, str, int]]) -> list[str]:
    """The answers whose status the document does not list for their operation."""
    document = msgspec.json.decode(OPENAPI.read_bytes())
    operations = [
        (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"), method.upper(), op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    missing = []
    for method, path, status in sorted(answers):
        matches = [op for pattern, verb, op in operations if verb == method and pattern.match(path)]
        if not matches:
            continue  # not a documented route (a probe of an unknown path, the schema)
        if not any(str(status) in op["responses"] for op in matches):
            missing.append(f"{method} {path} answered {status}")
    return missing


@pytest.fixture(scope="session", autouse=True)
def documented_answers() -> Iterator[None]:
    """Fail the run when the gateway answered a status its document does not list.

    Issue 8, item 7: the committed OpenAPI document must say everything a client can
    be answered; the whole suite's traffic is the evidence.
    """
    yield
    missing = _undocumented(ANSWERS)
    assert not missing, "statuses missing from openapi/openapi.json:\n" + "\n".join(missing)


@pytest.fixture
async def client(gateway: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with running_gateway(gateway) as http:
        yield http


@pytest.fixture
async def patient_app(db_pool: asyncpg.Pool) -> RegisteredApp:
    """A registered, active patient app with an Ed25519 key."""
    return await register_app(db_pool, "Test hospital app", "ed25519")


@pytest.fixture
def patient_token(identity_issuer: DevelopmentIssuer) -> str:
    return identity_issuer.issue(ZHEJIANG_EMPLOYEE)


@pytest.fixture
def signed(patient_app: RegisteredApp, patient_token: str) -> AppSignatureAuth:
    """Signs as the test app, for the Zhejiang employee."""
    return AppSignatureAuth(patient_app.app_id, patient_app.private_key_pem, patient_token)


@pytest.fixture
async def zhejiang_agency(db_pool: asyncpg.Pool) -> RegisteredParty:
    """The insurance agency of Hangzhou's Xihu district (330106)."""
    return await register_agency(
        db_pool, "杭州市西湖区医疗保障局", "330106", agency_id="agency_330106"
    )


@pytest.fixture
async def guangdong_agency(db_pool: asyncpg.Pool) -> RegisteredParty:
    """The insurance agency of Guangzhou's Yuexiu district (440104)."""
    return await register_agency(
        db_pool, "广州市越秀区医疗保障局", "440104", agency_id="agency_440104"
    )


@pytest.fixture
async def operator(db_pool: asyncpg.Pool) -> RegisteredParty:
    """A medpay operator."""
    return await register_operator(db_pool, "Clearing desk", operator_id="op_clearing")


async def clear_of_a_rate_window_edge(window_s: int = 60, margin_s: float = 5.0) -> None:
    """Wait, if need be, until at least ``margin_s`` of the current rate-limit window is left.

    The limits count in fixed windows (``floor(epoch / window)``): a burst that straddled
    an edge would be counted in two windows and never reach its limit.
    """
    left = window_s - time.time() % window_s
    if left < margin_s:
        await asyncio.sleep(left + 0.05)


async def register_unknown_to_the_province(db_pool: asyncpg.Pool, psn_no: str) -> None:
    """A person the gateway insures in Hangzhou whom Zhejiang's platform has never heard of."""
    await register_person(
        db_pool,
        psn_no=psn_no,
        name="X",
        insured_area="330106",
        scheme="employee",
        valid_from=dt.date(2020, 1, 1),
    )


def agency_auth(agency: RegisteredParty) -> AgencySignatureAuth:
    return AgencySignatureAuth(agency.party_id, agency.private_key_pem)


def operator_auth(operator: RegisteredParty) -> OperatorSignatureAuth:
    return OperatorSignatureAuth(operator.party_id, operator.private_key_pem)


def problem(response: object) -> dict[str, object]:
    """The problem document of a response, checking its media type."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text  # type: ignore[attr-defined]
    return msgspec.json.decode(response.content)  # type: ignore[attr-defined,no-any-return]
