"""Helpers shared by the console's tests: an operator's login, and logging in over HTTP."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from medpay.console.logins import prepare_login, store_login
from medpay.console.passwords import PasswordHashing

#: The operator fixture's login in these tests (never a real one).
USERNAME = "clearing.desk"
PASSWORD = "correct horse battery staple"
#: argon2id at its least cost, for tests (the default's is in tests/unit/test_console_views).
CHEAP_HASHING: dict[str, Any] = {
    "console_password_time_cost": 1,
    "console_password_memory_kib": 8,
    "console_password_parallelism": 1,
}
_CHEAP = PasswordHashing(time_cost=1, memory_kib=8, parallelism=1)
_TOKEN = re.compile(r'name="csrf_token" value="([A-Za-z0-9_-]+)"')


async def give_login(
    pool: asyncpg.Pool,
    operator_id: str,
    username: str = USERNAME,
    password: str = PASSWORD,
    *,
    hashing: PasswordHashing = _CHEAP,
) -> None:
    """The operator logs in to the console as ``username``."""
    await store_login(pool, operator_id, prepare_login(username, password, hashing))


def form_token(page: httpx.Response) -> str:
    """The CSRF token of the (first) form on ``page``."""
    found = _TOKEN.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def log_in(
    client: httpx.AsyncClient,
    username: str = USERNAME,
    password: str = PASSWORD,
    **headers: str,
) -> httpx.Response:
    """Fetch the login form and send it, as a browser does; the answer to the POST."""
    page = await client.get("/console/login", headers=headers)
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": form_token(page)},
        headers=headers,
    )
