"""Off-site filings (DOMAIN.md section 5), over real HTTP, and the lookup settlement makes."""

from __future__ import annotations

import datetime as dt
import itertools

import asyncpg
import pytest

from medpay.clock import add_months, china_today
from medpay.filings.schemas import NewFiling
from medpay.filings.service import create_filing, filing_type_on
from medpay.parties.service import find_agency

from .conftest import ZHEJIANG_EMPLOYEE, agency_auth, operator_auth, problem

_keys = itertools.count()
D = dt.date.fromisoformat
TODAY = china_today()
#: Insured in Ningbo (330212): not a person of the Xihu district agency.
NINGBO_RESIDENT = "33000000000000000011"


def _referral(**changes: object) -> dict[str, object]:
    return {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "treatment_area": "440300",
        "filing_type": "referral",
        "valid_from": "2024-01-01",
    } | changes


def _long_term(**changes: object) -> dict[str, object]:
    return {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "treatment_area": "440000",
        "filing_type": "resettled_retiree",
        "valid_from": "2024-01-01",
    } | changes


@pytest.fixture
def gateway(gateway_shelf, settings):
    """No province is reached here: the gateway alone, without the simulator (faster)."""
    with gateway_shelf.lend(settings) as app:
        yield app


async def _post(client, path, body, auth, key: str | None = None):
    key = key or f"filing-test-{next(_keys):06d}"
    return await client.post(path, json=body, auth=auth, headers={"Idempotency-Key": key})


@pytest.fixture
def as_agency(zhejiang_agency):
    return agency_auth(zhejiang_agency)


async def _file(client, as_agency, body) -> dict[str, object]:
    response = await _post(client, "/v1/filings", body, as_agency)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _applies(db_pool, area: str, day: str | dt.date):
    on = D(day) if isinstance(day, str) else day
    return await filing_type_on(db_pool, ZHEJIANG_EMPLOYEE, area, on)


# --- filing --------------------------------------------------------------------------------------


