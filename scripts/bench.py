"""Benchmark the gateway, not the client: pre-signed requests replayed by wrk (issue 9).

Bounded in time, loopback only. It starts the whole stack through ``harness.py``: an
embedded PostgreSQL with durable commits (and pg_stat_statements), the provincial
platform simulator and the gateway as child processes, a synthetic population of
``--persons`` insured persons over the 31 provinces. Every process it starts is
stopped by its pid at the end, pass or fail, and the temporary folder removed.

The client must not be what is measured, so no phase signs anything while it runs:
before each phase every request is signed (unique X-Nonce and Idempotency-Key each,
identity tokens minted once per person, headers from
``medpay.security.signatures.signature_headers``, exactly as the README describes),
written out as raw HTTP/1.1 in one slice per wrk thread, and replayed by wrk through
``bench.lua``, each request exactly once; a thread that runs out ends the phase.
Signatures are made just before a phase and phases are short (``--duration`` at
most 240 s), so every X-Timestamp stays inside the gateway's 300 s window.

Phases, on the same server program and worker count, in one run:

* ``ceiling``: wrk against a trivial responder (``bench_floor.py static``): what the
  load generator itself can do on this machine;
* ``floor``: a signed POST whose handler does one Ed25519 verification and one
  durable INSERT (``bench_floor.create_floor_app``, a benchmark-only app, never in
  the served one); everything else is reported as a ratio to it;
* ``health``: ``GET /health``;
* ``warm-up``: a few hundred payments of the mix, which also sizes the next phases;
* ``signed read``: ``GET /v1/payments/{id}`` of the warm-up's payments;
* ``payments``: the realistic mix of ``workload.py`` (online revisits, pharmacy
  purchases on prescriptions issued over HTTP beforehand, ~5 % estimates; persons of
  all 31 provinces, each used at most once or twice; a third treated outside their
  province), closed loop: the maximum rate;
* ``payments +100ms``: the same with the simulator adding 100 ms to every answer;
* ``constant 80%``: the mix paced at 80 % of the maximum settled rate, for latency.

For each: requests, throughput, p50/p95/p99/max latency (as wrk reports them),
errors by HTTP status and problem ``code``; for payment phases the settled rate, its
ratio to the floor, and what the database says afterwards (every payment of the
phase must be settled). Around the ``payments`` phase: transactions per settled
payment (``xact_commit`` of the database, gateway and simulator together, less the
idle background rate measured just before), statements per payment
(pg_stat_statements) and CPU milliseconds per payment of the gateway, the simulator
and PostgreSQL (from /proc). The gateway's resident memory (VmRSS of the server and
its workers) before and after.

``--soak SECONDS`` instead runs the payment mix for that long, in one-minute
segments signed just before each, and prints the gateway's memory every minute.

Rate limits (issue 12): the gateway counts every request in PostgreSQL, with limits
set far above what the run sends (the load comes from one address), so the counting
is measured and nothing is refused. ``--limits off`` serves without them; ``--limits
both`` measures their cost: after the warm-up, signed reads and payments with limits
on, then off, then on again (the gateway restarted between, A B A), each B compared
with the mean of its two A runs.

Exit status: 0 when no phase had an error and every payment settled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_floor import CREATE_FLOOR_TABLE, FLOOR_PATH
from harness import Process, System, descendants, limit_environment, wait_healthy
from workload import PaymentMix, Planned, new_key

from medpay.client import InstitutionSignatureAuth
from medpay.db.embedded import free_port
from medpay.institutions.keys import register_institution_key
from medpay.population import DISTRICTS, benchmark_institutions
from medpay.security.persons import psn_no_of
from medpay.security.signatures import signature_headers

SCRIPTS = Path(__file__).resolve().parent
LUA = SCRIPTS / "bench.lua"
BIN = Path(sys.executable).parent
WRK_TIMEOUT = "10s"  # a request slower than this counts as a wrk timeout error
SIGNATURE_WINDOW_S = 300
STATS_FLUSH_S = 11.0  # PostgreSQL flushes an idle backend's counters within 10 s
IDLE_SAMPLE_S = 5.0
PROVINCE_LATENCY_MS = 100
START = time.monotonic()


def log(message: str) -> None:
    print(f"bench +{time.monotonic() - START:6.1f}s  {message}", file=sys.stderr, flush=True)


# --- the load generator ---------------------------------------------------------------------


def find_wrk() -> str:
    """wrk on PATH; installed from the distribution when we are root; otherwise what to do."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found; installing it: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env, timeout=300
        )
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "bench: wrk (the HTTP load generator) is not installed and could not be installed here.\n"
        "  Debian/Ubuntu: sudo apt-get install wrk\n"
        "  Fedora: sudo dnf install wrk    macOS: brew install wrk\n"
        "  elsewhere: build it from its source (github: wg/wrk, `make`) and put it on PATH.\n"
        "It needs wrk 4.x built with LuaJIT (the distributions' packages are)."
    )


