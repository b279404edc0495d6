"""Idempotency-Key: one effect per key, the first outcome replayed, conflicts refused."""

from __future__ import annotations

import asyncio

from medpay.channels.service import register_app
from medpay.client import AppSignatureAuth

from .conftest import problem
from .test_payments_received import ORDER


async def _pay(client, signed, order=ORDER, key: str | None = "idem-key-0001"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post("/v1/payments", json=order, headers=headers, auth=signed)


async def test_repeat_returns_the_same_status_and_body_and_has_no_second_effect(
    client, signed, db_pool
) -> None:
    first = await _pay(client, signed)
    second = await _pay(client, signed)
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1


async def test_different_request_under_the_same_key_is_a_409(client, signed, db_pool) -> None:
    await _pay(client, signed)
    changed = {**ORDER, "personal_account_allowed": False}
    response = await _pay(client, signed, changed)
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_key_reused"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1


async def test_same_key_for_another_person_is_a_409(client, signed, identity_issuer) -> None:
    await _pay(client, signed)
    signed.identity_token = identity_issuer.issue("44000000000000000002")
    response = await _pay(client, signed)
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_key_reused"


async def test_keys_are_scoped_to_the_app(client, signed, db_pool) -> None:
    other = await register_app(db_pool, "Another app")
    first = await _pay(client, signed)
    second = await _pay(
        client, AppSignatureAuth(other.app_id, other.private_key_pem, signed.identity_token)
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["payment_id"] != second.json()["payment_id"]


async def test_missing_key_is_refused(client, signed, db_pool) -> None:
    response = await _pay(client, signed, key=None)
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_malformed_key_is_refused(client, signed) -> None:
    response = await _pay(client, signed, key="short")
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_invalid"


async def test_repeat_while_the_first_is_running_is_a_409_with_retry_after(
    client, signed, patient_app, db_pool
) -> None:
    first = await _pay(client, signed, key="idem-key-running")
    await db_pool.execute(
        "UPDATE idempotency_keys SET state = 'in_progress', response_status = NULL, response_body = NULL,"
        " locked_at = now()"
    )
    response = await _pay(client, signed, key="idem-key-running")
    assert first.status_code == 201
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_request_in_progress"
    assert response.headers["retry-after"] == "1"


async def test_key_of_a_crashed_request_is_taken_over_without_a_second_effect(
    client, signed, db_pool
) -> None:
    """The payment was written but the outcome was never stored: the retry finds the payment."""
    first = await _pay(client, signed, key="idem-key-crashed")
    await db_pool.execute(
        "UPDATE idempotency_keys SET state = 'in_progress', response_status = NULL, response_body = NULL,"
        " locked_at = now() - interval '10 minutes'"
    )
    retry = await _pay(client, signed, key="idem-key-crashed")
    assert retry.status_code == 201
    assert retry.json()["payment_id"] == first.json()["payment_id"]
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1


async def test_concurrent_repeats_make_one_payment(client, signed, db_pool) -> None:
    responses = await asyncio.gather(*(_pay(client, signed, key="idem-key-race") for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert all(
        problem(r)["code"] == "idempotency_request_in_progress"
        for r in responses
        if r.status_code == 409
    )
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1
    created = {r.json()["payment_id"] for r in responses if r.status_code == 201}
    assert len(created) == 1


async def test_a_refusal_is_an_outcome_and_is_replayed(client, signed, db_pool) -> None:
    pharmacy = {**ORDER, "visit_type": "pharmacy_purchase"}
    first = await _pay(client, signed, pharmacy, key="idem-key-refused")
    second = await _pay(client, signed, pharmacy, key="idem-key-refused")
    assert first.status_code == second.status_code == 422
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"


async def test_keys_are_kept_at_least_24_hours(client, signed, db_pool) -> None:
    await _pay(client, signed)
    kept = await db_pool.fetchval("SELECT expires_at - created_at FROM idempotency_keys")
    assert kept.total_seconds() >= 24 * 3600


async def test_payment_keeps_its_key_after_the_idempotency_record_expires(
    client, signed, db_pool
) -> None:
    first = await _pay(client, signed, key="idem-key-old")
    await db_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    same = await _pay(client, signed, key="idem-key-old")
    changed = await _pay(
        client, signed, {**ORDER, "personal_account_allowed": False}, key="idem-key-old"
    )
    assert same.status_code == 201
    assert same.json()["payment_id"] == first.json()["payment_id"]
    assert changed.status_code == 409
    assert problem(changed)["code"] == "idempotency_key_reused"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1
