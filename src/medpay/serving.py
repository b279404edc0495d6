"""Wait for SIGINT or SIGTERM, so that the caller's clean-up always runs.

uvicorn, left to itself, re-raises the signal it caught once it has shut down, which
ends the process before our ``finally`` blocks stop the embedded database. Servers
here install no handlers (see ``medpay.simulator.runner.start_server``); the
process that owns the loop owns the signals, through this function.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["wait_for_stop_signal"]


async def wait_for_stop_signal() -> None:
    """Return when the process is asked to stop (Ctrl-C, SIGTERM)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