@dataclass
class Result:
    """One phase as wrk and the database saw it."""

    name: str
    requests: int
    seconds: float
    latency_ms: dict[str, float]
    statuses: dict[int, int]
    codes: dict[str, int]
    socket_errors: dict[str, int]
    exhausted: bool
    expected: tuple[int, ...]
    lag_ms: dict[str, int] = field(default_factory=dict)
    rate_target: float = 0.0
    database: dict[str, int] = field(default_factory=dict)  # payments of the phase by state
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def settled_rate(self) -> float:
        return self.statuses.get(201, 0) / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> dict[str, int]:
        found = {
            str(status): n for status, n in self.statuses.items() if status not in self.expected
        }
        found.update({k: v for k, v in self.socket_errors.items() if v})
        for state, n in self.database.items():
            if state != "settled":
                found[f"db:{state}"] = n
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "throughput": round(self.throughput, 1),
            "settled_per_s": round(self.settled_rate, 1),
            "latency_ms": self.latency_ms,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "problem_codes": self.codes,
            "exhausted": self.exhausted,
            "paced_rate": self.rate_target,
            "pacing_lag_ms": self.lag_ms,
            "database": self.database,
            "notes": self.notes,
        }


async def run_wrk(
    wrk: str,
    name: str,
    url: str,
    prefix: str,
    *,
    duration_s: float,
    connections: int,
    threads: int,
    expected: tuple[int, ...],
    rate: float = 0.0,
) -> Result:
    """Run wrk once with ``bench.lua``; stop it by its pid if it overruns."""
    seconds = max(1, round(duration_s))
    args = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    args += ["--timeout", WRK_TIMEOUT, "-s", str(LUA), url, "--", prefix, f"{rate:.3f}"]
    args += [str(threads)]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=seconds + 30)
    except TimeoutError:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            out, err = await asyncio.wait_for(process.communicate(), timeout=5)
        raise RuntimeError(f"wrk overran phase {name}") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    line = next((x for x in out.decode().splitlines() if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result for {name}:\n{out.decode()}\n{err.decode()}")
    data = json.loads(line.removeprefix("BENCH-RESULT "))
    latency = {k: round(v / 1000, 1) for k, v in data["latency_us"].items()}
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        latency_ms=latency,
        statuses={int(k): v for k, v in data["statuses"].items()},
        codes=data["codes"],
        socket_errors=data["socket_errors"],
        exhausted=data["exhausted"],
        expected=expected,
        lag_ms=data["lag_ms"] if rate else {},
        rate_target=rate,
    )


# --- pre-signed requests ---------------------------------------------------------------------


class Signer:
    """Signs requests the way the README says; identity tokens minted once per person."""

    def __init__(self, system: System, host: str, token_ttl_s: int) -> None:
        self.app_id = system.app.app_id
        self.private_pem = system.app.private_key_pem
        self.issuer = system.issuer
        self.host = host
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, str] = {}

    def token(self, psn_no: str) -> str:
        token = self.tokens.get(psn_no)
        if token is None:
            token = self.issuer.issue(psn_no, ttl_seconds=self.token_ttl_s)
            self.tokens[psn_no] = token
        return token

    def raw(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        psn_no: str | None = None,
        key: str | None = None,
    ) -> bytes:
        """One complete HTTP/1.1 request, signed now."""
        headers = signature_headers(
            app_id=self.app_id,
            private_pem=self.private_pem,
            method=method,
            path_with_query=path,
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(24),
        )
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if psn_no is not None:
            lines.append(f"Authorization: Bearer {self.token(psn_no)}")
        if key is not None:
            lines.append(f"Idempotency-Key: {key}")
        if method == "POST":
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def write_slices(folder: Path, name: str, requests: list[bytes], threads: int) -> str:
    """Write ``requests`` round robin into one file per wrk thread; return the prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / name
    files = [open(f"{prefix}.{n}", "wb") for n in range(threads)]
    try:
        for index, request in enumerate(requests):
            out = files[index % threads]
            out.write(f"{len(request)}\n".encode())
            out.write(request)
    finally:
        for file in files:
            file.close()
    return str(prefix)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# --- measuring the system ---------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (clock ticks to seconds)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def tree(pid: int | None) -> list[int]:
    return [] if pid is None else [pid, *(child for child, _ in descendants(pid))]


def memory(process: Process) -> dict[str, int]:
    rss = process.resident_kib()
    return {
        "total_kib": sum(rss.values()),
        "processes": len(rss),
        **{str(k): v for k, v in rss.items()},
    }


@dataclass
class Counters:
    """What PostgreSQL and /proc say at one moment."""

    at: float
    xact_commit: int
    xact_rollback: int
    statements: int
    cpu: dict[str, float]


class Bench:
    """The run: the stack, the mix, the phases."""

    def __init__(self, args: argparse.Namespace, wrk: str, system: System) -> None:
        self.args = args
        self.wrk = wrk
        self.system = system
        self.host = system.gateway_url.removeprefix("http://")
        self.threads = args.threads
        self.signer = Signer(system, self.host, token_ttl_s=int(args.deadline) + 600)
        self.mix = PaymentMix(system.population, benchmark_institutions(), seed=args.seed)
        self.folder = system.folder / "requests"
        self.prescribers: dict[str, InstitutionSignatureAuth] = {}
        self.results: list[Result] = []
        self.floor_rate = 0.0
        self.accounting: dict[str, Any] = {}
        self.memory_before: dict[str, int] = {}
        self.memory_after: dict[str, int] = {}
        self.limit_comparison: dict[str, dict[str, Any]] = {}

    # -- helpers ----------------------------------------------------------------------------

    async def phase(
        self,
        name: str,
        url: str,
        prefix: str,
        expected: tuple[int, ...],
        *,
        duration_s: float | None = None,
        rate: float = 0.0,
        record: bool = True,
    ) -> Result:
        log(
            f"phase {name}: {duration_s or self.args.duration:.0f} s"
            + (f" at {rate:.0f}/s" if rate else "")
        )
        result = await run_wrk(
            self.wrk,
            name,
            url,
            prefix,
            duration_s=duration_s or self.args.duration,
            connections=self.args.connections,
            threads=self.threads,
            expected=expected,
            rate=rate,
        )
        log(
            f"phase {name}: {result.requests} requests in {result.seconds:.1f} s = "
            f"{result.throughput:.1f}/s, p50 {result.latency_ms['p50']} ms, p99 "
            f"{result.latency_ms['p99']} ms, statuses {result.statuses}"
            + (" (requests ran out)" if result.exhausted else "")
        )
        if record:
            self.results.append(result)
        return result

    async def counters(self) -> Counters:
        row = await self.system.pool.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
        statements = await self.system.pool.fetchval(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        cpu = {
            "gateway": cpu_seconds(self.system.gateway.pids()),
            "simulator": cpu_seconds(self.system.simulator.pids()),
            "postgres": cpu_seconds(tree(self.system.server.pid)),
        }
        return Counters(time.monotonic(), row["xact_commit"], row["xact_rollback"], statements, cpu)

    async def payments_of(self, tag: str, wait_s: float = 15.0) -> dict[str, int]:
        """The phase's payments by state (and failure code), once none is still in progress."""
        pattern = f"bench-{tag}-%"
        end = time.monotonic() + wait_s
        while True:
            rows = await self.system.pool.fetch(
                "SELECT state, coalesce(failure_code, '') AS code, count(*) AS n FROM payments"
                " WHERE idempotency_key LIKE $1 GROUP BY 1, 2",
                pattern,
            )
            states = {
                (f"{r['state']}:{r['code']}" if r["code"] else r["state"]): r["n"] for r in rows
            }
            busy = sum(
                n
                for s, n in states.items()
                if s.split(":")[0] in ("received", "settling", "unknown")
            )
            if not busy or time.monotonic() > end:
                return states
            await asyncio.sleep(0.5)

    async def register_prescribers(self) -> None:
        codes = sorted(
            {i.institution_code for i in benchmark_institutions() if i.kind == "internet_hospital"}
        )
        for code in codes:
            private_pem, _ = await register_institution_key(self.system.pool, code)
            self.prescribers[code] = InstitutionSignatureAuth(code, private_pem)

    async def issue_prescriptions(self, planned: list[Planned]) -> dict[int, str]:
        """Prescriptions for the pharmacy purchases, issued over HTTP by their internet hospitals."""
        wanted = [(n, p) for n, p in enumerate(planned) if p.kind == "pharmacy"]
        issued: dict[int, str] = {}
        gate = asyncio.Semaphore(16)
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            base_url=self.system.gateway_url, timeout=30, limits=limits
        ) as http:

            async def one(index: int, plan: Planned) -> None:
                assert plan.prescriber is not None
                async with gate:
                    response = await http.post(
                        "/v1/prescriptions",
                        json=plan.prescription,
                        headers={"Idempotency-Key": new_key("bench-rx")},
                        auth=self.prescribers[plan.prescriber],
                    )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"could not issue a prescription: {response.status_code} {response.text}"
                    )
                issued[index] = response.json()["prescription_id"]

            await asyncio.gather(*(one(n, p) for n, p in wanted))
        return issued

    def plan_payments(self, count: int) -> list[Planned]:
        return [self.mix.next() for _ in range(count)]

    def sign_payments(
        self, tag: str, planned: list[Planned], prescriptions: dict[int, str]
    ) -> list[bytes]:
        requests = []
        for index, plan in enumerate(planned):
            order = (
                plan.with_prescription(prescriptions[index])
                if plan.kind == "pharmacy"
                else plan.order
            )
            key = f"bench-{tag}-{index:07d}-{secrets.token_hex(4)}"
            requests.append(
                self.signer.raw(
                    "POST", plan.path, body=encode(order), psn_no=plan.person.psn_no, key=key
                )
            )
        return requests

    async def payment_phase(
        self,
        name: str,
        tag: str,
        count: int,
        *,
        duration_s: float | None = None,
        rate: float = 0.0,
        account: bool = False,
        record: bool = True,
    ) -> Result:
        planned = self.plan_payments(count)
        prescriptions = await self.issue_prescriptions(planned)
        before = idle = None
        if account:
            log(
                f"waiting {STATS_FLUSH_S + IDLE_SAMPLE_S:.0f} s for PostgreSQL's counters to settle (idle rate)"
            )
            await asyncio.sleep(STATS_FLUSH_S)
            idle = await self.counters()
        started = time.time()
        requests = self.sign_payments(tag, planned, prescriptions)
        prefix = write_slices(self.folder, tag, requests, self.threads)
        if account:
            await asyncio.sleep(max(0.0, IDLE_SAMPLE_S - (time.time() - started)))
            before = await self.counters()
            # Statement counts are kept in shared memory at once: start them afresh here.
            await self.system.pool.execute("SELECT pg_stat_statements_reset()")
        log(
            f"{len(requests)} payment requests signed in {time.time() - started:.1f} s ({sum(p.cross_province for p in planned)} cross-provincial)"
        )
        profilers = self.start_profilers(tag, duration_s or self.args.duration) if account else []
        try:
            result = await self.phase(
                name,
                self.system.gateway_url + "/",
                prefix,
                (200, 201),
                duration_s=duration_s,
                rate=rate,
                record=record,
            )
        finally:
            for profiler in profilers:  # py-spy writes its file when its --duration is over
                assert profiler.popen is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(profiler.popen.wait, 30)
                profiler.stop()
        result.database = await self.payments_of(tag)
        resolved = await self.system.pool.fetchval(
            "SELECT count(*) FROM payments WHERE idempotency_key LIKE $1 AND check_attempts > 0",
            f"bench-{tag}-%",
        )
        if resolved:
            result.notes.append(
                f"{resolved} payment(s) needed the resolver (outcome first unknown)"
            )
        kinds = {
            k: sum(p.kind == k for p in planned[: result.requests])
            for k in ("revisit", "pharmacy", "estimate")
        }
        result.notes.append(f"mix sent (approx.): {kinds}")
        if account and idle is not None and before is not None:
            await self.account(result, idle, before)
        return result

    def start_profilers(self, tag: str, duration_s: float) -> list[Process]:
        """py-spy on the gateway and the simulator for the phase (``--profile DIR``)."""
        if not self.args.profile:
            return []
        py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
        if not Path(py_spy).exists():
            raise SystemExit("bench: --profile needs py-spy (pip install py-spy)")
        folder = Path(self.args.profile).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        started = []
        for name, target in (
            ("gateway", self.system.gateway),
            ("simulator", self.system.simulator),
        ):
            assert target.pid is not None
            # Collapsed stacks: flamegraph.pl and speedscope read them.
            command = [py_spy, "record", "--pid", str(target.pid), "--subprocesses"]
            command += ["--nonblocking", "--duration", str(round(duration_s)), "--rate", "200"]
            command += ["--format", "raw", "--output", str(folder / f"{tag}-{name}.collapsed.txt")]
            profiler = Process(f"py-spy {name}", command, dict(os.environ), folder / "py-spy.log")
            self.system.processes.append(profiler)
            profiler.start()
            started.append(profiler)
        log(f"py-spy is recording the gateway and the simulator into {folder}")
        return started

    async def account(self, result: Result, idle: Counters, before: Counters) -> None:
        """Transactions, statements and CPU per settled payment over the phase."""
        ended = time.monotonic()
        await asyncio.sleep(STATS_FLUSH_S)
        after = await self.counters()
        top = await self.system.pool.fetch(
            "SELECT calls, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY calls DESC LIMIT 40"
        )
        settled = result.database.get("settled", 0)
        idle_seconds = before.at - idle.at
        idle_xact_rate = (
            (before.xact_commit - idle.xact_commit) / idle_seconds if idle_seconds else 0.0
        )
        idle_statement_rate = (
            (before.statements - idle.statements) / idle_seconds if idle_seconds else 0.0
        )
        busy_seconds = after.at - before.at
        xacts = after.xact_commit - before.xact_commit
        statements = after.statements  # counted from the reset at ``before``
        background_xacts = idle_xact_rate * busy_seconds
        background_statements = idle_statement_rate * busy_seconds
        per = max(settled, 1)
        self.accounting = {
            "settled_payments": settled,
            "requests_answered": result.requests,
            "xact_commit": xacts,
            "xact_rollback": after.xact_rollback - before.xact_rollback,
            "background_xact_per_s": round(idle_xact_rate, 2),
            "xact_per_payment": round((xacts - background_xacts) / per, 2),
            "xact_per_payment_raw": round(xacts / per, 2),
            "statements": statements,
            "statements_per_payment": round((statements - background_statements) / per, 2),
            "cpu_ms_per_payment": {
                k: round((after.cpu[k] - before.cpu[k]) * 1000 / per, 2) for k in after.cpu
            },
            "window_s": round(busy_seconds, 1),
            "phase_ended_s_before_reading": round(after.at - ended, 1),
            "top_statements": [
                {
                    "calls_per_payment": round(r["calls"] / per, 2),
                    "query": " ".join(r["query"].split())[:160],
                }
                for r in top
            ],
        }

    # -- the phases -------------------------------------------------------------------------

    async def ceiling(self) -> None:
        port = free_port()
        responder = Process(
            "static",
            [sys.executable, str(SCRIPTS / "bench_floor.py"), "static", str(port)],
            dict(os.environ),
            self.system.folder / "static.log",
        )
        self.system.processes.append(responder)
        responder.start()
        await wait_healthy(f"http://127.0.0.1:{port}")
        await self.phase(
            "ceiling (wrk vs static)",
            f"http://127.0.0.1:{port}/",
            "-",
            (200,),
            duration_s=min(10.0, self.args.duration),
        )
        responder.stop()

    async def floor(self) -> None:
        await self.system.pool.execute(CREATE_FLOOR_TABLE)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.system.dsn,
            "BENCH_FLOOR_PUBLIC_KEY": self.system.app.public_key_pem,
            "MEDPAY_POOL_MAX_SIZE": str(self.args.pool_size),
            "PYTHONPATH": os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]),
        }
        command = server_command(
            self.args.server, self.args.workers, "bench_floor:create_floor_app", str(port)
        )
        server = Process("floor", command, env, self.system.folder / "floor.log")
        self.system.processes.append(server)
        server.start()
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        host = url.removeprefix("http://")
        body = encode(self.mix.next().order)

        def sign(count: int) -> list[bytes]:
            signer = Signer(self.system, host, 60)
            return [signer.raw("POST", FLOOR_PATH, body=body) for _ in range(count)]

        probe = await self.phase(
            "floor probe",
            url + "/",
            write_slices(self.folder, "floor-probe", sign(6000), self.threads),
            (201,),
            duration_s=3,
            record=False,
        )
        budget = int(
            min(400_000, probe.throughput * self.args.duration * 1.3 + 4 * self.args.connections)
        )
        started = time.time()
        prefix = write_slices(self.folder, "floor", sign(budget), self.threads)
        log(f"{budget} floor requests signed in {time.time() - started:.1f} s")
        result = await self.phase("floor (verify + insert)", url + "/", prefix, (201,))
        self.floor_rate = result.throughput
        server.stop()

    async def health(self) -> None:
        await self.phase("GET /health", self.system.gateway_url + "/health", "-", (200,))

    async def warm_up(self) -> float:
        result = await self.payment_phase(
            "warm-up (payments)",
            "warm",
            self.args.warm_up,
            duration_s=min(10.0, self.args.duration),
            record=False,
        )
        self.results.append(result)
        return result.settled_rate

    async def signed_read(self, name: str = "signed read", rate_hint: float = 200) -> None:
        rows = await self.system.pool.fetch(
            "SELECT payment_id, psn_no, person_sealed FROM payments"
            " WHERE idempotency_key LIKE 'bench-warm-%' AND state = 'settled'"
        )
        numbers = {row["payment_id"]: psn_no_of(row) for row in rows}  # kept sealed at rest
        if not rows:
            raise RuntimeError("no settled payment to read")
        budget = int(min(200_000, max(self.floor_rate, rate_hint) * self.args.duration * 1.2))
        started = time.time()
        requests = [
            self.signer.raw(
                "GET",
                f"/v1/payments/{rows[n % len(rows)]['payment_id']}",
                psn_no=numbers[rows[n % len(rows)]["payment_id"]],
            )
            for n in range(budget)
        ]
        prefix = write_slices(self.folder, "read", requests, self.threads)
        log(f"{budget} signed reads signed in {time.time() - started:.1f} s")
        await self.phase(name, self.system.gateway_url + "/", prefix, (200,))

    async def set_province_latency(self, latency_ms: int) -> None:
        """Every province of the simulator answers ``latency_ms`` later (its fault knob)."""
        async with httpx.AsyncClient(base_url=self.system.simulator_url, timeout=10) as http:
            for province in DISTRICTS:
                response = await http.put(
                    f"/admin/provinces/{province}/faults", json={"latency_ms": latency_ms}
                )
                response.raise_for_status()
                check = await http.get(f"/admin/provinces/{province}/faults")
                if check.json()["latency_ms"] != latency_ms:
                    raise RuntimeError(f"the simulator did not take latency_ms for {province}")

    def budget(self, rate: float, duration_s: float, slack: float) -> int:
        return int(max(200, rate * duration_s * slack) + 2 * self.args.connections)

    async def payments(self, warm_rate: float) -> Result:
        result = await self.payment_phase(
            "payments (mix)", "pay", self.budget(warm_rate, self.args.duration, 1.6), account=True
        )
        return result

    async def slow_province(self, max_rate: float) -> None:
        await self.set_province_latency(PROVINCE_LATENCY_MS)
        try:
            await self.payment_phase(
                f"payments, province +{PROVINCE_LATENCY_MS}ms",
                "slow",
                self.budget(max_rate, self.args.duration, 1.4),
            )
        finally:
            await self.set_province_latency(0)

    async def constant_rate(self, max_rate: float) -> None:
        """The mix at 80 % of the request rate the closed-loop payments phase reached."""
        rate = max(1.0, 0.8 * max_rate)
        result = await self.payment_phase(
            "constant 80% (paced)",
            "paced",
            int(rate * self.args.duration * 1.05) + self.args.connections,
            rate=rate,
        )
        result.notes.append(f"paced at {rate:.1f} req/s = 80 % of {max_rate:.1f} req/s")

    async def soak(self, warm_rate: float) -> None:
        segments = max(1, round(self.args.soak / 60))
        rate = warm_rate
        for segment in range(segments):
            result = await self.payment_phase(
                f"soak minute {segment + 1}",
                f"soak{segment}",
                self.budget(rate, 60, 1.5),
                duration_s=60,
            )
            rate = max(rate, result.settled_rate)
            rss = memory(self.system.gateway)
            log(
                f"soak minute {segment + 1}: gateway VmRSS {rss['total_kib'] / 1024:.1f} MiB over {rss['processes']} processes"
            )
            result.notes.append(f"gateway VmRSS {rss['total_kib']} KiB")

    async def restart_gateway(self, limits: bool) -> None:
        """Serve again with the rate limits on or off (the same program and workers)."""
        gateway = self.system.gateway
        gateway.stop()
        gateway.env.update(limit_environment(limits))
        gateway.start()
        await wait_healthy(self.system.gateway_url)

    async def limits_compared(self, warm_rate: float) -> None:
        """Signed reads and payments with limits on and off in turn (A B A ..., ``--limit-rounds``).

        Each phase is compared with the median of its kind: on this shared machine the
        load of other work drifts during a run, and alternating spreads the drift over both.
        """
        order = [True, False] * self.args.limit_rounds + [True]
        kept: dict[tuple[str, bool], list[Result]] = {}
        for n, limits in enumerate(order):
            if n:
                await self.restart_gateway(limits)
            label = f"limits {'on' if limits else 'off'} #{n // 2 + 1}"
            await self.signed_read(f"signed read, {label}", rate_hint=1500)
            kept.setdefault(("signed read", limits), []).append(self.results[-1])
            result = await self.payment_phase(
                f"payments (mix), {label}",
                f"lim{n}",
                self.budget(max(warm_rate, 100), self.args.duration, 2.0),
            )
            kept.setdefault(("payments", limits), []).append(result)
        for kind in ("signed read", "payments"):
            on, off = kept[(kind, True)], kept[(kind, False)]
            rate_on = statistics.median(r.throughput for r in on)
            rate_off = statistics.median(r.throughput for r in off)
            p99_on = statistics.median(r.latency_ms.get("p99", 0.0) for r in on)
            p99_off = statistics.median(r.latency_ms.get("p99", 0.0) for r in off)
            self.limit_comparison[kind] = {
                "on_per_s": round(rate_on, 1),
                "off_per_s": round(rate_off, 1),
                "on_vs_off": round(rate_on / rate_off, 3) if rate_off else None,
                "p99_on_ms": p99_on,
                "p99_off_ms": p99_off,
            }
            log(
                f"{kind}: limits on {rate_on:.1f}/s (p99 {p99_on:.1f} ms), off {rate_off:.1f}/s "
                f"(p99 {p99_off:.1f} ms): on/off {rate_on / rate_off if rate_off else 0:.3f} "
                f"(medians of {len(on)} and {len(off)} phases)"
            )

    async def run(self) -> None:
        await self.register_prescribers()
        self.memory_before = memory(self.system.gateway)
        if self.args.limits == "both":
            warm = await self.warm_up()
            await self.limits_compared(warm)
        elif self.args.soak:
            warm = await self.warm_up()
            await self.soak(warm)
        else:
            await self.ceiling()
            await self.floor()
            await self.health()
            warm = await self.warm_up()
            await self.signed_read()
            paid = await self.payments(warm)
            await self.slow_province(max(paid.throughput, warm))
            await self.constant_rate(paid.throughput or warm)
        self.memory_after = memory(self.system.gateway)


