"""Signed requests from patient apps: each failure a 401 with its own code."""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from medpay.app import create_app
from medpay.channels.service import RegisteredApp, register_app, set_app_status
from medpay.client import AppSignatureAuth
from medpay.config import Settings

from .conftest import problem, running_gateway

UNKNOWN_PAYMENT = f"/v1/payments/{uuid.uuid4()}"


async def test_a_correctly_signed_request_passes_the_door(client, signed) -> None:
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    # It got past signature and identity checks to the handler, which found nothing.
    assert response.status_code == 404
    assert problem(response)["code"] == "payment_not_found"


async def test_unsigned_request_is_refused(client, patient_token: str) -> None:
    response = await client.get(
        UNKNOWN_PAYMENT, headers={"Authorization": f"Bearer {patient_token}"}
    )
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_missing"
    assert "MedpaySignature" in response.headers["www-authenticate"]


async def test_unknown_app_is_refused(
    client, patient_app: RegisteredApp, patient_token: str
) -> None:
    auth = AppSignatureAuth("app_not_registered", patient_app.private_key_pem, patient_token)
    response = await client.get(UNKNOWN_PAYMENT, auth=auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "app_unknown"


async def test_app_id_with_odd_characters_is_unknown_not_an_error(client, signed) -> None:
    signed.app_id = "x" * 500
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert response.status_code == 401
    assert problem(response)["code"] == "app_unknown"


async def test_suspended_app_is_refused(
    client, signed, patient_app: RegisteredApp, db_pool
) -> None:
    await set_app_status(db_pool, patient_app.app_id, "suspended")
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert response.status_code == 401
    assert problem(response)["code"] == "app_suspended"


async def test_signature_by_another_key_is_refused(
    client, patient_app, patient_token, db_pool
) -> None:
    other = await register_app(db_pool, "Other app")
    auth = AppSignatureAuth(patient_app.app_id, other.private_key_pem, patient_token)
    response = await client.get(UNKNOWN_PAYMENT, auth=auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_signature_that_is_not_base64_is_refused(client, signed) -> None:
    request = client.build_request("GET", UNKNOWN_PAYMENT)
    flow = signed.auth_flow(request)
    signed_request = next(flow)
    signed_request.headers["X-Signature"] = "not base64 at all!"
    response = await client.send(signed_request)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_tampered_body_is_refused(client, signed) -> None:
    request = client.build_request("POST", "/v1/payments", content=b'{"a":1}')
    signed_request = next(signed.auth_flow(request))
    tampered = client.build_request(
        "POST", "/v1/payments", content=b'{"a":2}', headers=dict(signed_request.headers)
    )
    response = await client.send(tampered)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_tampered_query_string_is_refused(client, signed) -> None:
    request = client.build_request("GET", UNKNOWN_PAYMENT + "?view=full")
    signed_request = next(signed.auth_flow(request))
    tampered = client.build_request(
        "GET", UNKNOWN_PAYMENT + "?view=other", headers=dict(signed_request.headers)
    )
    response = await client.send(tampered)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_signed_query_string_is_accepted(client, signed) -> None:
    response = await client.get(UNKNOWN_PAYMENT + "?view=full", auth=signed)
    assert response.status_code == 404


@pytest.mark.parametrize("offset", [-301, 301])
async def test_timestamp_more_than_300_seconds_away_is_refused(client, signed, offset: int) -> None:
    signed._clock = lambda: time.time() + offset
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert response.status_code == 401
    assert problem(response)["code"] == "timestamp_out_of_window"


@pytest.mark.parametrize("offset", [-290, 290])
async def test_timestamp_within_300_seconds_is_accepted(client, signed, offset: int) -> None:
    signed._clock = lambda: time.time() + offset
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert response.status_code == 404


async def test_timestamp_that_is_not_unix_seconds_is_refused(client, signed) -> None:
    signed_request = next(signed.auth_flow(client.build_request("GET", UNKNOWN_PAYMENT)))
    signed_request.headers["X-Timestamp"] = "2026-11-26T10:00:00Z"
    response = await client.send(signed_request)
    assert response.status_code == 401
    assert problem(response)["code"] == "timestamp_invalid"


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has spaces in it ok?"])
async def test_malformed_nonce_is_refused(client, signed, nonce: str) -> None:
    signed._nonce = lambda: nonce
    response = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert response.status_code == 401
    assert problem(response)["code"] == "nonce_invalid"


async def test_replayed_nonce_is_refused(client, signed) -> None:
    signed._nonce = lambda: "n" * 16 + "replayed"
    first = await client.get(UNKNOWN_PAYMENT, auth=signed)
    second = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert first.status_code == 404
    assert second.status_code == 401
    assert problem(second)["code"] == "nonce_replayed"


async def test_replayed_request_is_refused_by_another_gateway_process(
    settings: Settings, signed: AppSignatureAuth
) -> None:
    """Nonces live in PostgreSQL: a second gateway sharing the database sees them."""
    first_gateway, second_gateway = create_app(settings), create_app(settings)
    async with running_gateway(first_gateway) as first, running_gateway(second_gateway) as second:
        request = first.build_request("GET", UNKNOWN_PAYMENT)
        captured = next(signed.auth_flow(request))
        accepted = await first.send(captured)
        replayed = await second.send(
            second.build_request("GET", UNKNOWN_PAYMENT, headers=dict(captured.headers))
        )
    assert accepted.status_code == 404
    assert replayed.status_code == 401
    assert problem(replayed)["code"] == "nonce_replayed"


async def test_forged_request_does_not_spend_the_nonce(
    client, signed, patient_app, db_pool
) -> None:
    other = await register_app(db_pool, "Forger")
    nonce = "forged-nonce-0123456789"
    forger = AppSignatureAuth(
        patient_app.app_id, other.private_key_pem, signed.identity_token, nonce=lambda: nonce
    )
    signed._nonce = lambda: nonce
    forged = await client.get(UNKNOWN_PAYMENT, auth=forger)
    genuine = await client.get(UNKNOWN_PAYMENT, auth=signed)
    assert forged.status_code == 401
    assert genuine.status_code == 404


async def test_ecdsa_p256_app_is_accepted(
    client, db_pool: asyncpg.Pool, patient_token: str
) -> None:
    app = await register_app(db_pool, "P-256 app", "ecdsa-p256")
    response = await client.get(
        UNKNOWN_PAYMENT, auth=AppSignatureAuth(app.app_id, app.private_key_pem, patient_token)
    )
    assert response.status_code == 404


async def test_health_needs_no_signature(client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_a_suspension_takes_effect_within_the_signer_cache(
    settings, clearing, patient_app, patient_token, db_pool
) -> None:
    """An app's registry entry is remembered for signer_cache_seconds, never longer."""
    import asyncio

    import msgspec

    from medpay.app import create_app

    from .conftest import running_gateway

    app = create_app(msgspec.structs.replace(settings, signer_cache_seconds=0.5), clearing=clearing)
    signed = AppSignatureAuth(patient_app.app_id, patient_app.private_key_pem, patient_token)
    async with running_gateway(app) as http:
        before = await http.get("/v1/payments/00000000-0000-0000-0000-000000000000", auth=signed)
        await set_app_status(db_pool, patient_app.app_id, "suspended")
        remembered = await http.get(
            "/v1/payments/00000000-0000-0000-0000-000000000000", auth=signed
        )
        await asyncio.sleep(0.6)
        after = await http.get("/v1/payments/00000000-0000-0000-0000-000000000000", auth=signed)

    assert before.status_code == remembered.status_code == 404  # signed; no such payment
    assert after.status_code == 401
    assert problem(after)["code"] == "app_suspended"
