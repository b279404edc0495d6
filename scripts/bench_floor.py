"""What the benchmark measures the gateway against; never part of the served app.

* ``create_floor_app`` (an ASGI factory, served by the same server program with the
  same worker count on the same database as the gateway): ``POST /floor`` checks the
  app's Ed25519 signature over the README's canonical request and records the nonce
  with one durable INSERT, i.e. the least a signed payment request can cost. A
  settled payment is reported as a ratio to its throughput (issue 9).
* ``python scripts/bench_floor.py static PORT``: a trivial HTTP responder (asyncio,
  uvloop when installed, no HTTP framework) that answers every request with a fixed
  200, for the load generator's own ceiling on this machine.

Both listen on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response, get, post

from medpay.db.pool import create_pool
from medpay.security.signatures import canonical_request, load_public_key, verify_signature

FLOOR_PATH = "/floor"
CREATE_FLOOR_TABLE = """
CREATE SCHEMA IF NOT EXISTS bench_floor;
CREATE TABLE IF NOT EXISTS bench_floor.nonces (
    app_id  text NOT NULL,
    nonce   text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, nonce)
);
"""
_INSERT_NONCE = "INSERT INTO bench_floor.nonces (app_id, nonce) VALUES ($1, $2)"
_ACCEPTED = b'{"accepted":true}'
_REFUSED = b'{"code":"signature_invalid","status":401}'


def create_floor_app() -> Litestar:
    """The floor app, from DATABASE_URL, BENCH_FLOOR_PUBLIC_KEY and MEDPAY_POOL_MAX_SIZE."""
    dsn = os.environ["DATABASE_URL"]
    public_key = load_public_key(os.environ["BENCH_FLOOR_PUBLIC_KEY"], "ed25519")
    pool_max = int(os.environ.get("MEDPAY_POOL_MAX_SIZE", "20"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await create_pool(dsn, min_size=2, max_size=pool_max)
        try:
            yield
        finally:
            await app.state.pool.close()

    @post(FLOOR_PATH, status_code=201)
    async def floor(request: Request) -> Response[bytes]:
        headers = request.headers
        body = await request.body()
        message = canonical_request(
            "POST", FLOOR_PATH, headers.get("x-timestamp", ""), headers.get("x-nonce", ""), body
        )
        if not verify_signature(public_key, headers.get("x-signature", ""), message):
            return Response(_REFUSED, status_code=401, media_type="application/problem+json")
        await request.app.state.pool.execute(_INSERT_NONCE, headers["x-app-id"], headers["x-nonce"])
        return Response(_ACCEPTED, status_code=201, media_type="application/json")

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[floor, health], lifespan=[lifespan], debug=False)


_STATIC_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class _Static(asyncio.Protocol):
    """Answers each request (a header block ending in a blank line) with the same 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transports are not asyncio.Transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        complete = self.pending.count(b"\r\n\r\n")
        if complete:
            self.transport.write(_STATIC_ANSWER * complete)
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4 :]


async def serve_static(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Static, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] != "static":
        print("usage: bench_floor.py static PORT", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve_static(int(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
