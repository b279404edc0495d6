"""Provinces on the national profile (SM2, yuan) beside provinces on ours, over real HTTP.

Zhejiang speaks the national profile here; every other province speaks ours. The
gateway configures itself from the simulator's exported clearing configuration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from medpay.app import create_app
from medpay.demo import DEMO_ORDER
from medpay.plugin import resources_of
from medpay.serving import start_server
from medpay.settlement.adapters.config import ClearingConfig
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.settlement.adapters.national_sm2 import NationalSm2Adapter
from medpay.simulator.config import SimulatorConfig, clearing_provinces, default_config
from medpay.wire import gm, national_gm
from medpay.wire.national import CHINA_TZ, format_inf_time, new_msgid
from medpay.wire.signing import load_private_key, public_key_pem, sign_canonical

from .conftest import ZHEJIANG_EMPLOYEE, running_gateway

BEIJING_EMPLOYEE = "11000000000000000003"  # insured in 110105, on our profile here


@pytest.fixture(scope="module")
def simulator_config(gateway_signing_key: str, gateway_sm2_signing_key: str) -> SimulatorConfig:
    return default_config(
        gateway_public_keys=[public_key_pem(load_private_key(gateway_signing_key))],
        gateway_sm2_public_keys=[gm.public_key_pem(gm.load_private_key(gateway_sm2_signing_key))],
        national=["330000"],
        seed=7,
    )


async def _pay(client, auth, order=DEMO_ORDER, key: str = "national-pay-0001"):
    return await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": key}, auth=auth
    )


async def _admin(simulator, method: str, path: str, body: object = None) -> Any:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        response = await http.request(method, path, json=body)
    response.raise_for_status()
    return response.json()


async def _balance(simulator, psn_no: str) -> int:
    return (await _admin(simulator, "GET", f"/admin/persons/{psn_no}"))["acct_balance_fen"]


def _envelope(infno: str, msgid: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": "110108",
        "insuplc_admdvs": "330106",
        "recer_sys_code": "MEDPAY",
        "dev_no": "",
        "dev_safe_info": "",
        "cainfo": "",
        "signtype": "SM2",
        "infver": "V1.0",
        "opter_type": "3",
        "opter": "medpay",
        "opter_name": "medpay gateway",
        "inf_time": format_inf_time(dt.datetime.now(dt.UTC)),
        "fixmedins_code": "H11010800124",
        "fixmedins_name": "h",
        "sign_no": "",
        "input": payload,
    }


async def _call_province(simulator, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        return await http.post(
            "/provinces/330000/api", content=body, headers={"Content-Type": "application/json"}
        )


async def test_provinces_on_either_profile_settle_side_by_side(
    client, signed, identity_issuer, gateway, simulator, db_pool
) -> None:
    """The demo (a Zhejiang employee in Beijing) on the national profile: the same split, to
    the fen, as on ours (tests/integration/test_settlement.py), and a Beijing employee's
    payment on our profile beside it."""
    provinces = resources_of(gateway).provinces
    assert type(provinces.adapter_for("330106")) is NationalSm2Adapter
    assert type(provinces.adapter_for("110105")) is NationalHttpAdapter

    zhejiang = await _pay(client, signed)
    beijing_auth = type(signed)(
        signed.app_id, signed.private_key_pem, identity_issuer.issue(BEIJING_EMPLOYEE)
    )
    beijing = await _pay(client, beijing_auth, key="national-pay-0002")  # local for Beijing

    assert zhejiang.status_code == beijing.status_code == 201, (zhejiang.text, beijing.text)
    split = zhejiang.json()["settlement"]
    assert (split["medical_fee_total_fen"], split["in_scope_fen"], split["pre_self_pay_fen"]) == (
        11100,
        9070,
        730,
    )
    assert (split["basic_fund_fen"], split["personal_account_fen"], split["cash_fen"]) == (
        0,
        10100,
        1000,
    )
    assert split["account_balance_after_fen"] == 523400 - 10100
    assert await _balance(simulator, ZHEJIANG_EMPLOYEE) == 523400 - 10100
    assert beijing.json()["settlement"]["medical_fee_total_fen"] == 11100
    assert beijing.json()["insured_area"] == "110105"


async def test_the_national_province_answers_in_yuan_signed_with_sm2(
    client, signed, simulator, simulator_config, gateway_sm2_signing_key, db_pool
) -> None:
    """Ask the simulated Zhejiang (6301) about the gateway's 2207, as the gateway would."""
    await _pay(client, signed)
    ref_msgid = await db_pool.fetchval("SELECT msgid FROM province_messages WHERE infno = '2207'")
    msgid = new_msgid("H11010800124", dt.datetime.now(CHINA_TZ), 9999)
    key = gm.load_private_key(gateway_sm2_signing_key)
    body = national_gm.encode(
        national_gm.sign_envelope(_envelope("6301", msgid, {"ref_msgid": ref_msgid}), key)
    )

    answer = await _call_province(simulator, body)

    province_key = gm.load_private_key(simulator_config.province("330000").private_key_pem)
    national_gm.verify_body_signature(
        answer.content,
        answer.headers["x-province-timestamp"],
        answer.headers["x-province-signature"],
        province_key.public_key(),
    )
    setlinfo = national_gm.decode(answer.content)["output"]["setlinfo"]
    assert setlinfo["medfee_sumamt"] == Decimal("111.00")
    assert setlinfo["acct_pay"] == Decimal("101.00")
    assert setlinfo["psn_cash_pay"] == Decimal("10.00")
    assert b'"acct_pay":101.00' in answer.content


