"""Settlement obeys the registries: prescriptions, institutions, relationships, filings.

Each refusal is a problem with its own code, the payment records what happened, and
nothing is recorded as settled (no settlement row, no ledger journal).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import msgspec

from medpay.clock import CHINA
from medpay.prescriptions.schemas import PrescriptionOrder
from medpay.prescriptions.service import issue_prescription

from .conftest import ZHEJIANG_EMPLOYEE, problem

METFORMIN = "XA10BAA075A001010101445"
HANGZHOU_PHARMACY, SHENZHEN_PHARMACY = "P33010600012", "P44030500007"


async def _prescription(db_pool, *, days_ago: int = 0, psn_no: str = ZHEJIANG_EMPLOYEE) -> str:
    """A standard prescription of the Beijing internet hospital for two boxes of metformin."""
    order = msgspec.convert(
        {
            "psn_no": psn_no,
            "kind": "standard",
            "items": [{"item_code": METFORMIN, "max_quantity": 2}],
        },
        PrescriptionOrder,
    )
    issued = await issue_prescription(
        db_pool,
        institution_code="H11010800124",
        idempotency_key=f"rx-{uuid.uuid4().hex}",
        request_digest="digest",
        order=order,
        now=dt.datetime.now(CHINA) - dt.timedelta(days=days_ago),
    )
    return issued.prescription_id


def _purchase(prescription_id: str, pharmacy: str = HANGZHOU_PHARMACY, quantity: int = 2) -> dict:
    area = {HANGZHOU_PHARMACY: "330106", SHENZHEN_PHARMACY: "440305"}[pharmacy]
    return {
        "institution_code": pharmacy,
        "treatment_area": area,
        "visit_type": "pharmacy_purchase",
        "prescription_id": prescription_id,
        "items": [{"item_code": METFORMIN, "quantity": quantity, "unit_price_fen": 1200}],
        "personal_account_allowed": True,
    }


async def _pay(client, signed, order, key: str):
    return await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": key}, auth=signed
    )


async def _nothing_settled_for(db_pool, payment_id: str) -> None:
    key = uuid.UUID(payment_id)
    assert (
        await db_pool.fetchval("SELECT state FROM payments WHERE payment_id = $1", key) == "failed"
    )
    assert (
        await db_pool.fetchval("SELECT count(*) FROM settlements WHERE payment_id = $1", key) == 0
    )
    assert (
        await db_pool.fetchval("SELECT count(*) FROM ledger_journals WHERE payment_id = $1", key)
        == 0
    )


async def test_pharmacy_purchase_on_a_valid_prescription_settles(client, signed, db_pool) -> None:
    """In Hangzhou, where the person is insured: not off-site; level-1 ratio; all within the deductible."""
    rx = await _prescription(db_pool)
    response = await _pay(client, signed, _purchase(rx), "rx-pay-0001")
    assert response.status_code == 201, response.text
    split = response.json()["settlement"]
    assert (
        split["medical_fee_total_fen"],
        split["in_scope_fen"],
        split["personal_account_fen"],
    ) == (2400, 2400, 2400)


async def test_a_prescription_is_redeemed_once_in_any_province(client, signed, db_pool) -> None:
    rx = await _prescription(db_pool)
    first = await _pay(client, signed, _purchase(rx, SHENZHEN_PHARMACY), "rx-pay-0002")
    again = await _pay(client, signed, _purchase(rx, HANGZHOU_PHARMACY), "rx-pay-0003")
    assert first.status_code == 201, (
        first.text
    )  # mutual recognition: a Shenzhen pharmacy redeems it
    assert again.status_code == 409
    assert problem(again)["code"] == "prescription_already_redeemed"
    await _nothing_settled_for(db_pool, problem(again)["payment_id"])


async def test_two_pharmacies_at_the_same_moment_exactly_one_wins(client, signed, db_pool) -> None:
    rx = await _prescription(db_pool)
    responses = await asyncio.gather(
        _pay(client, signed, _purchase(rx, HANGZHOU_PHARMACY), "rx-race-hz"),
        _pay(client, signed, _purchase(rx, SHENZHEN_PHARMACY), "rx-race-sz"),
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    loser = next(r for r in responses if r.status_code == 409)
    assert problem(loser)["code"] == "prescription_already_redeemed"
    assert await db_pool.fetchval("SELECT count(*) FROM settlements") == 1


async def test_an_expired_prescription_is_refused_and_nothing_settles(
    client, signed, db_pool
) -> None:
    rx = await _prescription(db_pool, days_ago=5)
    response = await _pay(client, signed, _purchase(rx), "rx-pay-0004")
    assert response.status_code == 422
    assert problem(response)["code"] == "prescription_expired"
    await _nothing_settled_for(db_pool, problem(response)["payment_id"])


async def test_more_than_prescribed_is_refused(client, signed, db_pool) -> None:
    rx = await _prescription(db_pool)
    response = await _pay(client, signed, _purchase(rx, quantity=3), "rx-pay-0005")
    assert response.status_code == 422
    assert problem(response)["code"] == "prescription_item_not_prescribed"
    await _nothing_settled_for(db_pool, problem(response)["payment_id"])


async def test_someone_elses_prescription_is_refused(client, signed, db_pool) -> None:
    rx = await _prescription(db_pool, psn_no="44000000000000000002")
    response = await _pay(client, signed, _purchase(rx), "rx-pay-0006")
    assert problem(response)["code"] == "prescription_not_for_this_person"


async def test_a_prescription_freed_by_a_province_refusal_can_be_redeemed_again(
    client, signed, simulator, db_pool
):
    rx = await _prescription(db_pool)
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.put("/admin/provinces/330000/faults", json={"error_rate": 1.0})
        refused = await _pay(client, signed, _purchase(rx), "rx-pay-0007")
        await http.put("/admin/provinces/330000/faults", json={"error_rate": 0.0})
    retried = await _pay(client, signed, _purchase(rx), "rx-pay-0008")
    assert problem(refused)["code"] == "province_error"
    assert retried.status_code == 201, retried.text


# --- relationships: routed by the relationship valid on the service date -------------------------


async def _transfer_to_guangdong(
    client, zhejiang_agency, guangdong_agency, *, accept: bool, **certificate
):
    from .test_relationship_transfers import _accept, _certified

    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency, **certificate)
    if accept:
        response = await _accept(client, guangdong_agency, transfer_id, waiting_months=3)
        assert response.status_code == 200, response.text
    return transfer_id


async def test_before_acceptance_the_old_area_still_settles(
    client, signed, zhejiang_agency, guangdong_agency
):
    """The certificate is issued but Guangdong has not accepted: Zhejiang answers for the person."""
    from medpay.demo import DEMO_ORDER

    await _transfer_to_guangdong(client, zhejiang_agency, guangdong_agency, accept=False)
    paid = await _pay(client, signed, DEMO_ORDER, "transfer-pay-0001")
    assert paid.status_code == 201, paid.text
    assert paid.json()["insured_area"] == "330106"
    assert paid.json()["settlement"]["settlement_id"].startswith("330000")


async def test_waiting_period_refuses_fund_payment_and_nothing_settles(
    client, signed, zhejiang_agency, guangdong_agency, db_pool
):
    """Contributions stopped five months ago: a gap over 3 months, so Guangdong sets a waiting period."""
    from medpay.clock import CHINA
    from medpay.demo import DEMO_ORDER

    stopped = dt.datetime.now(CHINA).date() - dt.timedelta(days=150)
    await _transfer_to_guangdong(
        client, zhejiang_agency, guangdong_agency, accept=True, stopped_on=stopped
    )
    refused = await _pay(client, signed, DEMO_ORDER, "transfer-pay-0002")
    assert refused.status_code == 422, refused.text
    assert problem(refused)["code"] == "insurance_waiting_period"
    await _nothing_settled_for(db_pool, problem(refused)["payment_id"])


# --- institutions: designated on the service date ---------------------------------------------------


async def _dissolve_today(client, operator, code: str) -> None:
    from medpay.clock import CHINA

    from .conftest import operator_auth

    auth = operator_auth(operator)
    institution = await client.get(f"/v1/institutions/{code}", auth=auth)
    agreement_id = institution.json()["agreements"][-1]["agreement_id"]
    today = dt.datetime.now(CHINA).date().isoformat()
    response = await client.post(
        f"/v1/institutions/{code}/agreements/{agreement_id}/dissolution",
        json={"effective_from": today},
        headers={"Idempotency-Key": f"dissolve-{code}"},
        auth=auth,
    )
    assert response.status_code == 200, response.text


async def test_a_dissolved_institution_is_refused_and_nothing_settles(
    client, signed, operator, db_pool
):
    from medpay.demo import DEMO_ORDER

    await _dissolve_today(client, operator, "H11010800124")
    response = await _pay(client, signed, DEMO_ORDER, "dissolved-0001")
    assert response.status_code == 422
    assert problem(response)["code"] == "institution_dissolved"
    await _nothing_settled_for(db_pool, problem(response)["payment_id"])


async def test_an_internet_hospital_falls_with_its_physical_institution(
    client, signed, operator, db_pool
):
    from medpay.demo import DEMO_ORDER

    await _dissolve_today(
        client, operator, "H11010800123"
    )  # the physical hospital behind H11010800124
    response = await _pay(client, signed, DEMO_ORDER, "dissolved-0002")
    assert response.status_code == 422
    assert problem(response)["code"] == "physical_institution_dissolved"
    await _nothing_settled_for(db_pool, problem(response)["payment_id"])


# --- filings: the province adjusts the ratio ---------------------------------------------------------


async def _file(client, zhejiang_agency, filing_type: str) -> None:
    from medpay.clock import CHINA

    from .conftest import agency_auth

    today = (
        dt.datetime.now(CHINA).date().isoformat()
    )  # a temporary filing lasts 6 months from its start
    body = {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "treatment_area": "110000",
        "filing_type": filing_type,
        "valid_from": today,
    }
    response = await client.post(
        "/v1/filings",
        json=body,
        headers={"Idempotency-Key": f"file-{filing_type}"},
        auth=agency_auth(zhejiang_agency),
    )
    assert response.status_code == 201, response.text


async def test_without_a_filing_the_off_site_ratio_is_reduced_by_20_points(client, signed) -> None:
    from medpay.demo import DEMO_ORDER

    paid = await _pay(client, signed, DEMO_ORDER, "filing-none")
    assert paid.json()["settlement"]["reimbursement_ratio_bp"] == 7000 - 2000


async def test_a_long_term_filing_keeps_the_full_ratio(client, signed, zhejiang_agency) -> None:
    from medpay.demo import DEMO_ORDER

    await _file(client, zhejiang_agency, "resettled_retiree")
    paid = await _pay(client, signed, DEMO_ORDER, "filing-long-term")
    assert paid.json()["settlement"]["reimbursement_ratio_bp"] == 7000


async def test_a_referral_filing_reduces_the_ratio_by_10_points(
    client, signed, zhejiang_agency
) -> None:
    from medpay.demo import DEMO_ORDER

    await _file(client, zhejiang_agency, "referral")
    paid = await _pay(client, signed, DEMO_ORDER, "filing-referral")
    assert paid.json()["settlement"]["reimbursement_ratio_bp"] == 7000 - 1000
