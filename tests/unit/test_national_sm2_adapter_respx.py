"""The national-profile adapter's wire format (SM2, yuan), against a mocked province (respx)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
import respx

from medpay.settlement.adapters.base import (
    CallbackRejected,
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceResponseInvalid,
    QueryRequest,
    ReversalRequest,
)
from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.settlement.adapters.national_sm2 import NationalSm2Adapter
from medpay.settlement.adapters.registry import build_adapters
from medpay.wire import gm, national_gm
from medpay.wire.national import ResponseEnvelope, SettlementCallback, encode
from medpay.wire.signing import body_signature_headers as ed25519_headers
from medpay.wire.signing import generate_private_key, private_key_pem, public_key_pem

from .test_national_adapter_respx import output, setlinfo, settlement_request

GATEWAY_KEY = gm.generate_private_key()
PROVINCE_KEY = gm.generate_private_key()
URL = "http://province.test/provinces/330000/api"
PSN = "33000000000000000001"
NOW = 1_740_789_006  # 2025-03-01 08:30:06 Beijing


def yuan_body(out: Any = None, *, infcode: int = 0, err_msg: str | None = None) -> bytes:
    """An answer as a national-profile province writes it: amounts in two-place yuan."""
    envelope = msgspec.to_builtins(
        ResponseEnvelope[Any](
            infcode=infcode,
            inf_refmsgid="330000202503010830060000000001",
            refmsg_time="20250301083006000",
            respond_time="20250301083006010",
            err_msg=err_msg,
            output=out,
        )
    )
    envelope["output"] = national_gm.amounts_to_yuan(envelope["output"])
    return national_gm.encode(envelope)


def reply(body: bytes, key: gm.Sm2PrivateKey = PROVINCE_KEY) -> httpx.Response:
    return httpx.Response(200, content=body, headers=national_gm.body_signature_headers(body, key))


def with_amount(body: bytes, field: str, text: str) -> bytes:
    """``body`` with the first ``field`` amount written as ``text`` (as a careless province might)."""
    start = body.index(f'"{field}":'.encode()) + len(field) + 3
    end = start
    while body[end : end + 1] not in (b",", b"}"):
        end += 1
    return body[:start] + text.encode() + body[end:]


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def adapter(client: httpx.AsyncClient) -> NationalSm2Adapter:
    return NationalSm2Adapter(
        URL, "330000", GATEWAY_KEY, PROVINCE_KEY.public_key(), client, httpx.Timeout(1.0)
    )


@pytest.fixture
def province():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


# --- the request ------------------------------------------------------------------------------


async def test_a_settlement_is_sent_in_yuan_and_signed_with_sm2(adapter, province):
    route = province.post(URL).mock(return_value=reply(yuan_body(output())))

    await adapter.settle(settlement_request())

    content = route.calls.last.request.content
    sent = national_gm.decode(content)
    assert sent["signtype"] == "SM2"
    assert sent["infno"] == "2207"
    national_gm.verify_envelope(sent, [GATEWAY_KEY.public_key()])
    body = sent["input"]
    assert body["medfee_sumamt"] == Decimal("58.00")
    assert [d["pric"] for d in body["feedetail"]] == [
        Decimal("15.00"),
        Decimal("20.00"),
        Decimal("8.00"),
    ]
    assert [d["det_item_fee_sumamt"] for d in body["feedetail"]] == [
        Decimal("30.00"),
        Decimal("20.00"),
        Decimal("8.00"),
    ]
    assert body["feedetail"][1]["pric_uplmt_amt"] == Decimal("18.00")
    assert body["feedetail"][1]["selfpay_prop"] == 1_500  # a ratio: basis points, not yuan
    assert b'"medfee_sumamt":58.00' in content  # a JSON number with two places
    assert body["feedetail"][0]["cnt"] == 2


async def test_the_signature_covers_the_yuan_as_sent(adapter, province):
    route = province.post(URL).mock(return_value=reply(yuan_body(output())))
    await adapter.settle(settlement_request())
    sent = national_gm.decode(route.calls.last.request.content)
    sent["input"]["medfee_sumamt"] = Decimal("58.01")
    with pytest.raises(national_gm.SignatureError):
        national_gm.verify_envelope(sent, [GATEWAY_KEY.public_key()])


# --- the answer -------------------------------------------------------------------------------


async def test_a_yuan_answer_is_read_back_to_the_fen(adapter, province):
    province.post(URL).mock(return_value=reply(yuan_body(output())))

    result = await adapter.settle(settlement_request())

    breakdown = result.breakdown
    assert breakdown.medfee_total_fen == 5_800
    assert breakdown.basic_fund_fen == 3_171
    assert breakdown.personal_account_fen == 1_829
    assert breakdown.cash_fen == 800
    assert breakdown.balance_after_fen == 98_171
    assert breakdown.ratio_bp == 7_000
    assert [(f.fund_type, f.paid_fen) for f in breakdown.funds] == [("310100", 3_171)]


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("hifp_pay", "31.710"),  # three decimals, even if it is a whole fen
        ("hifp_pay", "31.705"),
        ("psn_cash_pay", "-8.00"),
        ("acct_pay", "1.8291e1"),  # 18.291
        ("balc", '"lots"'),
        ("fund_payamt", "31.7100001"),
    ],
)
async def test_an_answer_amount_that_is_not_exact_yuan_leaves_the_outcome_unknown(
    adapter, province, field, text
):
    province.post(URL).mock(return_value=reply(with_amount(yuan_body(output()), field, text)))

    with pytest.raises(ProvinceResponseInvalid, match="not exact yuan") as refused:
        await adapter.settle(settlement_request())

    assert isinstance(refused.value, OutcomeUnknown)  # never settled on a guess


async def test_an_answer_signed_by_another_sm2_key_is_invalid(adapter, province):
    province.post(URL).mock(return_value=reply(yuan_body(output()), gm.generate_private_key()))
    with pytest.raises(ProvinceResponseInvalid, match="signature"):
        await adapter.settle(settlement_request())


async def test_an_answer_signed_on_our_own_profile_is_invalid(adapter, province):
    body = yuan_body(output())
    province.post(URL).mock(
        return_value=httpx.Response(
            200, content=body, headers=ed25519_headers(body, generate_private_key())
        )
    )
    with pytest.raises(ProvinceResponseInvalid, match="signature"):
        await adapter.settle(settlement_request())


async def test_a_fen_answer_is_not_taken_for_yuan(adapter, province):
    """An answer in integer fen (our profile) reads as yuan: 100 times the total, refused."""
    province.post(URL).mock(
        return_value=reply(
            encode(
                ResponseEnvelope[Any](
                    infcode=0,
                    inf_refmsgid="330000202503010830060000000001",
                    refmsg_time="20250301083006000",
                    respond_time="20250301083006010",
                    output=output(),
                )
            )
        )
    )
    with pytest.raises(ProvinceResponseInvalid, match="another total"):
        await adapter.settle(settlement_request())


async def test_an_error_answer_is_a_rejection(adapter, province):
    province.post(URL).mock(return_value=reply(yuan_body(infcode=-2, err_msg="unknown person")))
    with pytest.raises(ProvinceRejected) as refused:
        await adapter.settle(settlement_request())
    assert refused.value.code == "person_unknown_to_province"


async def test_a_reversal_answer_is_read_back_to_the_fen(adapter, province):
    from medpay.wire.national import ReversalOutput

    answer = ReversalOutput(
        setl_id="S1",
        psn_no=PSN,
        mdtrt_id="V1",
        medfee_sumamt=5_800,
        fund_pay_sumamt=3_171,
        acct_pay=1_829,
        psn_cash_pay=800,
        balc=100_001,
        setl_time="2025-03-01 09:00:00",
    )
    route = province.post(URL).mock(return_value=reply(yuan_body(answer)))
    result = await adapter.reverse(
        ReversalRequest(
            msgid="H33010600001202503010900000001",
            psn_no=PSN,
            insured_area="330106",
            treatment_area="330106",
            institution_code="H33010600001",
            institution_name="h",
            settlement_id="S1",
            visit_id="V1",
        )
    )
    assert national_gm.decode(route.calls.last.request.content)["signtype"] == "SM2"
    assert (result.personal_account_fen, result.balance_after_fen) == (1_829, 100_001)


async def test_an_order_query_answer_is_read_back_to_the_fen(adapter, province):
    province.post(URL).mock(
        return_value=reply(yuan_body({"ord_stas": "settled", "setlinfo": setlinfo()}))
    )
    result = await adapter.query(
        QueryRequest(
            msgid="H33010600001202503010900000002",
            ref_msgid="H33010600001202503010830050001",
            insured_area="330106",
            treatment_area="330106",
            institution_code="H33010600001",
            institution_name="h",
        )
    )
    assert result.status == "settled"
    assert result.breakdown is not None and result.breakdown.basic_fund_fen == 3_171


# --- callbacks --------------------------------------------------------------------------------


def callback_body(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "callback_id": "CB330000202503010830060000000007",
        "ref_msgid": "H33010600001202503010830050001",
        "infno": "2207",
        "ord_stas": "settled",
        "setlinfo": setlinfo(),
        "setldetail": output().setldetail,
        "callback_time": "20250301083006123",
    }
    fields.update(overrides)
    builtins = national_gm.amounts_to_yuan(msgspec.to_builtins(SettlementCallback(**fields)))
    return national_gm.encode(builtins)


def signed(body: bytes, key: gm.Sm2PrivateKey = PROVINCE_KEY) -> tuple[str, str]:
    headers = national_gm.body_signature_headers(body, key, timestamp=NOW)
    return headers["X-Province-Timestamp"], headers["X-Province-Signature"]


def test_a_yuan_callback_signed_with_sm2_maps_to_fen(adapter):
    body = callback_body()
    assert b'"hifp_pay":31.71' in body
    callback = adapter.parse_callback(body, *signed(body), now=NOW + 5)
    assert callback.breakdown is not None
    assert callback.breakdown.basic_fund_fen == 3_171
    assert callback.breakdown.settled_at == dt.datetime(2025, 3, 1, 0, 30, 6, tzinfo=dt.UTC)


def test_a_callback_with_three_decimals_is_malformed(adapter):
    body = with_amount(callback_body(), "hifp_pay", "31.711")
    with pytest.raises(CallbackRejected) as refused:
        adapter.parse_callback(body, *signed(body), now=NOW + 5)
    assert refused.value.code == "callback_malformed"


def test_a_callback_signed_by_another_key_is_refused(adapter):
    body = callback_body()
    with pytest.raises(CallbackRejected) as refused:
        adapter.parse_callback(body, *signed(body, gm.generate_private_key()), now=NOW + 5)
    assert refused.value.code == "callback_signature_invalid"


# --- configuration ----------------------------------------------------------------------------


def _endpoint(admdvs: str, kind: str, public_key: str) -> ProvinceEndpoint:
    return ProvinceEndpoint(
        admdvs=admdvs, kind=kind, url=f"http://p/{admdvs}", public_key_pem=public_key
    )


async def test_provinces_on_either_profile_are_configured_side_by_side(client):
    ed_province = generate_private_key()
    config = ClearingConfig(
        signing_key_pem=private_key_pem(generate_private_key()),
        sm2_signing_key_pem=gm.private_key_pem(GATEWAY_KEY),
        provinces=[
            _endpoint("330000", "national_sm2", gm.public_key_pem(PROVINCE_KEY)),
            _endpoint("440000", "national_http", public_key_pem(ed_province)),
            _endpoint("110000", "national_sm2", gm.public_key_hex(PROVINCE_KEY)),
        ],
    )
    adapters = build_adapters(config, client)
    assert type(adapters["330000"]) is NationalSm2Adapter
    assert type(adapters["440000"]) is NationalHttpAdapter
    assert type(adapters["110000"]) is NationalSm2Adapter


async def test_a_national_province_needs_the_gateway_sm2_key(client):
    config = ClearingConfig(
        signing_key_pem=private_key_pem(generate_private_key()),
        provinces=[_endpoint("330000", "national_sm2", gm.public_key_pem(PROVINCE_KEY))],
    )
    with pytest.raises(ValueError, match="sm2_signing_key_pem"):
        build_adapters(config, client)


async def test_a_national_province_with_an_ed25519_key_is_refused(client):
    config = ClearingConfig(
        signing_key_pem=private_key_pem(generate_private_key()),
        sm2_signing_key_pem=gm.private_key_pem(GATEWAY_KEY),
        provinces=[_endpoint("330000", "national_sm2", public_key_pem(generate_private_key()))],
    )
    with pytest.raises(ValueError, match="SM2"):
        build_adapters(config, client)