async def test_a_national_province_refuses_a_request_on_our_profile(
    simulator, gateway_signing_key: str
) -> None:
    envelope = _envelope("6301", new_msgid("H11010800124", dt.datetime.now(CHINA_TZ), 1), {})
    envelope.update(signtype="ED25519", input={"ref_msgid": envelope["msgid"]})
    envelope["cainfo"] = sign_canonical(envelope, load_private_key(gateway_signing_key))

    answer = await _call_province(simulator, msgspec.json.encode(envelope))

    assert national_gm.decode(answer.content)["infcode"] == -7  # bad signature: nothing done


async def test_a_national_province_refuses_three_decimals_and_does_nothing(
    simulator, gateway_sm2_signing_key: str, db_pool
) -> None:
    msgid = new_msgid("H11010800124", dt.datetime.now(CHINA_TZ), 2)
    payload = {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "mdtrt_cert_type": "01",
        "mdtrt_cert_no": "",
        "med_type": "11",
        "medfee_sumamt": Decimal("12.345"),
        "psn_setlway": "01",
        "mdtrt_id": "V1",
        "chrg_bchno": "C1",
        "insutype": "310",
        "acct_used_flag": "1",
        "medins_lv": "3",
        "begntime": "2025-03-01",
        "feedetail": [
            {
                "feedetl_sn": "1",
                "med_list_codg": "X",
                "med_list_name": "x",
                "cnt": 1,
                "pric": Decimal("12.345"),
                "det_item_fee_sumamt": Decimal("12.345"),
                "chrgitm_lv": "01",
            }
        ],
    }
    key = gm.load_private_key(gateway_sm2_signing_key)
    body = national_gm.encode(national_gm.sign_envelope(_envelope("2207", msgid, payload), key))

    answer = await _call_province(simulator, body)

    decoded = national_gm.decode(answer.content)
    assert decoded["infcode"] == -8
    assert "more than two decimal places" in decoded["err_msg"]
    assert await db_pool.fetchval("SELECT count(*) FROM simulator.settlements") == 0


async def test_a_reversal_on_the_national_profile_gives_the_balance_back(
    client, signed, simulator
) -> None:
    paid = (await _pay(client, signed)).json()
    reversed_ = await client.post(
        f"/v1/payments/{paid['payment_id']}/reversal",
        headers={"Idempotency-Key": "national-rev-0001"},
        auth=signed,
    )
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["state"] == "reversed"
    assert await _balance(simulator, ZHEJIANG_EMPLOYEE) == 523400


async def test_a_dropped_national_answer_is_resolved_by_6301_once(
    client, signed, simulator, gateway, db_pool
) -> None:
    await _admin(
        simulator, "PUT", "/admin/provinces/330000/faults", {"drop_rate": 1.0, "drop_hold_s": 3.0}
    )
    response = await _pay(client, signed)
    assert response.json()["state"] == "processing"
    await _admin(simulator, "PUT", "/admin/provinces/330000/faults", {"drop_rate": 0.0})
    await db_pool.execute("UPDATE payments SET next_check_at = now() - interval '1 second'")

    assert await resources_of(gateway).resolver.run_once() == 1

    assert await db_pool.fetchval("SELECT state FROM payments") == "settled"
    assert await _balance(simulator, ZHEJIANG_EMPLOYEE) == 523400 - 10100
    assert (
        await db_pool.fetchval("SELECT count(*) FROM province_messages WHERE infno = '2207'") == 1
    )


