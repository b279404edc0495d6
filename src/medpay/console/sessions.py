"""Console sessions: a random token in the operator's cookie, its digest and clock in PostgreSQL.

The token is 32 random bytes (``secrets``); the database keeps only its SHA-256, so
neither a copy of the table nor a log of it opens a session. A session ends
``idle_seconds`` after its last request, ``absolute_seconds`` after its login, when its
operator logs out or gets a new login, or when the operator is suspended: each is
checked in the one statement that finds the session and records that it was seen.

Every form of a session carries its CSRF token: an HMAC of the session token, so it is
bound to the session, never stored, and unknown to anyone who cannot read the cookie
(which scripts cannot: it is HttpOnly).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

import msgspec

from medpay.console import queries
from medpay.console.logins import LoginPolicy
from medpay.console.passwords import PasswordHashing

if TYPE_CHECKING:
    import asyncpg

    from medpay.config import Settings

__all__ = [
    "CONSOLE_STATE_KEY",
    "Console",
    "ConsoleSession",
    "csrf_token_for",
    "is_token",
    "new_token",
    "password_hashing",
    "token_digest",
    "tokens_match",
]

#: Where the wiring puts the :class:`Console` on the application's state.
CONSOLE_STATE_KEY = "console"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding
_CSRF_CONTEXT = b"medpay console csrf v1"


def new_token() -> str:
    """A new random token: a session's, or a login form's."""
    return secrets.token_urlsafe(32)


def is_token(text: str | None) -> bool:
    """Whether ``text`` has the shape of a token (anything else is not looked up)."""
    return text is not None and _TOKEN.fullmatch(text) is not None


def token_digest(token: str) -> bytes:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("ascii")).digest()


def csrf_token_for(token: str) -> str:
    """The CSRF token of the session whose token is ``token``."""
    mac = hmac.new(token.encode("ascii"), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def tokens_match(expected: str, given: str | None) -> bool:
    """``given`` is ``expected``, compared in constant time."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A live session: who is logged in, until when, and the token its forms carry."""

    session_id: int
    operator_id: str
    operator_name: str
    username: str
    created_at: dt.datetime
    expires_at: dt.datetime
    csrf_token: str


def password_hashing(settings: Settings) -> PasswordHashing:
    """argon2id at the cost ``settings`` give (the gateway's and the CLI's alike)."""
    return PasswordHashing(
        time_cost=settings.console_password_time_cost,
        memory_kib=settings.console_password_memory_kib,
        parallelism=settings.console_password_parallelism,
    )


@dataclasses.dataclass(eq=False, repr=False)
class Console:
    """What the console's guard and pages need, handed over by the wiring."""

    pool: asyncpg.Pool
    _: dataclasses.KW_ONLY
    idle_seconds: int
    absolute_seconds: int
    login_policy: LoginPolicy
    cookie_secure: bool | None = None

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> Console:
        """The console as ``settings`` configure it."""
        return cls(
            pool,
            idle_seconds=settings.console_session_idle_seconds,
            absolute_seconds=settings.console_session_absolute_seconds,
            login_policy=LoginPolicy(
                attempts_max=settings.console_login_attempts_max,
                window_seconds=settings.console_lockout_seconds,
                hashing=password_hashing(settings),
            ),
            cookie_secure=settings.console_cookie_secure,
        )

    async def open_session(self, operator_id: str) -> str:
        """A new session of ``operator_id``; its token, for the cookie (never stored)."""
        token = new_token()
        await self.pool.fetchval(
            queries.OPEN_SESSION, token_digest(token), operator_id, self.absolute_seconds
        )
        return token

    async def session(self, token: str | None) -> ConsoleSession | None:
        """The live session of ``token``, now seen; None if it has ended or never was."""
        if not is_token(token):
            return None
        assert token is not None
        row = await self.pool.fetchrow(
            queries.TOUCH_SESSION, token_digest(token), self.idle_seconds
        )
        if row is None:
            return None
        return ConsoleSession(**dict(row), csrf_token=csrf_token_for(token))

    async def close_session(self, session_id: int) -> None:
        """Log out: the session is revoked for good."""
        await self.pool.execute(queries.REVOKE_SESSION, session_id)
