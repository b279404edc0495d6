"""SIGTERM during load (issue 12, item 5): requests in flight finish, nothing is left stuck.

A real ``medpay serve`` process pays a burst of orders whose province answers slowly;
it is sent SIGTERM while every one of them is at the province. It stops accepting,
answers every request it had accepted (settled, or 202 where the province took longer
than the gateway's read timeout: the outcome is then unknown, and in any case not
lost), and exits cleanly. The process that takes over (a restart, as in a rolling
deployment) resolves what is still unknown: every accepted payment ends final, once.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from medpay.client import AppSignatureAuth
from medpay.demo import DEMO_ORDER

from .conftest import _remember
from .processes import gateway_environment, gateway_processes

IN_FLIGHT = 12
PROVINCE_LATENCY_MS = 800


async def _faults(simulator, **faults) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        (await http.put("/admin/provinces/330000/faults", json=faults)).raise_for_status()


async def _at_the_province(db_pool, count: int, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if (
            await db_pool.fetchval("SELECT count(*) FROM payments WHERE state = 'settling'")
            >= count
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} payments did not reach the province within {timeout_s} s")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_stop_signal_during_load_finishes_every_accepted_payment(
    database_url, db_pool, simulator, clearing, identity_issuer, patient_app, tmp_path, stop_signal
) -> None:
    await _faults(simulator, latency_ms=PROVINCE_LATENCY_MS)
    env = gateway_environment(
        tmp_path, database_url, clearing, identity_issuer, {"MEDPAY_SETTLE_GRACE_SECONDS": "1"}
    )
    auth = AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(DEMO_PERSON)
    )
    async with gateway_processes(1, env, tmp_path) as [gateway]:
        async with httpx.AsyncClient(
            base_url=gateway.url, timeout=30, event_hooks={"response": [_remember]}
        ) as client:
            burst = [
                asyncio.create_task(
                    client.post(
                        "/v1/payments",
                        json=DEMO_ORDER,
                        headers={"Idempotency-Key": f"shutdown-{n:04d}"},
                        auth=auth,
                    )
                )
                for n in range(IN_FLIGHT)
            ]
            await _at_the_province(db_pool, IN_FLIGHT)
            gateway.popen.send_signal(stop_signal)
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(timeout=2) as fresh:
                with pytest.raises(httpx.ConnectError):  # no longer accepting
                    await fresh.get(f"{gateway.url}/health")
            answers = await asyncio.gather(*burst)
        exit_code = await gateway.wait_exit(timeout_s=20)

    assert exit_code == 0
    assert "Traceback" not in gateway.log.read_text()
    assert {r.status_code for r in answers} <= {201, 202}, [r.text for r in answers]
    assert (
        await db_pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE state <> 'completed'")
        == 0
    )

    # The next process resolves whatever the province had not answered in time.
    await _faults(simulator, latency_ms=0)
    async with gateway_processes(1, env, tmp_path):
        await _all_final(db_pool)
    states = await db_pool.fetch("SELECT state, count(*) AS n FROM payments GROUP BY state")
    assert {row["state"]: row["n"] for row in states} == {"settled": IN_FLIGHT}
    # Each sent once (2207 under one msgid), each journalled once.
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == IN_FLIGHT
    assert await db_pool.fetchval("SELECT count(DISTINCT payment_id) FROM ledger_journals") == (
        IN_FLIGHT
    )
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == IN_FLIGHT


async def _all_final(db_pool, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not await db_pool.fetchval(
            "SELECT count(*) FROM payments WHERE state NOT IN ('settled', 'failed', 'reversed')"
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"payments still unfinished after {timeout_s} s")


DEMO_PERSON = "33000000000000000001"