async def test_an_asynchronous_national_province_settles_by_an_sm2_callback_in_yuan(
    client, signed, simulator, db_pool
) -> None:
    await _admin(
        simulator, "PUT", "/admin/callbacks/target", {"callback_base_url": str(client.base_url)}
    )
    await _admin(simulator, "PUT", "/admin/provinces/330000/settings", {"async_mode": True})
    response = await _pay(client, signed)
    assert response.status_code == 202

    deadline = time.monotonic() + 8
    while await db_pool.fetchval("SELECT state FROM payments") != "settled":
        assert time.monotonic() < deadline, "not settled by callback"
        await asyncio.sleep(0.05)
    callbacks = await db_pool.fetch("SELECT outcome, body FROM province_callbacks")
    assert [c["outcome"] for c in callbacks][:1] == ["applied"]
    assert await _balance(simulator, ZHEJIANG_EMPLOYEE) == 523400 - 10100


# --- a province whose answers are not exact yuan --------------------------------------------


class _CarelessProvince:
    """Answers every request with a signed settlement whose fund figure has three decimals."""

    def __init__(self, key: gm.Sm2PrivateKey) -> None:
        self.key = key

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        while (await receive()).get("more_body"):
            pass
        body = (
            b'{"infcode":0,"inf_refmsgid":"330000202503010830060000000001",'
            b'"refmsg_time":"20250301083006000","respond_time":"20250301083006010",'
            b'"output":{"setlinfo":{"setl_id":"S1","psn_no":"33000000000000000001",'
            b'"mdtrt_id":"V","medfee_sumamt":111.00,"fulamt_ownpay_amt":10.00,'
            b'"overlmt_selfpay":3.00,"preselfpay_amt":7.30,"inscp_scp_amt":90.70,'
            b'"act_pay_dedc":90.70,"hifp_pay":0.001,"pool_prop_selfpay":5000,"hifmi_pay":0.00,'
            b'"maf_pay":0.00,"fund_pay_sumamt":0.00,"psn_part_amt":111.00,"acct_pay":101.00,'
            b'"psn_cash_pay":10.00,"balc":5132.00,"insutype":"310",'
            b'"setl_time":"2025-03-01 08:30:06"},"setldetail":[]}}'
        )
        headers = national_gm.body_signature_headers(body, self.key)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")]
                + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def test_an_answer_with_three_decimals_leaves_the_payment_unknown_never_settled(
    settings, signed, gateway_signing_key, gateway_sm2_signing_key, db_pool
) -> None:
    province_key = gm.generate_private_key()
    careless = await start_server(_CarelessProvince(province_key))
    try:
        clearing = msgspec.convert(
            {
                "signing_key_pem": gateway_signing_key,
                "sm2_signing_key_pem": gateway_sm2_signing_key,
                "provinces": [
                    {
                        "admdvs": "330000",
                        "kind": "national_sm2",
                        "url": f"{careless.url}/provinces/330000/api",
                        "public_key_pem": gm.public_key_hex(province_key),
                        "read_timeout_s": 2.0,
                    }
                ],
            },
            ClearingConfig,
        )
        async with running_gateway(create_app(settings, clearing=clearing)) as client:
            response = await _pay(client, signed)
    finally:
        await careless.stop()

    assert response.status_code == 202, response.text
    assert response.json()["state"] == "processing"
    row = await db_pool.fetchrow("SELECT state, failure_code, failure_detail FROM payments")
    assert (row["state"], row["failure_code"]) == ("unknown", "province_response_invalid")
    assert "more than two decimal places" in row["failure_detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM settlements") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 0


def test_the_simulator_exports_each_province_with_its_profile(simulator_config) -> None:
    lines = {line["admdvs"]: line for line in clearing_provinces(simulator_config, "http://s")}
    assert lines["330000"]["kind"] == "national_sm2"
    assert "BEGIN PUBLIC KEY" in str(lines["330000"]["public_key_pem"])
    gm.load_public_key(str(lines["330000"]["public_key_pem"]))  # an SM2 key
    assert lines["440000"]["kind"] == "national_http"
    assert {line["kind"] for line in lines.values()} == {"national_http", "national_sm2"}
