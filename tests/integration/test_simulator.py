"""The provincial platform simulator over real HTTP, on a fresh database per test.

Expected figures are worked by hand from DOMAIN.md section 3 in the comments.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from medpay.serving import RunningServer, start_server
from medpay.simulator.app import create_simulator_app
from medpay.simulator.config import SimulatorConfig, parse_config, simulator_public_keys
from medpay.simulator.seed import load_sample_persons, seed_sample_persons
from medpay.wire.national import CHINA_TZ, ResponseEnvelope, encode, new_msgid, response_decoder
from medpay.wire.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    generate_private_key,
    load_public_key,
    public_key_pem,
    sign_canonical,
    verify_body_signature,
)

GATEWAY_KEY = generate_private_key()
ZJ_EMPLOYEE = "33000000000000000001"  # 330106, balance 523400
GD_RESIDENT = "44000000000000000002"  # 440106
BJ_EMPLOYEE = "11000000000000000003"  # 110105, balance 1280050
INSTITUTION = "H33010600001"
_seq = itertools.count(1)


def next_msgid() -> str:
    return new_msgid(INSTITUTION, dt.datetime.now(CHINA_TZ), next(_seq) % 10_000)


def make_config() -> SimulatorConfig:
    text = msgspec.json.encode(
        {
            "seed": 11,
            "require_signature": True,
            "gateway_public_keys": [public_key_pem(GATEWAY_KEY)],
            "provinces": [
                {"admdvs": "330000"},
                {"admdvs": "440000"},
                {"admdvs": "510000"},
                {"admdvs": "110000", "policy": {"refuse_without_filing": True}},
            ],
        }
    )
    return parse_config(text)


@dataclass
class Province:
    """A minimal national client, independent of the gateway's adapter."""

    http: httpx.AsyncClient
    server: RunningServer
    config: SimulatorConfig

    def envelope(
        self, infno: str, payload: Any, *, msgid: str, insured: str, treatment: str
    ) -> dict:
        return {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": treatment,
            "insuplc_admdvs": insured,
            "recer_sys_code": "MEDPAY",
            "dev_no": "",
            "dev_safe_info": "",
            "cainfo": "",
            "signtype": "ED25519",
            "infver": "V1.0",
            "opter_type": "3",
            "opter": "test",
            "opter_name": "test",
            "inf_time": dt.datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
            "fixmedins_code": INSTITUTION,
            "fixmedins_name": "杭州互联网医院",
            "sign_no": "",
            "input": payload,
        }

    async def post(
        self, admdvs: str, body: bytes, *, http_timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"{self.server.url}/provinces/{admdvs}/api",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=http_timeout or httpx.Timeout(5.0),
        )

    def verified(self, admdvs: str, response: httpx.Response) -> ResponseEnvelope[Any]:
        assert response.status_code == 200, response.text
        public = load_public_key(simulator_public_keys(self.config)[admdvs])
        verify_body_signature(
            response.content,
            response.headers.get(TIMESTAMP_HEADER),
            response.headers.get(SIGNATURE_HEADER),
            public,
        )
        return response_decoder(Any).decode(response.content)

    async def call(
        self,
        infno: str,
        payload: Any,
        *,
        msgid: str | None = None,
        admdvs: str = "330000",
        insured: str = "330106",
        treatment: str = "330106",
        key: Any = GATEWAY_KEY,
        http_timeout: httpx.Timeout | None = None,
    ) -> ResponseEnvelope[Any]:
        envelope = self.envelope(
            infno, payload, msgid=msgid or next_msgid(), insured=insured, treatment=treatment
        )
        if key is not None:
            envelope["cainfo"] = sign_canonical(envelope, key)
        response = await self.post(admdvs, encode(envelope), http_timeout=http_timeout)
        return self.verified(admdvs, response)

    async def person(self, psn_no: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.server.url}/admin/persons/{psn_no}")
        assert response.status_code == 200, response.text
        return response.json()

    async def set_faults(self, admdvs: str, **knobs: Any) -> httpx.Response:
        return await self.http.put(f"{self.server.url}/admin/provinces/{admdvs}/faults", json=knobs)


