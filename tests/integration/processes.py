"""Gateways as real OS processes (``medpay serve``) on a test's database, stopped by pid.

For the tests of several processes (issue 12, item 5): each process has its own pool,
its own resolver and dispatcher and its own memory; all they share is PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import msgspec

from medpay.db.embedded import free_port
from medpay.security.identity import DevelopmentIssuer
from medpay.settlement.adapters.config import ClearingConfig

MEDPAY = str(Path(sys.executable).with_name("medpay"))


class GatewayProcess:
    """One ``medpay serve`` of ours: its URL, its log, and a stop by its own pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [MEDPAY, "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    async def wait_healthy(self, deadline_s: float = 60.0) -> None:
        end = time.monotonic() + deadline_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < end:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"gateway exited at start:\n{self.log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway {self.url} did not become healthy:\n{self.log.read_text()}")

    def terminate(self) -> None:
        """SIGTERM: the graceful stop a supervisor asks for."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout_s: float) -> int:
        end = time.monotonic() + timeout_s
        while self.popen.poll() is None and time.monotonic() < end:  # noqa: ASYNC110 - a child has no event
            await asyncio.sleep(0.05)
        code = self.popen.poll()
        if code is None:
            raise TimeoutError(f"gateway pid {self.popen.pid} still running after {timeout_s} s")
        return code

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it will not go: always by its own pid."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def gateway_environment(
    folder: Path,
    database_url: str,
    clearing: ClearingConfig,
    issuer: DevelopmentIssuer,
    extra: Mapping[str, str] = {},
) -> dict[str, str]:
    """What a gateway process is configured with: the test's database, provinces, issuer."""
    clearing_file = folder / "clearing.json"
    clearing_file.write_bytes(msgspec.json.encode(clearing))
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MEDPAY_")}
    return {
        **inherited,
        "DATABASE_URL": database_url,
        "MEDPAY_DATA_DIR": str(folder / "data"),
        "MEDPAY_PERSON_KEY": os.environ["MEDPAY_PERSON_KEY"],
        "MEDPAY_CLEARING_CONFIG_FILE": str(clearing_file),
        "MEDPAY_IDENTITY_ISSUERS": json.dumps([msgspec.to_builtins(issuer.trusted())]),
        "MEDPAY_POOL_MIN_SIZE": "1",
        "MEDPAY_POOL_MAX_SIZE": "6",
        "MEDPAY_WORKER_INTERVAL_SECONDS": "0.2",
        **extra,
    }


@contextlib.asynccontextmanager
async def gateway_processes(
    count: int, env: dict[str, str], folder: Path
) -> AsyncIterator[list[GatewayProcess]]:
    """``count`` gateway processes on one database; each stopped by its pid, pass or fail."""
    started: list[GatewayProcess] = []
    try:
        for n in range(count):
            started.append(GatewayProcess(env, folder / f"gateway-{n}.log"))
        await asyncio.gather(*(p.wait_healthy() for p in started))
        yield started
    finally:
        for process in started:
            process.stop()
