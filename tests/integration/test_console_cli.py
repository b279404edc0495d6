"""``medpay operators add --login`` and ``medpay operators login``: a console login from the command.

The command runs as its own process against the test's database; the password comes
from the environment or standard input, never from the command line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from medpay.console.logins import LoginPolicy, authenticate
from medpay.console.passwords import PasswordHashing
from medpay.errors import Unauthenticated

MEDPAY = str(Path(sys.executable).with_name("medpay"))
POLICY = LoginPolicy(attempts_max=5, window_seconds=900, hashing=PasswordHashing())


@pytest.fixture
def run_medpay(database_url, tmp_path):
    base = {
        **{k: v for k, v in os.environ.items() if k != "MEDPAY_OPERATOR_PASSWORD"},
        "DATABASE_URL": database_url,
        "MEDPAY_DATA_DIR": str(tmp_path / "data"),
    }

    async def run(*args: str, password: str | None = None, stdin: bytes = b"") -> tuple[int, str]:
        env = base if password is None else {**base, "MEDPAY_OPERATOR_PASSWORD": password}
        process = await asyncio.create_subprocess_exec(
            MEDPAY,
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(stdin), 120)
        finally:
            if process.returncode is None:  # timed out, or the test was cancelled
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, out.decode()

    return run


async def test_an_operator_is_added_with_a_login_and_given_a_new_one(run_medpay, db_pool) -> None:
    status, out = await run_medpay(
        "operators", "add", "Night desk", "--login", "Night.Desk", password="a long night shift"
    )
    assert status == 0, out
    assert "console login: night.desk" in out
    assert "a long night shift" not in out
    operator_id = out.split("operator_id: ", 1)[1].split()[0]
    assert (
        await authenticate(db_pool, "night.desk", "a long night shift", POLICY)
    ).operator_id == (operator_id)

    status, out = await run_medpay(
        "operators", "login", operator_id, "day.desk", stdin=b"a brighter day shift\n"
    )

    assert status == 0, out
    assert (await authenticate(db_pool, "day.desk", "a brighter day shift", POLICY)).username == (
        "day.desk"
    )
    with pytest.raises(Unauthenticated):
        await authenticate(db_pool, "night.desk", "a long night shift", POLICY)


async def test_a_refused_login_leaves_no_operator_behind(run_medpay, db_pool) -> None:
    operators = "SELECT count(*) FROM operators"
    status, out = await run_medpay("operators", "add", "A", "--login", "a.desk", password="short")
    assert status == 2 and "password_unacceptable" in out
    assert await db_pool.fetchval(operators) == 0

    first, _ = await run_medpay(
        "operators", "add", "B", "--login", "b.desk", stdin=b"b desk password\n"
    )
    status, out = await run_medpay(
        "operators", "add", "C", "--login", "B.DESK", password="another desk password"
    )

    assert first == 0
    assert status == 2 and "username_taken" in out
    assert await db_pool.fetchval(operators) == 1
