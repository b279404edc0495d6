"""Transfer and continuation of the insurance relationship (DOMAIN.md section 6), over HTTP.

The must-show case: the Zhejiang employee (330106, personal account 523400 fen at the
simulator) moves to Guangzhou's Yuexiu district (440104). Agencies sign their own
requests; PostgreSQL holds the invariants (one open transfer, one open segment,
history never rewritten).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import httpx
import pytest

from medpay.client import AgencySignatureAuth
from medpay.clock import add_months, china_today
from medpay.demo import DEMO_ORDER
from medpay.errors import DomainError
from medpay.http.problems import status_of
from medpay.parties.service import RegisteredParty, find_agency, register_agency
from medpay.relationships.schemas import (
    ContributionCertificate,
    TransferAcceptance,
    TransferApplication,
    TransferCancellation,
)
from medpay.relationships.service import insurer_on, require_fund_payable
from medpay.relationships.transfers import (
    accept_transfer,
    cancel_transfer,
    issue_certificate,
    request_transfer,
)
from medpay.relationships.workdays import (
    add_working_days,
    whole_months_between,
    working_days_between,
)
from medpay.security.persons import person_ref

from .conftest import ZHEJIANG_EMPLOYEE, agency_auth, operator_auth, problem

PERSON = ZHEJIANG_EMPLOYEE
GUANGDONG_RESIDENT = "44000000000000000002"  # insured in 440106
TRANSFERS = "/v1/relationship-transfers"
SAMPLE_START = dt.date(2020, 1, 1)  # the sample persons' segments start here, 60 months loaded
BALANCE_FEN = 523400


def _key() -> str:
    return f"transfer-{uuid.uuid4().hex}"


async def _post(
    client: httpx.AsyncClient,
    path: str,
    body: dict,
    agency: RegisteredParty,
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        path, json=body, headers={"Idempotency-Key": key or _key()}, auth=agency_auth(agency)
    )


async def _apply(client, agency, *, key: str | None = None, **changes) -> httpx.Response:
    body = {
        "psn_no": PERSON,
        "from_area": "330106",
        "to_area": "440104",
        "scheme": "employee",
        **changes,
    }
    return await _post(client, TRANSFERS, body, agency, key)


async def _certify(
    client,
    agency,
    transfer_id: str,
    *,
    months: int = 142,
    balance_fen: int = BALANCE_FEN,
    stopped_on: dt.date | None = None,
    key: str | None = None,
) -> httpx.Response:
    body = {
        "contribution_months": months,
        "personal_account_balance_fen": balance_fen,
        "contributions_stopped_on": (stopped_on or china_today()).isoformat(),
    }
    return await _post(client, f"{TRANSFERS}/{transfer_id}/certificate", body, agency, key)


async def _accept(client, agency, transfer_id: str, *, key: str | None = None, **body):
    return await _post(client, f"{TRANSFERS}/{transfer_id}/acceptance", body, agency, key)


async def _applied(client, guangdong_agency) -> str:
    response = await _apply(client, guangdong_agency)
    assert response.status_code == 201, response.text
    return str(response.json()["transfer_id"])


async def _certified(client, guangdong_agency, zhejiang_agency, **certificate) -> str:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _certify(client, zhejiang_agency, transfer_id, **certificate)
    assert response.status_code == 200, response.text
    return transfer_id


async def _history(client, operator, on: dt.date | None = None) -> dict:
    query = f"?on={on.isoformat()}" if on else ""
    response = await client.get(
        f"/v1/persons/{PERSON}/relationships{query}", auth=operator_auth(operator)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _transfer_postings(db_pool, transfer_id: str) -> dict[str, int]:
    rows = await db_pool.fetch(
        "SELECT p.account, p.amount_fen FROM ledger_journals j JOIN ledger_postings p"
        " USING (journal_id) WHERE j.transfer_id = $1 AND j.kind = 'account_transfer'",
        uuid.UUID(transfer_id),
    )
    return {row["account"]: row["amount_fen"] for row in rows}


@pytest.fixture
async def beijing_agency(db_pool: asyncpg.Pool) -> RegisteredParty:
    """An agency with nothing to do with the move (Chaoyang, Beijing)."""
    return await register_agency(
        db_pool, "北京市朝阳区医疗保障局", "110105", agency_id="agency_110105"
    )


# --- the must-show case -----------------------------------------------------------------------


async def test_zhejiang_employee_moves_to_guangdong_with_months_and_balance(
    client, db_pool, zhejiang_agency, guangdong_agency, operator
) -> None:
    today = china_today()
    months_before = (await _history(client, operator))["insurer"]["months_counted"]
    assert months_before == 60 + whole_months_between(SAMPLE_START, today)

    applied = await _apply(client, guangdong_agency)
    assert applied.status_code == 201, applied.text
    transfer = applied.json()
    transfer_id = transfer["transfer_id"]
    assert applied.headers["location"] == f"{TRANSFERS}/{transfer_id}"
    assert (transfer["state"], transfer["awaiting"]) == ("requested", "certificate")
    assert transfer["certificate_due_on"] == add_working_days(today, 10).isoformat()
    assert (await insurer_on(db_pool, PERSON, today)).insured_area == "330106"

    certified = await _certify(client, zhejiang_agency, transfer_id, months=months_before)
    assert certified.status_code == 200, certified.text
    assert certified.json()["state"] == "certificate_issued"
    assert certified.json()["acceptance_due_on"] == add_working_days(today, 5).isoformat()
    # The old area's segment answers until the new area accepts.
    assert (await insurer_on(db_pool, PERSON, today)).insured_area == "330106"

    accepted = await _accept(client, guangdong_agency, transfer_id)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "accepted"

    now = await insurer_on(db_pool, PERSON, today)
    assert (now.insured_area, now.insured_province, now.scheme) == ("440104", "440000", "employee")
    assert (now.valid_from, now.carried_months, now.months_counted) == (
        today,
        months_before,
        months_before,
    )
    assert now.waiting_until is None
    before = await insurer_on(db_pool, PERSON, today - dt.timedelta(days=1))
    assert (before.insured_area, before.valid_until) == ("330106", today)
    assert await _transfer_postings(db_pool, transfer_id) == {
        "personal_account:440104": BALANCE_FEN,
        "personal_account:330106": -BALANCE_FEN,
    }


async def test_history_answers_who_insured_the_person_on_each_date(
    client, zhejiang_agency, guangdong_agency, operator
) -> None:
    today = china_today()
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency, months=150)
    assert (await _accept(client, guangdong_agency, transfer_id)).status_code == 200

    history = await _history(client, operator, today)
    assert history["insurer"]["insured_area"] == "440104"
    assert history["insurer"]["months_counted"] == 150
    assert history["insurer"]["in_waiting_period"] is False
    assert [(s["insured_area"], s.get("valid_until")) for s in history["segments"]] == [
        ("330106", today.isoformat()),
        ("440104", None),
    ]
    assert history["segments"][1]["opened_by_transfer_id"] == transfer_id
    (transfer,) = history["transfers"]
    assert [(e["step"], e["agency_id"]) for e in transfer["events"]] == [
        ("requested", "agency_440104"),
        ("certificate_issued", "agency_330106"),
        ("accepted", "agency_440104"),
    ]
    assert transfer["events"][1]["details"]["personal_account_balance_fen"] == BALANCE_FEN
    assert "awaiting" not in transfer  # closed: no deadline any more

    yesterday = today - dt.timedelta(days=1)
    earlier = await _history(client, operator, yesterday)
    assert earlier["insurer"]["insured_area"] == "330106"
    assert earlier["insurer"]["months_counted"] == 60 + whole_months_between(
        SAMPLE_START, yesterday
    )
    before_any = await _history(client, operator, dt.date(2019, 12, 31))
    assert "insurer" not in before_any


async def test_after_acceptance_a_payment_settles_with_guangdong(
    client, signed, simulator, zhejiang_agency, guangdong_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    assert (await _accept(client, guangdong_agency, transfer_id)).status_code == 200
    # The provinces' own systems move the person's record (outside medpay).
    async with httpx.AsyncClient(base_url=simulator.url) as admin:
        moved = await admin.put(
            f"/admin/persons/{PERSON}/enrolment",
            json={"insuplc_admdvs": "440104", "insutype": "310", "acct_balance_fen": BALANCE_FEN},
        )
    assert moved.status_code == 200, moved.text
    assert moved.json()["insuplc_admdvs"] == "440104"

    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": _key()}, auth=signed
    )
    assert paid.status_code == 201, paid.text
    assert (paid.json()["insured_area"], paid.json()["scheme"]) == ("440104", "employee")


async def test_simulator_refuses_a_balance_for_a_resident(simulator) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as admin:
        response = await admin.put(
            f"/admin/persons/{PERSON}/enrolment",
            json={"insuplc_admdvs": "440104", "insutype": "390", "acct_balance_fen": 1},
        )
    assert response.status_code == 400


# --- PostgreSQL's guarantees --------------------------------------------------------------------


async def test_a_second_concurrent_transfer_request_is_refused(
    client, db_pool, guangdong_agency, beijing_agency
) -> None:
    responses = await asyncio.gather(
        _apply(client, guangdong_agency),
        _apply(client, beijing_agency, to_area="110105"),
        _apply(client, guangdong_agency),
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert problem(response)["code"] == "transfer_in_progress"
    assert await db_pool.fetchval("SELECT count(*) FROM relationship_transfers") == 1


async def test_a_new_transfer_may_follow_a_closed_one(client, guangdong_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    cancelled = await _post(client, f"{TRANSFERS}/{transfer_id}/cancellation", {}, guangdong_agency)
    assert cancelled.status_code == 200, cancelled.text
    assert (await _apply(client, guangdong_agency)).status_code == 201


async def test_postgresql_refuses_a_second_open_segment(db_pool) -> None:
    with pytest.raises((asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)):
        await db_pool.execute(
            "INSERT INTO insurance_segments (psn_no, insured_area, scheme, valid_from)"
            " VALUES ($1, '440104', 'employee', '2031-01-01')",
            person_ref(PERSON),
        )


async def test_postgresql_refuses_a_second_open_transfer(client, db_pool, guangdong_agency) -> None:
    await _applied(client, guangdong_agency)
    with pytest.raises(asyncpg.UniqueViolationError, match="relationship_transfers_one_open"):
        await db_pool.execute(
            "INSERT INTO relationship_transfers (transfer_id, psn_no, from_area, to_area, scheme,"
            " applicant_agency_id, from_segment_id, requested_on, certificate_due_on)"
            " SELECT gen_random_uuid(), psn_no, from_area, to_area, scheme, applicant_agency_id,"
            " from_segment_id, requested_on, certificate_due_on FROM relationship_transfers"
        )


async def _closed_sample_segment(db_pool) -> int:
    segment_id = await db_pool.fetchval(
        "UPDATE insurance_segments SET valid_until = '2026-01-01'"
        " WHERE psn_no = $1 AND valid_until IS NULL RETURNING segment_id",
        person_ref(PERSON),
    )
    assert segment_id is not None
    return int(segment_id)


@pytest.mark.parametrize(
    "change",
    [
        "SET valid_until = NULL",
        "SET valid_until = '2030-01-01'",
        "SET insured_area = '440104'",
    ],
    ids=["reopen", "move_the_end", "rewrite"],
)
async def test_a_closed_segment_is_never_reopened_or_rewritten(db_pool, change: str) -> None:
    segment_id = await _closed_sample_segment(db_pool)
    with pytest.raises(asyncpg.RestrictViolationError, match="never reopened or rewritten"):
        await db_pool.execute(
            f"UPDATE insurance_segments {change} WHERE segment_id = $1", segment_id
        )


async def test_an_open_segment_changes_only_by_closing(db_pool) -> None:
    with pytest.raises(asyncpg.RestrictViolationError, match="only valid_until may be set"):
        await db_pool.execute(
            "UPDATE insurance_segments SET contribution_months = 1 WHERE psn_no = $1",
            person_ref(PERSON),
        )


async def test_a_segment_is_never_deleted(db_pool) -> None:
    with pytest.raises(asyncpg.RestrictViolationError, match="never deleted"):
        await db_pool.execute(
            "DELETE FROM insurance_segments WHERE psn_no = $1", person_ref(PERSON)
        )


async def test_transfer_events_are_never_changed(client, db_pool, guangdong_agency) -> None:
    await _applied(client, guangdong_agency)
    with pytest.raises(asyncpg.RestrictViolationError, match="never changed or deleted"):
        await db_pool.execute("UPDATE relationship_transfer_events SET details = '{}'")
    with pytest.raises(asyncpg.RestrictViolationError, match="never changed or deleted"):
        await db_pool.execute("DELETE FROM relationship_transfer_events")


async def test_a_closed_transfer_never_changes(client, db_pool, guangdong_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    await _post(client, f"{TRANSFERS}/{transfer_id}/cancellation", {}, guangdong_agency)
    with pytest.raises(asyncpg.RestrictViolationError, match="a closed transfer never changes"):
        await db_pool.execute("UPDATE relationship_transfers SET state = 'requested'")


async def test_a_ledger_journal_is_about_exactly_one_payment_or_transfer(db_pool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute("INSERT INTO ledger_journals (kind) VALUES ('account_transfer')")


# --- the transition table -----------------------------------------------------------------------


async def test_accepting_before_the_certificate_is_refused(client, guangdong_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _accept(client, guangdong_agency, transfer_id)
    assert response.status_code == 409
    assert problem(response)["code"] == "transfer_transition_not_allowed"


async def test_a_certificate_is_issued_once(client, guangdong_agency, zhejiang_agency) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _certify(client, zhejiang_agency, transfer_id, months=1)
    assert response.status_code == 409
    assert problem(response)["code"] == "transfer_transition_not_allowed"


@pytest.mark.parametrize(
    ("step", "body", "by"),
    [
        ("acceptance", {}, "guangdong"),
        ("rejection", {"reason": "too late"}, "zhejiang"),
        ("cancellation", {}, "guangdong"),
        ("certificate", None, "zhejiang"),
    ],
)
async def test_an_accepted_transfer_takes_no_further_step(
    client, db_pool, guangdong_agency, zhejiang_agency, step, body, by
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    assert (await _accept(client, guangdong_agency, transfer_id)).status_code == 200
    if body is None:
        body = {
            "contribution_months": 1,
            "personal_account_balance_fen": 0,
            "contributions_stopped_on": china_today().isoformat(),
        }
    agency = guangdong_agency if by == "guangdong" else zhejiang_agency
    response = await _post(client, f"{TRANSFERS}/{transfer_id}/{step}", body, agency)
    assert response.status_code == 409
    assert problem(response)["code"] == "transfer_transition_not_allowed"
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1


async def test_a_rejected_transfer_cannot_be_certified(
    client, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    rejected = await _post(
        client, f"{TRANSFERS}/{transfer_id}/rejection", {"reason": "unknown"}, zhejiang_agency
    )
    assert rejected.status_code == 200
    response = await _certify(client, zhejiang_agency, transfer_id)
    assert response.status_code == 409
    assert "rejected" in problem(response)["detail"]


# --- reject and cancel ----------------------------------------------------------------------------


async def test_the_old_area_rejects_and_the_person_stays_in_zhejiang(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _post(
        client,
        f"{TRANSFERS}/{transfer_id}/rejection",
        {"reason": "contributions still due"},
        zhejiang_agency,
    )
    assert response.status_code == 200, response.text
    transfer = response.json()
    assert (transfer["state"], transfer["closing_reason"]) == (
        "rejected",
        "contributions still due",
    )
    assert [e["step"] for e in transfer["events"]] == ["requested", "rejected"]
    assert transfer["events"][1]["agency_id"] == "agency_330106"
    assert (await insurer_on(db_pool, PERSON, china_today())).insured_area == "330106"
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM insurance_segments WHERE psn_no = $1", person_ref(PERSON)
        )
        == 1
    )


async def test_the_new_area_may_reject_after_the_certificate(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _post(
        client,
        f"{TRANSFERS}/{transfer_id}/rejection",
        {"reason": "form incomplete"},
        guangdong_agency,
    )
    assert response.status_code == 200
    assert response.json()["state"] == "rejected"
    assert await _transfer_postings(db_pool, transfer_id) == {}


async def test_a_rejection_needs_a_reason(client, guangdong_agency, zhejiang_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _post(client, f"{TRANSFERS}/{transfer_id}/rejection", {}, zhejiang_agency)
    assert response.status_code == 400
    assert problem(response)["code"] == "request_invalid"


async def test_the_applicant_cancels_and_the_person_stays_in_zhejiang(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _post(
        client, f"{TRANSFERS}/{transfer_id}/cancellation", {"reason": "stays"}, guangdong_agency
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert [e["step"] for e in response.json()["events"]] == [
        "requested",
        "certificate_issued",
        "cancelled",
    ]
    assert (await insurer_on(db_pool, PERSON, china_today())).insured_area == "330106"


# --- who may do what ----------------------------------------------------------------------------


async def test_an_agency_applies_only_for_moves_into_its_own_area(client, zhejiang_agency) -> None:
    response = await _apply(client, zhejiang_agency)  # to 440104, signed by 330106
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_for_area"


async def test_only_the_old_area_issues_the_certificate(client, guangdong_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _certify(client, guangdong_agency, transfer_id)
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_for_area"


async def test_only_the_new_area_accepts(client, guangdong_agency, zhejiang_agency) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _accept(client, zhejiang_agency, transfer_id)
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_for_area"


async def test_only_the_applicant_cancels(client, guangdong_agency, zhejiang_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _post(client, f"{TRANSFERS}/{transfer_id}/cancellation", {}, zhejiang_agency)
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_applicant"


async def test_an_uninvolved_agency_cannot_reject(client, guangdong_agency, beijing_agency) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    response = await _post(
        client, f"{TRANSFERS}/{transfer_id}/rejection", {"reason": "no"}, beijing_agency
    )
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_for_area"


async def test_an_uninvolved_agency_sees_neither_the_transfer_nor_the_person(
    client, guangdong_agency, beijing_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    auth = agency_auth(beijing_agency)
    response = await client.get(f"{TRANSFERS}/{transfer_id}", auth=auth)
    assert (response.status_code, problem(response)["code"]) == (404, "transfer_not_found")
    response = await client.get(f"/v1/persons/{PERSON}/relationships", auth=auth)
    assert (response.status_code, problem(response)["code"]) == (404, "person_not_found")
    listed = await client.get(TRANSFERS, auth=auth)
    assert listed.status_code == 200 and listed.json()["transfers"] == []


async def test_the_agencies_of_both_areas_see_the_transfer(
    client, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    for agency in (guangdong_agency, zhejiang_agency):
        response = await client.get(f"{TRANSFERS}/{transfer_id}", auth=agency_auth(agency))
        assert response.status_code == 200, response.text
        assert response.json()["events"][0]["step"] == "requested"


async def test_a_patient_apps_signature_cannot_call_agency_endpoints(
    client, signed, patient_app
) -> None:
    body = {"psn_no": PERSON, "from_area": "330106", "to_area": "440104", "scheme": "employee"}
    response = await client.post(
        TRANSFERS, json=body, headers={"Idempotency-Key": _key()}, auth=signed
    )
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_missing"
    # The app's own key, presented as an agency: no agency has that id.
    as_agency = AgencySignatureAuth(patient_app.app_id, patient_app.private_key_pem)
    response = await client.post(
        TRANSFERS, json=body, headers={"Idempotency-Key": _key()}, auth=as_agency
    )
    assert response.status_code == 401
    assert problem(response)["code"] == "agency_unknown"
    response = await client.get(f"/v1/persons/{PERSON}/relationships", auth=signed)
    assert response.status_code == 401


@pytest.mark.parametrize("psn_no", ["x", "33%00", "3" * 40])
async def test_a_malformed_person_number_is_not_found(client, operator, psn_no: str) -> None:
    response = await client.get(f"/v1/persons/{psn_no}/relationships", auth=operator_auth(operator))
    assert (response.status_code, problem(response)["code"]) == (404, "person_not_found")


async def test_a_malformed_transfer_id_is_not_found(client, operator) -> None:
    response = await client.get(f"{TRANSFERS}/not-a-uuid%00", auth=operator_auth(operator))
    assert (response.status_code, problem(response)["code"]) == (404, "transfer_not_found")


# --- what the application and certificate must say ---------------------------------------------


async def test_the_person_must_be_insured_in_the_area_moved_from(client, guangdong_agency) -> None:
    response = await _apply(client, guangdong_agency, from_area="330102")
    assert response.status_code == 422
    assert problem(response)["code"] == "relationship_not_in_area"


async def test_an_unknown_person_cannot_be_moved(client, guangdong_agency) -> None:
    response = await _apply(client, guangdong_agency, psn_no="99000000000000000000")
    assert response.status_code == 422
    assert problem(response)["code"] == "person_not_insured"


async def test_a_transfer_moves_to_another_area(client, guangdong_agency) -> None:
    response = await _apply(client, guangdong_agency, from_area="440104")
    assert response.status_code == 422
    assert problem(response)["code"] == "transfer_within_area"


async def test_contributions_cannot_stop_in_the_future(
    client, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    tomorrow = china_today() + dt.timedelta(days=1)
    response = await _certify(client, zhejiang_agency, transfer_id, stopped_on=tomorrow)
    assert response.status_code == 422
    assert problem(response)["code"] == "certificate_invalid"


async def test_a_relationship_ended_meanwhile_cannot_be_certified(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _applied(client, guangdong_agency)
    await _closed_sample_segment(db_pool)  # ended by other means, outside the transfer
    response = await _certify(client, zhejiang_agency, transfer_id, stopped_on=SAMPLE_START)
    assert response.status_code == 409
    assert problem(response)["code"] == "relationship_changed"


async def test_a_resident_certificate_moves_no_balance(client, db_pool, zhejiang_agency) -> None:
    guangzhou_haizhu = await register_agency(
        db_pool, "广州市海珠区医疗保障局", "440106", agency_id="agency_440106"
    )
    applied = await _apply(
        client,
        zhejiang_agency,
        psn_no=GUANGDONG_RESIDENT,
        from_area="440106",
        to_area="330106",
        scheme="resident",
    )
    assert applied.status_code == 201, applied.text
    response = await _certify(
        client, guangzhou_haizhu, applied.json()["transfer_id"], balance_fen=100
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "personal_account_not_held"


async def test_the_new_segment_never_starts_in_the_past(
    client, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    yesterday = china_today() - dt.timedelta(days=1)
    response = await _accept(
        client, guangdong_agency, transfer_id, valid_from=yesterday.isoformat()
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "segment_start_invalid"


async def test_the_new_segment_may_start_later_and_the_old_area_answers_until_then(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    today = china_today()
    start = today + dt.timedelta(days=10)
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _accept(client, guangdong_agency, transfer_id, valid_from=start.isoformat())
    assert response.status_code == 200, response.text
    assert (
        await insurer_on(db_pool, PERSON, start - dt.timedelta(days=1))
    ).insured_area == "330106"
    assert (await insurer_on(db_pool, PERSON, start)).insured_area == "440104"


# --- the waiting period ---------------------------------------------------------------------------


async def test_a_gap_of_more_than_three_months_brings_the_reference_waiting_period(
    client, db_pool, guangdong_agency, zhejiang_agency, operator
) -> None:
    today = china_today()
    stopped_on = add_months(today, -5)
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency, stopped_on=stopped_on)
    response = await _accept(client, guangdong_agency, transfer_id)
    assert response.status_code == 200, response.text
    accepted = response.json()["events"][-1]["details"]
    assert (accepted["gap_months"], accepted["waiting_months"]) == (5, 3)

    relationship = await insurer_on(db_pool, PERSON, today)
    assert relationship.waiting_until == add_months(today, 3)
    with pytest.raises(DomainError) as refused:
        require_fund_payable(relationship, today)
    assert (status_of(refused.value), refused.value.code) == (422, "insurance_waiting_period")
    after = await insurer_on(db_pool, PERSON, add_months(today, 3))
    require_fund_payable(after, add_months(today, 3))  # the fund pays again
    history = await _history(client, operator, today)
    assert history["insurer"]["in_waiting_period"] is True
    assert history["insurer"]["waiting_until"] == add_months(today, 3).isoformat()


async def test_a_gap_of_three_months_continues_benefits_without_waiting(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    today = china_today()
    transfer_id = await _certified(
        client, guangdong_agency, zhejiang_agency, stopped_on=add_months(today, -3)
    )
    assert (await _accept(client, guangdong_agency, transfer_id)).status_code == 200
    relationship = await insurer_on(db_pool, PERSON, today)
    assert relationship.waiting_until is None
    require_fund_payable(relationship, today)


async def test_the_new_area_may_set_up_to_six_months_of_waiting(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    today = china_today()
    transfer_id = await _certified(
        client, guangdong_agency, zhejiang_agency, stopped_on=add_months(today, -12)
    )
    too_long = await _accept(client, guangdong_agency, transfer_id, waiting_months=7)
    assert too_long.status_code == 400
    assert problem(too_long)["code"] == "request_invalid"
    assert "<= 6" in problem(too_long)["detail"]
    response = await _accept(client, guangdong_agency, transfer_id, waiting_months=6)
    assert response.status_code == 200, response.text
    assert (await insurer_on(db_pool, PERSON, today)).waiting_until == add_months(today, 6)


async def test_no_waiting_period_may_be_set_after_a_short_gap(
    client, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    response = await _accept(client, guangdong_agency, transfer_id, waiting_months=2)
    assert response.status_code == 422
    assert problem(response)["code"] == "waiting_period_not_allowed"


# --- deadlines ---------------------------------------------------------------------------------------


async def test_overdue_lists_transfers_past_their_deadline_in_working_days(
    client, db_pool, guangdong_agency, zhejiang_agency, operator
) -> None:
    today = china_today()
    guangdong = await find_agency(db_pool, guangdong_agency.party_id)
    zhejiang = await find_agency(db_pool, zhejiang_agency.party_id)
    assert guangdong is not None and zhejiang is not None
    # Applied for six weeks ago and never certified: the old area is late.
    applied_on = today - dt.timedelta(weeks=6)
    late = await request_transfer(
        db_pool,
        guangdong,
        TransferApplication(psn_no=PERSON, from_area="330106", to_area="440104", scheme="employee"),
        today=applied_on,
    )
    # Applied for today by Zhejiang for the Guangdong resident: on time.
    on_time = await request_transfer(
        db_pool,
        zhejiang,
        TransferApplication(
            psn_no=GUANGDONG_RESIDENT, from_area="440106", to_area="330106", scheme="resident"
        ),
    )

    response = await client.get(f"{TRANSFERS}?overdue=true", auth=operator_auth(operator))
    assert response.status_code == 200, response.text
    (listed,) = response.json()["transfers"]
    due_on = add_working_days(applied_on, 10)
    assert listed["transfer_id"] == str(late.transfer_id)
    assert (listed["awaiting"], listed["due_on"]) == ("certificate", due_on.isoformat())
    assert listed["working_days_late"] == working_days_between(due_on, today) > 0

    every = await client.get(TRANSFERS, auth=operator_auth(operator))
    assert {t["transfer_id"] for t in every.json()["transfers"]} == {
        str(late.transfer_id),
        str(on_time.transfer_id),
    }
    # An agency sees the overdue transfers of its own area only.
    mine = await client.get(f"{TRANSFERS}?overdue=true", auth=agency_auth(zhejiang_agency))
    assert [t["transfer_id"] for t in mine.json()["transfers"]] == [str(late.transfer_id)]


async def test_a_late_acceptance_is_overdue_for_the_new_area(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    today = china_today()
    guangdong = await find_agency(db_pool, guangdong_agency.party_id)
    zhejiang = await find_agency(db_pool, zhejiang_agency.party_id)
    assert guangdong is not None and zhejiang is not None
    applied_on = today - dt.timedelta(weeks=4)
    certified_on = applied_on + dt.timedelta(days=7)
    transfer = await request_transfer(
        db_pool,
        guangdong,
        TransferApplication(psn_no=PERSON, from_area="330106", to_area="440104", scheme="employee"),
        today=applied_on,
    )
    await issue_certificate(
        db_pool,
        zhejiang,
        transfer.transfer_id,
        ContributionCertificate(
            contribution_months=142,
            personal_account_balance_fen=BALANCE_FEN,
            contributions_stopped_on=applied_on,
        ),
        today=certified_on,
    )
    response = await client.get(f"{TRANSFERS}?overdue=true", auth=agency_auth(guangdong_agency))
    (listed,) = response.json()["transfers"]
    due_on = add_working_days(certified_on, 5)
    assert (listed["awaiting"], listed["due_on"]) == ("acceptance", due_on.isoformat())
    assert listed["working_days_late"] == working_days_between(due_on, today)


# --- idempotency -----------------------------------------------------------------------------------


async def test_a_repeated_application_returns_the_first_outcome(client, db_pool, guangdong_agency):
    key = _key()
    first = await _apply(client, guangdong_agency, key=key)
    again = await _apply(client, guangdong_agency, key=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await db_pool.fetchval("SELECT count(*) FROM relationship_transfers") == 1


async def test_a_repeated_acceptance_moves_the_balance_once(
    client, db_pool, guangdong_agency, zhejiang_agency
) -> None:
    transfer_id = await _certified(client, guangdong_agency, zhejiang_agency)
    key = _key()
    first = await _accept(client, guangdong_agency, transfer_id, key=key)
    again = await _accept(client, guangdong_agency, transfer_id, key=key)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM insurance_segments WHERE psn_no = $1", person_ref(PERSON)
        )
        == 2
    )


async def test_a_key_reused_for_another_request_is_refused(client, guangdong_agency) -> None:
    key = _key()
    assert (await _apply(client, guangdong_agency, key=key)).status_code == 201
    response = await _apply(client, guangdong_agency, key=key, scheme="resident")
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_key_reused"


async def test_every_post_needs_an_idempotency_key(client, guangdong_agency) -> None:
    body = {"psn_no": PERSON, "from_area": "330106", "to_area": "440104", "scheme": "employee"}
    response = await client.post(TRANSFERS, json=body, auth=agency_auth(guangdong_agency))
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"


async def test_a_step_retried_after_a_crash_finds_what_it_already_did(
    db_pool, guangdong_agency, zhejiang_agency
) -> None:
    """The Idempotency-Key's outcome was lost (crash before it was stored): the step is
    run again under the same key and finds its own event instead of acting twice."""
    guangdong = await find_agency(db_pool, guangdong_agency.party_id)
    zhejiang = await find_agency(db_pool, zhejiang_agency.party_id)
    assert guangdong is not None and zhejiang is not None
    application = TransferApplication(
        psn_no=PERSON, from_area="330106", to_area="440104", scheme="employee"
    )
    first = await request_transfer(db_pool, guangdong, application, idempotency_key="apply-0001")
    again = await request_transfer(db_pool, guangdong, application, idempotency_key="apply-0001")
    assert again.transfer_id == first.transfer_id
    certificate = ContributionCertificate(
        contribution_months=10,
        personal_account_balance_fen=BALANCE_FEN,
        contributions_stopped_on=china_today(),
    )
    await issue_certificate(db_pool, zhejiang, first.transfer_id, certificate)
    for _ in range(2):
        accepted = await accept_transfer(
            db_pool, guangdong, first.transfer_id, TransferAcceptance(), idempotency_key="acc-0001"
        )
        assert accepted.state == "accepted"
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1
    with pytest.raises(DomainError) as reused:  # the same key for another step
        await cancel_transfer(
            db_pool,
            guangdong,
            first.transfer_id,
            TransferCancellation(),
            idempotency_key="apply-0001",
        )
    assert reused.value.code == "idempotency_key_reused"
