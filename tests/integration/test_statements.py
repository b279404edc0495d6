"""The simulator's statements (3201, 3202) through the gateway's adapter, over real HTTP."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import httpx
import pytest

from medpay.clock import china_today
from medpay.demo import DEMO_ORDER, DEMO_PERSON
from medpay.plugin import resources_of
from medpay.settlement.adapters.base import (
    ProvinceRejected,
    QueryRequest,
    StatementDetailsRequest,
    StatementTotalsLine,
    StatementTotalsRequest,
)
from medpay.wire.national import CHINA_TZ, new_msgid

ZJ = "330000"
_seq = itertools.count(1)


def _msgid() -> str:
    return new_msgid("MEDPAY000000", dt.datetime.now(CHINA_TZ), next(_seq))


@pytest.fixture
def adapter(gateway, client):
    return resources_of(gateway).provinces.for_province(ZJ)


async def _pay(client, signed) -> dict:
    response = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": f"statement-{uuid.uuid4().hex}"},
        auth=signed,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _details(day: dt.date | None = None, page: int = 1, page_size: int = 1000, province=ZJ):
    day = day or china_today()
    return StatementDetailsRequest(
        msgid=_msgid(),
        province=province,
        first_day=day,
        last_day=day,
        page=page,
        page_size=page_size,
    )


def _totals(lines: list[StatementTotalsLine], day: dt.date | None = None):
    day = day or china_today()
    return StatementTotalsRequest(
        msgid=_msgid(), province=ZJ, first_day=day, last_day=day, lines=lines
    )


async def test_details_list_each_settlement_of_the_day_with_its_state(
    client, signed, adapter, db_pool
) -> None:
    kept = await _pay(client, signed)
    undone = await _pay(client, signed)
    reversal = await client.post(
        f"/v1/payments/{undone['payment_id']}/reversal",
        headers={"Idempotency-Key": f"statement-rev-{uuid.uuid4().hex}"},
        auth=signed,
    )
    assert reversal.status_code == 200

    page = await adapter.statement_details(_details())

    assert (page.total_lines, page.last) == (2, True)
    by_id = {line.settlement_id: line for line in page.lines}
    line = by_id[kept["settlement"]["settlement_id"]]
    msgid = await db_pool.fetchval(
        "SELECT msgid FROM province_messages WHERE payment_id = $1 AND infno = '2207'",
        uuid.UUID(kept["payment_id"]),
    )
    assert (line.msgid, line.psn_no, line.visit_id) == (
        msgid,
        DEMO_PERSON,
        uuid.UUID(kept["payment_id"]).hex,
    )
    assert (line.insurance_scheme, line.clearing_type, line.institution_code) == (
        "employee",
        "11",
        "H11010800124",
    )
    settlement = kept["settlement"]
    assert (line.medical_fee_total_fen, line.fund_total_fen, line.personal_account_fen) == (
        settlement["medical_fee_total_fen"],
        settlement["fund_total_fen"],
        settlement["personal_account_fen"],
    )
    assert line.basic_fund_fen == settlement["basic_fund_fen"]
    assert line.cash_fen == settlement["cash_fen"]
    assert not line.reversed
    gone = by_id[undone["settlement"]["settlement_id"]]
    reversal_msgid = await db_pool.fetchval(
        "SELECT msgid FROM province_messages WHERE payment_id = $1 AND infno = '2208'",
        uuid.UUID(undone["payment_id"]),
    )
    assert gone.reversed and gone.reversal_msgid == reversal_msgid
    assert gone.reversed_at is not None and gone.reversed_at.date() == china_today()


async def test_details_come_in_pages(client, signed, adapter) -> None:
    paid = [await _pay(client, signed) for _ in range(3)]

    pages = [await adapter.statement_details(_details(page=n, page_size=2)) for n in (1, 2)]

    assert [len(p.lines) for p in pages] == [2, 1]
    assert [p.last for p in pages] == [False, True]
    assert {line.settlement_id for p in pages for line in p.lines} == {
        p["settlement"]["settlement_id"] for p in paid
    }
    with pytest.raises(ProvinceRejected):
        await adapter.statement_details(_details(page=3, page_size=2))


async def test_another_day_has_nothing(client, signed, adapter) -> None:
    await _pay(client, signed)
    page = await adapter.statement_details(_details(china_today() - dt.timedelta(days=1)))
    assert (page.total_lines, page.lines) == (0, [])


async def test_totals_agree_with_the_gateways_when_they_are_the_same(
    client, signed, adapter
) -> None:
    paid = [await _pay(client, signed) for _ in range(2)]
    ours = StatementTotalsLine(
        insurance_scheme="employee",
        clearing_type="11",
        medical_fee_total_fen=sum(p["medical_fee_total_fen"] for p in paid),
        fund_total_fen=sum(p["settlement"]["fund_total_fen"] for p in paid),
        personal_account_fen=sum(p["settlement"]["personal_account_fen"] for p in paid),
        settlement_count=2,
    )

    totals = await adapter.statement_totals(_totals([ours]))

    assert totals.agreed
    assert [(v.line, v.agreed) for v in totals.lines] == [(ours, True)]


async def test_totals_that_differ_are_answered_with_the_provinces_figures(
    client, signed, adapter
) -> None:
    paid = await _pay(client, signed)
    wrong = StatementTotalsLine(
        insurance_scheme="employee",
        clearing_type="11",
        medical_fee_total_fen=1,
        fund_total_fen=0,
        personal_account_fen=0,
        settlement_count=1,
    )
    resident = StatementTotalsLine(
        insurance_scheme="resident",
        clearing_type="11",
        medical_fee_total_fen=0,
        fund_total_fen=0,
        personal_account_fen=0,
        settlement_count=0,
    )

    totals = await adapter.statement_totals(_totals([wrong, resident]))

    assert not totals.agreed
    employee, residents = totals.lines
    assert not employee.agreed and "medfee_sumamt" in employee.description
    assert employee.line.medical_fee_total_fen == paid["medical_fee_total_fen"]
    assert residents.agreed  # zero on both sides


async def test_a_statement_of_another_province_is_not_asked_of_this_one(adapter) -> None:
    request = StatementTotalsRequest(
        msgid=_msgid(),
        province=ZJ,
        first_day=china_today(),
        last_day=china_today(),
        lines=[],
    )
    wrong = StatementDetailsRequest(
        msgid=_msgid(),
        province="440000",
        first_day=china_today(),
        last_day=china_today(),
    )
    assert (await adapter.statement_totals(request)).agreed  # nothing on either side
    with pytest.raises(ValueError, match="is not asked of"):
        await adapter.statement_details(wrong)


async def test_forgetting_a_settlement_takes_it_out_of_the_books_and_undoes_it(
    client, signed, simulator, adapter, db_pool
) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        before = (await http.get(f"/admin/persons/{DEMO_PERSON}")).json()["acct_balance_fen"]
        paid = await _pay(client, signed)
        setl_id = paid["settlement"]["settlement_id"]

        forgotten = await http.delete(f"/admin/settlements/{setl_id}")
        again = await http.delete(f"/admin/settlements/{setl_id}")
        after = (await http.get(f"/admin/persons/{DEMO_PERSON}")).json()["acct_balance_fen"]

    assert forgotten.status_code == 200 and forgotten.json()["setl_id"] == setl_id
    assert again.status_code == 404
    assert after == before  # as if it had never been made
    assert (await adapter.statement_details(_details())).lines == []
    msgid = await db_pool.fetchval("SELECT msgid FROM province_messages")
    query = await adapter.query(
        QueryRequest(
            msgid=new_msgid("H11010800124", dt.datetime.now(CHINA_TZ), next(_seq)),
            ref_msgid=msgid,
            insured_area="330106",
            treatment_area="110108",
            institution_code="H11010800124",
            institution_name="internet hospital",
        )
    )
    assert query.status == "not_found"


async def test_a_planted_figure_shows_in_the_statement_only(
    client, signed, simulator, adapter
) -> None:
    paid = await _pay(client, signed)
    setl_id = paid["settlement"]["settlement_id"]
    basic = paid["settlement"]["basic_fund_fen"]
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        planted = await http.put(
            f"/admin/settlements/{setl_id}/basic-fund", json={"hifp_pay": basic + 10}
        )
        too_much = await http.put(
            f"/admin/settlements/{setl_id}/basic-fund", json={"hifp_pay": 10**9}
        )
        unknown = await http.put("/admin/settlements/nope/basic-fund", json={"hifp_pay": 1})

    assert planted.status_code == 200
    assert planted.json()["hifp_pay"] == basic + 10
    assert planted.json()["psn_cash_pay"] == paid["settlement"]["cash_fen"] - 10
    assert too_much.status_code == 400
    assert unknown.status_code == 404
    (line,) = (await adapter.statement_details(_details())).lines
    assert line.basic_fund_fen == basic + 10
