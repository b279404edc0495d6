"""Provincial callbacks: signed, possibly early, late, duplicated, or about strangers.

The simulator delivers real signed callbacks over HTTP, either to the gateway or to
a capturing receiver whose bodies the tests then replay or re-sign.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, post
from litestar.params import FromPath

from medpay.demo import DEMO_ORDER
from medpay.plugin import resources_of
from medpay.serving import start_server
from medpay.wire.signing import body_signature_headers, load_private_key

from .conftest import problem, register_unknown_to_the_province


class _Capture:
    """Stands where the gateway would, keeping every callback the simulator sends."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

        @post("/v1/callbacks/{province:str}", status_code=200)
        async def receive(request: Request, province: FromPath[str]) -> dict[str, str]:
            self.bodies.append(await request.body())
            return {}

        self.app = Litestar(route_handlers=[receive])


async def _admin(simulator, method: str, path: str, body: object) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        (await http.request(method, path, json=body)).raise_for_status()


async def _callbacks_to(simulator, url: str) -> None:
    await _admin(simulator, "PUT", "/admin/callbacks/target", {"callback_base_url": url})


async def _pay(client, signed, key: str = "callback-pay-01"):
    return await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": key}, auth=signed
    )


async def _until(predicate, seconds: float = 8.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _state(db_pool) -> str:
    return await db_pool.fetchval("SELECT state FROM payments")


def _signed_by(simulator_config, province: str, body: bytes) -> dict[str, str]:
    key = load_private_key(simulator_config.province(province).private_key_pem)
    return {"Content-Type": "application/json", **body_signature_headers(body, key)}


@pytest.fixture
async def captured(simulator, client, signed):
    """One real settlement callback from Zhejiang, captured instead of delivered."""
    capture = _Capture()
    async with await start_server(capture.app) as receiver:
        await _callbacks_to(simulator, receiver.url)
        paid = await _pay(client, signed)

        async def arrived() -> bool:
            return bool(capture.bodies)

        await _until(arrived)
    return paid.json(), capture.bodies[0]


async def test_callback_that_arrives_before_the_answer_settles_the_payment(
    client, signed, simulator, db_pool
):
    """The answer is dropped; the callback, sent after the province's commit, settles it."""
    await _callbacks_to(simulator, str(client.base_url))
    await _admin(
        simulator, "PUT", "/admin/provinces/330000/faults", {"drop_rate": 1.0, "drop_hold_s": 3.0}
    )
    response = await _pay(client, signed)
    assert response.status_code in (201, 202)

    async def settled() -> bool:
        return await _state(db_pool) == "settled"

    await _until(settled)
    row = await db_pool.fetchrow("SELECT outcome, result FROM province_callbacks")
    assert (row["outcome"], row["result"]) == ("applied", "settled")
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1


async def test_duplicate_callback_is_acknowledged_without_a_second_effect(
    client, signed, simulator, db_pool
):
    await _callbacks_to(simulator, str(client.base_url))
    await _admin(
        simulator, "PUT", "/admin/provinces/330000/faults", {"callback_duplicate_rate": 1.0}
    )
    await _pay(client, signed)

    async def both_delivered() -> bool:
        async with httpx.AsyncClient(base_url=simulator.url) as http:
            deliveries = (await http.get("/admin/callbacks")).json()["deliveries"]
        return len([d for d in deliveries if d["status"] == "delivered"]) == 2

    await _until(both_delivered)
    assert await _state(db_pool) == "settled"
    assert await db_pool.fetchval("SELECT count(*) FROM province_callbacks") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1


async def test_replayed_callback_is_a_duplicate(client, captured, simulator_config) -> None:
    _, body = captured
    headers = _signed_by(simulator_config, "330000", body)
    first = await client.post("/v1/callbacks/330000", content=body, headers=headers)
    again = await client.post("/v1/callbacks/330000", content=body, headers=headers)
    # The synchronous answer had already settled it: the first delivery finds it final.
    assert first.json()["result"] == "already_final"
    assert again.json()["result"] == "duplicate"


async def test_late_settled_callback_after_a_reversal_changes_nothing(
    client, signed, captured, simulator_config, db_pool
):
    paid, body = captured
    reversed_ = await client.post(
        f"/v1/payments/{paid['payment_id']}/reversal",
        headers={"Idempotency-Key": "callback-rev-01"},
        auth=signed,
    )
    assert reversed_.json()["state"] == "reversed"
    late = await client.post(
        "/v1/callbacks/330000", content=body, headers=_signed_by(simulator_config, "330000", body)
    )
    assert late.status_code == 200
    assert late.json()["result"] == "already_final"
    assert await _state(db_pool) == "reversed"
    assert (
        await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 2
    )  # settlement + reversal only


async def test_callback_for_a_payment_we_do_not_know_is_kept_for_reconciliation(
    client, captured, simulator_config, db_pool
):
    _, body = captured
    stranger = msgspec.json.decode(body)
    stranger["ref_msgid"] = "H11010800124202601010000009999"
    stranger["callback_id"] = stranger["callback_id"][:-4] + "9999"
    raw = msgspec.json.encode(stranger)
    response = await client.post(
        "/v1/callbacks/330000", content=raw, headers=_signed_by(simulator_config, "330000", raw)
    )
    assert response.json()["result"] == "unmatched"
    row = await db_pool.fetchrow(
        "SELECT outcome, payment_id FROM province_callbacks WHERE ref_msgid = $1",
        stranger["ref_msgid"],
    )
    assert (row["outcome"], row["payment_id"]) == ("unmatched", None)


async def test_a_province_cannot_report_on_another_provinces_payment(
    client, captured, simulator_config, db_pool
):
    _, body = captured
    response = await client.post(
        "/v1/callbacks/440000", content=body, headers=_signed_by(simulator_config, "440000", body)
    )
    assert response.status_code == 403
    assert problem(response)["code"] == "callback_wrong_province"
    assert await db_pool.fetchval("SELECT count(*) FROM province_callbacks") == 0


async def test_callback_with_a_bad_signature_is_refused(
    client, captured, simulator_config, db_pool
) -> None:
    _, body = captured
    forged = await client.post(
        "/v1/callbacks/330000", content=body, headers=_signed_by(simulator_config, "440000", body)
    )
    assert forged.status_code == 401
    assert problem(forged)["code"] == "callback_signature_invalid"
    assert await db_pool.fetchval("SELECT count(*) FROM province_callbacks") == 0


async def test_stale_callback_is_refused(client, captured, simulator_config) -> None:
    _, body = captured
    key = load_private_key(simulator_config.province("330000").private_key_pem)
    stale = body_signature_headers(body, key, timestamp=int(time.time()) - 3600)
    response = await client.post("/v1/callbacks/330000", content=body, headers=stale)
    assert response.status_code == 401
    assert problem(response)["code"] == "callback_timestamp_out_of_window"


async def test_malformed_callback_is_a_400(client, simulator_config) -> None:
    body = b'{"callback_id": 1}'
    response = await client.post(
        "/v1/callbacks/330000", content=body, headers=_signed_by(simulator_config, "330000", body)
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "callback_malformed"


async def test_callback_for_an_unconnected_province_is_a_404(client) -> None:
    response = await client.post("/v1/callbacks/990000", content=b"{}")
    assert response.status_code == 404
    assert problem(response)["code"] == "province_unknown"


async def test_asynchronous_province_settles_by_callback(
    client, signed, simulator, db_pool
) -> None:
    await _callbacks_to(simulator, str(client.base_url))
    await _admin(simulator, "PUT", "/admin/provinces/330000/settings", {"async_mode": True})
    response = await _pay(client, signed)
    assert response.status_code == 202
    assert response.json()["state"] == "processing"

    async def settled() -> bool:
        return await _state(db_pool) == "settled"

    await _until(settled)
    shown = await client.get(f"/v1/payments/{response.json()['payment_id']}", auth=signed)
    assert shown.json()["settlement"]["personal_account_fen"] == 10100


async def test_asynchronous_result_whose_callback_is_lost_is_found_by_the_resolver(
    client, signed, simulator, gateway, db_pool
):
    await _callbacks_to(simulator, str(client.base_url))
    await _admin(simulator, "PUT", "/admin/provinces/330000/settings", {"async_mode": True})
    await _admin(
        simulator,
        "PUT",
        "/admin/provinces/330000/faults",
        {"callback_drop_rate": 1.0, "async_delay_ms": 50},
    )
    response = await _pay(client, signed)
    assert response.status_code == 202
    await asyncio.sleep(0.5)  # the province finishes; its callback is lost
    await db_pool.execute("UPDATE payments SET next_check_at = now()")

    await resources_of(gateway).resolver.run_once()

    assert await _state(db_pool) == "settled"
    assert await db_pool.fetchval("SELECT count(*) FROM province_callbacks") == 0


async def test_asynchronous_refusal_arrives_as_a_failure_callback(
    client, signed, simulator, identity_issuer, db_pool
):
    """A person the gateway knows but the home province does not."""
    await register_unknown_to_the_province(db_pool, "33000000000000000099")
    signed.identity_token = identity_issuer.issue("33000000000000000099")
    await _callbacks_to(simulator, str(client.base_url))
    await _admin(simulator, "PUT", "/admin/provinces/330000/settings", {"async_mode": True})
    await _pay(client, signed)

    async def failed() -> bool:
        return await _state(db_pool) == "failed"

    await _until(failed)
    assert (
        await db_pool.fetchval("SELECT failure_code FROM payments") == "person_unknown_to_province"
    )
