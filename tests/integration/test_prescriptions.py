"""Electronic prescriptions (DOMAIN.md section 4): issued by a signed institution, redeemed once.

Issuing and reading go over HTTP to a real gateway; redemption is called the way the
payment flow calls it, inside transactions on real PostgreSQL connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import msgspec
import pytest

from medpay.client import InstitutionSignatureAuth
from medpay.errors import DomainError
from medpay.http.problems import status_of
from medpay.institutions.keys import register_institution_key
from medpay.prescriptions.schemas import PrescriptionOrder
from medpay.prescriptions.service import (
    CHINA,
    IllegalRedemptionTransition,
    confirm_redemption,
    issue_prescription,
    release_redemption,
    reserve_prescription,
)
from medpay.security.persons import person_ref, seal_person

from .conftest import ZHEJIANG_EMPLOYEE, problem

BEIJING_INTERNET_HOSPITAL = "H11010800124"
BEIJING_HOSPITAL = "H11010800123"
SHENZHEN_HOSPITAL = "H44030500001"
HANGZHOU_PHARMACY = "P33010600012"
SHENZHEN_PHARMACY = "P44030500007"
BEIJING_PHARMACY = "P11010500031"
GUANGDONG_RESIDENT = "44000000000000000002"
METFORMIN = "XA10BAA075A001010101445"
ATORVASTATIN = "XC10AAA096A001010178938"
VALSARTAN = "XC09CAC033A001010302115"

ORDER = {
    "psn_no": ZHEJIANG_EMPLOYEE,
    "kind": "standard",
    "items": [
        {"item_code": METFORMIN, "max_quantity": 2},
        {"item_code": ATORVASTATIN, "max_quantity": 1},
    ],
}
#: When the prescriptions issued through the service directly were issued (China time).
ISSUED_AT = dt.datetime(2026, 3, 2, 9, 30, tzinfo=CHINA)
ISSUE_DAY = ISSUED_AT.date()


# --- fixtures and helpers -------------------------------------------------------------------


async def _institution_auth(db_pool, code: str, algorithm="ed25519") -> InstitutionSignatureAuth:
    private_pem, _ = await register_institution_key(db_pool, code, algorithm)
    return InstitutionSignatureAuth(code, private_pem)


@pytest.fixture
async def internet_hospital(db_pool) -> InstitutionSignatureAuth:
    """The Beijing internet hospital, signing with its own Ed25519 key."""
    return await _institution_auth(db_pool, BEIJING_INTERNET_HOSPITAL)


async def _issue(client, auth, order=ORDER, key: str = "rx-order-0001"):
    return await client.post(
        "/v1/prescriptions", json=order, headers={"Idempotency-Key": key}, auth=auth
    )


async def _issued(db_pool, *, psn_no: str = ZHEJIANG_EMPLOYEE, **fields) -> str:
    """A prescription of the Beijing internet hospital, issued at ISSUED_AT; its id."""
    order = msgspec.convert({**ORDER, "psn_no": psn_no, **fields}, PrescriptionOrder)
    view = await issue_prescription(
        db_pool,
        institution_code=BEIJING_INTERNET_HOSPITAL,
        idempotency_key=f"rx-{uuid.uuid4().hex}",
        request_digest="digest",
        order=order,
        now=ISSUED_AT,
    )
    return view.prescription_id


@pytest.fixture
async def pay(db_pool, patient_app):
    """Make a pharmacy-purchase payment row (a redemption's FK target) as the flow receives it."""

    async def make(pharmacy: str = HANGZHOU_PHARMACY, prescription_id: str = "rx") -> uuid.UUID:
        payment_id = uuid.uuid4()
        await db_pool.execute(
            """INSERT INTO payments (payment_id, app_id, idempotency_key, request_digest, psn_no,
                                     institution_code, treatment_area, visit_type, prescription_id,
                                     personal_account_allowed, medical_fee_total_fen, state,
                                     person_sealed)
               VALUES ($1, $2, $3, 'digest', $4, $5, '330106', 'pharmacy_purchase', $6,
                       false, 0, 'received', $7)""",
            payment_id,
            patient_app.app_id,
            f"pay-{payment_id.hex}",
            person_ref(ZHEJIANG_EMPLOYEE),
            pharmacy,
            prescription_id,
            seal_person(ZHEJIANG_EMPLOYEE, ""),
        )
        return payment_id

    return make


async def _reserve(
    db_pool: asyncpg.Pool,
    prescription_id: str,
    payment_id: uuid.UUID,
    *,
    pharmacy: str = HANGZHOU_PHARMACY,
    items=((METFORMIN, 2),),
    on: dt.date = ISSUE_DAY,
    psn_no: str = ZHEJIANG_EMPLOYEE,
) -> None:
    """Reserve in a transaction of its own, as the payment's settling transaction would."""
    async with db_pool.acquire() as conn, conn.transaction():
        await reserve_prescription(
            conn,
            prescription_id=prescription_id,
            psn_no=psn_no,
            pharmacy_code=pharmacy,
            items=list(items),
            payment_id=payment_id,
            on=on,
        )


async def _confirm(db_pool, payment_id: uuid.UUID) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        await confirm_redemption(conn, payment_id)


async def _release(db_pool, payment_id: uuid.UUID) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        await release_redemption(conn, payment_id)


async def _refusal(awaitable) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await awaitable
    return caught.value


async def _states(db_pool, prescription_id: str) -> list[tuple[int, str]]:
    rows = await db_pool.fetch(
        "SELECT attempt, state FROM prescription_redemption_states"
        " WHERE prescription_id = $1 ORDER BY attempt",
        prescription_id,
    )
    return [(r["attempt"], r["state"]) for r in rows]


# --- issuing over HTTP ----------------------------------------------------------------------


async def test_internet_hospital_issues_a_prescription_signed_with_its_key(
    client, internet_hospital
) -> None:
    response = await _issue(client, internet_hospital)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["prescription_id"].startswith("rx_")
    assert response.headers["location"] == f"/v1/prescriptions/{body['prescription_id']}"
    assert (body["institution_code"], body["psn_no"]) == (
        BEIJING_INTERNET_HOSPITAL,
        ZHEJIANG_EMPLOYEE,
    )
    assert (body["kind"], body["validity_days"], body["status"]) == ("standard", 3, "open")
    valid_from = dt.date.fromisoformat(body["valid_from"])
    assert dt.date.fromisoformat(body["valid_until"]) == valid_from + dt.timedelta(days=2)
    assert valid_from == dt.datetime.fromisoformat(body["issued_at"]).astimezone(CHINA).date()
    assert body["items"] == ORDER["items"]
    assert body["redemptions"] == []


@pytest.mark.parametrize(
    ("code", "algorithm"), [(BEIJING_HOSPITAL, "ecdsa-p256"), (SHENZHEN_HOSPITAL, "ed25519")]
)
async def test_a_hospital_issues_with_either_key_algorithm(
    client, db_pool, code: str, algorithm: str
) -> None:
    auth = await _institution_auth(db_pool, code, algorithm)
    response = await _issue(client, auth)
    assert response.status_code == 201, response.text
    assert response.json()["institution_code"] == code


async def test_chronic_long_prescription_is_valid_for_up_to_84_days(
    client, internet_hospital
) -> None:
    order = {**ORDER, "kind": "chronic_long", "validity_days": 84}
    response = await _issue(client, internet_hospital, order)
    assert response.status_code == 201, response.text
    body = response.json()
    days = dt.date.fromisoformat(body["valid_until"]) - dt.date.fromisoformat(body["valid_from"])
    assert (body["validity_days"], days.days) == (84, 83)


async def test_issuing_institution_reads_its_prescription(client, internet_hospital) -> None:
    issued = (await _issue(client, internet_hospital)).json()
    response = await client.get(
        f"/v1/prescriptions/{issued['prescription_id']}", auth=internet_hospital
    )
    assert response.status_code == 200, response.text
    assert response.json() == issued


async def test_another_institution_cannot_read_it(client, db_pool, internet_hospital) -> None:
    issued = (await _issue(client, internet_hospital)).json()
    other = await _institution_auth(db_pool, SHENZHEN_HOSPITAL)
    response = await client.get(f"/v1/prescriptions/{issued['prescription_id']}", auth=other)
    assert response.status_code == 404
    assert problem(response)["code"] == "prescription_not_found"


async def test_unknown_prescription_is_not_found(client, internet_hospital) -> None:
    response = await client.get("/v1/prescriptions/rx_nothing_here", auth=internet_hospital)
    assert response.status_code == 404
    assert problem(response)["code"] == "prescription_not_found"


async def test_signature_by_another_key_is_refused(client, db_pool, internet_hospital) -> None:
    other_private, _ = await register_institution_key(db_pool, SHENZHEN_HOSPITAL)
    forged = InstitutionSignatureAuth(BEIJING_INTERNET_HOSPITAL, other_private)
    response = await _issue(client, forged)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"
    assert await db_pool.fetchval("SELECT count(*) FROM prescriptions") == 0


async def test_institution_without_a_key_cannot_sign(client, internet_hospital) -> None:
    auth = InstitutionSignatureAuth(BEIJING_HOSPITAL, internet_hospital.private_key_pem)
    response = await _issue(client, auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_unregistered_institution_is_refused(client, internet_hospital) -> None:
    auth = InstitutionSignatureAuth("H99999999999", internet_hospital.private_key_pem)
    response = await _issue(client, auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "institution_unknown"


async def test_patient_app_cannot_issue_a_prescription(client, signed, db_pool) -> None:
    response = await _issue(client, signed)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_missing"
    assert await db_pool.fetchval("SELECT count(*) FROM prescriptions") == 0


async def test_patient_app_key_under_the_institution_header_is_refused(client, patient_app) -> None:
    auth = InstitutionSignatureAuth(patient_app.app_id, patient_app.private_key_pem)
    response = await _issue(client, auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "institution_unknown"


async def test_pharmacy_cannot_issue_a_prescription(client, db_pool) -> None:
    pharmacy = await _institution_auth(db_pool, HANGZHOU_PHARMACY)
    response = await _issue(client, pharmacy)
    assert response.status_code == 403
    assert problem(response)["code"] == "institution_cannot_prescribe"
    assert await db_pool.fetchval("SELECT count(*) FROM prescriptions") == 0


async def test_repeat_under_the_same_key_returns_the_first_prescription(
    client, db_pool, internet_hospital
) -> None:
    first = await _issue(client, internet_hospital)
    again = await _issue(client, internet_hospital)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await db_pool.fetchval("SELECT count(*) FROM prescriptions") == 1


async def test_another_request_under_the_same_key_is_a_conflict(client, internet_hospital) -> None:
    await _issue(client, internet_hospital)
    other = {**ORDER, "items": [{"item_code": VALSARTAN, "max_quantity": 1}]}
    response = await _issue(client, internet_hospital, other)
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_key_reused"


async def test_issuing_needs_an_idempotency_key(client, internet_hospital) -> None:
    response = await client.post("/v1/prescriptions", json=ORDER, auth=internet_hospital)
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    "order",
    [
        {k: v for k, v in ORDER.items() if k != "items"},
        {**ORDER, "items": []},
        {**ORDER, "items": [{"item_code": METFORMIN, "max_quantity": 0}]},
        {**ORDER, "items": [{"item_code": METFORMIN}]},
        {**ORDER, "items": [{"item_code": "bad code!", "max_quantity": 1}]},
        {**ORDER, "psn_no": "not a psn"},
        {**ORDER, "kind": "forever"},
        {**ORDER, "kind": "chronic_long", "validity_days": 85},
        {**ORDER, "kind": "chronic_long", "validity_days": 0},
        {**ORDER, "issued_at": "2020-01-01T00:00:00+08:00"},
        [ORDER],
    ],
    ids=[
        "no-items",
        "empty-items",
        "zero-quantity",
        "no-quantity",
        "bad-item-code",
        "bad-psn-no",
        "unknown-kind",
        "85-days",
        "0-days",
        "issued-at-is-ours",
        "not-an-object",
    ],
)
async def test_malformed_prescription_is_a_400(client, internet_hospital, order) -> None:
    response = await _issue(client, internet_hospital, order)
    assert response.status_code == 400, response.text
    assert problem(response)["code"] == "request_invalid"


async def test_body_that_is_not_json_is_a_400(client, internet_hospital) -> None:
    response = await client.post(
        "/v1/prescriptions",
        content=b"{not json",
        headers={"Idempotency-Key": "rx-order-0001", "Content-Type": "application/json"},
        auth=internet_hospital,
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "request_invalid"


@pytest.mark.parametrize(
    ("order", "code"),
    [
        ({**ORDER, "validity_days": 4}, "prescription_validity_too_long"),
        ({**ORDER, "kind": "chronic_long"}, "prescription_validity_required"),
        (
            {**ORDER, "items": [ORDER["items"][0], {"item_code": METFORMIN, "max_quantity": 1}]},
            "prescription_item_repeated",
        ),
        ({**ORDER, "psn_no": "99000000000000000099"}, "person_unknown"),
    ],
    ids=["standard-4-days", "chronic-without-days", "repeated-item", "unknown-person"],
)
async def test_prescription_refused_by_a_rule_is_a_422(
    client, db_pool, internet_hospital, order, code: str
) -> None:
    response = await _issue(client, internet_hospital, order)
    assert response.status_code == 422, response.text
    assert problem(response)["code"] == code
    assert await db_pool.fetchval("SELECT count(*) FROM prescriptions") == 0


async def test_issuing_institution_sees_the_redemption(
    client, db_pool, internet_hospital, pay
) -> None:
    issued = (await _issue(client, internet_hospital)).json()
    payment_id = await pay(SHENZHEN_PHARMACY, issued["prescription_id"])
    today = dt.datetime.now(CHINA).date()
    await _reserve(
        db_pool, issued["prescription_id"], payment_id, pharmacy=SHENZHEN_PHARMACY, on=today
    )
    await _confirm(db_pool, payment_id)
    body = (
        await client.get(f"/v1/prescriptions/{issued['prescription_id']}", auth=internet_hospital)
    ).json()
    assert body["status"] == "redeemed"
    [redemption] = body["redemptions"]
    assert redemption["payment_id"] == str(payment_id)
    assert (redemption["pharmacy_code"], redemption["state"]) == (SHENZHEN_PHARMACY, "redeemed")
    assert redemption["redeemed_at"] >= redemption["reserved_at"]


# --- redemption, as the payment flow calls it ------------------------------------------------


@pytest.mark.parametrize("pharmacy", [HANGZHOU_PHARMACY, SHENZHEN_PHARMACY, BEIJING_PHARMACY])
async def test_a_pharmacy_in_any_province_may_redeem(db_pool, pay, pharmacy: str) -> None:
    rx = await _issued(db_pool)
    payment_id = await pay(pharmacy, rx)
    await _reserve(db_pool, rx, payment_id, pharmacy=pharmacy)
    await _confirm(db_pool, payment_id)
    assert await _states(db_pool, rx) == [(1, "redeemed")]


async def test_unknown_prescription_is_refused(db_pool, pay) -> None:
    payment_id = await pay()
    refusal = await _refusal(_reserve(db_pool, "rx_never_issued", payment_id))
    assert (status_of(refusal), refusal.code) == (422, "prescription_unknown")


async def test_another_persons_prescription_is_refused(db_pool, pay) -> None:
    rx = await _issued(db_pool, psn_no=GUANGDONG_RESIDENT)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(prescription_id=rx)))
    assert (status_of(refusal), refusal.code) == (422, "prescription_not_for_this_person")
    assert await _states(db_pool, rx) == []


@pytest.mark.parametrize("seller", ["H33010600001", BEIJING_INTERNET_HOSPITAL, "P99999999999"])
async def test_seller_that_is_not_a_retail_pharmacy_is_refused(db_pool, pay, seller: str) -> None:
    rx = await _issued(db_pool)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(seller, rx), pharmacy=seller))
    assert (status_of(refusal), refusal.code) == (422, "pharmacy_not_designated")


