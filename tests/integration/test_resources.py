"""The gateway's resources: opened in order by their lifespans, closed in reverse, never leaked."""

from __future__ import annotations

import asyncpg
import pytest

from medpay.app import create_app
from medpay.plugin import resources_of
from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
from medpay.wire.signing import generate_private_key, private_key_pem, public_key_pem

GATEWAY_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'medpay-gateway' AND datname = $1"


async def test_a_resource_that_fails_to_open_closes_those_opened_before_it(settings, db_pool):
    key = generate_private_key()
    broken = ClearingConfig(
        signing_key_pem=private_key_pem(key),
        provinces=[
            ProvinceEndpoint(
                admdvs="330000",
                kind="carrier_pigeon",  # no such adapter: the payment flow cannot open
                url="http://127.0.0.1:9/",
                public_key_pem=public_key_pem(key),
            )
        ],
    )
    app = create_app(settings, clearing=broken)
    database = settings.database_url.rsplit("/", 1)[1]

    with pytest.raises(ExceptionGroup) as failed:  # Litestar runs the lifespans in a task group
        async with app.lifespan():
            pass

    assert failed.group_contains(ValueError, match="unknown adapter kind")

    resources = resources_of(app)
    assert resources.http_client.is_closed
    assert await db_pool.fetchval(GATEWAY_CONNECTIONS, database) == 0
    with pytest.raises(asyncpg.InterfaceError):
        await resources.pool.fetchval("SELECT 1")


async def test_a_gateway_that_stops_leaves_no_connection_behind(gateway, db_pool, settings):
    database = settings.database_url.rsplit("/", 1)[1]

    async with gateway.lifespan():
        assert await db_pool.fetchval(GATEWAY_CONNECTIONS, database) >= 1
        assert not resources_of(gateway).http_client.is_closed

    assert await db_pool.fetchval(GATEWAY_CONNECTIONS, database) == 0
    assert resources_of(gateway).http_client.is_closed
