"""Settlement end to end: gateway and simulator over real HTTP, figures checked by hand.

Hand calculations follow DOMAIN.md section 3 with the reference policy; the sample
persons start the year with nothing used.
"""

from __future__ import annotations

import httpx
import pytest

from medpay.app import create_app
from medpay.demo import DEMO_ORDER
from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint

from .conftest import ZHEJIANG_EMPLOYEE, problem, register_unknown_to_the_province, running_gateway

GUANGDONG_RESIDENT = "44000000000000000002"


async def _pay(client, signed, order=DEMO_ORDER, key: str = "settle-key-0001"):
    return await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": key}, auth=signed
    )


async def _simulated_person(simulator, psn_no: str) -> dict:
    """The province's record of the person: balance and year-to-date totals (a year
    with no totals row counts as all zeros)."""
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        response = await http.get(f"/admin/persons/{psn_no}")
    response.raise_for_status()
    person = response.json()
    person["totals"] = [t for t in person["totals"] if any(v for k, v in t.items() if k != "year")]
    return person


async def _set_faults(simulator, province: str, **faults) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        response = await http.put(f"/admin/provinces/{province}/faults", json=faults)
    response.raise_for_status()


async def _ledger(db_pool) -> dict[str, int]:
    rows = await db_pool.fetch(
        "SELECT account, sum(amount_fen)::bigint AS b FROM ledger_postings GROUP BY account"
    )
    return {row["account"]: row["b"] for row in rows}


async def test_cross_provincial_revisit_settles_with_the_home_province(
    client, signed, db_pool
) -> None:
    """A Zhejiang employee at a Beijing internet hospital (the demo), figures by hand.

    revisit 1 x 2500, limit 3000 (Haidian's own entry): in scope 2500.
    atorvastatin 2 x 3800, limit 3650: over limit 2 x 150 = 300; allowed 7300;
      class B 1000 bp: pre-self-pay apply(7300, 1000) = 730; in scope 6570.
    delivery fee 1000: own pay. Total 11100; in scope 9070.
    Deductible 180000 unused: all 9070 is deductible, so the fund pays 0 (ratio:
    level 3 employee 7000, off-site without filing -2000 = 5000 bp).
    Personal account: min(523400, 11100 - 1000) = 10100; cash 1000 (the delivery fee).
    """
    response = await _pay(client, signed)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["state"] == "settled"
    assert (payment["insured_area"], payment["scheme"]) == ("330106", "employee")
    split = payment["settlement"]
    assert {k: split[k] for k in split if k.endswith(("_fen", "_bp"))} == {
        "medical_fee_total_fen": 11100,
        "full_own_pay_fen": 1000,
        "over_limit_self_pay_fen": 300,
        "pre_self_pay_fen": 730,
        "in_scope_fen": 9070,
        "deductible_fen": 9070,
        "reimbursement_ratio_bp": 5000,
        "basic_fund_fen": 0,
        "critical_illness_fen": 0,
        "medical_assistance_fen": 0,
        "fund_total_fen": 0,
        "personal_share_fen": 11100,
        "personal_account_fen": 10100,
        "cash_fen": 1000,
        "account_balance_after_fen": 513300,
    }
    assert await _ledger(db_pool) == {
        "personal_account_receivable:330000": 10100,
        "patient_cash_receivable": 1000,
        "institution_payable:H11010800124": -11100,
    }