@pytest.mark.parametrize("day", [0, 1, 2])
async def test_standard_prescription_is_valid_on_the_day_of_issue_and_two_more(
    db_pool, pay, day: int
) -> None:
    rx = await _issued(db_pool)
    on = ISSUE_DAY + dt.timedelta(days=day)
    await _reserve(db_pool, rx, await pay(prescription_id=rx), on=on)
    assert await _states(db_pool, rx) == [(1, "reserved")]


@pytest.mark.parametrize("day", [-1, 3, 30])
async def test_standard_prescription_is_refused_outside_its_three_days(
    db_pool, pay, day: int
) -> None:
    rx = await _issued(db_pool)
    on = ISSUE_DAY + dt.timedelta(days=day)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(prescription_id=rx), on=on))
    assert (status_of(refusal), refusal.code) == (422, "prescription_expired")
    assert ("not valid until" if day < 0 else "expired after") in (refusal.detail or "")


async def test_validity_counts_china_days(db_pool) -> None:
    # 00:10 on 3 March in China is still 2 March in UTC: the China date counts.
    just_after_midnight = dt.datetime(2026, 3, 3, 0, 10, tzinfo=CHINA)
    view = await issue_prescription(
        db_pool,
        institution_code=BEIJING_INTERNET_HOSPITAL,
        idempotency_key="rx-midnight-1",
        request_digest="digest",
        order=msgspec.convert(ORDER, PrescriptionOrder),
        now=just_after_midnight.astimezone(dt.UTC),
    )
    assert (view.valid_from, view.valid_until) == (dt.date(2026, 3, 3), dt.date(2026, 3, 5))


