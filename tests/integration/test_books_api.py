"""The operator API of the books: volumes, a payment's story, differences, clearing, balances."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from medpay.clearing.service import period_of
from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.plugin import resources_of
from medpay.reconciliation.service import Reconciler

from .books_helpers import FUNDED_ORDER, GUANGDONG_RESIDENT, pay, reverse
from .conftest import operator_auth, problem


@pytest.fixture
def guangdong(patient_app, identity_issuer) -> AppSignatureAuth:
    return AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(GUANGDONG_RESIDENT)
    )


@pytest.fixture
def as_operator(operator):
    return operator_auth(operator)


async def _planted_difference(client, signed, simulator, gateway, db_pool) -> dict:
    paid = await pay(client, signed)
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.put(
            f"/admin/settlements/{paid['settlement']['settlement_id']}/basic-fund",
            json={"hifp_pay": paid["settlement"]["basic_fund_fen"] + 7},
        )
    reconciler = Reconciler(db_pool, resources_of(gateway).payment_flow, retry_seconds=0.01)
    await reconciler.reconcile("330000", china_today(), triggered_by="test")
    return paid


# --- volumes ------------------------------------------------------------------------------


async def test_todays_volumes_by_insured_province(client, signed, guangdong, as_operator) -> None:
    zj = await pay(client, signed)
    gd = await pay(client, guangdong, FUNDED_ORDER)
    undone = await pay(client, guangdong, FUNDED_ORDER)
    await reverse(client, guangdong, undone["payment_id"])

    response = await client.get("/v1/books/volumes", auth=as_operator)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["day"] == china_today().isoformat()
    provinces = {p["province"]: p for p in body["provinces"]}
    assert set(provinces) == {"330000", "440000"}
    guangdong_day = provinces["440000"]
    assert (guangdong_day["name"], guangdong_day["payments"], guangdong_day["settled"]) == (
        "Guangdong",
        2,
        1,
    )
    assert guangdong_day["reversed"] == 1
    assert guangdong_day["fund_total_fen"] == gd["settlement"]["fund_total_fen"]
    assert guangdong_day["reversed_fee_total_fen"] == undone["medical_fee_total_fen"]
    assert provinces["330000"]["personal_account_fen"] == zj["settlement"]["personal_account_fen"]
    assert body["total"]["payments"] == 3


async def test_another_days_volumes_are_empty(client, as_operator) -> None:
    response = await client.get("/v1/books/volumes?date=2020-01-01", auth=as_operator)
    assert response.status_code == 200
    assert response.json()["provinces"] == []
    assert response.json()["total"]["payments"] == 0


async def test_a_malformed_date_is_a_problem(client, as_operator) -> None:
    response = await client.get("/v1/books/volumes?date=2026-02-30", auth=as_operator)
    assert response.status_code == 400
    assert problem(response)["code"] == "request_invalid"


# --- a payment's story ---------------------------------------------------------------------


async def test_a_payments_story_has_its_states_messages_callbacks_and_journals(
    client, guangdong, simulator, as_operator, db_pool
) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.put(
            "/admin/callbacks/target", json={"callback_base_url": str(client.base_url).rstrip("/")}
        )
    paid = await pay(client, guangdong, FUNDED_ORDER)
    await reverse(client, guangdong, paid["payment_id"])
    for _ in range(100):  # the province's callbacks arrive after its answers
        if await db_pool.fetchval("SELECT count(*) FROM province_callbacks") == 2:
            break
        await asyncio.sleep(0.05)

    response = await client.get(f"/v1/books/payments/{paid['payment_id']}", auth=as_operator)

    assert response.status_code == 200, response.text
    story = response.json()
    assert story["state"] == "reversed"
    # Recorded as settling, its request stored, in the transaction that received it.
    assert [s["to_state"] for s in story["states"]] == [
        "settling",
        "settled",
        "reversing",
        "reversed",
    ]
    assert [(m["infno"], m["outcome"]) for m in story["messages"]] == [
        ("2207", "accepted"),
        ("2208", "accepted"),
    ]
    assert story["messages"][0]["request"]["psn_no"] == GUANGDONG_RESIDENT
    assert sorted(c["result"] for c in story["callbacks"]) == ["reversed", "settled"]
    assert [j["kind"] for j in story["journals"]] == ["settlement", "reversal"]
    settlement, reversal = story["journals"]
    assert {(p["account"], -p["amount_fen"]) for p in settlement["postings"]} == {
        (p["account"], p["amount_fen"]) for p in reversal["postings"]
    }
    assert story["settlement"]["setl_id"] == paid["settlement"]["settlement_id"]
    assert [(e["kind"], e["fund_total_fen"]) for e in story["clearing"]] == [
        ("settlement", paid["settlement"]["fund_total_fen"]),
        ("reversal", -paid["settlement"]["fund_total_fen"]),
    ]
    assert story["app_id"] == guangdong.app_id


async def test_the_story_shows_what_reconciliation_found(
    client, signed, simulator, gateway, db_pool, as_operator
) -> None:
    paid = await _planted_difference(client, signed, simulator, gateway, db_pool)

    story = (await client.get(f"/v1/books/payments/{paid['payment_id']}", auth=as_operator)).json()

    (difference,) = story["differences"]
    assert (difference["kind"], difference["status"]) == ("figures_differ", "open")


@pytest.mark.parametrize("payment_id", ["nope", str(uuid.UUID(int=0)), "9" * 40])
async def test_an_unknown_payment_has_no_story(client, as_operator, payment_id: str) -> None:
    response = await client.get(f"/v1/books/payments/{payment_id}", auth=as_operator)
    assert response.status_code == 404
    assert problem(response)["code"] == "payment_not_found"


async def test_a_patient_apps_signature_opens_no_books(client, signed, zhejiang_agency) -> None:
    from .conftest import agency_auth

    paid = await pay(client, signed)
    for auth in (signed, agency_auth(zhejiang_agency)):
        for path in (
            f"/v1/books/payments/{paid['payment_id']}",
            "/v1/books/volumes",
            "/v1/reconciliation/differences",
            f"/v1/clearing/{period_of(china_today())}",
        ):
            response = await client.get(path, auth=auth)
            assert response.status_code == 401, (path, response.text)


# --- balances and the check -----------------------------------------------------------------


async def test_balances_and_the_check_through_the_api(client, guangdong, as_operator) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)

    found = await client.get("/v1/books/balances?prefix=fund_receivable:", auth=as_operator)
    check = await client.get("/v1/books/check", auth=as_operator)

    assert found.status_code == 200
    assert found.json()["accounts"] == [
        {"account": "fund_receivable:440000", "balance_fen": paid["settlement"]["fund_total_fen"]}
    ]
    assert check.status_code == 200 and check.json()["failures"] == []


@pytest.mark.parametrize(
    "query",
    ["prefix=%25", "account=Fund", "as_of=2026-11-26T08:00:00", "as_of=yesterday"],
)
async def test_a_malformed_balance_question_is_a_problem(client, as_operator, query: str) -> None:
    response = await client.get(f"/v1/books/balances?{query}", auth=as_operator)
    assert response.status_code == 400, response.text


# --- reconciliation differences -----------------------------------------------------------


async def test_open_differences_are_listed_and_an_operator_explains_one(
    client, signed, simulator, gateway, db_pool, as_operator
) -> None:
    await _planted_difference(client, signed, simulator, gateway, db_pool)

    listed = await client.get("/v1/reconciliation/differences?status=open", auth=as_operator)
    (difference,) = listed.json()["differences"]
    path = f"/v1/reconciliation/differences/{difference['difference_id']}"
    explanation = {"note": "Statement corrected by the province on the phone, ticket 42."}
    key = {"Idempotency-Key": f"explain-{uuid.uuid4().hex}"}
    explained = await client.post(
        f"{path}/explanation", json=explanation, headers=key, auth=as_operator
    )
    replayed = await client.post(
        f"{path}/explanation", json=explanation, headers=key, auth=as_operator
    )
    again = await client.post(
        f"{path}/explanation",
        json=explanation,
        headers={"Idempotency-Key": f"explain-{uuid.uuid4().hex}"},
        auth=as_operator,
    )
    shown = await client.get(path, auth=as_operator)
    still_open = await client.get("/v1/reconciliation/differences?status=open", auth=as_operator)

    assert listed.status_code == 200
    assert (difference["kind"], difference["awaiting"]) == ("figures_differ", "person")
    assert explained.status_code == 200, explained.text
    assert explained.json()["resolution"] == "explained_by_operator"
    assert explained.json()["resolution_detail"] == explanation["note"]
    assert explained.json()["resolved_by"] == "operator:op_clearing"
    assert replayed.status_code == 200 and replayed.headers.get("idempotent-replayed") == "true"
    assert again.status_code == 409
    assert problem(again)["code"] == "difference_already_resolved"
    assert shown.json()["status"] == "resolved"
    assert still_open.json()["differences"] == []


async def test_differences_are_filtered_by_province_and_day(
    client, signed, simulator, gateway, db_pool, as_operator
) -> None:
    await _planted_difference(client, signed, simulator, gateway, db_pool)
    today = china_today().isoformat()

    mine = await client.get(
        f"/v1/reconciliation/differences?province=330000&date={today}", auth=as_operator
    )
    others = await client.get("/v1/reconciliation/differences?province=440000", auth=as_operator)

    assert len(mine.json()["differences"]) == 1
    assert others.json()["differences"] == []


@pytest.mark.parametrize("difference_id", ["0", "x", "9" * 30])
async def test_an_unknown_difference_is_not_found(client, as_operator, difference_id) -> None:
    response = await client.get(f"/v1/reconciliation/differences/{difference_id}", auth=as_operator)
    assert response.status_code == 404
    assert problem(response)["code"] == "difference_not_found"


@pytest.mark.parametrize("note", ["", "ok", "\u0000 nul"])
async def test_an_explanation_needs_a_real_note(client, as_operator, note) -> None:
    response = await client.post(
        "/v1/reconciliation/differences/1/explanation",
        json={"note": note},
        headers={"Idempotency-Key": f"explain-{uuid.uuid4().hex}"},
        auth=as_operator,
    )
    assert response.status_code == 400


# --- clearing -----------------------------------------------------------------------------------


async def test_the_clearing_matrix_of_a_period(client, guangdong, as_operator) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)

    response = await client.get(f"/v1/clearing/{period_of(china_today())}", auth=as_operator)

    assert response.status_code == 200
    matrix = response.json()
    (cell,) = matrix["cells"]
    assert (cell["insured_province"], cell["treatment_province"]) == ("440000", "110000")
    assert cell["funds"]["resident_basic_fen"] == paid["settlement"]["basic_fund_fen"]
    assert cell["funds"]["employee_basic_fen"] == 0
    assert len(matrix["positions"]) == 31
    assert matrix["net_sum_fen"] == 0


async def test_closing_a_period_that_has_not_ended_is_refused(client, as_operator) -> None:
    response = await client.post(
        f"/v1/clearing/{period_of(china_today())}/close",
        headers={"Idempotency-Key": f"close-{uuid.uuid4().hex}"},
        auth=as_operator,
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "clearing_period_not_over"


async def test_an_operator_closes_a_past_period(client, as_operator) -> None:
    response = await client.post(
        "/v1/clearing/2020-01/close",
        headers={"Idempotency-Key": f"close-{uuid.uuid4().hex}"},
        auth=as_operator,
    )
    shown = await client.get("/v1/clearing/2020-01", auth=as_operator)

    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["closed_by"]) == (
        "closed",
        "operator:op_clearing",
    )
    assert shown.json() == response.json()


@pytest.mark.parametrize("period", ["2026-13", "202611", "x"])
async def test_a_malformed_period_is_a_problem(client, as_operator, period) -> None:
    response = await client.get(f"/v1/clearing/{period}", auth=as_operator)
    assert response.status_code == 400
    assert problem(response)["code"] == "clearing_period_invalid"
