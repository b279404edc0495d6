"""Serve ASGI apps in-process on loopback, and stop them, and ourselves, cleanly.

``medpay run``, the scripts and the integration tests start the gateway and the
simulator side by side in one event loop: :func:`start_server` binds the socket
itself (port 0 gives a free port with no race), serves in a task and returns a
handle whose ``stop()`` shuts the server down within a bound.

uvicorn, left to itself, re-raises the signal it caught once it has shut down, which
ends the process before our ``finally`` blocks stop the embedded database. These
servers install no signal handlers: the process that owns the loop owns the
signals, through :func:`wait_for_stop_signal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import signal
import socket
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterator
    from types import TracebackType

__all__ = [
    "RunningServer",
    "ServerStartError",
    "serve_forever",
    "start_server",
    "wait_for_stop_signal",
]

T = TypeVar("T")


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


class ServerStartError(RuntimeError):
    """The server did not start (its lifespan failed, or it exited at once)."""


class _InProcessServer(uvicorn.Server):
    """uvicorn without its signal handlers, with a startup failure as an exception, and quick to stop.

    uvicorn polls for its exit flag every 0.1 s and waits on fixed 0.1 s sleeps while
    shutting down: 0.3 s a stop, which the test suite pays twice per test. Here the
    main loop wakes on :meth:`request_exit` and the shutdown polls at 10 ms; what is
    waited for is unchanged (connections closed, tasks done, the lifespan's shutdown).
    """

    _POLL_S = 0.01

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    def request_exit(self) -> None:
        """Stop accepting and shut down (what ``should_exit`` does, without the wait)."""
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        """Run until asked to exit; refresh the Date header once a second meanwhile."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # on_tick's once-a-second work runs every call
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Shut down as uvicorn does, polling at 10 ms instead of 100 ms."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn's state offers nothing to wait on; poll it, briefly.
                while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(self._POLL_S)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: the loop's owner handles signals."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start; uvicorn calls ``sys.exit`` when the lifespan fails, which a task must not."""
        try:
            await super().startup(sockets=sockets)
        except SystemExit as exc:
            raise ServerStartError("the application's startup failed") from exc


class _HeaderLimits:
    """A deadline and a size for each request's headers, mixed into uvicorn's protocols.

    uvicorn has no header deadline: a client may open connections and send a byte of
    headers now and then, holding each forever (slowloris); its keep-alive timer only
    runs between answers and stops at the first byte. Here a request's headers must be
    complete within ``header_read_s`` of the connection opening or of the previous
    answer; otherwise the connection is closed (no request was read, so none is lost).
    And headers over ``max_header_bytes`` are answered 431: h11's own limit bounds only
    what is buffered while incomplete (headers that arrive whole in one read pass it at
    any size), httptools has none to set.

    Both of uvicorn's protocols (h11, httptools) keep the request being answered in
    ``cycle``, made once its headers are in: no cycle, or a finished one, means the
    next request's headers are still awaited.
    """

    header_read_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    _header_deadline: asyncio.TimerHandle | None = None
    _head: bytearray | None = None
    # Provided by uvicorn's protocol classes:
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the first request's header deadline with the connection."""
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        """Refuse a request whose line and headers pass ``max_header_bytes`` (431)."""
        if self._head is not None:
            self._head += data[: self.max_header_bytes + 4]
            end = self._head.find(b"\r\n\r\n")
            if end > self.max_header_bytes or (end < 0 and len(self._head) > self.max_header_bytes):
                self._refuse_headers()
                return
            if end >= 0:
                self._head = None  # this request's headers are in: stop looking
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        """The next request on this connection gets its own deadline."""
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_deadline(self) -> None:
        self._head = bytearray()
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_read_s, self._headers_late)

    def _headers_late(self) -> None:
        awaiting = self.cycle is None or self.cycle.response_complete
        if awaiting and not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        body = (
            b'{"type":"urn:medpay:problem:request_headers_too_large",'
            b'"title":"The request headers are too large","status":431,'
            b'"code":"request_headers_too_large"}'
        )
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def _protocol(http: str, header_read_s: float, max_header_bytes: int) -> type:
    """Uvicorn's protocol ``http`` (``h11`` or ``httptools``) with the header limits."""
    base: type
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    limits = {"header_read_s": header_read_s, "max_header_bytes": max_header_bytes}
    return type(f"{base.__name__}WithHeaderLimits", (_HeaderLimits, base), limits)


class RunningServer:
    """A server started by :func:`start_server`; ``await stop()`` (or ``async with``) ends it."""

    def __init__(
        self, server: _InProcessServer, task: asyncio.Task[None], host: str, port: int
    ) -> None:
        self._server = server
        self._task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8700``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def wait(self) -> None:
        """Wait until the server ends; cancelling the waiter leaves the server running."""
        await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop accepting, finish or cancel requests in flight (bounded), run the shutdown."""
        self._server.request_exit()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


#: uvicorn's C parser when it is installed (it is a dependency), else its pure-Python one.
_HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"


def serve_forever(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when installed (the servers' loop), else on asyncio's own."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def start_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    graceful_shutdown_s: int = 2,
    allow_non_loopback: bool = False,
    keep_alive_s: int = 5,
    header_read_s: float = 10.0,
    max_header_bytes: int = 16 * 1024,
    max_connections: int | None = None,
) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0: a free port) until ``stop()``; return once it accepts.

    The simulator has unauthenticated admin endpoints, so a non-loopback ``host`` is
    refused unless ``allow_non_loopback`` says otherwise. Slow and greedy clients: an
    idle connection is closed after ``keep_alive_s``; a request's headers must arrive
    within ``header_read_s`` (else the connection is closed) and fit in
    ``max_header_bytes`` (else 431 and closed);
    past ``max_connections`` connections or requests at once, new ones get a 503. On
    ``stop()`` requests in flight get ``graceful_shutdown_s`` to finish.
    """
    if not allow_non_loopback and not _loopback(host):
        raise ValueError(f"refusing to serve on non-loopback address {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on sockets whose protocol is TCP, and accepted ones inherit ours. With protocol 0,
    # an answer written in two parts (head, body) on a kept-alive connection waited for
    # the client's delayed ACK: 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=_protocol(_HTTP, header_read_s, max_header_bytes),
        ws="none",
        timeout_graceful_shutdown=graceful_shutdown_s,
        timeout_keep_alive=keep_alive_s,
        h11_max_incomplete_event_size=max_header_bytes,
        limit_concurrency=max_connections,
    )
    server = _InProcessServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn {host}:{bound_port}")
    while not server.started:
        if task.done():
            sock.close()
            error = task.exception()
            raise ServerStartError(f"server on {host}:{bound_port} exited at start") from error
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, bound_port)