async def test_shorter_standard_validity_is_kept(db_pool, pay) -> None:
    rx = await _issued(db_pool, validity_days=1)
    on = ISSUE_DAY + dt.timedelta(days=1)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(prescription_id=rx), on=on))
    assert refusal.code == "prescription_expired"


@pytest.mark.parametrize(("day", "valid"), [(0, True), (83, True), (84, False)])
async def test_chronic_long_prescription_of_84_days(db_pool, pay, day: int, valid: bool) -> None:
    rx = await _issued(db_pool, kind="chronic_long", validity_days=84)
    reserving = _reserve(
        db_pool, rx, await pay(prescription_id=rx), on=ISSUE_DAY + dt.timedelta(days=day)
    )
    if valid:
        await reserving
        assert await _states(db_pool, rx) == [(1, "reserved")]
    else:
        assert (await _refusal(reserving)).code == "prescription_expired"


async def test_chronic_long_prescription_of_85_days_cannot_be_issued(db_pool) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**ORDER, "kind": "chronic_long", "validity_days": 85}, PrescriptionOrder)
    with pytest.raises(asyncpg.CheckViolationError):  # nor by going around the schema
        await db_pool.execute(
            """INSERT INTO prescriptions (prescription_id, institution_code, idempotency_key,
                   request_digest, psn_no, kind, validity_days, issued_at, valid_from)
               VALUES ('rx_85', $1, 'k', 'd', $2, 'chronic_long', 85, $3, $4)""",
            BEIJING_INTERNET_HOSPITAL,
            person_ref(ZHEJIANG_EMPLOYEE),
            ISSUED_AT,
            ISSUE_DAY,
        )