def server_command(server: str, workers: int, target: str, port: str) -> list[str]:
    """How the gateway (and the floor) are served: the production server programs."""
    if server == "granian":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        return [
            str(BIN / "granian"),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--workers",
            str(workers),
            "--http",
            "1",
            "--no-ws",
            "--loop",
            loop,
            "--log-level",
            "warning",
            "--no-access-log",
            target,
        ]
    command = [
        str(BIN / "uvicorn"),
        "--factory",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "3",
    ]
    if importlib.util.find_spec("httptools"):
        command += ["--http", "httptools"]
    if importlib.util.find_spec("uvloop"):
        command += ["--loop", "uvloop"]
    return command


# --- the report -------------------------------------------------------------------------------


def report(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    floor = bench.floor_rate
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "server": args.server,
        "workers": args.workers,
        "connections": args.connections,
        "wrk_threads": bench.threads,
        "persons": args.persons,
        "duration_s": args.duration,
        "floor_per_s": round(floor, 1),
        "rate_limits": bench.limit_comparison or None,
        "phases": [
            {
                **r.summary(),
                "settled_vs_floor": round(r.settled_rate / floor, 3)
                if floor and r.statuses.get(201)
                else None,
            }
            for r in bench.results
        ],
        "accounting": bench.accounting,
        "gateway_rss_kib": {"before": bench.memory_before, "after": bench.memory_after},
    }


