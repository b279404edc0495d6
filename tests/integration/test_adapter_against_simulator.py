"""The gateway's national HTTP adapter against the real simulator, over real sockets.

Figures are the hand-worked ones of DOMAIN.md section 3 (see test_simulator.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from medpay.db.embedded import free_port
from medpay.serving import RunningServer, start_server
from medpay.settlement.adapters.base import (
    ClassifiedItem,
    ClearingAdapter,
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceResponseInvalid,
    ProvinceUnavailable,
    QueryRequest,
    ReversalRequest,
    SettlementRequest,
)
from medpay.settlement.adapters.config import ClearingConfig
from medpay.settlement.adapters.national_http import NationalHttpAdapter, new_http_client
from medpay.settlement.adapters.registry import build_adapters
from medpay.simulator.app import create_simulator_app
from medpay.simulator.config import (
    SimulatorConfig,
    clearing_provinces,
    parse_config,
    simulator_public_keys,
)
from medpay.simulator.seed import seed_sample_persons
from medpay.wire.national import CHINA_TZ, new_msgid
from medpay.wire.signing import (
    generate_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)

GATEWAY_KEY = generate_private_key()
ZJ_EMPLOYEE = "33000000000000000001"  # 330106, balance 523400
BJ_EMPLOYEE = "11000000000000000003"  # 110105
INSTITUTION = "H33010600001"
_seq = itertools.count(1)


def next_msgid() -> str:
    return new_msgid(INSTITUTION, dt.datetime.now(CHINA_TZ), next(_seq) % 10_000)


def make_config() -> SimulatorConfig:
    return parse_config(
        msgspec.json.encode(
            {
                "gateway_public_keys": [public_key_pem(GATEWAY_KEY)],
                "provinces": [
                    {"admdvs": "330000"},
                    {"admdvs": "110000", "policy": {"refuse_without_filing": True}},
                ],
            }
        )
    )


@dataclass
class Clearing:
    adapters: dict[str, ClearingAdapter]
    server: RunningServer
    config: SimulatorConfig
    client: httpx.AsyncClient

    def adapter(self, admdvs: str = "330000", **overrides: Any) -> NationalHttpAdapter:
        """A hand-built adapter, for keys or timeouts the registry would not give."""
        fields: dict[str, Any] = {
            "url": f"{self.server.url}/provinces/{admdvs}/api",
            "province_code": admdvs,
            "signing_key": GATEWAY_KEY,
            "province_public_key": load_public_key(simulator_public_keys(self.config)[admdvs]),
            "client": self.client,
        }
        fields.update(overrides)
        return NationalHttpAdapter(**fields)

    async def balance(self, psn_no: str) -> int:
        response = await self.client.get(f"{self.server.url}/admin/persons/{psn_no}")
        return response.json()["acct_balance_fen"]

    async def set_faults(self, admdvs: str, **knobs: Any) -> None:
        response = await self.client.put(
            f"{self.server.url}/admin/provinces/{admdvs}/faults", json=knobs
        )
        assert response.status_code == 200, response.text


@pytest.fixture
async def clearing(db_pool):
    config = make_config()
    await seed_sample_persons(db_pool)
    server = await start_server(create_simulator_app(config, db_pool))
    client = new_http_client()
    try:
        clearing_config = msgspec.convert(
            {
                "signing_key_pem": private_key_pem(GATEWAY_KEY),
                "provinces": clearing_provinces(config, server.url, read_timeout_s=3.0),
            },
            ClearingConfig,
        )
        yield Clearing(build_adapters(clearing_config, client), server, config, client)
    finally:
        await client.aclose()
        await server.stop()


def zj_request(**overrides: Any) -> SettlementRequest:
    fields: dict[str, Any] = {
        "msgid": next_msgid(),
        "psn_no": ZJ_EMPLOYEE,
        "insured_area": "330106",
        "treatment_area": "330106",
        "institution_code": INSTITUTION,
        "institution_name": "杭州互联网医院",
        "institution_level": 3,
        "insurance_scheme": "employee",
        "personal_account_allowed": True,
        "service_date": dt.date(2025, 3, 1),
        "visit_id": "V-ZJ-1",
        "charge_batch_no": "C-1",
        "items": [
            ClassifiedItem(
                line_no="1",
                code="A1",
                name="consultation",
                quantity=1,
                unit_price_fen=250_000,
                item_class="A",
            ),
            ClassifiedItem(
                line_no="2",
                code="B1",
                name="ointment",
                quantity=2,
                unit_price_fen=1_500,
                item_class="B",
            ),
            ClassifiedItem(
                line_no="3",
                code="DLV",
                name="delivery",
                quantity=1,
                unit_price_fen=800,
                item_class="C",
                non_medical=True,
            ),
        ],
    }
    fields.update(overrides)
    return SettlementRequest(**fields)


def query(ref_msgid: str) -> QueryRequest:
    return QueryRequest(
        msgid=next_msgid(),
        ref_msgid=ref_msgid,
        insured_area="330106",
        treatment_area="330106",
        institution_code=INSTITUTION,
        institution_name="杭州互联网医院",
    )


async def test_pre_settle_settle_query_reverse_end_to_end(clearing):
    zhejiang = clearing.adapters["330000"]

    preview = await zhejiang.pre_settle(zj_request())
    # in scope 252700, deductible 180000, 70 % of 72700 = 50890; account 202110; cash 800
    assert preview.breakdown.settlement_id is None
    assert preview.breakdown.basic_fund_fen == 50_890
    assert preview.breakdown.personal_account_fen == 202_110
    assert await clearing.balance(ZJ_EMPLOYEE) == 523_400

    request = zj_request()
    settled = await zhejiang.settle(request)
    breakdown = settled.breakdown
    assert breakdown.settlement_id is not None
    assert (breakdown.basic_fund_fen, breakdown.personal_account_fen, breakdown.cash_fen) == (
        50_890,
        202_110,
        800,
    )
    assert breakdown.balance_after_fen == 321_290
    assert await clearing.balance(ZJ_EMPLOYEE) == 321_290

    found = await zhejiang.query(query(request.msgid))
    assert found.status == "settled"
    assert found.breakdown == breakdown

    reversal = ReversalRequest(
        msgid=next_msgid(),
        psn_no=ZJ_EMPLOYEE,
        insured_area="330106",
        treatment_area="330106",
        institution_code=INSTITUTION,
        institution_name="杭州互联网医院",
        settlement_id=breakdown.settlement_id,
        visit_id="V-ZJ-1",
    )
    undone = await zhejiang.reverse(reversal)
    assert undone.personal_account_fen == 202_110
    assert undone.balance_after_fen == 523_400
    assert await clearing.balance(ZJ_EMPLOYEE) == 523_400
    assert (await zhejiang.query(query(request.msgid))).status == "reversed"


async def test_unknown_person_is_a_rejection(clearing):
    with pytest.raises(ProvinceRejected) as caught:
        await clearing.adapters["330000"].pre_settle(zj_request(psn_no="33000000000000009999"))
    assert caught.value.code == "person_unknown_to_province"


async def test_offsite_without_filing_is_a_filing_rejection(clearing):
    request = zj_request(psn_no=BJ_EMPLOYEE, insured_area="110105", institution_level=1)
    with pytest.raises(ProvinceRejected) as caught:
        await clearing.adapters["110000"].settle(request)
    assert caught.value.code == "filing_required"
    assert caught.value.infcode == -3


async def test_untrusted_gateway_key_is_refused(clearing):
    stranger = clearing.adapter(signing_key=generate_private_key())
    with pytest.raises(ProvinceRejected) as caught:
        await stranger.settle(zj_request())
    assert caught.value.code == "province_refused_signature"
    assert await clearing.balance(ZJ_EMPLOYEE) == 523_400


async def test_dropped_answer_is_unknown_and_resolved_by_the_same_msgid(clearing):
    await clearing.set_faults("330000", drop_rate=1.0, drop_hold_s=0.6)
    impatient = clearing.adapter(timeout=httpx.Timeout(3.0, read=0.2))
    request = zj_request()

    with pytest.raises(OutcomeUnknown) as caught:
        await impatient.settle(request)
    assert not caught.value.outcome_known

    await clearing.set_faults("330000")
    zhejiang = clearing.adapters["330000"]
    assert (await zhejiang.query(query(request.msgid))).status == "settled"
    resent = await zhejiang.settle(request)  # same msgid: the logged answer, no second effect
    assert resent.breakdown.balance_after_fen == 321_290
    assert await clearing.balance(ZJ_EMPLOYEE) == 321_290


async def test_error_fault_is_a_retryable_rejection(clearing):
    await clearing.set_faults("330000", error_rate=1.0)
    with pytest.raises(ProvinceRejected) as caught:
        await clearing.adapters["330000"].settle(zj_request())
    assert caught.value.code == "province_error"
    assert caught.value.retryable


async def test_answer_signed_with_an_unexpected_key_is_invalid_but_may_have_settled(clearing):
    misconfigured = clearing.adapter(province_public_key=generate_private_key().public_key())
    request = zj_request()

    with pytest.raises(ProvinceResponseInvalid):
        await misconfigured.settle(request)

    # the province did settle: this is why an invalid answer counts as an unknown outcome
    assert (await clearing.adapters["330000"].query(query(request.msgid))).status == "settled"


async def test_province_not_listening_is_unavailable(clearing):
    silent = clearing.adapter(url=f"http://127.0.0.1:{free_port()}/provinces/330000/api")
    with pytest.raises(ProvinceUnavailable) as caught:
        await silent.settle(zj_request())
    assert caught.value.outcome_known