@pytest.fixture
async def province(db_pool):
    config = make_config()
    await seed_sample_persons(db_pool)
    server = await start_server(create_simulator_app(config, db_pool))
    try:
        async with httpx.AsyncClient() as http:
            yield Province(http, server, config)
    finally:
        await server.stop()


def zj_settlement(**overrides: Any) -> dict[str, Any]:
    """Zhejiang employee, level 3, local: A 250000, B 2 x 1500, delivery 800."""
    data: dict[str, Any] = {
        "psn_no": ZJ_EMPLOYEE,
        "mdtrt_cert_type": "01",
        "mdtrt_cert_no": "ev-1",
        "med_type": "11",
        "medfee_sumamt": 253_800,
        "psn_setlway": "01",
        "mdtrt_id": "V-ZJ-1",
        "chrg_bchno": "C-1",
        "insutype": "310",
        "acct_used_flag": "1",
        "medins_lv": "3",
        "begntime": "2025-03-01",
        "feedetail": [
            _fee("1", 1, 250_000, "01"),
            _fee("2", 2, 1_500, "02"),
            _fee("3", 1, 800, "03", non_medical=True),
        ],
    }
    data.update(overrides)
    return data


def _fee(sn: str, cnt: int, pric: int, lv: str, **extra: Any) -> dict[str, Any]:
    return {
        "feedetl_sn": sn,
        "med_list_codg": f"CODE{sn}",
        "med_list_name": f"item {sn}",
        "cnt": cnt,
        "pric": pric,
        "det_item_fee_sumamt": cnt * pric,
        "chrgitm_lv": lv,
        **extra,
    }


# Hand-worked figures of zj_settlement() for a person with nothing used this year:
# A 250000 in scope; B 3000, pre-self-pay 10 % = 300, in scope 2700; delivery 800 own pay.
# in scope 252700, deductible 180000, level 3 employee 70 % of 72700 = 50890.
# b = 252700 - 50890 = 201810; personal part 253800 - 50890 = 202910;
# account pays 202910 - 800 = 202110 of 523400 -> 321290; cash 800 (the delivery).
ZJ_FIGURES = {
    "medfee_sumamt": 253_800,
    "fulamt_ownpay_amt": 800,
    "overlmt_selfpay": 0,
    "preselfpay_amt": 300,
    "inscp_scp_amt": 252_700,
    "act_pay_dedc": 180_000,
    "hifp_pay": 50_890,
    "pool_prop_selfpay": 7_000,
    "hifmi_pay": 0,
    "maf_pay": 0,
    "fund_pay_sumamt": 50_890,
    "psn_part_amt": 202_910,
    "acct_pay": 202_110,
    "psn_cash_pay": 800,
    "balc": 321_290,
}
ZJ_START = {"acct_balance_fen": 523_400, "totals": []}


def money(person: dict[str, Any]) -> dict[str, Any]:
    return {"acct_balance_fen": person["acct_balance_fen"], "totals": person["totals"]}


# --- settlement and reversal ------------------------------------------------------------------


async def test_settlement_answers_the_reference_figures(province):
    answer = await province.call("2207", zj_settlement())

    assert answer.infcode == 0, answer.err_msg
    info = answer.output["setlinfo"]
    assert {k: info[k] for k in ZJ_FIGURES} == ZJ_FIGURES
    assert info["setl_id"].startswith("330000")
    assert answer.output["setldetail"] == [
        {
            "fund_pay_type": "310100",
            "inscp_scp_amt": 252_700,
            "crt_payb_lmt_amt": 72_700,
            "fund_payamt": 50_890,
        }
    ]
    person = await province.person(ZJ_EMPLOYEE)
    assert person["acct_balance_fen"] == 321_290
    assert person["totals"] == [
        {
            "year": 2025,
            "deductible_used_ytd_fen": 180_000,
            "fund_paid_ytd_fen": 50_890,
            "burden_ytd_fen": 201_810,
        }
    ]


