"""Run the simulator on its own (``medpay simulator``): migrate, seed, serve on loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.db.pool import connection, create_pool
from medpay.serving import start_server
from medpay.simulator.app import create_simulator_app
from medpay.simulator.seed import seed_sample_persons
from medpay.simulator.store import migrate

if TYPE_CHECKING:
    from medpay.simulator.config import SimulatorConfig

__all__ = ["serve_simulator"]


async def serve_simulator(
    config: SimulatorConfig, dsn: str, host: str = "127.0.0.1", port: int = 8700
) -> None:
    """Migrate, seed the sample persons and serve the simulator until cancelled.

    For the ``medpay simulator`` command: cancel the awaiting task (or deliver
    SIGINT to a loop that does so) to stop it; the server and pool are closed here.
    """
    pool = await create_pool(dsn, min_size=1, max_size=10)
    try:
        async with connection(pool) as conn:
            await migrate(conn)
        await seed_sample_persons(pool)
        server = await start_server(create_simulator_app(config, pool), host, port)
        try:
            await server.wait()
        finally:
            await server.stop()
    finally:
        await pool.close()
