"""Designated institutions and their agreements (DOMAIN.md section 4), over real HTTP."""

from __future__ import annotations

import datetime as dt
import itertools

import asyncpg
import pytest

from medpay.errors import DomainError
from medpay.http.problems import status_of
from medpay.institutions.service import check_may_settle, is_designated_pharmacy
from medpay.seed import seed_sample_data

from .conftest import agency_auth, operator_auth, problem

_keys = itertools.count()
D = dt.date.fromisoformat

HOSPITAL = {
    "institution_code": "H32010200001",
    "name": "南京市鼓楼医院",
    "area": "320102",
    "kind": "hospital",
    "level": 3,
}
INTERNET_HOSPITAL = {
    "institution_code": "H32010200002",
    "name": "南京市鼓楼医院互联网医院",
    "area": "320102",
    "kind": "internet_hospital",
    "level": 3,
    "relies_on": "H32010200001",
}
PHARMACY = {
    "institution_code": "P32010200009",
    "name": "南京鼓楼大药房",
    "area": "320102",
    "kind": "retail_pharmacy",
}
SAMPLE_CODES = [
    "H11010800123",
    "H11010800124",
    "P11010500031",
    "H33010600001",
    "H33010600002",
    "P33010600012",
    "H44030500001",
    "H44030500002",
    "P44030500007",
    "H51010700001",
]


@pytest.fixture
def gateway(gateway_shelf, settings):
    """No province is reached here: the gateway alone, without the simulator (faster)."""
    with gateway_shelf.lend(settings) as app:
        yield app


async def _post(client, path, body, auth, key: str | None = None):
    key = key or f"institution-test-{next(_keys):06d}"
    return await client.post(path, json=body, auth=auth, headers={"Idempotency-Key": key})


@pytest.fixture
def as_operator(operator):
    return operator_auth(operator)


async def _register(client, as_operator, body=HOSPITAL) -> None:
    response = await _post(client, "/v1/institutions", body, as_operator)
    assert response.status_code == 201, response.text


async def _sign(client, as_operator, code, valid_from, valid_until=None) -> int:
    body = {"valid_from": valid_from} | ({"valid_until": valid_until} if valid_until else {})
    response = await _post(client, f"/v1/institutions/{code}/agreements", body, as_operator)
    assert response.status_code == 201, response.text
    return response.json()["agreement_id"]  # type: ignore[no-any-return]


async def _step(client, as_operator, code, agreement_id, step, day):
    path = f"/v1/institutions/{code}/agreements/{agreement_id}/{step}"
    return await _post(client, path, {"effective_from": day}, as_operator)


async def _refusal(db_pool, code, day) -> str | None:
    try:
        await check_may_settle(db_pool, code, D(day))
    except DomainError as exc:
        assert status_of(exc) == 422
        return exc.code
    return None


# --- registry -------------------------------------------------------------------------------------


async def test_operator_registers_an_institution_and_reads_it_back(client, as_operator) -> None:
    response = await _post(client, "/v1/institutions", HOSPITAL, as_operator)
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/institutions/H32010200001"
    read = await client.get("/v1/institutions/H32010200001", auth=as_operator)
    assert read.status_code == 200
    body = read.json()
    assert {k: body[k] for k in HOSPITAL} == HOSPITAL
    assert body.get("agreements", []) == []


async def test_a_registered_institution_settles_nothing_before_its_agreement(
    client, as_operator, db_pool
) -> None:
    await _register(client, as_operator)
    assert await _refusal(db_pool, "H32010200001", "2024-05-01") == "institution_not_designated"


async def test_the_same_registration_again_answers_as_the_first(client, as_operator) -> None:
    first = await _post(client, "/v1/institutions", HOSPITAL, as_operator)
    again = await _post(client, "/v1/institutions", HOSPITAL, as_operator)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


async def test_registering_a_taken_code_is_a_409(client, as_operator) -> None:
    await _register(client, as_operator)
    response = await _post(client, "/v1/institutions", {**HOSPITAL, "name": "别名"}, as_operator)
    assert response.status_code == 409
    assert problem(response)["code"] == "institution_exists"