async def test_reversal_restores_balance_and_totals_to_the_fen(province):
    settled = await province.call("2207", zj_settlement())
    setl_id = settled.output["setlinfo"]["setl_id"]

    reversed_ = await province.call(
        "2208", {"setl_id": setl_id, "mdtrt_id": "V-ZJ-1", "psn_no": ZJ_EMPLOYEE}
    )

    assert reversed_.infcode == 0, reversed_.err_msg
    assert reversed_.output["acct_pay"] == 202_110
    assert reversed_.output["balc"] == 523_400
    person = await province.person(ZJ_EMPLOYEE)
    assert person["acct_balance_fen"] == 523_400
    assert person["totals"] == [
        {"year": 2025, "deductible_used_ytd_fen": 0, "fund_paid_ytd_fen": 0, "burden_ytd_fen": 0}
    ]


async def test_second_settlement_sees_the_first_ones_totals(province):
    await province.call("2207", zj_settlement())
    # the deductible is used up now: a 10000 class A item at level 3 gets 70 % = 7000
    second = await province.call(
        "2207",
        zj_settlement(
            mdtrt_id="V-ZJ-2",
            chrg_bchno="C-2",
            medfee_sumamt=10_000,
            feedetail=[_fee("1", 1, 10_000, "01")],
        ),
    )
    assert second.output["setlinfo"]["act_pay_dedc"] == 0
    assert second.output["setlinfo"]["hifp_pay"] == 7_000
    assert second.output["setlinfo"]["balc"] == 321_290 - 3_000


async def test_pre_settlement_changes_nothing(province):
    answer = await province.call("2206", zj_settlement())

    assert answer.infcode == 0, answer.err_msg
    info = answer.output["setlinfo"]
    assert info["setl_id"] is None
    assert {k: info[k] for k in ZJ_FIGURES} == ZJ_FIGURES
    assert money(await province.person(ZJ_EMPLOYEE)) == ZJ_START


async def test_concurrent_settlements_of_one_person_are_serialised(province):
    # Beijing employee, level 1, five visits of 100000 each, nothing used this year.
    # In any order: deductible 100000 + 80000, fund 0 + 18000 + 3 x 90000 = 288000,
    # personal part (all from the account) 100000 + 82000 + 3 x 10000 = 212000.
    def visit(n: int) -> dict[str, Any]:
        return zj_settlement(
            psn_no=BJ_EMPLOYEE,
            mdtrt_id=f"V-BJ-{n}",
            chrg_bchno=f"C-{n}",
            medins_lv="1",
            medfee_sumamt=100_000,
            feedetail=[_fee("1", 1, 100_000, "01")],
        )

    answers = await asyncio.gather(
        *(
            province.call("2207", visit(n), admdvs="110000", insured="110105", treatment="110105")
            for n in range(5)
        )
    )

    assert [a.infcode for a in answers] == [0] * 5
    person = await province.person(BJ_EMPLOYEE)
    assert person["acct_balance_fen"] == 1_280_050 - 212_000
    assert person["totals"] == [
        {
            "year": 2025,
            "deductible_used_ytd_fen": 180_000,
            "fund_paid_ytd_fen": 288_000,
            "burden_ytd_fen": 212_000,
        }
    ]


# --- idempotency -------------------------------------------------------------------------------


async def test_repeated_msgid_returns_the_same_answer_without_a_second_effect(province):
    msgid = next_msgid()
    first = await province.call("2207", zj_settlement(), msgid=msgid)
    second = await province.call("2207", zj_settlement(), msgid=msgid)

    assert second == first  # the very same envelope, inf_refmsgid and setl_id included
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290


async def test_same_msgid_with_different_content_is_refused(province):
    msgid = next_msgid()
    await province.call("2207", zj_settlement(), msgid=msgid)

    other = await province.call("2207", zj_settlement(mdtrt_cert_no="ev-2"), msgid=msgid)

    assert other.infcode == -4
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290


async def test_same_charge_batch_under_a_new_msgid_is_refused(province):
    await province.call("2207", zj_settlement())
    again = await province.call("2207", zj_settlement())
    assert again.infcode == -12
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290


async def test_reversal_twice_is_refused_and_the_balance_moves_once(province):
    settled = await province.call("2207", zj_settlement())
    reversal = {
        "setl_id": settled.output["setlinfo"]["setl_id"],
        "mdtrt_id": "V-ZJ-1",
        "psn_no": ZJ_EMPLOYEE,
    }
    await province.call("2208", reversal)

    again = await province.call("2208", reversal)

    assert again.infcode == -6
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 523_400


