"""Statements on the national wire (3201 totals, 3202 details), against a mocked province."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import msgspec
import pytest
import respx

from medpay.settlement.adapters.base import (
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceResponseInvalid,
    StatementDetailsRequest,
    StatementTotalsLine,
    StatementTotalsRequest,
)
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.wire.national import (
    CHINA_TZ,
    RequestEnvelope,
    ResponseEnvelope,
    StatementDetailsInput,
    StatementTotalsInput,
    encode,
    request_decoder,
)
from medpay.wire.signing import body_signature_headers, generate_private_key, verify_canonical

GATEWAY_KEY = generate_private_key()
PROVINCE_KEY = generate_private_key()
URL = "http://province.test/provinces/330000/api"
DAY = dt.date(2026, 11, 26)
MSGID = "MEDPAY000000202611270300000001"


def totals_request(lines: list[StatementTotalsLine] | None = None) -> StatementTotalsRequest:
    return StatementTotalsRequest(
        msgid=MSGID,
        province="330000",
        first_day=DAY,
        last_day=DAY,
        lines=lines if lines is not None else [line()],
    )


def details_request(page: int = 1, page_size: int = 2) -> StatementDetailsRequest:
    return StatementDetailsRequest(
        msgid=MSGID, province="330000", first_day=DAY, last_day=DAY, page=page, page_size=page_size
    )


def line(**overrides: Any) -> StatementTotalsLine:
    fields: dict[str, Any] = {
        "insurance_scheme": "employee",
        "clearing_type": "11",
        "medical_fee_total_fen": 11_100,
        "fund_total_fen": 5_000,
        "personal_account_fen": 3_000,
        "settlement_count": 2,
    }
    fields.update(overrides)
    return StatementTotalsLine(**fields)


def totals_output(*lines: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    results = list(lines) or [
        {
            "insutype": "310",
            "clr_type": "11",
            "medfee_sumamt": 11_100,
            "fund_pay_sumamt": 5_000,
            "acct_pay": 3_000,
            "fixmedins_setl_cnt": 2,
            "stmt_rslt": "0",
        }
    ]
    output = {
        "setl_optins": "330000",
        "stmt_begndate": DAY.isoformat(),
        "stmt_enddate": DAY.isoformat(),
        "stmt_rslt": "0" if all(r["stmt_rslt"] == "0" for r in results) else "1",
        "stmtinfo": results,
    }
    output.update(overrides)
    return output


def detail(setl_id: str = "330000202611260000000001", **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "setl_id": setl_id,
        "msgid": "H11010800124202611261000000001",
        "psn_no": "33000000000000000001",
        "mdtrt_id": "a" * 32,
        "insutype": "310",
        "clr_type": "11",
        "fixmedins_code": "H11010800124",
        "medfee_sumamt": 11_100,
        "hifp_pay": 5_000,
        "hifmi_pay": 0,
        "maf_pay": 0,
        "fund_pay_sumamt": 5_000,
        "acct_pay": 3_000,
        "psn_cash_pay": 3_100,
        "setl_time": "2026-11-26 10:00:01",
        "ord_stas": "settled",
    }
    fields.update(overrides)
    return fields


def details_output(data: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    output = {
        "setl_optins": "330000",
        "stmt_begndate": DAY.isoformat(),
        "stmt_enddate": DAY.isoformat(),
        "page_num": 1,
        "page_size": 2,
        "total": len(data),
        "data": data,
    }
    output.update(overrides)
    return output


def reply(out: Any = None, *, infcode: int = 0, err_msg: str | None = None) -> httpx.Response:
    body = encode(
        ResponseEnvelope[Any](
            infcode=infcode,
            inf_refmsgid="330000202611270300000000000001",
            refmsg_time="20261127030000000",
            respond_time="20261127030000010",
            err_msg=err_msg,
            output=out,
        )
    )
    return httpx.Response(200, content=body, headers=body_signature_headers(body, PROVINCE_KEY))


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def adapter(client: httpx.AsyncClient) -> NationalHttpAdapter:
    return NationalHttpAdapter(
        URL, "330000", GATEWAY_KEY, PROVINCE_KEY.public_key(), client, httpx.Timeout(1.0)
    )


@pytest.fixture
def province():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


# --- 3201 ---------------------------------------------------------------------------------


async def test_totals_go_out_as_a_signed_3201_with_national_names(adapter, province):
    route = province.post(URL).mock(return_value=reply(totals_output()))

    await adapter.statement_totals(totals_request())

    sent = route.calls.last.request
    envelope = msgspec.json.decode(sent.content, type=RequestEnvelope[StatementTotalsInput])
    assert (envelope.infno, envelope.msgid) == ("3201", MSGID)
    assert (envelope.insuplc_admdvs, envelope.mdtrtarea_admvs) == ("330000", "330000")
    assert envelope.fixmedins_code == "MEDPAY000000"
    body = envelope.input
    assert (body.setl_optins, body.stmt_begndate, body.stmt_enddate) == ("330000", DAY, DAY)
    (sent_line,) = body.stmtinfo
    assert (sent_line.insutype, sent_line.clr_type) == ("310", "11")
    assert (sent_line.medfee_sumamt, sent_line.fund_pay_sumamt, sent_line.acct_pay) == (
        11_100,
        5_000,
        3_000,
    )
    assert sent_line.fixmedins_setl_cnt == 2
    raw = json.loads(sent.content)["input"]
    assert raw["stmt_begndate"] == "2026-11-26"
    assert all(isinstance(v, int) for v in raw["stmtinfo"][0].values() if not isinstance(v, str))
    verify_canonical(request_decoder(Any).decode(sent.content), [GATEWAY_KEY.public_key()])


async def test_agreed_totals_map_to_verdicts(adapter, province):
    province.post(URL).mock(return_value=reply(totals_output()))

    totals = await adapter.statement_totals(totals_request())

    assert totals.agreed
    assert totals.province_msgid == "330000202611270300000000000001"
    (verdict,) = totals.lines
    assert verdict.agreed
    assert verdict.line == line()


async def test_disagreeing_totals_carry_the_provinces_figures(adapter, province):
    theirs = {
        "insutype": "310",
        "clr_type": "11",
        "medfee_sumamt": 5_550,
        "fund_pay_sumamt": 2_500,
        "acct_pay": 1_500,
        "fixmedins_setl_cnt": 1,
        "stmt_rslt": "1",
        "stmt_rslt_dscr": "differs: medfee_sumamt",
    }
    extra = {**theirs, "insutype": "390", "stmt_rslt": "1"}
    province.post(URL).mock(return_value=reply(totals_output(theirs, extra)))

    totals = await adapter.statement_totals(totals_request())

    assert not totals.agreed
    assert [(v.line.insurance_scheme, v.agreed) for v in totals.lines] == [
        ("employee", False),
        ("resident", False),
    ]
    assert totals.lines[0].line.medical_fee_total_fen == 5_550
    assert totals.lines[0].description == "differs: medfee_sumamt"


async def test_net_totals_may_be_negative(adapter, province):
    reversals_only = {
        "insutype": "390",
        "clr_type": "11",
        "medfee_sumamt": -5_550,
        "fund_pay_sumamt": -2_500,
        "acct_pay": 0,
        "fixmedins_setl_cnt": -1,
        "stmt_rslt": "0",
    }
    province.post(URL).mock(return_value=reply(totals_output(reversals_only)))
    mine = line(
        insurance_scheme="resident",
        medical_fee_total_fen=-5_550,
        fund_total_fen=-2_500,
        personal_account_fen=0,
        settlement_count=-1,
    )

    totals = await adapter.statement_totals(totals_request([mine]))

    assert totals.agreed and totals.lines[0].line == mine


@pytest.mark.parametrize(
    "output",
    [
        totals_output(setl_optins="440000"),
        totals_output(stmt_begndate="2026-11-25"),
        totals_output(stmt_rslt="1"),  # disagrees with its own lines
        totals_output(
            {
                "insutype": "390",
                "clr_type": "11",
                "medfee_sumamt": 0,
                "fund_pay_sumamt": 0,
                "acct_pay": 0,
                "fixmedins_setl_cnt": 0,
                "stmt_rslt": "1",
            }
        ),  # leaves out the line sent
    ],
    ids=["another province", "other days", "stmt_rslt inconsistent", "a line left out"],
)
async def test_a_totals_answer_that_cannot_be_believed_is_invalid(adapter, province, output):
    province.post(URL).mock(return_value=reply(output))
    with pytest.raises(ProvinceResponseInvalid):
        await adapter.statement_totals(totals_request())


async def test_a_refused_statement_is_a_province_rejection(adapter, province):
    province.post(URL).mock(return_value=reply(infcode=-1, err_msg="statement not ready"))
    with pytest.raises(ProvinceRejected) as refused:
        await adapter.statement_totals(totals_request())
    assert refused.value.code == "province_error"


async def test_a_lost_statement_answer_is_unknown(adapter, province):
    province.post(URL).mock(return_value=httpx.Response(504))
    with pytest.raises(OutcomeUnknown):
        await adapter.statement_totals(totals_request())


# --- 3202 ---------------------------------------------------------------------------------


async def test_details_go_out_as_a_signed_3202_page(adapter, province):
    route = province.post(URL).mock(return_value=reply(details_output([detail()])))

    await adapter.statement_details(details_request(page=1, page_size=2))

    envelope = msgspec.json.decode(
        route.calls.last.request.content, type=RequestEnvelope[StatementDetailsInput]
    )
    assert envelope.infno == "3202"
    body = envelope.input
    assert (body.setl_optins, body.page_num, body.page_size) == ("330000", 1, 2)
    assert (body.stmt_begndate, body.stmt_enddate) == (DAY, DAY)


async def test_detail_lines_map_to_statement_lines(adapter, province):
    reversed_line = detail(
        "330000202611250000000009",
        setl_time="2026-11-25 23:59:59",
        ord_stas="reversed",
        revs_msgid="H11010800124202611260001000002",
        revs_time="2026-11-26 00:00:05",
    )
    province.post(URL).mock(return_value=reply(details_output([detail(), reversed_line], total=3)))

    page = await adapter.statement_details(details_request())

    assert (page.page, page.page_size, page.total_lines, page.last) == (1, 2, 3, False)
    first, second = page.lines
    assert (first.settlement_id, first.msgid, first.visit_id) == (
        "330000202611260000000001",
        "H11010800124202611261000000001",
        "a" * 32,
    )
    assert (first.insurance_scheme, first.clearing_type, first.reversed) == (
        "employee",
        "11",
        False,
    )
    assert (first.fund_total_fen, first.personal_account_fen, first.cash_fen) == (
        5_000,
        3_000,
        3_100,
    )
    assert first.settled_at == dt.datetime(2026, 11, 26, 10, 0, 1, tzinfo=CHINA_TZ)
    assert second.reversed and second.reversal_msgid == "H11010800124202611260001000002"
    assert second.reversed_at == dt.datetime(2026, 11, 26, 0, 0, 5, tzinfo=CHINA_TZ)


async def test_the_last_page_says_so(adapter, province):
    province.post(URL).mock(return_value=reply(details_output([detail()], page_num=2, total=3)))
    page = await adapter.statement_details(details_request(page=2))
    assert page.last


@pytest.mark.parametrize(
    "output",
    [
        details_output([detail()], page_num=2),  # another page
        details_output([detail()], setl_optins="110000"),
        details_output([detail(setl_time="2026-11-24 10:00:00")]),  # outside the day
        details_output([detail(hifp_pay=4_999)]),  # funds do not add up
        details_output([detail(psn_cash_pay=3_000)]),  # split does not add up
        details_output([detail(ord_stas="reversed")]),  # reversed without its 2208
        details_output([detail(revs_msgid="H11010800124202611260001000002")]),
        details_output([detail(), detail("2"), detail("3")]),  # more than a page
        details_output([detail()], total=0),  # more lines than announced
        details_output([detail(msgid="not-a-msgid")]),
    ],
    ids=[
        "another page",
        "another province",
        "outside the days",
        "funds",
        "split",
        "reversed without 2208",
        "2208 without reversal",
        "overfull page",
        "beyond total",
        "bad msgid",
    ],
)
async def test_a_details_answer_that_cannot_be_believed_is_invalid(adapter, province, output):
    province.post(URL).mock(return_value=reply(output))
    with pytest.raises(ProvinceResponseInvalid):
        await adapter.statement_details(details_request())


async def test_a_statement_answer_signed_by_another_key_is_invalid(adapter, province):
    body = encode(
        ResponseEnvelope[Any](
            infcode=0,
            inf_refmsgid="330000202611270300000000000001",
            refmsg_time="20261127030000000",
            respond_time="20261127030000010",
            output=details_output([detail()]),
        )
    )
    headers = body_signature_headers(body, generate_private_key())
    province.post(URL).mock(return_value=httpx.Response(200, content=body, headers=headers))
    with pytest.raises(ProvinceResponseInvalid, match="signature"):
        await adapter.statement_details(details_request())


async def test_a_statement_of_another_province_is_not_asked(adapter, province):
    route = province.post(URL).mock(return_value=reply(details_output([])))
    wrong = StatementDetailsRequest(msgid=MSGID, province="440000", first_day=DAY, last_day=DAY)
    with pytest.raises(ValueError, match="province"):
        await adapter.statement_details(wrong)
    assert not route.called
