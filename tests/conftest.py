"""Test fixtures: one PostgreSQL per run, a fresh database per test.

With ``DATABASE_URL`` set, tests use that server (it must allow CREATE DATABASE);
otherwise an embedded server is started in a temporary folder and stopped by its pid
at the end of the run, pass or fail. Each test gets its own database cloned from a
migrated template (``CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY``: a file
copy of a 10 MB template, about three times faster than the WAL-logged default),
which isolates tests completely. Under pytest-xdist every worker has its own server
(or, with ``DATABASE_URL``, its own template), so workers never meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
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
from medpay.observability.logs import json_formatter
from medpay.security.persons import use_person_key
from medpay.security.secrets import generate_key

from .privacy_scan import ScanReport, scan

#: One template per xdist worker ("gw0", "gw1", ...; "main" without xdist).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
TEMPLATE = f"medpay_template_{WORKER}"
_counter = itertools.count()
#: The person key of this run (medpay.security.persons), a throw-away test key: installed
#: in every test process (seeding, in-process gateways) and inherited by the gateways and
#: commands tests start as processes.
PERSON_KEY = os.environ.setdefault("MEDPAY_PERSON_KEY", generate_key())
use_person_key(PERSON_KEY)


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


#: The embedded test server's settings beyond ``durable=False``: CREATE DATABASE copies
#: the template's files with copy_file_range (PostgreSQL 18), half the time of a read
#: and write per block.
TEST_SERVER_SETTINGS = {"file_copy_method": "clone"}


def _scratch_parent() -> str | None:
    """Where the embedded test server keeps its data: in memory when the machine has some.

    A clone and its drop create and unlink some 300 files; on a disk (here ext4 with
    online discard) that took 0.6 to 1.2 s a clone, on tmpfs (``/dev/shm``) 20 to 50 ms.
    ``MEDPAY_TEST_PG_DIR`` names another parent; without either, the system's temporary
    folder.
    """
    chosen = os.environ.get("MEDPAY_TEST_PG_DIR")
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | None]:
    """The embedded server of this run, or None when ``DATABASE_URL`` names one.

    Its log is copied into the run's temporary folder at the end, for the privacy scan.
    """
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="medpay-test-pg-", dir=_scratch_parent()))
    server = EmbeddedPostgres(folder / "data", durable=False, settings=TEST_SERVER_SETTINGS)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            shutil.copyfile(server.log_path, tmp_path_factory.getbasetemp() / "postgres-server.log")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _log_to_a_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every log record of this process at INFO and above, through the gateway's own
    formatter, into the run's temporary folder: what the privacy scan reads."""
    handler = logging.FileHandler(
        tmp_path_factory.getbasetemp() / "medpay-logs.jsonl", encoding="utf-8"
    )
    handler.setFormatter(json_formatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


@pytest.fixture(scope="session")
def pg_server_dsn(pg_server: EmbeddedPostgres | None) -> str:
    """A maintenance DSN (database ``postgres``) on the server for this run."""
    if pg_server is None:
        return _with_database(os.environ["DATABASE_URL"], "postgres")
    return pg_server.dsn()


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
    await _seed(_with_database(pg_server_dsn, TEMPLATE))
    return TEMPLATE


async def _seed(dsn: str) -> None:
    """The sample persons, institutions and catalogue on both sides of the wire, once per run."""
    from medpay.seed import seed_sample_data
    from medpay.simulator.seed import seed_sample_persons

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await seed_sample_data(pool)
        await seed_sample_persons(pool)
    finally:
        await pool.close()


class DatabaseFactory:
    """Clones of the template made ahead of time, so a test rarely waits for CREATE DATABASE.

    A clone takes 80 to 250 ms here, mostly waiting for the server's checkpoint; three
    made at once take little more than one. So ``makers`` tasks, each on its own
    connection, keep ``ready`` clones queued, and another drops the used ones.
    """

    def __init__(self, server_dsn: str, template: str, *, makers: int = 3, ready: int = 4) -> None:
        self._server_dsn = server_dsn
        self._template = template
        self._makers = makers
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=ready)
        self._to_drop: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._make(), name=f"test-database-maker-{n}")
            for n in range(self._makers)
        ]
        self._tasks.append(asyncio.create_task(self._drop(), name="test-database-dropper"))

    async def _make(self) -> None:
        admin = await asyncpg.connect(self._server_dsn)
        try:
            while True:
                name = f"medpay_test_{WORKER}_{os.getpid()}_{next(_counter)}"
                await admin.execute(
                    f"CREATE DATABASE {name} TEMPLATE {self._template} STRATEGY FILE_COPY"
                )
                await self._queue.put(name)
        finally:
            await admin.close()

    async def _drop(self) -> None:
        admin = await asyncpg.connect(self._server_dsn)
        try:
            while True:
                name = await self._to_drop.get()
                await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()

    async def take(self) -> str:
        for task in self._tasks:
            if task.done():
                task.result()  # surface a maker's error
        return _with_database(
            self._server_dsn, await asyncio.wait_for(self._queue.get(), timeout=60)
        )

    def release(self, dsn: str) -> None:
        self._to_drop.put_nowait(urlsplit(dsn).path.lstrip("/"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leftovers = [*(self._queue.get_nowait() for _ in range(self._queue.qsize()))]
        leftovers += [self._to_drop.get_nowait() for _ in range(self._to_drop.qsize())]
        admin = await asyncpg.connect(self._server_dsn)
        try:
            for name in leftovers:
                await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def database_factory(
    pg_server_dsn: str, template_database: str
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_server_dsn, template_database)
    await factory.start()
    try:
        yield factory
    finally:
        await factory.stop()


@pytest.fixture
async def database_url(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A database of this test's own, cloned from the migrated, seeded template."""
    dsn = await database_factory.take()
    try:
        yield dsn
    finally:
        database_factory.release(dsn)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's own database."""
    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


_SCAN_KEY = pytest.StashKey[ScanReport]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The controller scans everything the run wrote; an unmasked identifier fails the run."""
    if hasattr(session.config, "workerinput"):
        return  # a worker: the controller scans its folder too
    factory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    roots = [factory.getbasetemp(), Path(session.config.rootpath) / "artefacts"]
    report = scan(roots)
    session.config.stash[_SCAN_KEY] = report
    if report.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The privacy scan's result, and the files tests kept for people to look at."""
    report = terminalreporter.config.stash.get(_SCAN_KEY, None)
    if report is not None:
        terminalreporter.write_sep("-", "privacy scan", red=bool(report.findings))
        for line in report.lines():
            terminalreporter.write_line(line)
    kept = sorted(
        {
            str(value)
            for reports in terminalreporter.stats.values()
            for report in reports
            for name, value in getattr(report, "user_properties", ())
            if name == "artefact"
        }
    )
    if kept:
        terminalreporter.write_sep("-", "artefacts kept")
        for path in kept:
            terminalreporter.write_line(path)