def log_errors(system: System) -> dict[str, int]:
    """Tracebacks and ERROR lines in the servers' logs: a benchmark that hides failures lies.

    A request in flight when wrk ends a phase is cut off; the gateway logs that as an
    unexpected error ("client disconnected prematurely"). Those are counted apart.
    """
    found = {}
    for name in ("gateway", "simulator", "floor"):
        path = system.folder / f"{name}.log"
        if path.exists():
            text = path.read_text(errors="replace")
            cut_off = text.count(
                "InternalServerException: 500: client disconnected prematurely"
            ) + text.count("client disconnected before its request arrived")
            found[name] = text.count("Traceback") - cut_off
            if cut_off:
                found[f"{name}: requests cut off at phase ends"] = cut_off
    return found


def print_table(summary: dict[str, Any], out: Any) -> None:
    floor = summary["floor_per_s"]

    def p(text: str = "") -> None:
        print(text, file=out)

    p(
        f"medpay bench: {summary['server']} x{summary['workers']} worker(s), nproc {summary['nproc']}, "
        f"{summary['connections']} connections, wrk {summary['wrk_threads']} threads, {summary['persons']} persons, "
        f"loopback, durable commits"
    )
    p(
        f"{'phase':<30}{'requests':>9}{'req/s':>9}{'settled/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'vs floor':>9}  errors"
    )
    for phase in summary["phases"]:
        lat = phase["latency_ms"]
        ratio = phase["settled_vs_floor"]
        if ratio is None and floor and phase["phase"] not in ("ceiling (wrk vs static)",):
            ratio = phase["throughput"] / floor
        settled = (
            f"{phase['settled_per_s']:.1f}"
            if phase["statuses"].get("201") and "floor" not in phase["phase"]
            else ""
        )
        errors = ", ".join(f"{k}: {v}" for k, v in phase["errors"].items()) or "none"
        p(
            f"{phase['phase']:<30}{phase['requests']:>9}{phase['throughput']:>9.1f}{settled:>10}{lat['p50']:>9.1f}"
            f"{lat['p95']:>9.1f}{lat['p99']:>9.1f}{lat['max']:>9.1f}{(f'{ratio:.3f}' if ratio is not None else ''):>9}  {errors}"
        )
        if phase["problem_codes"]:
            p(f"{'':<30}problem codes: {phase['problem_codes']}")
        if phase["pacing_lag_ms"]:
            lag = phase["pacing_lag_ms"]
            p(
                f"{'':<30}pacing: target {phase['paced_rate']:.1f} req/s; send lag behind schedule p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"
            )
        if phase["exhausted"]:
            p(
                f"{'':<30}(its pre-signed requests ran out after {phase['seconds']:.1f} s; the rate is over that time)"
            )
        if phase["database"]:
            p(f"{'':<30}database afterwards: {phase['database']}")
        for note in phase["notes"]:
            if "resolver" in note or "VmRSS" in note:
                p(f"{'':<30}{note}")
    accounting = summary["accounting"]
    if accounting:
        p()
        p(
            f"per settled payment (payments phase, {accounting['settled_payments']} settled; gateway + simulator, one database): "
            f"{accounting['xact_per_payment']} transactions (xact_commit; {accounting['xact_per_payment_raw']} before subtracting "
            f"{accounting['background_xact_per_s']}/s of idle background work), {accounting['statements_per_payment']} statements "
            f"(pg_stat_statements, BEGIN/COMMIT included), CPU ms {accounting['cpu_ms_per_payment']}"
        )
        p("statements per payment, most frequent first:")
        for statement in accounting["top_statements"][:20]:
            p(f"  {statement['calls_per_payment']:>6.2f}  {statement['query']}")
    if any(v for k, v in summary.get("server_log_errors", {}).items() if ":" not in k):
        p(
            f"errors in the servers' logs (run with --keep to read them): {summary['server_log_errors']}"
        )
    rss = summary["gateway_rss_kib"]
    if rss["before"]:
        p()
        p(
            f"gateway VmRSS: before {rss['before']['total_kib'] / 1024:.1f} MiB, after {rss['after'].get('total_kib', 0) / 1024:.1f} MiB "
            f"({rss['after'].get('processes', 0)} processes)"
        )


