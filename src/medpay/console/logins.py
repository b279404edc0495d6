"""Operators' logins: a username and a password per operator, and who may try how often.

A wrong username and a wrong password are refused with the same words and take the
same time (an unknown username is checked against a hash of nothing). Attempts are
counted per username, known or not, before the password is checked: more than
``attempts_max`` in a window of ``window_seconds`` from the first and the username is
refused, right password or not, until the window ends; a successful login clears the
count. So no more than ``attempts_max`` guesses per window reach a password, however
many arrive at once, and a lockout says nothing about which usernames exist.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
import msgspec

from medpay.console import queries
from medpay.console.passwords import PASSWORD_LENGTH_MAX, PasswordHashing, check_new_password
from medpay.db.pool import transaction
from medpay.errors import Conflict, InvalidRequest, NotFound, RateLimited, Unauthenticated

__all__ = [
    "USERNAME_PATTERN",
    "LoggedIn",
    "LoginPolicy",
    "NewLogin",
    "authenticate",
    "normalised_username",
    "prepare_login",
    "store_login",
]

#: A username: lower case letters, digits, '.', '_' and '-', 3 to 64, a letter or digit first.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")


class NewLogin(msgspec.Struct, frozen=True, kw_only=True):
    """A username and the hash of its password, checked and ready to store."""

    username: str
    password_hash: str


class LoginPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How many attempts a username has per window, and how passwords are hashed."""

    attempts_max: int
    window_seconds: int
    hashing: PasswordHashing


class LoggedIn(msgspec.Struct, frozen=True, kw_only=True):
    """The operator a username and password proved."""

    operator_id: str
    name: str
    username: str


def normalised_username(text: str) -> str | None:
    """The username ``text`` stands for (usernames are lower case), or None if it is none."""
    lowered = text.lower()
    return lowered if USERNAME_PATTERN.fullmatch(lowered) else None


def prepare_login(username: str, password: str, hashing: PasswordHashing) -> NewLogin:
    """Check a new username and password and hash the password (400 if either is refused)."""
    normalised = normalised_username(username)
    if normalised is None:
        raise InvalidRequest(
            "username_invalid",
            "Not a username",
            "3 to 64 of a-z, 0-9, '.', '_' and '-', beginning with a letter or a digit.",
        )
    return NewLogin(username=normalised, password_hash=hashing.hash(check_new_password(password)))


async def store_login(
    conn: asyncpg.Pool | asyncpg.Connection, operator_id: str, login: NewLogin
) -> None:
    """Give ``operator_id`` this login (replacing any), and end the sessions of the old one.

    Problems: 404 ``operator_not_found``, 409 ``username_taken``.
    """
    try:
        async with transaction(conn) as tx:
            await tx.execute(queries.SET_LOGIN, operator_id, login.username, login.password_hash)
            await tx.execute(queries.REVOKE_OPERATOR_SESSIONS, operator_id)
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "username_taken",
            "The username is taken",
            f"Another operator logs in as {login.username}.",
        ) from None
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("operator_not_found", "No such operator", operator_id) from None


def _refused() -> Unauthenticated:
    return Unauthenticated("login_refused", "The username or password is wrong")


async def authenticate(
    pool: asyncpg.Pool, username: str, password: str, policy: LoginPolicy
) -> LoggedIn:
    """The operator whose login this is; 401 ``login_refused``, 429 ``login_locked``."""
    normalised = normalised_username(username)
    if normalised is None or len(password) > PASSWORD_LENGTH_MAX:
        raise _refused()  # nobody's: nothing to count or check
    counted = await pool.fetchrow(queries.COUNT_ATTEMPT, normalised, policy.window_seconds)
    assert counted is not None
    if counted["attempts"] > policy.attempts_max:
        seconds = max(1, counted["seconds_left"])
        raise RateLimited(
            "login_locked",
            "Too many failed logins",
            f"This username is locked for {_minutes(seconds)}; try again then.",
            retry_after_s=seconds,
        )
    hashing = policy.hashing
    row = await pool.fetchrow(queries.LOGIN_BY_USERNAME, normalised)
    if row is None:
        await asyncio.to_thread(hashing.verify_without_hash, password)
        raise _refused()
    if not await asyncio.to_thread(hashing.verify, row["password_hash"], password):
        raise _refused()
    if row["status"] != "active":
        raise _refused()  # a suspended operator is told no more than a stranger
    await pool.execute(queries.CLEAR_ATTEMPTS, normalised)
    if hashing.needs_rehash(row["password_hash"]):
        rehashed = await asyncio.to_thread(hashing.hash, password)
        await pool.execute(queries.NEWER_HASH, row["operator_id"], row["password_hash"], rehashed)
    return LoggedIn(operator_id=row["operator_id"], name=row["name"], username=normalised)


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