async def test_reversal_of_an_unknown_settlement_is_refused(province):
    answer = await province.call(
        "2208", {"setl_id": "330000202503010000009999", "mdtrt_id": "V", "psn_no": ZJ_EMPLOYEE}
    )
    assert answer.infcode == -5


async def test_order_query_tracks_settlement_then_reversal(province):
    settle_msgid, reverse_msgid = next_msgid(), next_msgid()
    assert (await province.call("6301", {"ref_msgid": settle_msgid})).output == {
        "ord_stas": "not_found",
        "setlinfo": None,
        "setldetail": [],
        "err_code": None,
        "err_msg": None,
    }
    settled = await province.call("2207", zj_settlement(), msgid=settle_msgid)
    query = await province.call("6301", {"ref_msgid": settle_msgid})
    assert query.output["ord_stas"] == "settled"
    assert query.output["setlinfo"] == settled.output["setlinfo"]

    await province.call(
        "2208",
        {
            "setl_id": settled.output["setlinfo"]["setl_id"],
            "mdtrt_id": "V-ZJ-1",
            "psn_no": ZJ_EMPLOYEE,
        },
        msgid=reverse_msgid,
    )

    for ref in (settle_msgid, reverse_msgid):
        assert (await province.call("6301", {"ref_msgid": ref})).output["ord_stas"] == "reversed"


# --- refusals ---------------------------------------------------------------------------------------


async def test_unknown_person_is_refused(province):
    answer = await province.call("2206", zj_settlement(psn_no="33000000000000009999"))
    assert answer.infcode == -2
    assert answer.output is None


async def test_insured_area_of_another_province_is_refused(province):
    # a Guangdong resident sent to Zhejiang: the insured place settles only its own insured
    answer = await province.call(
        "2206", zj_settlement(psn_no=GD_RESIDENT, insutype="390"), insured="440106"
    )
    assert answer.infcode == -9


async def test_person_of_another_province_is_unknown_here(province):
    answer = await province.call("2206", zj_settlement(psn_no=GD_RESIDENT, insutype="390"))
    assert answer.infcode == -2


async def test_scheme_disagreeing_with_the_record_is_refused(province):
    answer = await province.call("2206", zj_settlement(insutype="390"))
    assert answer.infcode == -11


async def test_offsite_without_filing_is_refused_where_the_policy_says_so(province):
    answer = await province.call(
        "2206", zj_settlement(psn_no=BJ_EMPLOYEE, medins_lv="1"), admdvs="110000", insured="110105"
    )
    assert answer.infcode == -3


async def test_offsite_referral_reduces_the_ratio(province):
    answer = await province.call(
        "2206",
        zj_settlement(psn_no=BJ_EMPLOYEE, medins_lv="1", out_fil_type="referral"),
        admdvs="110000",
        insured="110105",
    )
    assert answer.infcode == 0, answer.err_msg
    assert answer.output["setlinfo"]["pool_prop_selfpay"] == 8_000  # 9000 - 1000


@pytest.mark.parametrize("key", [None, generate_private_key()])
async def test_unsigned_or_foreign_signed_request_is_refused(province, key):
    answer = await province.call("2207", zj_settlement(), key=key)
    assert answer.infcode == -7
    assert money(await province.person(ZJ_EMPLOYEE)) == ZJ_START


async def test_request_tampered_after_signing_is_refused(province):
    envelope = province.envelope(
        "2207", zj_settlement(), msgid=next_msgid(), insured="330106", treatment="330106"
    )
    envelope["cainfo"] = sign_canonical(envelope, GATEWAY_KEY)
    envelope["input"]["acct_used_flag"] = "0"

    answer = province.verified("330000", await province.post("330000", encode(envelope)))

    assert answer.infcode == -7


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"infno": "2207"}',
        None,  # a signed request whose items do not add up
    ],
)
async def test_malformed_request_gets_an_error_envelope(province, body):
    if body is None:
        answer = await province.call("2207", zj_settlement(medfee_sumamt=1))
    else:
        answer = province.verified("330000", await province.post("330000", body))
    assert answer.infcode == -8
    assert answer.err_msg


