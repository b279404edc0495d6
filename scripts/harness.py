"""A whole medpay on loopback, for the chaos run and the benchmark.

An embedded PostgreSQL in a temporary folder, migrated and seeded; the provincial
platform simulator and the gateway as child processes of ours (so that one can be
killed and restarted); a registered patient app and a development identity issuer.
``System.close()`` stops every process by its pid and removes the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from medpay.channels.service import RegisteredApp, register_app
from medpay.db.embedded import EmbeddedPostgres, free_port
from medpay.db.pool import create_pool
from medpay.db.runtime import migrate
from medpay.population import SyntheticPerson, generate_persons, seed_population
from medpay.security.identity import DevelopmentIssuer
from medpay.security.persons import use_person_key
from medpay.security.secrets import generate_key
from medpay.seed import seed_sample_data
from medpay.settlement.adapters.config import ClearingConfig
from medpay.simulator.config import (
    SimulatorConfig,
    clearing_provinces,
    default_config,
    save_config,
)
from medpay.simulator.seed import seed_sample_persons
from medpay.simulator.store import SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA
from medpay.wire import gm
from medpay.wire.signing import (
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_pem,
)

MEDPAY = str(Path(sys.executable).with_name("medpay"))
#: The sample persons (both systems seed them from the same data file).
PERSONS = [
    p["psn_no"]
    for p in json.loads(resources.files("medpay.samples").joinpath("persons.json").read_bytes())
]
UNFINISHED = (
    "SELECT count(*) FROM payments WHERE state IN ('received', 'settling', 'unknown', 'reversing')"
)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every live descendant of ``pid`` (a server's workers) as (pid, start time), from /proc.

    The start time tells a process from a later one that reuses its pid.
    """
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def kill_if_same(pid: int, started: str) -> None:
    """SIGKILL ``pid`` if it is still the process that started at ``started``."""
    fields = _stat(pid)
    if fields is not None and fields[19] == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def resident_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def limit_environment(limits: bool) -> dict[str, str]:
    """The gateway's rate limits: counted but never reached, or off.

    A load run sends everything from one address, often for a few persons: at the
    production limits its own traffic would be refused (a 429 is not what it measures).
    """
    high = str(10**9)
    return {
        "MEDPAY_RATE_LIMITS": "true" if limits else "false",
        **{
            f"MEDPAY_RATE_LIMIT_{name}": high
            for name in (
                "PER_SOURCE",
                "PER_CALLER",
                "PER_PERSON",
                "ESTIMATES_PER_CALLER",
                "ESTIMATES_PER_PERSON",
            )
        },
    }


class Process:
    """A child process we own, stopped by its pid (and its workers by theirs)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye (its workers too)."""
        assert self.popen is not None
        workers = descendants(self.popen.pid)
        self.popen.kill()
        self.popen.wait(10)
        for pid, started in workers:
            kill_if_same(pid, started)

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def pids(self) -> list[int]:
        """The process and its live descendants (a server's workers)."""
        if self.popen is None or self.popen.poll() is not None:
            return []
        return [self.popen.pid, *(pid for pid, _ in descendants(self.popen.pid))]

    def resident_kib(self) -> dict[int, int]:
        """VmRSS by pid of the process and its workers."""
        return {pid: resident_kib(pid) for pid in self.pids()}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it will not go; then any worker left behind, by its pid."""
        if self.popen is None or self.popen.poll() is not None:
            return
        workers = descendants(self.popen.pid)
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        for pid, started in workers:
            kill_if_same(pid, started)


async def wait_healthy(url: str, deadline_s: float = 60.0) -> None:
    """Wait until ``url``/health answers 200."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy within {deadline_s} s")


