"""Headless Chromium for the console's browser tests: the distribution's, started and stopped by us.

No browser is downloaded: the ``chromium`` package of the machine's distribution is
found (``MEDPAY_CHROMIUM`` names another binary), or installed with apt when the tests
run as root (as CI does on a fresh machine). It is started here, headless, on a fresh
profile, with what keeps it off the network (no background or component updates, no
sync, no QUIC: a closed network refuses those connections and Chromium waits on them),
its DevTools on a loopback port; Playwright connects to that port. It is stopped by its
process group, which is its own pid, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["CHROMIUM_FLAGS", "find_or_install_chromium", "running_chromium"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
_NAMES = ("chromium", "chromium-browser")
_INSTALL_LOCK = Path(tempfile.gettempdir()) / "medpay-chromium-install.lock"


def _found() -> str | None:
    named = os.environ.get("MEDPAY_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def find_or_install_chromium() -> tuple[str | None, str]:
    """The path of Chromium, installing the distribution's package if need be and allowed.

    Returns the path, or None and why there is none (the reason a test is skipped).
    """
    path = _found()
    if path:
        return path, "found"
    if os.environ.get("MEDPAY_CHROMIUM"):
        return None, f"MEDPAY_CHROMIUM={os.environ['MEDPAY_CHROMIUM']} is not an executable"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "chromium is not installed (as root: apt-get install -y chromium)"
    with _INSTALL_LOCK.open("w") as lock:  # one installer at a time (xdist workers, other runs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _found():
            installed = _apt("install", "-y", "-q", "chromium")
            if installed.returncode != 0:  # a fresh machine has no package lists yet
                _apt("update", "-q")
                installed = _apt("install", "-y", "-q", "chromium")
            if installed.returncode != 0:
                return None, f"apt-get install chromium failed: {installed.stderr[-500:]}"
    path = _found()
    return (path, "installed") if path else (None, "chromium installed but not found on PATH")


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """The port Chromium chose, from the file it writes into its profile once it listens."""
    active = profile / "DevToolsActivePort"
    async with asyncio.timeout(60):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited at start with status {process.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active.read_text().split()[0])
            await asyncio.sleep(0.05)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to Chromium's process group (its pid), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            async with asyncio.timeout(grace):
                await process.wait()
            return
        except TimeoutError:
            continue


@contextlib.asynccontextmanager
async def running_chromium(path: str) -> AsyncIterator[str]:
    """Chromium headless on a fresh profile for the ``with`` block; yields its DevTools URL."""
    profile = Path(tempfile.mkdtemp(prefix="medpay-chromium-"))
    process = await asyncio.create_subprocess_exec(
        path,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group: renderers and zygotes stop with it
    )
    try:
        port = await _devtools_port(profile, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        await _stop(process)
        shutil.rmtree(profile, ignore_errors=True)
