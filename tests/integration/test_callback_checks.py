"""A callback signed by the right province must still describe the payment it names.

Issue 8, items 1 to 3: a province's word is input. A callback about another person,
another visit, another total or another settlement changes nothing, is acknowledged
as a conflict and kept (with why) where reconciliation finds it; any nesting depth
is a clean 400.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import httpx
import pytest

from medpay.clock import CHINA
from medpay.demo import DEMO_ORDER
from medpay.wire.national import encode, format_inf_time, format_ref_time
from medpay.wire.signing import body_signature_headers, load_private_key

from .conftest import ZHEJIANG_EMPLOYEE, problem

TOTAL = 11100  # DEMO_ORDER's medfee_sumamt


async def _admin(simulator, method: str, path: str, body: object) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        (await http.request(method, path, json=body)).raise_for_status()


def _setlinfo(payment_id: str, **overrides: object) -> dict[str, object]:
    """Consistent figures for the demo payment (all self-paid), changed by ``overrides``."""
    info: dict[str, object] = {
        "setl_id": f"S{secrets.token_hex(8)}",
        "psn_no": ZHEJIANG_EMPLOYEE,
        "mdtrt_id": payment_id.replace("-", ""),
        "medfee_sumamt": TOTAL,
        "fulamt_ownpay_amt": TOTAL,
        "overlmt_selfpay": 0,
        "preselfpay_amt": 0,
        "inscp_scp_amt": 0,
        "act_pay_dedc": 0,
        "hifp_pay": 0,
        "pool_prop_selfpay": 0,
        "hifmi_pay": 0,
        "maf_pay": 0,
        "fund_pay_sumamt": 0,
        "psn_part_amt": TOTAL,
        "acct_pay": 0,
        "psn_cash_pay": TOTAL,
        "balc": 0,
        "insutype": "310",
        "setl_time": format_inf_time(dt.datetime.now(CHINA)),
    }
    info.update(overrides)
    info["psn_part_amt"] = info["medfee_sumamt"]
    info["fulamt_ownpay_amt"] = info["medfee_sumamt"]
    info["psn_cash_pay"] = info["medfee_sumamt"]
    return info


def _callback(msgid: str, infno: str, ord_stas: str, setlinfo: dict[str, object]) -> bytes:
    return encode(
        {
            "callback_id": f"cb-{secrets.token_hex(6)}",
            "ref_msgid": msgid,
            "infno": infno,
            "ord_stas": ord_stas,
            "setlinfo": setlinfo,
            "callback_time": format_ref_time(dt.datetime.now(CHINA)),
        }
    )


async def _deliver(client, simulator_config, body: bytes, province: str = "330000"):
    key = load_private_key(simulator_config.province(province).private_key_pem)
    headers = {"Content-Type": "application/json", **body_signature_headers(body, key)}
    return await client.post(f"/v1/callbacks/{province}", content=body, headers=headers)


@pytest.fixture
async def processing(client, signed, simulator, db_pool):
    """A payment Zhejiang accepted asynchronously and has not reported on: (id, msgid)."""
    await _admin(simulator, "PUT", "/admin/provinces/330000/settings", {"async_mode": True})
    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": "checks-pay-01"}, auth=signed
    )
    assert paid.status_code == 202, paid.text
    payment_id = paid.json()["payment_id"]
    msgid = await db_pool.fetchval(
        "SELECT msgid FROM province_messages WHERE payment_id = $1 AND infno = '2207'",
        uuid.UUID(payment_id),
    )
    return payment_id, msgid


async def _nothing_recorded(db_pool) -> None:
    assert (
        await db_pool.fetchval("SELECT state FROM payments") == "unknown"
    )  # awaiting the province
    assert await db_pool.fetchval("SELECT count(*) FROM settlements") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"psn_no": "33000000000000000099"}, "another person"),
        ({"mdtrt_id": "x" * 32}, "another visit"),
        ({"medfee_sumamt": 1}, "medfee_sumamt 1 fen"),
        ({"balc": 0, "psn_no": "44000000000000000002", "mdtrt_id": "y" * 32}, "another person"),
    ],
    ids=["person", "visit", "total", "all-of-it"],
)
async def test_a_settled_callback_that_is_not_about_the_payment_changes_nothing(
    client, signed, simulator_config, db_pool, processing, change, why
):
    payment_id, msgid = processing
    body = _callback(msgid, "2207", "settled", _setlinfo(payment_id, **change))

    response = await _deliver(client, simulator_config, body)

    assert response.status_code == 200, response.text
    assert response.json()["result"] == "conflict"
    await _nothing_recorded(db_pool)
    kept = await db_pool.fetchrow("SELECT outcome, detail, payment_id FROM province_callbacks")
    assert kept["outcome"] == "conflict"
    assert why in kept["detail"]
    shown = (await client.get(f"/v1/payments/{payment_id}", auth=signed)).json()
    assert shown["state"] == "processing"
    assert "settlement" not in shown


async def test_a_matching_callback_still_settles_the_payment(
    client, signed, simulator_config, db_pool, processing
):
    payment_id, msgid = processing
    body = _callback(msgid, "2207", "settled", _setlinfo(payment_id))

    response = await _deliver(client, simulator_config, body)

    assert response.json()["result"] == "applied"
    shown = (await client.get(f"/v1/payments/{payment_id}", auth=signed)).json()
    assert shown["state"] == "settled"
    assert shown["settlement"]["cash_fen"] == TOTAL


async def test_a_reversal_callback_for_another_settlement_changes_nothing(
    client, signed, simulator, simulator_config, db_pool
):
    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": "checks-rev-01"}, auth=signed
    )
    assert paid.status_code == 201, paid.text
    payment_id = paid.json()["payment_id"]
    # The reversal's answer is lost: the payment waits in "reversing".
    await _admin(
        simulator, "PUT", "/admin/provinces/330000/faults", {"drop_rate": 1.0, "drop_hold_s": 0}
    )
    reversing = await client.post(
        f"/v1/payments/{payment_id}/reversal",
        headers={"Idempotency-Key": "checks-rev-02"},
        auth=signed,
    )
    assert reversing.json()["state"] == "reversing", reversing.text
    msgid = await db_pool.fetchval("SELECT msgid FROM province_messages WHERE infno = '2208'")
    forged = _setlinfo(payment_id, setl_id="S-not-ours", medfee_sumamt=TOTAL)

    response = await _deliver(
        client, simulator_config, _callback(msgid, "2208", "reversed", forged)
    )

    assert response.json()["result"] == "conflict"
    assert await db_pool.fetchval("SELECT state FROM payments") == "reversing"
    assert await db_pool.fetchval("SELECT count(*) FROM reversals") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1
    detail = await db_pool.fetchval("SELECT detail FROM province_callbacks")
    assert "another settlement" in detail


@pytest.mark.parametrize("depth", [200, 1000, 7000])
async def test_a_callback_nested_at_any_depth_is_a_400(client, simulator_config, depth):
    body = b"[" * depth + b"]" * depth

    response = await _deliver(client, simulator_config, body)

    assert response.status_code == 400
    assert problem(response)["code"] == "callback_malformed"


async def test_a_valid_callback_carrying_a_deeply_nested_extra_is_a_400_not_a_500(
    client, simulator_config, db_pool, processing
):
    payment_id, msgid = processing
    body = _callback(msgid, "2207", "settled", _setlinfo(payment_id))
    deep = b'"extra":' + b"[" * 5000 + b"]" * 5000 + b","
    body = body[:1] + deep + body[1:]

    response = await _deliver(client, simulator_config, body)

    assert response.status_code == 400
    assert problem(response)["code"] == "callback_malformed"
    await _nothing_recorded(db_pool)