class System:
    """Database, simulator and gateway on loopback; build with ``await System.start(...)``."""

    def __init__(self, folder: Path, keep: bool) -> None:
        self.folder = folder
        self.keep = keep
        self.server = EmbeddedPostgres(folder / "pgdata", durable=True)
        self.processes: list[Process] = []
        self.pool: asyncpg.Pool
        self.app: RegisteredApp
        self.issuer = DevelopmentIssuer.generate()
        self.gateway_url = f"http://127.0.0.1:{free_port()}"
        self.simulator_url = f"http://127.0.0.1:{free_port()}"
        self.gateway: Process
        self.simulator: Process
        self.dsn = ""
        self.stat_statements = False
        self.population: list[SyntheticPerson] = []
        self.national: list[str] = []
        self.app_algorithm = "ed25519"

    @classmethod
    async def start(
        cls,
        *,
        faults: dict[str, Any] | None = None,
        callbacks: bool = False,
        read_timeout_s: float = 2.0,
        gateway_env: dict[str, str] | None = None,
        gateway_args: list[str] | None = None,
        seed: int = 1,
        keep: bool = False,
        persons: int = 0,
        population_seed: int = 1,
        stat_statements: bool = False,
        national: list[str] | None = None,
        app_algorithm: str = "ed25519",
    ) -> System:
        """Start it all; ``persons`` > 0 seeds that many synthetic persons (``medpay seed``).

        ``stat_statements`` loads pg_stat_statements (one restart of the server).
        ``national``: the provinces on the national profile (SM2, yuan); the rest on ours.
        ``app_algorithm``: the key the load app signs with (``ed25519`` or ``sm2``).
        """
        system = cls(Path(tempfile.mkdtemp(prefix="medpay-run-")), keep)
        system.stat_statements = stat_statements
        system.national = list(national or [])
        system.app_algorithm = app_algorithm
        try:
            await system._start(
                faults or {}, callbacks, read_timeout_s, gateway_env or {}, gateway_args, seed
            )
            if persons:
                system.population = generate_persons(persons, population_seed)
                await seed_population(system.pool, system.population)
        except BaseException:
            await system.close()
            raise
        return system

    async def _start(
        self,
        faults: dict[str, Any],
        callbacks: bool,
        read_timeout_s: float,
        gateway_env: dict[str, str],
        gateway_args: list[str] | None,
        seed: int,
    ) -> None:
        self.server.start()
        admin = await asyncpg.connect(self.server.dsn())
        if self.stat_statements:
            await admin.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await admin.close()
            self.server.stop()
            self.server.start()
            admin = await asyncpg.connect(self.server.dsn())
        await admin.execute("CREATE DATABASE medpay")
        await admin.close()
        dsn = self.server.dsn("medpay")
        self.dsn = dsn
        await migrate(dsn, extra=((SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA),))
        if self.stat_statements:
            conn = await asyncpg.connect(dsn)
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.close()
        # A throw-away person key for this run: the seeding here and the gateway share it.
        self.person_key = generate_key()
        use_person_key(self.person_key)
        self.pool = await create_pool(dsn, min_size=1, max_size=4)
        await seed_sample_data(self.pool)
        await seed_sample_persons(self.pool)
        self.app = await register_app(self.pool, "Load patient app", self.app_algorithm)  # type: ignore[arg-type]
        gateway_key = private_key_pem(generate_private_key())
        gateway_sm2_key = gm.private_key_pem(gm.generate_private_key())
        config = self._simulator_config(gateway_key, gateway_sm2_key, faults, callbacks, seed)
        save_config(config, self.folder / "simulator.json")
        clearing = msgspec.convert(
            {
                "signing_key_pem": gateway_key,
                "sm2_signing_key_pem": gateway_sm2_key,
                "provinces": clearing_provinces(
                    config, self.simulator_url, read_timeout_s=read_timeout_s
                ),
            },
            ClearingConfig,
        )
        (self.folder / "clearing.json").write_bytes(msgspec.json.encode(clearing))
        env = {**os.environ, "DATABASE_URL": dsn, "MEDPAY_DATA_DIR": str(self.folder / "data")}
        port = self.simulator_url.rsplit(":", 1)[1]
        self.simulator = Process(
            "simulator",
            [MEDPAY, "simulator", "--config", str(self.folder / "simulator.json"), "--port", port],
            env,
            self.folder / "simulator.log",
        )
        env_gateway = {
            **env,
            "MEDPAY_PORT": self.gateway_url.rsplit(":", 1)[1],
            "MEDPAY_CLEARING_CONFIG_FILE": str(self.folder / "clearing.json"),
            "MEDPAY_PERSON_KEY": self.person_key,
            "MEDPAY_IDENTITY_ISSUERS": json.dumps([msgspec.to_builtins(self.issuer.trusted())]),
            **gateway_env,
        }
        gateway_port = self.gateway_url.rsplit(":", 1)[1]
        args = (
            [gateway_port if a == "PORT" else a for a in gateway_args]
            if gateway_args
            else [MEDPAY, "serve"]
        )
        self.gateway = Process("gateway", args, env_gateway, self.folder / "gateway.log")
        self.processes = [self.simulator, self.gateway]
        self.simulator.start()
        await wait_healthy(self.simulator_url)
        self.gateway.start()
        await wait_healthy(self.gateway_url)

    def _simulator_config(
        self,
        gateway_key: str,
        gateway_sm2_key: str,
        faults: dict[str, Any],
        callbacks: bool,
        seed: int,
    ) -> SimulatorConfig:
        config = default_config(
            gateway_public_keys=[public_key_pem(load_private_key(gateway_key))],
            gateway_sm2_public_keys=[gm.public_key_pem(gm.load_private_key(gateway_sm2_key))],
            national=self.national,
            seed=seed,
        )
        data = msgspec.to_builtins(config)
        for province in data["provinces"]:
            province["faults"] = {**province.get("faults", {}), **faults}
        if callbacks:
            data["callback_base_url"] = self.gateway_url
        return msgspec.convert(data, SimulatorConfig)

    async def unfinished(self) -> int:
        """Payments not yet settled, failed or reversed."""
        return int(await self.pool.fetchval(UNFINISHED))

    async def close(self) -> None:
        """Stop everything we started, by pid, and remove the folder (unless kept)."""
        for process in reversed(self.processes):
            process.stop()
        with contextlib.suppress(Exception):
            await self.pool.close()
        self.server.stop()
        if self.keep:
            print(f"kept {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
