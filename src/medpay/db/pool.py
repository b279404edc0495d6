"""The asyncpg pool: codecs registered once per connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

import asyncpg
import msgspec

__all__ = ["connection", "create_pool", "init_connection", "transaction"]


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json and jsonb with msgspec, the same codec as the HTTP layer."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
        )


async def keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs between uses here: nothing.

    asyncpg resets a released connection with four statements (advisory locks, cursors,
    LISTEN, settings): half of all round trips on the payment path. Ours leave nothing
    behind: no session advisory lock outlives its use (the simulator's msgid locks and
    clearing's are transaction-scoped; reconciliation releases its run lock in a
    ``finally``; the migration runner has a connection of its own), no cursors outside a
    transaction, no LISTEN, settings only ``SET LOCAL``. An open transaction is still
    rolled back by the pool before this runs.
    """


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, application_name: str = "medpay"
) -> asyncpg.Pool:
    """Open a pool to ``dsn`` with our codecs and a bounded statement time.

    ``application_name`` tells the server (pg_stat_activity, logs) whose connections these are.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        command_timeout=30,
        server_settings={"application_name": application_name, "timezone": "UTC"},
    )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool``, typed as the connection it stands for (a pool proxy)."""
    async with pool.acquire() as conn:
        yield cast("asyncpg.Connection", conn)


@contextlib.asynccontextmanager
async def transaction(
    source: asyncpg.Pool | asyncpg.Connection,
) -> AsyncIterator[asyncpg.Connection]:
    """One transaction, on a connection acquired from a pool or on the connection given."""
    if isinstance(source, asyncpg.Pool):
        async with connection(source) as conn, conn.transaction():
            yield conn
    else:
        async with source.transaction():
            yield source
