"""Fixtures for the gateway over HTTP: an app per test on its own database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from medpay.app import create_app
from medpay.channels.service import RegisteredApp, register_app
from medpay.client import AppSignatureAuth
from medpay.config import Settings
from medpay.security.identity import DevelopmentIssuer

ZHEJIANG_EMPLOYEE = "33000000000000000001"


@pytest.fixture(scope="session")
def identity_issuer() -> DevelopmentIssuer:
    """A throw-away identity service trusted by the test gateway."""
    return DevelopmentIssuer.generate()


@pytest.fixture
def settings(database_url: str, identity_issuer: DevelopmentIssuer) -> Settings:
    return Settings(
        database_url=database_url,
        identity_issuers=(identity_issuer.trusted(),),
        max_request_bytes=16 * 1024,
        pool_min_size=1,
        pool_max_size=5,
    )


@pytest.fixture
def gateway(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(gateway: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=gateway, base_url="http://medpay.test") as test_client:
        yield test_client


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


def problem(response: object) -> dict[str, object]:
    """The problem document of a response, checking its media type."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text  # type: ignore[attr-defined]
    return msgspec.json.decode(response.content)  # type: ignore[attr-defined,no-any-return]