@pytest.mark.parametrize(
    "items",
    [
        [(VALSARTAN, 1)],
        [(METFORMIN, 1), (VALSARTAN, 1)],
        [(METFORMIN, 3)],
        [(METFORMIN, 2), (METFORMIN, 1)],
    ],
    ids=["not-on-it", "one-of-two-not-on-it", "more-than-prescribed", "more-over-two-lines"],
)
async def test_item_not_prescribed_or_beyond_its_quantity_is_refused(db_pool, pay, items) -> None:
    rx = await _issued(db_pool)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(prescription_id=rx), items=items))
    assert (status_of(refusal), refusal.code) == (422, "prescription_item_not_prescribed")
    assert await _states(db_pool, rx) == []


async def test_part_of_the_prescribed_quantity_may_be_sold(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    await _reserve(db_pool, rx, await pay(prescription_id=rx), items=[(ATORVASTATIN, 1)])
    assert await _states(db_pool, rx) == [(1, "reserved")]


async def test_a_sale_of_no_prescribed_item_is_refused(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    refusal = await _refusal(_reserve(db_pool, rx, await pay(prescription_id=rx), items=[]))
    assert (status_of(refusal), refusal.code) == (422, "prescription_items_missing")


async def test_a_reserved_prescription_cannot_be_reserved_again(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    await _reserve(db_pool, rx, await pay(prescription_id=rx))
    refusal = await _refusal(
        _reserve(db_pool, rx, await pay(SHENZHEN_PHARMACY, rx), pharmacy=SHENZHEN_PHARMACY)
    )
    assert (status_of(refusal), refusal.code) == (409, "prescription_already_redeemed")


async def test_two_pharmacies_at_the_same_moment_exactly_one_wins(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    hangzhou, shenzhen = await pay(HANGZHOU_PHARMACY, rx), await pay(SHENZHEN_PHARMACY, rx)
    both_in_transaction = asyncio.Barrier(2)

    async def settling(pharmacy: str, payment_id: uuid.UUID) -> str:
        async with db_pool.acquire() as conn, conn.transaction():
            await both_in_transaction.wait()
            await reserve_prescription(
                conn,
                prescription_id=rx,
                psn_no=ZHEJIANG_EMPLOYEE,
                pharmacy_code=pharmacy,
                items=[(METFORMIN, 2)],
                payment_id=payment_id,
                on=ISSUE_DAY,
            )
            await asyncio.sleep(0.2)  # the rest of the settling transaction, lock held
        return pharmacy

    outcomes = await asyncio.gather(
        settling(HANGZHOU_PHARMACY, hangzhou),
        settling(SHENZHEN_PHARMACY, shenzhen),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert (status_of(losers[0]), losers[0].code) == (409, "prescription_already_redeemed")
    row = await db_pool.fetchrow("SELECT pharmacy_code, state FROM prescription_redemption_states")
    assert (row["pharmacy_code"], row["state"]) == (winners[0], "reserved")

    winner = hangzhou if winners[0] == HANGZHOU_PHARMACY else shenzhen
    await _confirm(db_pool, winner)
    third = await _refusal(
        _reserve(db_pool, rx, await pay(BEIJING_PHARMACY, rx), pharmacy=BEIJING_PHARMACY)
    )
    assert (status_of(third), third.code) == (409, "prescription_already_redeemed")
    assert await _states(db_pool, rx) == [(1, "redeemed")]


async def test_a_released_prescription_can_be_redeemed_again(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    failed = await pay(HANGZHOU_PHARMACY, rx)
    await _reserve(db_pool, rx, failed)
    await _release(db_pool, failed)
    retry = await pay(SHENZHEN_PHARMACY, rx)
    await _reserve(db_pool, rx, retry, pharmacy=SHENZHEN_PHARMACY)
    await _confirm(db_pool, retry)
    assert await _states(db_pool, rx) == [(1, "released"), (2, "redeemed")]


async def test_a_reversed_redemption_is_released(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    first = await pay(prescription_id=rx)
    await _reserve(db_pool, rx, first)
    await _confirm(db_pool, first)
    await _release(db_pool, first)  # the settlement was reversed
    second = await pay(prescription_id=rx)
    await _reserve(db_pool, rx, second)
    assert await _states(db_pool, rx) == [(1, "released"), (2, "reserved")]
    events = await db_pool.fetch(
        "SELECT state FROM prescription_redemption_events WHERE attempt = 1 ORDER BY recorded_at"
    )
    assert [e["state"] for e in events] == ["redeemed", "released"]


async def test_repeated_calls_for_one_payment_change_nothing(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    payment_id = await pay(prescription_id=rx)
    await _reserve(db_pool, rx, payment_id)
    await _reserve(db_pool, rx, payment_id)
    await _confirm(db_pool, payment_id)
    await _confirm(db_pool, payment_id)
    await _reserve(db_pool, rx, payment_id)
    assert await _states(db_pool, rx) == [(1, "redeemed")]
    assert await db_pool.fetchval("SELECT count(*) FROM prescription_redemption_events") == 1


async def test_a_payment_without_a_reservation_is_left_alone(db_pool, pay) -> None:
    payment_id = await pay()
    await _confirm(db_pool, payment_id)
    await _release(db_pool, payment_id)
    assert await db_pool.fetchval("SELECT count(*) FROM prescription_redemption_events") == 0


async def test_confirming_a_released_redemption_is_a_bug(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    payment_id = await pay(prescription_id=rx)
    await _reserve(db_pool, rx, payment_id)
    await _release(db_pool, payment_id)
    with pytest.raises(IllegalRedemptionTransition):
        await _confirm(db_pool, payment_id)


async def test_refused_reservation_leaves_the_settling_transaction_usable(db_pool, pay) -> None:
    rx = await _issued(db_pool)
    payment_id = await pay(prescription_id=rx)
    async with db_pool.acquire() as conn, conn.transaction():
        with pytest.raises(DomainError):
            await reserve_prescription(
                conn,
                prescription_id=rx,
                psn_no=ZHEJIANG_EMPLOYEE,
                pharmacy_code=HANGZHOU_PHARMACY,
                items=[(VALSARTAN, 1)],
                payment_id=payment_id,
                on=ISSUE_DAY,
            )
        assert await conn.fetchval("SELECT 1") == 1


# --- history in the schema --------------------------------------------------------------------


async def test_postgresql_refuses_a_second_live_redemption_even_around_the_service(
    db_pool, pay
) -> None:
    rx = await _issued(db_pool)
    first, second = await pay(prescription_id=rx), await pay(prescription_id=rx)
    await _reserve(db_pool, rx, first)
    insert = (
        "INSERT INTO prescription_redemptions (prescription_id, attempt, payment_id,"
        " pharmacy_code, service_date) VALUES ($1, $2, $3, $4, $5)"
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await db_pool.execute(insert, rx, 1, second, SHENZHEN_PHARMACY, ISSUE_DAY)
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # attempt 2 needs attempt 1 released
        await db_pool.execute(insert, rx, 2, second, SHENZHEN_PHARMACY, ISSUE_DAY)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE prescriptions SET validity_days = 1",
        "DELETE FROM prescription_items",
        "UPDATE prescription_redemptions SET pharmacy_code = 'P44030500007'",
        "DELETE FROM prescription_redemption_events",
    ],
)
async def test_prescription_history_is_never_rewritten(db_pool, pay, statement: str) -> None:
    rx = await _issued(db_pool)
    payment_id = await pay(prescription_id=rx)
    await _reserve(db_pool, rx, payment_id)
    await _confirm(db_pool, payment_id)
    with pytest.raises(asyncpg.RestrictViolationError):
        await db_pool.execute(statement)
