"""Payment orders: recorded once, validated strictly, visible only to their app and person."""

from __future__ import annotations

import msgspec
import pytest

from medpay.channels.service import register_app
from medpay.client import AppSignatureAuth

from .conftest import ZHEJIANG_EMPLOYEE, problem

#: An online revisit at a Beijing internet hospital with a class B drug.
ORDER = {
    "institution_code": "H11010800124",
    "treatment_area": "110108",
    "visit_type": "online_revisit",
    "items": [
        {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
        {"item_code": "XC10AAA096A001010178938", "quantity": 2, "unit_price_fen": 3650},
    ],
    "personal_account_allowed": True,
}


async def _pay(client, signed, order=ORDER, key: str = "order-0001-abc"):
    return await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": key}, auth=signed
    )


async def _payment_count(db_pool) -> int:
    return await db_pool.fetchval("SELECT count(*) FROM payments")


async def test_payment_order_is_recorded_with_its_items(client, signed, db_pool) -> None:
    response = await _pay(client, signed)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["psn_no"] == ZHEJIANG_EMPLOYEE
    assert body["medical_fee_total_fen"] == 2500 + 2 * 3650
    assert [item["total_fen"] for item in body["items"]] == [2500, 7300]
    assert response.headers["location"] == f"/v1/payments/{body['payment_id']}"
    row = await db_pool.fetchrow("SELECT state, medical_fee_total_fen FROM payments")
    assert (row["state"], row["medical_fee_total_fen"]) == ("settled", 9800)


async def test_payment_is_returned_to_the_app_and_person_that_made_it(client, signed) -> None:
    created = (await _pay(client, signed)).json()
    response = await client.get(f"/v1/payments/{created['payment_id']}", auth=signed)
    assert response.status_code == 200
    assert response.json() == created


async def test_payment_is_hidden_from_another_app(client, signed, db_pool) -> None:
    created = (await _pay(client, signed)).json()
    other = await register_app(db_pool, "Another app")
    response = await client.get(
        f"/v1/payments/{created['payment_id']}",
        auth=AppSignatureAuth(other.app_id, other.private_key_pem, signed.identity_token),
    )
    assert response.status_code == 404
    assert problem(response)["code"] == "payment_not_found"


async def test_payment_is_hidden_from_another_person(client, signed, identity_issuer) -> None:
    created = (await _pay(client, signed)).json()
    signed.identity_token = identity_issuer.issue("44000000000000000002")
    response = await client.get(f"/v1/payments/{created['payment_id']}", auth=signed)
    assert response.status_code == 404


async def test_malformed_payment_id_is_not_found(client, signed) -> None:
    response = await client.get("/v1/payments/not-a-uuid", auth=signed)
    assert response.status_code == 404
    assert problem(response)["code"] == "payment_not_found"


async def test_payment_without_face_verification_is_refused(
    client, signed, identity_issuer, db_pool
) -> None:
    signed.identity_token = identity_issuer.issue(ZHEJIANG_EMPLOYEE, amr=("pwd", "sms"))
    response = await _pay(client, signed)
    assert response.status_code == 403
    assert problem(response)["code"] == "face_verification_required"
    assert await _payment_count(db_pool) == 0


async def test_pharmacy_purchase_without_prescription_is_refused(client, signed, db_pool) -> None:
    response = await _pay(client, signed, {**ORDER, "visit_type": "pharmacy_purchase"})
    assert response.status_code == 422
    assert problem(response)["code"] == "prescription_required"
    assert await _payment_count(db_pool) == 0


BAD_ORDERS = {
    "unknown field": {**ORDER, "discount": 100},
    "no items": {**ORDER, "items": []},
    "zero quantity": {**ORDER, "items": [{"item_code": "A1", "quantity": 0, "unit_price_fen": 1}]},
    "negative price": {
        **ORDER,
        "items": [{"item_code": "A1", "quantity": 1, "unit_price_fen": -5}],
    },
    "price as float": {
        **ORDER,
        "items": [{"item_code": "A1", "quantity": 1, "unit_price_fen": 12.5}],
    },
    "huge price": {
        **ORDER,
        "items": [{"item_code": "A1", "quantity": 1, "unit_price_fen": 10**30}],
    },
    "NUL in item code": {
        **ORDER,
        "items": [{"item_code": "A\u00001", "quantity": 1, "unit_price_fen": 1}],
    },
    "bad area": {**ORDER, "treatment_area": "11010"},
    "bad institution": {**ORDER, "institution_code": "hospital"},
    "unknown visit type": {**ORDER, "visit_type": "first_visit"},
    "missing area": {k: v for k, v in ORDER.items() if k != "treatment_area"},
    "items not a list": {**ORDER, "items": "many"},
    "a list, not an object": [ORDER],
    "too many items": {
        **ORDER,
        "items": [{"item_code": "A1", "quantity": 1, "unit_price_fen": 1}] * 101,
    },
}


@pytest.mark.parametrize("order", BAD_ORDERS.values(), ids=BAD_ORDERS.keys())
async def test_invalid_order_is_a_clear_400_and_writes_nothing(
    client, signed, db_pool, order
) -> None:
    response = await _pay(client, signed, order)
    assert response.status_code == 400, response.text
    body = problem(response)
    assert body["code"] == "request_invalid"
    assert body["status"] == 400
    assert body["detail"]
    assert await _payment_count(db_pool) == 0


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"null", b'{"items": [' * 50])
async def test_malformed_json_is_a_clear_400(client, signed, db_pool, raw: bytes) -> None:
    response = await client.post(
        "/v1/payments",
        content=raw,
        headers={"Idempotency-Key": "order-raw-0001", "Content-Type": "application/json"},
        auth=signed,
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "request_invalid"
    assert await _payment_count(db_pool) == 0


async def test_oversized_body_is_a_413(client, signed, db_pool) -> None:
    order = {**ORDER, "items": [{"item_code": "A" * 50, "quantity": 1, "unit_price_fen": 1}] * 100}
    body = msgspec.json.encode({**order, "padding": "x" * 20_000})
    response = await client.post(
        "/v1/payments",
        content=body,
        headers={"Idempotency-Key": "order-big-0001", "Content-Type": "application/json"},
        auth=signed,
    )
    assert response.status_code == 413
    assert problem(response)["code"] == "request_too_large"
    assert await _payment_count(db_pool) == 0


async def test_unknown_route_and_method_are_problems(client, signed) -> None:
    missing = await client.get("/v1/nothing-here")
    wrong_method = await client.delete("/v1/payments", auth=signed)
    assert problem(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert problem(wrong_method)["code"] == "method_not_allowed"