async def test_an_inconsistent_institution_is_a_422_with_its_own_code(client, as_operator) -> None:
    cases = [
        ({**PHARMACY, "level": 1}, "pharmacy_has_no_level"),
        ({k: v for k, v in HOSPITAL.items() if k != "level"}, "level_required"),
        ({k: v for k, v in INTERNET_HOSPITAL.items() if k != "relies_on"}, "relies_on_required"),
        ({**HOSPITAL, "relies_on": "H11010800123"}, "relies_on_not_allowed"),
        ({**INTERNET_HOSPITAL, "relies_on": "P11010500031"}, "relies_on_not_a_hospital"),
        ({**INTERNET_HOSPITAL, "relies_on": "H99999999999"}, "relies_on_not_a_hospital"),
    ]
    for body, code in cases:
        response = await _post(client, "/v1/institutions", body, as_operator)
        assert (response.status_code, problem(response)["code"]) == (422, code), body


async def test_a_malformed_institution_is_a_400(client, as_operator) -> None:
    for body in [
        {**HOSPITAL, "institution_code": "h32010200001"},
        {**HOSPITAL, "level": 4},
        {**HOSPITAL, "area": "990000"},
        {**HOSPITAL, "kind": "clinic"},
        {**HOSPITAL, "name": ""},
        {**HOSPITAL, "name": "\u0000"},
        {**HOSPITAL, "status": "active"},
    ]:
        response = await _post(client, "/v1/institutions", body, as_operator)
        assert (response.status_code, problem(response)["code"]) == (400, "request_invalid"), body


async def test_agencies_and_patient_apps_cannot_use_the_registry(
    client, zhejiang_agency, signed
) -> None:
    for auth in (agency_auth(zhejiang_agency), signed):
        response = await _post(client, "/v1/institutions", HOSPITAL, auth)
        assert response.status_code == 401
        assert problem(response)["code"] == "signature_missing"
        read = await client.get("/v1/institutions/H11010800123", auth=auth)
        assert read.status_code == 401


async def test_an_unknown_or_malformed_institution_is_a_404(client, as_operator) -> None:
    for code in ["H00000000000", "h1", "H%00"]:
        response = await client.get(f"/v1/institutions/{code}", auth=as_operator)
        signing = await _post(
            client, f"/v1/institutions/{code}/agreements", {"valid_from": "2024-01-01"}, as_operator
        )
        for answer in (response, signing):
            assert (answer.status_code, problem(answer)["code"]) == (404, "institution_not_found")


# --- agreements ------------------------------------------------------------------------------------


async def test_an_agreement_covers_its_period_and_nothing_else(
    client, as_operator, db_pool
) -> None:
    await _register(client, as_operator)
    await _sign(client, as_operator, "H32010200001", "2024-01-01", "2025-01-01")
    assert await _refusal(db_pool, "H32010200001", "2023-12-31") == "institution_not_designated"
    assert await _refusal(db_pool, "H32010200001", "2024-01-01") is None
    assert await _refusal(db_pool, "H32010200001", "2024-12-31") is None
    assert await _refusal(db_pool, "H32010200001", "2025-01-01") == "institution_not_designated"


