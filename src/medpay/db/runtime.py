"""Which PostgreSQL the program uses: ``DATABASE_URL``, or an embedded server of its own.

The embedded server lives in ``<data_dir>/pgdata`` and listens on loopback. If one is
already running on that folder (``medpay run`` in another terminal), commands use it
and leave it running; otherwise they start it and stop it, by pid, when they end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from medpay.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from medpay.db.migrate import GATEWAY_MIGRATIONS, apply_migrations

__all__ = ["DATABASE_NAME", "EMBEDDED_PORT", "database", "migrate"]

DATABASE_NAME = "medpay"
#: The embedded server's port for ``medpay run``; another is chosen when it is taken.
EMBEDDED_PORT = 54329


def _running_server_port(pgdata: Path) -> int | None:
    """The port of a live server on ``pgdata``, from its postmaster.pid."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by the server user
        pass
    return port


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def database(
    database_url: str | None, data_dir: Path, *, announce: bool = False
) -> AsyncIterator[str]:
    """Yield a DSN for the medpay database, starting an embedded server if needed."""
    if database_url:
        yield database_url
        return
    pgdata = (data_dir / "pgdata").resolve()
    port = _running_server_port(pgdata)
    if port is not None:
        yield await _ensure_database(f"postgresql://postgres@127.0.0.1:{port}")
        return
    server = EmbeddedPostgres(pgdata, port=EMBEDDED_PORT if _port_is_free(EMBEDDED_PORT) else None)
    try:
        server.start()
    except EmbeddedPostgresError:
        server.stop()
        raise
    try:
        if announce:
            print(
                f"PostgreSQL (embedded)  {server.dsn(DATABASE_NAME)}  pid {server.pid}  data {pgdata}"
            )
        yield await _ensure_database(f"postgresql://postgres@127.0.0.1:{server.port}")
    finally:
        server.stop()


async def _ensure_database(server_dsn: str) -> str:
    conn = await asyncpg.connect(f"{server_dsn}/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            await conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
    finally:
        await conn.close()
    return f"{server_dsn}/{DATABASE_NAME}"


async def migrate(dsn: str, extra: tuple[tuple[Path, str], ...] = ()) -> dict[str, list[int]]:
    """Apply the gateway's migrations (and any ``extra`` (folder, schema) sets)."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = {"public": await apply_migrations(conn, GATEWAY_MIGRATIONS)}
        for directory, schema in extra:
            applied[schema] = await apply_migrations(conn, directory, schema=schema)
    finally:
        await conn.close()
    return applied
