"""The national HTTP adapter's wire behaviour, against a mocked province (respx)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import msgspec
import pytest
import respx

from medpay.settlement.adapters.base import (
    CallbackRejected,
    ClassifiedItem,
    ClearingAdapter,
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceResponseInvalid,
    ProvinceUnavailable,
    QueryRequest,
    ReversalRequest,
    SettlementPending,
    SettlementRequest,
)
from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.settlement.adapters.registry import build_adapters
from medpay.wire.national import (
    RequestEnvelope,
    ResponseEnvelope,
    SetlDetail,
    SetlInfo,
    SettlementCallback,
    SettlementInput,
    SettlementOutput,
    encode,
    request_decoder,
)
from medpay.wire.signing import (
    body_signature_headers,
    generate_private_key,
    private_key_pem,
    public_key_pem,
    verify_canonical,
)

GATEWAY_KEY = generate_private_key()
PROVINCE_KEY = generate_private_key()
URL = "http://province.test/provinces/330000/api"
PSN = "33000000000000000001"


def settlement_request(**overrides: Any) -> SettlementRequest:
    fields: dict[str, Any] = {
        "msgid": "H33010600001202503010830050001",
        "psn_no": PSN,
        "insured_area": "330106",
        "treatment_area": "330106",
        "institution_code": "H33010600001",
        "institution_name": "杭州互联网医院",
        "institution_level": 3,
        "insurance_scheme": "employee",
        "personal_account_allowed": True,
        "service_date": dt.date(2025, 3, 1),
        "visit_id": "V1",
        "charge_batch_no": "C1",
        "items": [
            ClassifiedItem(
                line_no="1",
                code="X01",
                name="amoxicillin",
                quantity=2,
                unit_price_fen=1_500,
                item_class="A",
            ),
            ClassifiedItem(
                line_no="2",
                code="B07",
                name="ointment",
                quantity=1,
                unit_price_fen=2_000,
                item_class="B",
                price_limit_fen=1_800,
                pre_self_pay_bp=1_500,
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


def setlinfo(**overrides: Any) -> SetlInfo:
    # Figures of a consistent answer for settlement_request(): total 3000 + 2000 + 800 = 5800.
    fields: dict[str, Any] = {
        "setl_id": "330000202503010000000001",
        "psn_no": PSN,
        "mdtrt_id": "V1",
        "medfee_sumamt": 5_800,
        "fulamt_ownpay_amt": 800,
        "overlmt_selfpay": 200,
        "preselfpay_amt": 270,
        "inscp_scp_amt": 4_530,
        "act_pay_dedc": 0,
        "hifp_pay": 3_171,
        "pool_prop_selfpay": 7_000,
        "hifmi_pay": 0,
        "maf_pay": 0,
        "fund_pay_sumamt": 3_171,
        "psn_part_amt": 2_629,
        "acct_pay": 1_829,
        "psn_cash_pay": 800,
        "balc": 98_171,
        "insutype": "310",
        "setl_time": "2025-03-01 08:30:06",
    }
    fields.update(overrides)
    return SetlInfo(**fields)


def output(**overrides: Any) -> SettlementOutput:
    detail = SetlDetail(
        fund_pay_type="310100", inscp_scp_amt=4_530, crt_payb_lmt_amt=4_530, fund_payamt=3_171
    )
    return SettlementOutput(setlinfo=setlinfo(**overrides), setldetail=[detail])


def reply(
    out: Any = None,
    *,
    infcode: int = 0,
    err_msg: str | None = None,
    key: Any = PROVINCE_KEY,
    body: bytes | None = None,
    status: int = 200,
) -> httpx.Response:
    if body is None:
        body = encode(
            ResponseEnvelope[Any](
                infcode=infcode,
                inf_refmsgid="330000202503010830060000000001",
                refmsg_time="20250301083006000",
                respond_time="20250301083006010",
                err_msg=err_msg,
                output=out,
            )
        )
    return httpx.Response(status, content=body, headers=body_signature_headers(body, key))


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def adapter(client: httpx.AsyncClient) -> NationalHttpAdapter:
    """Zhejiang, configured with one finer code of its own (-12: a charge batch settled twice)."""
    return NationalHttpAdapter(
        URL,
        "330000",
        GATEWAY_KEY,
        PROVINCE_KEY.public_key(),
        client,
        httpx.Timeout(1.0),
        infcodes={-12: "charge_already_settled"},
    )


@pytest.fixture
def province():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


# --- the request ------------------------------------------------------------------------------


async def test_pre_settlement_sends_a_signed_national_envelope(adapter, province):
    route = province.post(URL).mock(return_value=reply(output(setl_id=None)))

    await adapter.pre_settle(settlement_request())

    sent = route.calls.last.request
    assert sent.headers["content-type"] == "application/json"
    envelope = msgspec.json.decode(sent.content, type=RequestEnvelope[SettlementInput])
    assert envelope.infno == "2206"
    assert envelope.msgid == "H33010600001202503010830050001"
    assert envelope.insuplc_admdvs == "330106"
    assert envelope.mdtrtarea_admvs == "330106"
    assert envelope.fixmedins_code == "H33010600001"
    assert envelope.signtype == "ED25519"
    assert envelope.infver == "V1.0"
    body = envelope.input
    assert (body.psn_no, body.insutype, body.acct_used_flag, body.medins_lv) == (
        PSN,
        "310",
        "1",
        "3",
    )
    assert body.medfee_sumamt == 5_800
    assert body.begntime == dt.date(2025, 3, 1)
    assert [d.chrgitm_lv for d in body.feedetail] == ["01", "02", "03"]
    assert body.feedetail[1].pric_uplmt_amt == 1_800
    assert body.feedetail[1].selfpay_prop == 1_500
    assert body.feedetail[2].non_medical is True
    # the signature covers what was sent, checked the way the province checks it
    verify_canonical(request_decoder(Any).decode(sent.content), [GATEWAY_KEY.public_key()])


async def test_money_travels_as_integers(adapter, province):
    route = province.post(URL).mock(return_value=reply(output(setl_id=None)))
    await adapter.pre_settle(settlement_request())
    raw = json.loads(route.calls.last.request.content)
    assert isinstance(raw["input"]["medfee_sumamt"], int)
    assert all(isinstance(d["pric"], int) for d in raw["input"]["feedetail"])


async def test_request_for_another_province_is_not_sent(adapter, province):
    route = province.post(URL).mock(return_value=reply(output()))
    with pytest.raises(ValueError, match="province"):
        await adapter.settle(settlement_request(insured_area="440106"))
    assert not route.called


# --- the answer ---------------------------------------------------------------------------------


async def test_settlement_answer_maps_to_the_breakdown(adapter, province):
    province.post(URL).mock(return_value=reply(output()))

    result = await adapter.settle(settlement_request())

    assert result.msgid == "H33010600001202503010830050001"
    assert result.province_msgid == "330000202503010830060000000001"
    breakdown = result.breakdown
    assert breakdown.settlement_id == "330000202503010000000001"
    assert breakdown.medfee_total_fen == 5_800
    assert breakdown.basic_fund_fen == 3_171
    assert breakdown.ratio_bp == 7_000
    assert breakdown.personal_account_fen == 1_829
    assert breakdown.cash_fen == 800
    assert breakdown.balance_after_fen == 98_171
    assert breakdown.settled_at == dt.datetime(2025, 3, 1, 0, 30, 6, tzinfo=dt.UTC)
    assert [(f.fund_type, f.paid_fen) for f in breakdown.funds] == [("310100", 3_171)]


async def test_reversal_answer_maps_to_the_result(adapter, province):
    from medpay.wire.national import ReversalOutput

    answer = ReversalOutput(
        setl_id="S1",
        psn_no=PSN,
        mdtrt_id="V1",
        medfee_sumamt=5_800,
        fund_pay_sumamt=3_171,
        acct_pay=1_829,
        psn_cash_pay=800,
        balc=100_000,
        setl_time="2025-03-01 09:00:00",
    )
    route = province.post(URL).mock(return_value=reply(answer))
    request = ReversalRequest(
        msgid="H33010600001202503010900000001",
        psn_no=PSN,
        insured_area="330106",
        treatment_area="330106",
        institution_code="H33010600001",
        institution_name="h",
        settlement_id="S1",
        visit_id="V1",
    )

    result = await adapter.reverse(request)

    sent = json.loads(route.calls.last.request.content)
    assert sent["infno"] == "2208"
    assert sent["input"] == {"setl_id": "S1", "mdtrt_id": "V1", "psn_no": PSN}
    assert result.personal_account_fen == 1_829
    assert result.balance_after_fen == 100_000


@pytest.mark.parametrize(
    ("answer", "status", "has_breakdown"),
    [
        ({"ord_stas": "not_found"}, "not_found", False),
        ({"ord_stas": "settled", "setlinfo": msgspec.to_builtins(setlinfo())}, "settled", True),
    ],
)
async def test_order_query_maps_the_status(adapter, province, answer, status, has_breakdown):
    route = province.post(URL).mock(return_value=reply(answer))
    request = QueryRequest(
        msgid="H33010600001202503010900000002",
        ref_msgid="H33010600001202503010830050001",
        insured_area="330106",
        treatment_area="330106",
        institution_code="H33010600001",
        institution_name="h",
    )

    result = await adapter.query(request)

    assert json.loads(route.calls.last.request.content)["input"] == {
        "ref_msgid": "H33010600001202503010830050001"
    }
    assert result.status == status
    assert (result.breakdown is not None) == has_breakdown


def query_request() -> QueryRequest:
    return QueryRequest(
        msgid="H33010600001202503010900000002",
        ref_msgid="H33010600001202503010830050001",
        insured_area="330106",
        treatment_area="330106",
        institution_code="H33010600001",
        institution_name="h",
    )


# --- asynchronous provinces ------------------------------------------------------------------------


async def test_settlement_accepted_for_processing_is_pending(adapter, province):
    province.post(URL).mock(return_value=reply({"ord_stas": "processing"}))

    with pytest.raises(SettlementPending) as caught:
        await adapter.settle(settlement_request())

    assert isinstance(caught.value, OutcomeUnknown)
    assert not caught.value.outcome_known
    assert caught.value.code == "settlement_pending"
    assert (caught.value.province, caught.value.msgid) == (
        "330000",
        "H33010600001202503010830050001",
    )


async def test_settlement_answer_with_ord_stas_settled_maps_as_before(adapter, province):
    answer = {"ord_stas": "settled", **msgspec.to_builtins(output())}
    province.post(URL).mock(return_value=reply(answer))
    result = await adapter.settle(settlement_request())
    assert result.breakdown.basic_fund_fen == 3_171


async def test_pre_settlement_is_never_processing(adapter, province):
    province.post(URL).mock(return_value=reply({"ord_stas": "processing"}))
    with pytest.raises(ProvinceResponseInvalid):
        await adapter.pre_settle(settlement_request())


async def test_processing_with_figures_is_invalid(adapter, province):
    answer = {"ord_stas": "processing", **msgspec.to_builtins(output())}
    province.post(URL).mock(return_value=reply(answer))
    with pytest.raises(ProvinceResponseInvalid):
        await adapter.settle(settlement_request())


async def test_order_query_on_a_settlement_still_processing(adapter, province):
    province.post(URL).mock(return_value=reply({"ord_stas": "processing"}))

    result = await adapter.query(query_request())

    assert result.status == "processing"
    assert result.breakdown is None
    assert result.error_code is None


async def test_order_query_on_a_failed_settlement_gives_the_reason(adapter, province):
    province.post(URL).mock(
        return_value=reply({"ord_stas": "failed", "err_code": -2, "err_msg": "not insured here"})
    )

    result = await adapter.query(query_request())

    assert result.status == "failed"
    assert result.breakdown is None
    assert result.error_code == "person_unknown_to_province"
    assert result.message == "not insured here"


@pytest.mark.parametrize("err_code", [None, 0, 3])
async def test_failed_without_a_negative_err_code_is_invalid(adapter, province, err_code):
    province.post(URL).mock(return_value=reply({"ord_stas": "failed", "err_code": err_code}))
    with pytest.raises(ProvinceResponseInvalid, match="err_code"):
        await adapter.query(query_request())


# --- callbacks ---------------------------------------------------------------------------------------

NOW = 1_740_789_006  # 2025-03-01 08:30:06 Beijing


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
    return encode(SettlementCallback(**fields))


def signed_headers(body: bytes, key: Any = PROVINCE_KEY, at: int = NOW) -> tuple[str, str]:
    headers = body_signature_headers(body, key, timestamp=at)
    return headers["X-Province-Timestamp"], headers["X-Province-Signature"]


def test_signed_settlement_callback_maps_to_domain_names(adapter):
    body = callback_body()

    callback = adapter.parse_callback(body, *signed_headers(body), now=NOW + 10)

    assert callback.callback_id == "CB330000202503010830060000000007"
    assert callback.ref_msgid == "H33010600001202503010830050001"
    assert (callback.kind, callback.result) == ("settlement", "settled")
    assert callback.breakdown is not None
    assert callback.breakdown.settlement_id == "330000202503010000000001"
    assert callback.breakdown.basic_fund_fen == 3_171
    assert [(f.fund_type, f.paid_fen) for f in callback.breakdown.funds] == [("310100", 3_171)]
    assert callback.error_code is None
    assert callback.sent_at == dt.datetime(2025, 3, 1, 0, 30, 6, 123_000, tzinfo=dt.UTC)


def test_reversal_callback_is_kind_reversal(adapter):
    body = callback_body(infno="2208", ord_stas="reversed")
    callback = adapter.parse_callback(body, *signed_headers(body), now=NOW)
    assert (callback.kind, callback.result) == ("reversal", "reversed")
    assert callback.breakdown is not None


@pytest.mark.parametrize(
    ("err_code", "code"), [(-2, "person_unknown_to_province"), (-99, "province_error")]
)
def test_failed_callback_maps_the_reason_to_a_problem_code(adapter, err_code, code):
    body = callback_body(
        ord_stas="failed", setlinfo=None, setldetail=[], err_code=err_code, err_msg="why"
    )
    callback = adapter.parse_callback(body, *signed_headers(body), now=NOW)
    assert (callback.result, callback.error_code, callback.message) == ("failed", code, "why")
    assert callback.breakdown is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ((None, None), "callback_signature_invalid"),
        ((str(NOW), None), "callback_signature_invalid"),
        (("soon", "c2ln"), "callback_signature_invalid"),
        ((str(NOW), "not base64!"), "callback_signature_invalid"),
        ((str(NOW - 301), "c2ln"), "callback_timestamp_out_of_window"),
        ((str(NOW + 301), "c2ln"), "callback_timestamp_out_of_window"),
    ],
)
def test_callback_headers_are_checked(adapter, headers, code):
    with pytest.raises(CallbackRejected) as caught:
        adapter.parse_callback(callback_body(), *headers, now=NOW)
    assert caught.value.code == code
    assert caught.value.province == "330000"


def test_callback_signed_by_another_key_is_refused(adapter):
    body = callback_body()
    with pytest.raises(CallbackRejected) as caught:
        adapter.parse_callback(body, *signed_headers(body, generate_private_key()), now=NOW)
    assert caught.value.code == "callback_signature_invalid"


def test_callback_tampered_after_signing_is_refused(adapter):
    body = callback_body()
    headers = signed_headers(body)
    with pytest.raises(CallbackRejected) as caught:
        adapter.parse_callback(body.replace(b"3171", b"3172", 1), *headers, now=NOW)
    assert caught.value.code == "callback_signature_invalid"


def test_stale_signature_is_refused_even_if_it_verifies(adapter):
    body = callback_body()
    with pytest.raises(CallbackRejected) as caught:
        adapter.parse_callback(body, *signed_headers(body, at=NOW - 600), now=NOW)
    assert caught.value.code == "callback_timestamp_out_of_window"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"callback_id": "x", "ref_msgid": "y"}',
        # signed, decodes, but its figures do not add up
        callback_body(setlinfo=setlinfo(psn_cash_pay=700)),
    ],
)
def test_signed_but_malformed_callback_is_refused(adapter, body):
    with pytest.raises(CallbackRejected) as caught:
        adapter.parse_callback(body, *signed_headers(body), now=NOW)
    assert caught.value.code == "callback_malformed"


def test_callback_window_uses_the_adapter_clock_by_default(client):
    clock_at = dt.datetime.fromtimestamp(NOW, dt.UTC)
    clocked = NationalHttpAdapter(
        URL, "330000", GATEWAY_KEY, PROVINCE_KEY.public_key(), client, clock=lambda: clock_at
    )
    body = callback_body()
    assert clocked.parse_callback(body, *signed_headers(body)).result == "settled"


# --- province errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("infcode", "code", "retryable"),
    [
        (-1, "province_error", True),
        (-2, "person_unknown_to_province", False),
        (-3, "filing_required", False),
        (-4, "msgid_conflict", False),
        (-5, "settlement_unknown_to_province", False),
        (-6, "settlement_already_reversed", False),
        (-7, "province_refused_signature", False),
        (-12, "charge_already_settled", False),
        (-99, "province_error", False),
    ],
)
async def test_error_infcode_becomes_a_rejection(adapter, province, infcode, code, retryable):
    province.post(URL).mock(return_value=reply(infcode=infcode, err_msg="refused"))

    with pytest.raises(ProvinceRejected) as caught:
        await adapter.settle(settlement_request())

    assert caught.value.code == code
    assert caught.value.infcode == infcode
    assert caught.value.retryable is retryable
    assert caught.value.outcome_known
    assert caught.value.message == "refused"


# --- transport ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_failure_before_sending_means_unavailable(adapter, province, error):
    province.post(URL).mock(side_effect=error)
    with pytest.raises(ProvinceUnavailable) as caught:
        await adapter.settle(settlement_request())
    assert caught.value.outcome_known
    assert caught.value.code == "province_unavailable"


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
async def test_failure_after_sending_means_outcome_unknown(adapter, province, error):
    province.post(URL).mock(side_effect=error)
    with pytest.raises(OutcomeUnknown) as caught:
        await adapter.settle(settlement_request())
    assert not caught.value.outcome_known
    assert caught.value.code == "settlement_outcome_unknown"
    assert caught.value.msgid == "H33010600001202503010830050001"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_means_outcome_unknown(adapter, province, status):
    province.post(URL).mock(return_value=httpx.Response(status))
    with pytest.raises(OutcomeUnknown) as caught:
        await adapter.settle(settlement_request())
    assert type(caught.value) is OutcomeUnknown


# --- answers that cannot be trusted -----------------------------------------------------------------


async def test_answer_signed_by_another_key_is_invalid(adapter, province):
    province.post(URL).mock(return_value=reply(output(), key=generate_private_key()))
    with pytest.raises(ProvinceResponseInvalid, match="signature"):
        await adapter.settle(settlement_request())


async def test_unsigned_answer_is_invalid(adapter, province):
    province.post(URL).mock(return_value=httpx.Response(200, content=encode({"infcode": 0})))
    with pytest.raises(ProvinceResponseInvalid, match="signature"):
        await adapter.settle(settlement_request())


async def test_malformed_answer_is_invalid_and_its_outcome_unknown(adapter, province):
    province.post(URL).mock(return_value=reply(body=b"<html>gateway</html>"))
    with pytest.raises(ProvinceResponseInvalid) as caught:
        await adapter.settle(settlement_request())
    assert isinstance(caught.value, OutcomeUnknown)
    assert not caught.value.outcome_known
    assert caught.value.code == "province_response_invalid"


async def test_answer_with_inconsistent_figures_is_invalid(adapter, province):
    province.post(URL).mock(return_value=reply(output(psn_cash_pay=700)))
    with pytest.raises(ProvinceResponseInvalid, match="inconsistent"):
        await adapter.settle(settlement_request())


async def test_answer_about_another_person_is_invalid(adapter, province):
    province.post(URL).mock(return_value=reply(output(psn_no="33000000000000000099")))
    with pytest.raises(ProvinceResponseInvalid, match="another person"):
        await adapter.settle(settlement_request())


async def test_success_without_output_is_invalid(adapter, province):
    province.post(URL).mock(return_value=reply(None))
    with pytest.raises(ProvinceResponseInvalid):
        await adapter.settle(settlement_request())


async def test_unexpected_http_status_is_invalid(adapter, province):
    province.post(URL).mock(return_value=httpx.Response(404))
    with pytest.raises(ProvinceResponseInvalid, match="404"):
        await adapter.settle(settlement_request())


# --- registry ---------------------------------------------------------------------------------------


def _config(*endpoints: ProvinceEndpoint) -> ClearingConfig:
    return ClearingConfig(signing_key_pem=private_key_pem(GATEWAY_KEY), provinces=list(endpoints))


def _endpoint(admdvs: str, kind: str = "national_http") -> ProvinceEndpoint:
    return ProvinceEndpoint(
        admdvs=admdvs,
        kind=kind,
        url=f"http://p/{admdvs}",
        public_key_pem=public_key_pem(PROVINCE_KEY),
    )


async def test_registry_builds_one_adapter_per_province(client):
    adapters = build_adapters(_config(_endpoint("330000"), _endpoint("440000")), client)
    assert sorted(adapters) == ["330000", "440000"]
    assert all(isinstance(a, ClearingAdapter) for a in adapters.values())
    assert adapters["440000"].province_code == "440000"


async def test_registry_refuses_an_unknown_kind(client):
    with pytest.raises(ValueError, match="unknown adapter kind"):
        build_adapters(_config(_endpoint("330000", kind="sm4_national")), client)


async def test_registry_refuses_a_province_twice(client):
    with pytest.raises(ValueError, match="twice"):
        build_adapters(_config(_endpoint("330000"), _endpoint("330000")), client)