async def test_an_overlapping_agreement_is_a_409(client, as_operator) -> None:
    await _register(client, as_operator)
    await _sign(client, as_operator, "H32010200001", "2024-01-01")
    response = await _post(
        client,
        "/v1/institutions/H32010200001/agreements",
        {"valid_from": "2025-01-01"},
        as_operator,
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "agreement_overlaps"


async def test_an_agreement_ending_before_it_starts_is_a_422(client, as_operator) -> None:
    await _register(client, as_operator)
    response = await _post(
        client,
        "/v1/institutions/H32010200001/agreements",
        {"valid_from": "2024-01-01", "valid_until": "2024-01-01"},
        as_operator,
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "agreement_period_invalid"


async def test_a_suspension_refuses_settlement_until_the_reinstatement(
    client, as_operator, db_pool
) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    suspended = await _step(
        client, as_operator, "H32010200001", agreement, "suspension", "2024-03-01"
    )
    assert suspended.status_code == 200
    assert await _refusal(db_pool, "H32010200001", "2024-02-29") is None
    assert await _refusal(db_pool, "H32010200001", "2024-03-01") == "institution_suspended"
    reinstated = await _step(
        client, as_operator, "H32010200001", agreement, "reinstatement", "2024-04-01"
    )
    assert reinstated.status_code == 200
    assert reinstated.json()["suspensions"] == [
        {"suspended_from": "2024-03-01", "reinstated_from": "2024-04-01"}
    ]
    assert reinstated.json()["status_today"] == "active"
    assert await _refusal(db_pool, "H32010200001", "2024-03-31") == "institution_suspended"
    assert await _refusal(db_pool, "H32010200001", "2024-04-01") is None


async def test_suspending_a_suspended_agreement_is_a_409(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-03-01")
    again = await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-05-01")
    assert again.status_code == 409
    assert problem(again)["code"] == "agreement_already_suspended"


async def test_a_suspension_before_the_last_reinstatement_is_a_409(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-03-01")
    await _step(client, as_operator, "H32010200001", agreement, "reinstatement", "2024-04-01")
    again = await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-03-15")
    assert again.status_code == 409
    assert problem(again)["code"] == "suspension_overlaps"


async def test_reinstating_an_agreement_that_is_not_suspended_is_a_409(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    response = await _step(
        client, as_operator, "H32010200001", agreement, "reinstatement", "2024-04-01"
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "agreement_not_suspended"


async def test_a_reinstatement_before_its_suspension_is_a_422(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-03-01")
    response = await _step(
        client, as_operator, "H32010200001", agreement, "reinstatement", "2024-03-01"
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "reinstatement_before_suspension"


@pytest.mark.parametrize("step", ["suspension", "dissolution"])
async def test_a_step_dated_outside_the_agreement_is_a_422(client, as_operator, step) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01", "2025-01-01")
    response = await _step(client, as_operator, "H32010200001", agreement, step, "2025-01-01")
    assert response.status_code == 422
    assert problem(response)["code"] == "date_outside_agreement"


async def test_expenses_from_the_dissolution_date_on_are_refused(
    client, as_operator, db_pool
) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    response = await _step(
        client, as_operator, "H32010200001", agreement, "dissolution", "2024-06-01"
    )
    assert response.status_code == 200
    assert response.json()["dissolved_from"] == "2024-06-01"
    assert response.json()["status_today"] == "dissolved"
    assert await _refusal(db_pool, "H32010200001", "2024-05-31") is None
    assert await _refusal(db_pool, "H32010200001", "2024-06-01") == "institution_dissolved"


async def test_a_dissolved_agreement_changes_no_more(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", agreement, "dissolution", "2024-06-01")
    for step in ("suspension", "reinstatement", "dissolution"):
        response = await _step(client, as_operator, "H32010200001", agreement, step, "2024-05-01")
        assert response.status_code == 409
        assert problem(response)["code"] == "agreement_dissolved"


async def test_a_new_agreement_may_follow_a_dissolution(client, as_operator, db_pool) -> None:
    await _register(client, as_operator)
    first = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", first, "dissolution", "2024-06-01")
    await _sign(client, as_operator, "H32010200001", "2024-09-01")
    assert await _refusal(db_pool, "H32010200001", "2024-07-01") == "institution_dissolved"
    assert await _refusal(db_pool, "H32010200001", "2024-09-01") is None


async def test_agreement_history_is_kept_step_by_step(client, as_operator, db_pool) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    await _step(client, as_operator, "H32010200001", agreement, "suspension", "2024-03-01")
    await _step(client, as_operator, "H32010200001", agreement, "reinstatement", "2024-04-01")
    await _step(client, as_operator, "H32010200001", agreement, "dissolution", "2024-06-01")
    body = (await client.get("/v1/institutions/H32010200001", auth=as_operator)).json()
    [view] = body["agreements"]
    assert [(e["event"], e["effective_from"]) for e in view["history"]] == [
        ("signed", "2024-01-01"),
        ("suspended", "2024-03-01"),
        ("reinstated", "2024-04-01"),
        ("dissolved", "2024-06-01"),
    ]
    assert {e["operator_id"] for e in view["history"]} == {"op_clearing"}
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("UPDATE agreement_events SET effective_from = '2024-02-01'")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("DELETE FROM institution_agreements")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("UPDATE institution_agreements SET dissolved_from = '2024-07-01'")


async def test_a_repeated_request_signs_once_and_replays_its_answer(
    client, as_operator, db_pool
) -> None:
    await _register(client, as_operator)
    body = {"valid_from": "2024-01-01"}
    path = "/v1/institutions/H32010200001/agreements"
    first = await _post(client, path, body, as_operator, key="sign-once-0001")
    second = await _post(client, path, body, as_operator, key="sign-once-0001")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM institution_agreements WHERE institution_code = 'H32010200001'"
        )
        == 1
    )


async def test_post_without_idempotency_key_is_a_400(client, as_operator) -> None:
    response = await client.post("/v1/institutions", json=HOSPITAL, auth=as_operator)
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"


async def test_an_unknown_agreement_is_a_404(client, as_operator) -> None:
    await _register(client, as_operator)
    for agreement_id in ["abc", "99999", "99999999999999999999999"]:
        response = await _step(
            client, as_operator, "H32010200001", agreement_id, "suspension", "2024-03-01"
        )
        assert (response.status_code, problem(response)["code"]) == (404, "agreement_not_found")


async def test_another_institutions_agreement_is_a_404(client, as_operator) -> None:
    await _register(client, as_operator)
    agreement = await _sign(client, as_operator, "H32010200001", "2024-01-01")
    response = await _step(
        client, as_operator, "H11010800123", agreement, "suspension", "2024-03-01"
    )
    assert response.status_code == 404


# --- internet hospitals ----------------------------------------------------------------------------


async def _internet_hospital(client, as_operator, physical_until=None) -> int:
    await _register(client, as_operator, HOSPITAL)
    await _register(client, as_operator, INTERNET_HOSPITAL)
    physical = await _sign(client, as_operator, "H32010200001", "2024-01-01", physical_until)
    await _sign(client, as_operator, "H32010200002", "2024-01-01")
    return physical


async def test_an_internet_hospital_falls_with_its_dissolved_physical_institution(
    client, as_operator, db_pool
) -> None:
    physical = await _internet_hospital(client, as_operator)
    await _step(client, as_operator, "H32010200001", physical, "dissolution", "2024-06-01")
    assert await _refusal(db_pool, "H32010200002", "2024-05-31") is None
    assert await _refusal(db_pool, "H32010200002", "2024-06-01") == "physical_institution_dissolved"


async def test_an_internet_hospital_is_refused_while_its_physical_institution_is_suspended(
    client, as_operator, db_pool
) -> None:
    physical = await _internet_hospital(client, as_operator)
    await _step(client, as_operator, "H32010200001", physical, "suspension", "2024-03-01")
    assert await _refusal(db_pool, "H32010200002", "2024-03-01") == "physical_institution_suspended"


async def test_an_internet_hospital_is_refused_after_its_physical_agreement_ends(
    client, as_operator, db_pool
) -> None:
    await _internet_hospital(client, as_operator, physical_until="2025-01-01")
    assert (
        await _refusal(db_pool, "H32010200002", "2025-01-01")
        == "physical_institution_not_designated"
    )


async def test_an_internet_hospitals_own_suspension_comes_first(
    client, as_operator, db_pool
) -> None:
    physical = await _internet_hospital(client, as_operator)
    [own] = (await client.get("/v1/institutions/H32010200002", auth=as_operator)).json()[
        "agreements"
    ]
    await _step(
        client, as_operator, "H32010200002", own["agreement_id"], "suspension", "2024-03-01"
    )
    await _step(client, as_operator, "H32010200001", physical, "dissolution", "2024-03-01")
    assert await _refusal(db_pool, "H32010200002", "2024-04-01") == "institution_suspended"


async def test_an_internet_hospital_cannot_sign_without_a_designated_physical_institution(
    client, as_operator
) -> None:
    await _register(client, as_operator, HOSPITAL)
    await _register(client, as_operator, INTERNET_HOSPITAL)
    response = await _post(
        client,
        "/v1/institutions/H32010200002/agreements",
        {"valid_from": "2024-01-01"},
        as_operator,
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "physical_institution_not_designated"


# --- what settlement asks ----------------------------------------------------------------------------


async def test_an_unregistered_institution_is_refused(db_pool) -> None:
    assert await _refusal(db_pool, "H00000000000", "2024-01-01") == "institution_unknown"


async def test_sample_institutions_are_designated_from_2020_and_seeding_again_changes_nothing(
    db_pool,
) -> None:
    before = await db_pool.fetchval("SELECT count(*) FROM agreement_events")
    await seed_sample_data(db_pool)
    assert await db_pool.fetchval("SELECT count(*) FROM agreement_events") == before
    for code in SAMPLE_CODES:
        assert await _refusal(db_pool, code, "2020-01-01") is None
        assert await _refusal(db_pool, code, "2019-12-31") == "institution_not_designated"


async def test_a_designated_pharmacy_is_recognised_only_while_its_agreement_is_active(
    client, as_operator, db_pool
) -> None:
    assert await is_designated_pharmacy(db_pool, "P33010600012", D("2024-01-01"))
    assert not await is_designated_pharmacy(db_pool, "H33010600001", D("2024-01-01"))
    assert not await is_designated_pharmacy(db_pool, "P00000000000", D("2024-01-01"))
    await _register(client, as_operator, PHARMACY)
    agreement = await _sign(client, as_operator, "P32010200009", "2024-01-01")
    await _step(client, as_operator, "P32010200009", agreement, "suspension", "2024-03-01")
    assert await is_designated_pharmacy(db_pool, "P32010200009", D("2024-02-01"))
    assert not await is_designated_pharmacy(db_pool, "P32010200009", D("2024-03-01"))
