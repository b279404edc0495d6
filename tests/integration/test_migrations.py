"""Migrations: applied once, recorded, twice changes nothing, edits are caught."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from medpay.db.migrate import (
    GATEWAY_MIGRATIONS,
    MigrationError,
    apply_migrations,
    load_migrations,
)


@pytest.fixture
async def empty_database(pg_server_dsn: str):
    admin = await asyncpg.connect(pg_server_dsn)
    await admin.execute("DROP DATABASE IF EXISTS medpay_empty WITH (FORCE)")
    await admin.execute("CREATE DATABASE medpay_empty")
    await admin.close()
    conn = await asyncpg.connect(urlunsplit(urlsplit(pg_server_dsn)._replace(path="/medpay_empty")))
    try:
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(pg_server_dsn)
        await admin.execute("DROP DATABASE IF EXISTS medpay_empty WITH (FORCE)")
        await admin.close()


async def _schema_snapshot(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows]


async def test_applying_twice_changes_nothing(empty_database: asyncpg.Connection) -> None:
    first = await apply_migrations(empty_database)
    snapshot = await _schema_snapshot(empty_database)
    second = await apply_migrations(empty_database)
    # Versions are applied in order; each engineer's range may leave gaps between them.
    assert first == [m.version for m in load_migrations(GATEWAY_MIGRATIONS)]
    assert second == []
    assert await _schema_snapshot(empty_database) == snapshot
    assert await empty_database.fetchval("SELECT count(*) FROM schema_migrations") == len(first)


async def test_a_migration_edited_after_it_was_applied_is_an_error(
    empty_database, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(GATEWAY_MIGRATIONS, folder)
    await apply_migrations(empty_database, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(empty_database, folder)


async def test_a_failing_migration_leaves_nothing_behind(empty_database, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (folder / "0002_broken.sql").write_text("CREATE TABLE b (y int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(empty_database, folder)
    tables = {
        r[0]
        for r in await empty_database.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'"
        )
    }
    assert "a" in tables and "b" not in tables
    assert await empty_database.fetchval("SELECT max(version) FROM schema_migrations") == 1