async def test_unsupported_transaction_is_refused(province):
    answer = await province.call("9001", {})
    assert answer.infcode == -10


async def test_province_not_simulated_is_not_found(province):
    response = await province.post("620000", b"{}")
    assert response.status_code == 404
    assert response.json()["infcode"] == -9


# --- faults --------------------------------------------------------------------------------------


async def test_error_fault_answers_minus_one_and_does_nothing(province):
    msgid = next_msgid()
    assert (await province.set_faults("330000", error_rate=1.0)).status_code == 200

    failed = await province.call("2207", zj_settlement(), msgid=msgid)

    assert failed.infcode == -1
    assert money(await province.person(ZJ_EMPLOYEE)) == ZJ_START
    # nothing was logged either: the same msgid succeeds once the fault clears
    await province.set_faults("330000")
    assert (await province.call("2207", zj_settlement(), msgid=msgid)).infcode == 0


async def test_dropped_answer_still_settled_and_query_reports_it(province):
    msgid = next_msgid()
    await province.set_faults("330000", drop_rate=1.0, drop_hold_s=0.6)

    with pytest.raises(httpx.ReadTimeout):
        await province.call(
            "2207", zj_settlement(), msgid=msgid, http_timeout=httpx.Timeout(5.0, read=0.2)
        )

    await province.set_faults("330000")
    query = await province.call("6301", {"ref_msgid": msgid})
    assert query.output["ord_stas"] == "settled"
    assert query.output["setlinfo"]["acct_pay"] == 202_110
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290
    # re-sending under the same msgid returns the logged answer, with no second effect
    retry = await province.call("2207", zj_settlement(), msgid=msgid)
    assert retry.output["setlinfo"]["setl_id"] == query.output["setlinfo"]["setl_id"]
    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290


async def test_dropped_answer_ends_with_http_504(province):
    await province.set_faults("330000", drop_rate=1.0, drop_hold_s=0.0)
    envelope = province.envelope(
        "2206", zj_settlement(), msgid=next_msgid(), insured="330106", treatment="330106"
    )
    envelope["cainfo"] = sign_canonical(envelope, GATEWAY_KEY)
    response = await province.post("330000", encode(envelope))
    assert response.status_code == 504


async def test_latency_fault_delays_the_answer(province):
    await province.set_faults("330000", latency_ms=300)
    with pytest.raises(httpx.ReadTimeout):
        await province.call("2206", zj_settlement(), http_timeout=httpx.Timeout(5.0, read=0.1))


# --- admin ----------------------------------------------------------------------------------------


async def test_fault_knobs_are_validated(province):
    assert (await province.set_faults("330000", error_rate=2.0)).status_code == 400
    assert (await province.set_faults("330000", typo=1)).status_code == 400
    assert (await province.set_faults("620000")).status_code == 404


async def test_admin_answers_unknown_person_with_404(province):
    response = await province.http.get(f"{province.server.url}/admin/persons/33000000000000009999")
    assert response.status_code == 404


async def test_health(province):
    response = await province.http.get(f"{province.server.url}/health")
    assert response.json() == {"status": "ok", "provinces": 4}


# --- seeding ---------------------------------------------------------------------------------------


async def test_seeding_is_idempotent_and_keeps_balances(province, db_pool):
    await province.call("2207", zj_settlement())

    await seed_sample_persons(db_pool)

    assert (await province.person(ZJ_EMPLOYEE))["acct_balance_fen"] == 321_290
    count = await db_pool.fetchval("SELECT count(*) FROM simulator.persons")
    assert count == len(load_sample_persons())


def test_sample_persons_cover_both_schemes_and_assistance():
    persons = load_sample_persons()
    assert 8 <= len(persons) <= 12
    assert {p.insutype for p in persons} == {"310", "390"}
    assert any(p.maf_eligible for p in persons)
    assert all(len(p.psn_no) == 20 and p.psn_no.isdigit() for p in persons)
    assert all(p.acct_balance_fen == 0 for p in persons if p.insutype == "390")
    zhejiang = next(p for p in persons if p.psn_no == ZJ_EMPLOYEE)
    assert (zhejiang.insuplc_admdvs, zhejiang.insutype) == ("330106", "310")
