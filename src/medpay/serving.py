"""Serve one or more ASGI apps in this process until SIGINT or SIGTERM.

uvicorn re-raises the signal it caught once it has shut down, which would end the
process before our ``finally`` blocks stop the embedded database. Here the signals
are ours: they ask every server to exit, and the caller's clean-up then runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["QuietSignalServer", "make_server", "serve_all"]


class QuietSignalServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve_all``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing; ``serve_all`` owns the signals."""
        yield


def make_server(app: Any, host: str, port: int, *, log_level: str = "warning") -> QuietSignalServer:
    """A server for ``app`` on ``host:port`` (loopback in development and tests)."""
    return QuietSignalServer(
        uvicorn.Config(
            app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on"
        )
    )


async def serve_all(*servers: QuietSignalServer) -> None:
    """Run ``servers`` until a signal or until one of them stops, then stop them all."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()
    finally:
        stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
