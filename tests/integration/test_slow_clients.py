"""Slow and greedy clients at the server (issue 12, item 1): headers have a deadline and a size.

uvicorn alone would keep a connection whose headers trickle in forever; ``serving``
closes it once ``header_read_s`` has passed, and answers headers over
``max_header_bytes`` with a 431 (h11's own limit bounds only incomplete headers).
"""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar, get

from medpay import serving
from medpay.serving import start_server


@get("/ping")
async def ping() -> str:
    return "pong"


APP = Litestar(route_handlers=[ping])


@pytest.fixture(autouse=True, params=["httptools", "h11"])
def protocol(request, monkeypatch) -> str:
    """Both of uvicorn's HTTP/1 protocols get the limits (httptools is the one served)."""
    monkeypatch.setattr(serving, "_HTTP", request.param)
    return request.param


async def _exchange(port: int, data: bytes, wait_s: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=wait_s)
    finally:
        writer.close()


async def test_headers_that_trickle_in_are_cut_off_at_the_deadline() -> None:
    async with await start_server(APP, header_read_s=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: medpay\r\n")  # and never the blank line
        await writer.drain()
        closed_by_server = await asyncio.wait_for(reader.read(), timeout=3)
        writer.close()
    assert closed_by_server == b""  # EOF: nothing was answered, the connection is gone


async def test_a_connection_that_sends_nothing_is_closed() -> None:
    async with await start_server(APP, header_read_s=0.3) as server:
        assert await _exchange(server.port, b"", wait_s=3) == b""


async def test_headers_in_time_are_answered_and_the_connection_kept() -> None:
    async with await start_server(APP, header_read_s=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(2):  # the deadline starts again after each answer
            writer.write(b"GET /ping HTTP/1.1\r\nHost: medpay\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3)
            assert head.startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(4) == b"pong"
            await asyncio.sleep(0.1)
        writer.close()


@pytest.mark.parametrize("size", [17_000, 100_000])
async def test_oversized_headers_are_refused(size: int) -> None:
    async with await start_server(APP, max_header_bytes=16 * 1024) as server:
        request = b"GET /ping HTTP/1.1\r\nHost: medpay\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
        answer = await _exchange(server.port, request, wait_s=3)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"request_headers_too_large" in answer


async def test_headers_just_under_the_limit_are_served() -> None:
    async with await start_server(APP, max_header_bytes=16 * 1024) as server:
        request = b"GET /ping HTTP/1.1\r\nHost: medpay\r\nX-Big: " + b"a" * 15_000 + b"\r\n"
        request += b"Connection: close\r\n\r\n"
        answer = await _exchange(server.port, request, wait_s=3)
    assert answer.startswith(b"HTTP/1.1 200")