async def test_resident_split_pays_from_the_fund_after_the_deductible(
    client, signed, identity_issuer, db_pool
):
    """A Guangdong resident at the same hospital.

    revisit 2500 + metformin 10 x 1200 (class A, at its limit) = 14500, all in scope.
    Resident deductible 10000; ratio level 3 resident 5000 - 2000 off-site = 3000 bp:
    fund apply(4500, 3000) = 1350. Burden 13150 is far below the critical-illness
    threshold; not eligible for assistance. Residents have no personal account:
    cash 13150.
    """
    signed.identity_token = identity_issuer.issue(GUANGDONG_RESIDENT)
    order = {
        **DEMO_ORDER,
        "personal_account_allowed": False,
        "items": [
            {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
            {"item_code": "XA10BAA075A001010101445", "quantity": 10, "unit_price_fen": 1200},
        ],
    }
    response = await _pay(client, signed, order)
    assert response.status_code == 201, response.text
    split = response.json()["settlement"]
    assert (split["in_scope_fen"], split["deductible_fen"], split["reimbursement_ratio_bp"]) == (
        14500,
        10000,
        3000,
    )
    assert (split["basic_fund_fen"], split["fund_total_fen"], split["cash_fen"]) == (
        1350,
        1350,
        13150,
    )
    assert split["personal_account_fen"] == 0
    ledger = await _ledger(db_pool)
    assert ledger["fund_receivable:440000"] == 1350
    assert sum(ledger.values()) == 0


async def test_reversal_restores_balance_and_year_to_date_totals_to_the_fen(
    client, signed, simulator, db_pool
):
    before = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    paid = (await _pay(client, signed)).json()
    during = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    reversal = await client.post(
        f"/v1/payments/{paid['payment_id']}/reversal",
        headers={"Idempotency-Key": "reverse-0001"},
        auth=signed,
    )
    after = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    assert reversal.status_code == 200, reversal.text
    assert reversal.json()["state"] == "reversed"
    assert reversal.json()["settlement"]["reversed_at"] is not None
    assert during != before  # the settlement did move the balance and totals
    assert after == before
    ledger = await _ledger(db_pool)
    assert set(ledger.values()) == {0}, ledger  # every account back to zero
    journals = await db_pool.fetch("SELECT kind FROM ledger_journals ORDER BY journal_id")
    assert [j["kind"] for j in journals] == ["settlement", "reversal"]


async def test_reversal_repeated_has_no_second_effect(client, signed, simulator) -> None:
    paid = (await _pay(client, signed)).json()
    path = f"/v1/payments/{paid['payment_id']}/reversal"
    first = await client.post(path, headers={"Idempotency-Key": "reverse-0002"}, auth=signed)
    again = await client.post(path, headers={"Idempotency-Key": "reverse-0003"}, auth=signed)
    assert first.json()["state"] == "reversed"
    # Issue 8, item 11: a new request to reverse it again says so (it was a 200 before).
    assert again.status_code == 409
    assert problem(again)["code"] == "payment_already_reversed"
    person = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    assert person["acct_balance_fen"] == 523400


async def test_payment_that_is_not_settled_cannot_be_reversed(client, signed) -> None:
    bad = {
        **DEMO_ORDER,
        "items": [{"item_code": "NOT-IN-CATALOGUE", "quantity": 1, "unit_price_fen": 100}],
    }
    failed = await _pay(client, signed, bad)
    payment_id = problem(failed)["payment_id"]
    response = await client.post(
        f"/v1/payments/{payment_id}/reversal",
        headers={"Idempotency-Key": "reverse-0004"},
        auth=signed,
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "payment_not_reversible"


async def test_estimate_changes_nothing_anywhere(client, signed, simulator, db_pool) -> None:
    before = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    response = await client.post(
        "/v1/payments/estimate",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": "estimate-0001"},
        auth=signed,
    )
    assert response.status_code == 200, response.text
    estimate = response.json()
    assert (
        estimate["medical_fee_total_fen"],
        estimate["personal_account_fen"],
        estimate["cash_fen"],
    ) == (
        11100,
        10100,
        1000,
    )
    assert estimate["insured_area"] == "330106"
    assert await _simulated_person(simulator, ZHEJIANG_EMPLOYEE) == before
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_postings") == 0


async def test_repeated_payment_settles_once(client, signed, simulator) -> None:
    first = await _pay(client, signed, key="settle-twice-01")
    second = await _pay(client, signed, key="settle-twice-01")
    assert first.content == second.content
    person = await _simulated_person(simulator, ZHEJIANG_EMPLOYEE)
    assert person["acct_balance_fen"] == 523400 - 10100


async def _assert_failed(client, signed, response, status: int, code: str, db_pool) -> None:
    assert response.status_code == status, response.text
    body = problem(response)
    assert body["code"] == code
    shown = await client.get(f"/v1/payments/{body['payment_id']}", auth=signed)
    assert shown.json()["state"] == "failed"
    assert shown.json()["failure_code"] == code
    assert await db_pool.fetchval("SELECT count(*) FROM settlements") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_postings") == 0


async def test_unknown_item_is_a_422_and_the_payment_says_so(client, signed, db_pool) -> None:
    order = {
        **DEMO_ORDER,
        "items": [
            *DEMO_ORDER["items"],
            {"item_code": "XX-UNKNOWN-1", "quantity": 1, "unit_price_fen": 100},
        ],
    }
    response = await _pay(client, signed, order)
    await _assert_failed(client, signed, response, 422, "item_unknown", db_pool)
    assert "XX-UNKNOWN-1" in problem(response)["detail"]


async def test_unknown_person_is_a_422_and_the_payment_says_so(
    client, signed, identity_issuer, db_pool
) -> None:
    signed.identity_token = identity_issuer.issue("99000000000000000099")
    response = await _pay(client, signed)
    await _assert_failed(client, signed, response, 422, "person_not_insured", db_pool)


async def test_unknown_institution_is_a_422(client, signed, db_pool) -> None:
    response = await _pay(client, signed, {**DEMO_ORDER, "institution_code": "H99999999999"})
    await _assert_failed(client, signed, response, 422, "institution_unknown", db_pool)


async def test_person_unknown_to_the_province_is_a_422(
    client, signed, identity_issuer, db_pool
) -> None:
    """The gateway knows the person but the home province has no record of them."""
    await register_unknown_to_the_province(db_pool, "33000000000000000099")
    signed.identity_token = identity_issuer.issue("33000000000000000099")
    response = await _pay(client, signed)
    await _assert_failed(client, signed, response, 422, "person_unknown_to_province", db_pool)


async def test_unknown_province_is_a_422(
    settings, clearing: ClearingConfig, signed, db_pool
) -> None:
    without_zhejiang = ClearingConfig(
        signing_key_pem=clearing.signing_key_pem,
        provinces=[p for p in clearing.provinces if p.admdvs != "330000"],
    )
    async with running_gateway(create_app(settings, clearing=without_zhejiang)) as client:
        response = await _pay(client, signed)
        await _assert_failed(client, signed, response, 422, "province_not_connected", db_pool)


async def test_province_down_is_a_503_and_the_payment_failed(
    settings, clearing, signed, db_pool
) -> None:
    from medpay.db.embedded import free_port

    down = [
        ProvinceEndpoint(
            admdvs=p.admdvs,
            url=f"http://127.0.0.1:{free_port()}/api",
            public_key_pem=p.public_key_pem,
        )
        if p.admdvs == "330000"
        else p
        for p in clearing.provinces
    ]
    config = ClearingConfig(signing_key_pem=clearing.signing_key_pem, provinces=down)
    async with running_gateway(create_app(settings, clearing=config)) as client:
        response = await _pay(client, signed)
        await _assert_failed(client, signed, response, 503, "province_unavailable", db_pool)
        assert response.headers["retry-after"]


async def test_province_error_is_a_502_and_the_payment_failed(
    client, signed, simulator, db_pool
) -> None:
    await _set_faults(simulator, "330000", error_rate=1.0)
    response = await _pay(client, signed)
    await _assert_failed(client, signed, response, 502, "province_error", db_pool)


async def test_dropped_answer_leaves_the_payment_processing_not_failed(
    client, signed, simulator, db_pool
):
    """The province settled but its answer never came: never failed, never re-sent under a new msgid."""
    await _set_faults(simulator, "330000", drop_rate=1.0, drop_hold_s=3.0)
    response = await _pay(client, signed)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "processing"
    row = await db_pool.fetchrow("SELECT state, failure_code FROM payments")
    assert (row["state"], row["failure_code"]) == ("unknown", "settlement_outcome_unknown")
    messages = await db_pool.fetch("SELECT infno, outcome FROM province_messages")
    assert [(m["infno"], m["outcome"]) for m in messages] == [("2207", "unknown")]


async def test_treatment_area_must_be_the_institutions(client, signed, db_pool) -> None:
    response = await _pay(client, signed, {**DEMO_ORDER, "treatment_area": "110105"})
    await _assert_failed(client, signed, response, 422, "treatment_area_mismatch", db_pool)


async def test_database_refuses_an_unbalanced_journal(client, signed, db_pool) -> None:
    import uuid

    import asyncpg

    paid = (await _pay(client, signed)).json()
    with pytest.raises(asyncpg.CheckViolationError, match="not balanced"):
        async with db_pool.acquire() as conn, conn.transaction():
            journal = await conn.fetchval(
                "INSERT INTO ledger_journals (payment_id, kind) VALUES ($1, 'reversal') RETURNING journal_id",
                uuid.UUID(paid["payment_id"]),
            )
            await conn.execute(
                "INSERT INTO ledger_postings (journal_id, line_no, account, amount_fen) VALUES ($1, 1, 'x', 5)",
                journal,
            )
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1


async def test_ledger_postings_cannot_be_changed(client, signed, db_pool) -> None:
    import asyncpg

    await _pay(client, signed)
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("UPDATE ledger_postings SET amount_fen = amount_fen + 1")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("DELETE FROM ledger_postings")