async def test_a_temporary_outing_is_valid_six_months_by_default(client, as_agency) -> None:
    response = await _post(
        client, "/v1/filings", _referral(valid_from=TODAY.isoformat()), as_agency
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/filings/{body['filing_id']}"
    assert body["insured_area"] == "330106"
    assert body["filing_class"] == "temporary"
    assert body["status"] == "filed"
    assert body["valid_until"] == add_months(TODAY, 6).isoformat()
    assert body["version"] == 1
    assert [v["change"] for v in body["history"]] == ["filed"]


async def test_a_long_term_residence_has_no_end(client, as_agency, db_pool) -> None:
    body = await _file(client, as_agency, _long_term())
    assert body["filing_class"] == "long_term"
    assert "valid_until" not in body
    assert await _applies(db_pool, "440305", "2030-06-01") == "long_term"


async def test_an_agency_cannot_file_for_a_person_of_another_area(client, as_agency) -> None:
    response = await _post(client, "/v1/filings", _referral(psn_no=NINGBO_RESIDENT), as_agency)
    assert response.status_code == 403
    assert problem(response)["code"] == "person_not_insured_here"


async def test_an_agency_cannot_file_for_another_insured_area(client, as_agency) -> None:
    response = await _post(client, "/v1/filings", _referral(insured_area="330212"), as_agency)
    assert response.status_code == 403
    assert problem(response)["code"] == "agency_not_of_insured_area"


async def test_another_provinces_agency_cannot_file_for_the_person(
    client, guangdong_agency
) -> None:
    response = await _post(client, "/v1/filings", _referral(), agency_auth(guangdong_agency))
    assert response.status_code == 403
    assert problem(response)["code"] == "person_not_insured_here"


async def test_an_unknown_person_is_forbidden_like_anyone_not_insured_here(
    client, as_agency
) -> None:
    response = await _post(client, "/v1/filings", _referral(psn_no="999999999999"), as_agency)
    assert response.status_code == 403
    assert problem(response)["code"] == "person_not_insured_here"


@pytest.mark.parametrize("signer", ["patient_app", "operator", "unsigned"], ids=lambda s: f"as_{s}")
async def test_only_an_agency_files(client, signed, operator, signer) -> None:
    auth = {"patient_app": signed, "operator": operator_auth(operator), "unsigned": None}[signer]
    response = await _post(client, "/v1/filings", _referral(), auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_missing"


async def test_a_patient_app_cannot_read_filings(client, signed) -> None:
    response = await client.get(f"/v1/filings?psn_no={ZHEJIANG_EMPLOYEE}", auth=signed)
    assert response.status_code == 401


async def test_a_malformed_filing_is_a_400(client, as_agency, db_pool) -> None:
    for body in [
        _referral(psn_no="33-0001"),
        _referral(treatment_area="44030"),
        _referral(treatment_area="000000"),
        _referral(filing_type="holiday"),
        _referral(valid_from="2024-02-30"),
        _referral(valid_from=None),
        _referral(reason="\u0000"),
        _referral(comment="unknown field"),
    ]:
        response = await _post(client, "/v1/filings", body, as_agency)
        assert (response.status_code, problem(response)["code"]) == (400, "request_invalid"), body
    assert await db_pool.fetchval("SELECT count(*) FROM filings") == 0


async def test_a_filing_against_the_rules_is_a_422_with_its_own_code(
    client, as_agency, db_pool
) -> None:
    tomorrow = (TODAY + dt.timedelta(1)).isoformat()
    cases = [
        (_long_term(valid_until="2030-01-01"), "long_term_filing_has_no_end"),
        (_referral(valid_until="2024-06-30"), "temporary_filing_too_short"),
        (_referral(valid_until="2023-06-30"), "temporary_filing_too_short"),
        (_referral(filing_type="emergency", valid_from=tomorrow), "emergency_not_yet_happened"),
        (_referral(treatment_area="330106"), "filing_not_offsite"),
        (_referral(treatment_area="330000"), "filing_not_offsite"),
        (_referral(treatment_area="330100"), "filing_not_offsite"),
        (_referral(treatment_area="680000"), "treatment_area_unknown"),
        (_referral(valid_from="1900-01-01"), "date_out_of_range"),
        (_referral(valid_from="9999-12-01"), "date_out_of_range"),
    ]
    for body, code in cases:
        response = await _post(client, "/v1/filings", body, as_agency)
        assert (response.status_code, problem(response)["code"]) == (422, code), body
    assert await db_pool.fetchval("SELECT count(*) FROM filings") == 0


async def test_an_emergency_is_filed_after_the_visit_and_counts_as_filed(
    client, as_agency, db_pool
) -> None:
    visit = TODAY - dt.timedelta(days=10)
    assert await _applies(db_pool, "440305", visit) is None
    await _file(client, as_agency, _referral(filing_type="emergency", valid_from=visit.isoformat()))
    assert await _applies(db_pool, "440305", visit) == "emergency"


async def test_a_second_long_term_residence_at_the_same_time_is_a_409(client, as_agency) -> None:
    await _file(client, as_agency, _long_term())
    response = await _post(
        client,
        "/v1/filings",
        _long_term(treatment_area="310000", filing_type="posted_staff", valid_from="2025-01-01"),
        as_agency,
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "filing_overlaps"


async def test_the_same_outing_filed_twice_is_a_409(client, as_agency) -> None:
    await _file(client, as_agency, _referral())
    response = await _post(client, "/v1/filings", _referral(valid_from="2024-03-01"), as_agency)
    assert response.status_code == 409
    assert problem(response)["code"] == "filing_overlaps"


# --- idempotency -----------------------------------------------------------------------------------


async def test_a_repeated_request_files_once_and_replays_its_answer(
    client, as_agency, db_pool
) -> None:
    first = await _post(client, "/v1/filings", _referral(), as_agency, key="file-once-0001")
    second = await _post(client, "/v1/filings", _referral(), as_agency, key="file-once-0001")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await db_pool.fetchval("SELECT count(*) FROM filings") == 1


async def test_another_request_under_the_same_key_is_a_409(client, as_agency) -> None:
    await _post(client, "/v1/filings", _referral(), as_agency, key="file-once-0002")
    response = await _post(
        client, "/v1/filings", _referral(treatment_area="310000"), as_agency, key="file-once-0002"
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_key_reused"


async def test_a_retry_after_a_lost_answer_finds_the_filing_it_made(
    db_pool, zhejiang_agency
) -> None:
    agency = await find_agency(db_pool, zhejiang_agency.party_id)
    new = NewFiling(
        psn_no=ZHEJIANG_EMPLOYEE,
        treatment_area="440300",
        filing_type="referral",
        valid_from=D("2024-01-01"),
    )
    first = await create_filing(db_pool, new, agency=agency, idempotency_key="lost-answer-01")
    again = await create_filing(db_pool, new, agency=agency, idempotency_key="lost-answer-01")
    assert again == first
    assert await db_pool.fetchval("SELECT count(*) FROM filing_changes") == 1


async def test_a_post_without_idempotency_key_is_a_400(client, as_agency) -> None:
    response = await client.post("/v1/filings", json=_referral(), auth=as_agency)
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"


# --- changes and cancellations ----------------------------------------------------------------------


async def test_extending_a_filing_keeps_the_old_version_readable(
    client, as_agency, db_pool
) -> None:
    filing = await _file(client, as_agency, _referral())
    response = await _post(
        client,
        f"/v1/filings/{filing['filing_id']}/changes",
        {"valid_until": "2025-01-01", "reason": "治疗延长"},
        as_agency,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["valid_until"]) == (2, "2025-01-01")
    assert [(v["version"], v["change"], v["valid_until"]) for v in body["history"]] == [
        (1, "filed", "2024-07-01"),
        (2, "changed", "2025-01-01"),
    ]
    assert body["history"][1]["reason"] == "治疗延长"
    assert await db_pool.fetchval("SELECT count(*) FROM filing_changes") == 2
    assert await _applies(db_pool, "440305", "2024-12-31") == "referral"


async def test_correcting_the_treatment_area_moves_the_coverage(client, as_agency, db_pool) -> None:
    filing = await _file(client, as_agency, _referral())
    await _post(
        client,
        f"/v1/filings/{filing['filing_id']}/changes",
        {"treatment_area": "310000"},
        as_agency,
    )
    assert await _applies(db_pool, "440305", "2024-02-01") is None
    assert await _applies(db_pool, "310115", "2024-02-01") == "referral"


async def test_a_change_against_the_rules_is_a_422_and_changes_nothing(
    client, as_agency, db_pool
) -> None:
    filing = await _file(client, as_agency, _referral())
    cases = [
        ({}, "filing_change_empty"),
        ({"valid_from": "2024-01-01"}, "filing_change_empty"),
        ({"filing_type": "posted_staff"}, "filing_class_change"),
        ({"valid_until": "2024-03-01"}, "temporary_filing_too_short"),
        ({"treatment_area": "330000"}, "filing_not_offsite"),
        ({"valid_until": "9999-01-01"}, "date_out_of_range"),
    ]
    for change, code in cases:
        response = await _post(
            client, f"/v1/filings/{filing['filing_id']}/changes", change, as_agency
        )
        assert (response.status_code, problem(response)["code"]) == (422, code), change
    assert await db_pool.fetchval("SELECT count(*) FROM filing_changes") == 1


async def test_a_change_may_correct_the_type_within_its_class(client, as_agency, db_pool) -> None:
    filing = await _file(client, as_agency, _referral())
    response = await _post(
        client,
        f"/v1/filings/{filing['filing_id']}/changes",
        {"filing_type": "other_temporary"},
        as_agency,
    )
    assert response.status_code == 200
    assert await _applies(db_pool, "440305", "2024-02-01") == "temporary"


@pytest.mark.parametrize("action", ["changes", "cancellation"])
async def test_a_long_term_residence_cannot_change_within_six_months_of_its_start(
    client, as_agency, action
) -> None:
    started = TODAY - dt.timedelta(days=30)
    filing = await _file(client, as_agency, _long_term(valid_from=started.isoformat()))
    body = {"treatment_area": "310000"} if action == "changes" else {}
    response = await _post(client, f"/v1/filings/{filing['filing_id']}/{action}", body, as_agency)
    assert response.status_code == 422
    assert problem(response)["code"] == "long_term_filing_locked"
    assert add_months(started, 6).isoformat() in str(problem(response)["detail"])


async def test_a_long_term_residence_not_yet_started_can_be_corrected(client, as_agency) -> None:
    filing = await _file(
        client, as_agency, _long_term(valid_from=(TODAY + dt.timedelta(30)).isoformat())
    )
    response = await _post(
        client,
        f"/v1/filings/{filing['filing_id']}/changes",
        {"valid_from": (TODAY + dt.timedelta(60)).isoformat()},
        as_agency,
    )
    assert response.status_code == 200


async def test_a_long_term_residence_is_cancelled_after_six_months(
    client, as_agency, db_pool
) -> None:
    filing = await _file(client, as_agency, _long_term())
    response = await _post(
        client, f"/v1/filings/{filing['filing_id']}/cancellation", {"reason": "回原籍"}, as_agency
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancelled_from"], body["version"]) == (
        "cancelled",
        TODAY.isoformat(),
        2,
    )
    assert [v["change"] for v in body["history"]] == ["filed", "cancelled"]
    assert await _applies(db_pool, "440305", TODAY - dt.timedelta(1)) == "long_term"
    assert await _applies(db_pool, "440305", TODAY) is None


async def test_a_cancelled_filing_changes_no_more(client, as_agency) -> None:
    filing = await _file(client, as_agency, _long_term())
    path = f"/v1/filings/{filing['filing_id']}"
    await _post(client, f"{path}/cancellation", {}, as_agency)
    for action, body in (("changes", {"treatment_area": "310000"}), ("cancellation", {})):
        response = await _post(client, f"{path}/{action}", body, as_agency)
        assert response.status_code == 409
        assert problem(response)["code"] == "filing_cancelled"


async def test_a_cancellation_in_the_past_is_a_422(client, as_agency) -> None:
    filing = await _file(client, as_agency, _long_term())
    response = await _post(
        client,
        f"/v1/filings/{filing['filing_id']}/cancellation",
        {"effective_from": (TODAY - dt.timedelta(1)).isoformat()},
        as_agency,
    )
    assert response.status_code == 422
    assert problem(response)["code"] == "cancellation_in_the_past"


async def test_cancelling_a_filing_that_already_ended_is_a_422(client, as_agency) -> None:
    filing = await _file(client, as_agency, _referral())
    response = await _post(client, f"/v1/filings/{filing['filing_id']}/cancellation", {}, as_agency)
    assert response.status_code == 422
    assert problem(response)["code"] == "filing_already_ends"


async def test_history_rows_are_never_changed_or_deleted(client, as_agency, db_pool) -> None:
    await _file(client, as_agency, _referral())
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("UPDATE filing_changes SET treatment_area = '310000'")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("DELETE FROM filings")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute("UPDATE filings SET treatment_area = '310000'")  # no new version


# --- reading -----------------------------------------------------------------------------------------


async def test_agency_and_operator_read_a_filing_with_its_history(
    client, as_agency, operator
) -> None:
    filing = await _file(client, as_agency, _referral())
    for auth in (as_agency, operator_auth(operator)):
        response = await client.get(f"/v1/filings/{filing['filing_id']}", auth=auth)
        assert response.status_code == 200
        assert response.json() == filing


async def test_another_agency_sees_no_such_filing(client, as_agency, guangdong_agency) -> None:
    filing = await _file(client, as_agency, _referral())
    other = agency_auth(guangdong_agency)
    path = f"/v1/filings/{filing['filing_id']}"
    assert (await client.get(path, auth=other)).status_code == 404
    response = await _post(client, f"{path}/changes", {"valid_until": "2025-01-01"}, other)
    assert response.status_code == 404
    assert problem(response)["code"] == "filing_not_found"
    listed = await client.get(f"/v1/filings?psn_no={ZHEJIANG_EMPLOYEE}", auth=other)
    assert listed.json() == {"filings": []}


async def test_a_persons_filings_are_listed_for_the_agency_and_the_operator(
    client, as_agency, operator
) -> None:
    await _file(client, as_agency, _referral())
    await _file(client, as_agency, _long_term())
    for auth in (as_agency, operator_auth(operator)):
        response = await client.get(f"/v1/filings?psn_no={ZHEJIANG_EMPLOYEE}", auth=auth)
        assert response.status_code == 200
        assert [f["filing_type"] for f in response.json()["filings"]] == [
            "referral",
            "resettled_retiree",
        ]


async def test_listing_needs_a_well_formed_person(client, as_agency) -> None:
    for query in ["", "?psn_no=x", "?psn_no=33%00"]:
        response = await client.get(f"/v1/filings{query}", auth=as_agency)
        assert (response.status_code, problem(response)["code"]) == (400, "request_invalid"), query


async def test_an_unknown_filing_is_a_404(client, as_agency) -> None:
    for filing_id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00"]:
        read = await client.get(f"/v1/filings/{filing_id}", auth=as_agency)
        cancel = await _post(client, f"/v1/filings/{filing_id}/cancellation", {}, as_agency)
        for response in (read, cancel):
            assert (response.status_code, problem(response)["code"]) == (404, "filing_not_found")


# --- which filing settlement uses ----------------------------------------------------------------------


async def test_a_province_filing_covers_its_cities_and_no_other_province(
    client, as_agency, db_pool
) -> None:
    await _file(client, as_agency, _long_term())
    assert await _applies(db_pool, "440305", "2024-06-01") == "long_term"
    assert await _applies(db_pool, "440104", "2024-06-01") == "long_term"
    assert await _applies(db_pool, "450102", "2024-06-01") is None


async def test_a_city_filing_covers_its_districts_only(client, as_agency, db_pool) -> None:
    await _file(client, as_agency, _referral())
    assert await _applies(db_pool, "440305", "2024-02-01") == "referral"
    assert await _applies(db_pool, "440104", "2024-02-01") is None


async def test_a_filing_applies_only_within_its_period(client, as_agency, db_pool) -> None:
    await _file(client, as_agency, _referral())
    assert await _applies(db_pool, "440305", "2023-12-31") is None
    assert await _applies(db_pool, "440305", "2024-06-30") == "referral"
    assert await _applies(db_pool, "440305", "2024-07-01") is None


async def test_the_most_specific_filing_wins(client, as_agency, db_pool) -> None:
    await _file(client, as_agency, _long_term())
    await _file(
        client, as_agency, _referral(treatment_area="440305", filing_type="other_temporary")
    )
    assert await _applies(db_pool, "440305", "2024-02-01") == "temporary"
    assert await _applies(db_pool, "440306", "2024-02-01") == "long_term"


async def test_long_term_residence_beats_a_temporary_outing_for_the_same_area(
    client, as_agency, db_pool
) -> None:
    await _file(client, as_agency, _referral(treatment_area="440000"))
    await _file(client, as_agency, _long_term())
    assert await _applies(db_pool, "440305", "2024-02-01") == "long_term"


async def test_a_referral_beats_another_outing_for_the_same_area(
    client, as_agency, db_pool
) -> None:
    await _file(client, as_agency, _referral(filing_type="other_temporary"))
    await _file(client, as_agency, _referral())
    assert await _applies(db_pool, "440305", "2024-02-01") == "referral"


async def test_no_filing_means_none(db_pool) -> None:
    assert await _applies(db_pool, "440305", TODAY) is None
