"""Test fixtures: one PostgreSQL per run, a fresh database per test.

With ``DATABASE_URL`` set, tests use that server (it must allow CREATE DATABASE);
otherwise an embedded server is started in a temporary folder and stopped by its pid
at the end of the run, pass or fail. Each test gets its own database cloned from a
migrated template (``CREATE DATABASE ... TEMPLATE``), which is much faster than
migrating per test and isolates tests completely.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from medpay.db.embedded import EmbeddedPostgres
from medpay.db.migrate import GATEWAY_MIGRATIONS, apply_migrations
from medpay.db.pool import create_pool

TEMPLATE = "medpay_template"
_counter = itertools.count()


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def migration_sets() -> list[tuple[Path, str]]:
    """Every schema the template holds: the gateway's and the simulator's."""
    sets = [(GATEWAY_MIGRATIONS, "public")]
    try:
        from medpay.simulator.store import SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA
    except ImportError:
        return sets
    sets.append((SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA))
    return sets


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """A maintenance DSN (database ``postgres``) on the server for this run."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    folder = Path(tempfile.mkdtemp(prefix="medpay-test-pg-"))
    server = EmbeddedPostgres(folder / "data", durable=False)
    try:
        server.start()
        yield server.dsn()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(pg_server_dsn: str) -> str:
    """Create ``medpay_template`` once per run, migrated to the newest version."""
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_with_database(pg_server_dsn, TEMPLATE))
    try:
        for directory, schema in migration_sets():
            await apply_migrations(conn, directory, schema=schema)
    finally:
        await conn.close()
    return TEMPLATE


@pytest.fixture
async def database_url(pg_server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A new database, cloned from the migrated template, dropped after the test."""
    name = f"medpay_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await admin.close()
    yield _with_database(pg_server_dsn, name)
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's own database."""
    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()
