"""A deadline for the request body: a client that sends less than it announced gets a 408.

A body shorter than its ``Content-Length`` would otherwise hold a connection and a
task until the client gives up. This ASGI middleware gives every HTTP request's body
``seconds`` from the moment the request reached the application; a read past that
raises :class:`RequestTimeout`, answered as a 408 problem with ``Connection: close``
(the server cannot reuse a connection whose body it never finished reading).

Headers that arrive too slowly never reach an ASGI application: that deadline is the
server's (granian's ``--http1-header-read-timeout``; see docs/operations.md).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from litestar.exceptions import HTTPException

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

__all__ = ["RequestTimeout", "body_deadline"]


class RequestTimeout(HTTPException):
    """The request's body did not arrive within its deadline."""

    status_code = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            detail=f"The request body did not arrive within {seconds:g} s.",
            headers={"Connection": "close"},
        )


def body_deadline(seconds: float) -> type:
    """The middleware (a Litestar middleware factory) giving every body ``seconds``."""

    class BodyDeadline:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            deadline = asyncio.get_running_loop().time() + seconds

            async def receive_in_time() -> ReceiveMessage:
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        return await receive()
                except TimeoutError:
                    raise RequestTimeout(seconds) from None

            await self.app(scope, receive_in_time, send)

    return BodyDeadline