async def main(args: argparse.Namespace) -> int:
    wrk = find_wrk()
    log(
        f"wrk: {wrk}; starting PostgreSQL, the simulator and the gateway ({args.server} x{args.workers})"
    )
    # Several workers share their metrics through files (prometheus_client's multiprocess mode).
    metrics_dir = tempfile.mkdtemp(prefix="medpay-bench-metrics-")
    system = await System.start(
        read_timeout_s=10.0,
        gateway_env={
            "MEDPAY_POOL_MAX_SIZE": str(args.pool_size),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            **limit_environment(args.limits != "off"),
        },
        gateway_args=server_command(
            args.server, args.workers, "medpay.asgi:create_app_from_environment", "PORT"
        ),
        keep=args.keep,
        persons=args.persons,
        population_seed=args.seed,
        stat_statements=True,
    )
    try:
        log(
            f"stack up: gateway {system.gateway_url}, simulator {system.simulator_url}, {args.persons} persons seeded"
        )
        bench = Bench(args, wrk, system)
        await bench.run()
        summary = report(bench, args)
        summary["server_log_errors"] = log_errors(system)
        if args.metrics:
            async with httpx.AsyncClient(timeout=10) as http:
                scraped = await http.get(f"{system.gateway_url}/metrics")
            args.metrics.write_text(scraped.text)
            log(f"/metrics after the run: {args.metrics}")
        print_table(summary, sys.stderr if args.json else sys.stdout)
        if args.json:
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        failed = any(p["errors"] for p in summary["phases"])
        return 1 if failed else 0
    finally:
        await system.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway (and floor) worker processes"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per phase (at most 240)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--metrics", type=Path, default=None, help="write the gateway's /metrics here at the end"
    )
    parser.add_argument(
        "--threads", type=int, default=min(os.cpu_count() or 2, 4), help="wrk threads"
    )
    parser.add_argument("--persons", type=int, default=20_000, help="synthetic insured persons")
    parser.add_argument("--seed", type=int, default=1, help="population and mix seed (0-999)")
    parser.add_argument("--warm-up", type=int, default=600, help="payments in the warm-up phase")
    parser.add_argument("--pool-size", type=int, default=20, help="database pool per worker")
    parser.add_argument(
        "--soak", type=float, default=0.0, help="seconds of payment mix instead of the phases"
    )
    parser.add_argument(
        "--limits",
        choices=["on", "off", "both"],
        default="on",
        help="rate limits counted (never reached) or off; both: reads and payments A B A",
    )
    parser.add_argument(
        "--limit-rounds", type=int, default=1, help="with --limits both: off phases (A B A = 1)"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the gateway and simulator in the payments phase"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON summary (the table goes to stderr)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder and its logs"
    )
    args = parser.parse_args()
    if not 1 <= args.duration <= 240:
        parser.error("--duration must be 1 to 240 s: signatures must stay within the 300 s window")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    args.deadline = (args.soak * 1.3 + 400) if args.soak else (12 * args.duration + 420)
    try:
        return asyncio.run(asyncio.wait_for(main(args), timeout=args.deadline))
    except TimeoutError:
        print(f"bench: the run overran its deadline of {args.deadline:.0f} s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
