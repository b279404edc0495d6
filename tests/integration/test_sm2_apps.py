"""Patient apps that sign with SM2 (SM3withSM2) on our own channel, over real HTTP.

The canonical string, the guard, the nonce and the idempotency rules are the same as
for Ed25519 apps; only the key type differs.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid

import httpx
import pytest

from medpay.channels.service import RegisteredApp, register_app
from medpay.cli import _parser
from medpay.client import AppSignatureAuth
from medpay.demo import DEMO_ORDER
from medpay.security.signatures import canonical_request, generate_key_pair
from medpay.wire import gm

from .conftest import problem

UNKNOWN_PAYMENT = f"/v1/payments/{uuid.uuid4()}"


@pytest.fixture
async def sm2_app(db_pool) -> RegisteredApp:
    return await register_app(db_pool, "SM2 hospital app", "sm2")


@pytest.fixture
def sm2_signed(sm2_app: RegisteredApp, patient_token: str) -> AppSignatureAuth:
    return AppSignatureAuth(sm2_app.app_id, sm2_app.private_key_pem, patient_token)


def _headers(app_id: str, signature: str, path: str, token: str, nonce: str) -> dict[str, str]:
    return {
        "X-App-Id": app_id,
        "X-Timestamp": str(int(time.time())),
        "X-Nonce": nonce,
        "X-Signature": signature,
        "Authorization": f"Bearer {token}",
    }


async def test_an_sm2_app_pays_and_reads_its_payment(client, sm2_signed, sm2_app) -> None:
    assert sm2_app.algorithm == "sm2"
    assert "BEGIN PUBLIC KEY" in sm2_app.public_key_pem
    response = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": "sm2-app-pays-0001"},
        auth=sm2_signed,
    )
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["state"] == "settled"
    read = await client.get(f"/v1/payments/{payment['payment_id']}", auth=sm2_signed)
    assert read.status_code == 200
    assert read.json()["payment_id"] == payment["payment_id"]


async def test_a_repeat_under_the_same_key_replays_for_an_sm2_app(client, sm2_signed) -> None:
    first = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": "sm2-rep-0001"},
        auth=sm2_signed,
    )
    again = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": "sm2-rep-0001"},
        auth=sm2_signed,
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["payment_id"] == first.json()["payment_id"]


async def test_a_tampered_sm2_signature_is_refused(
    client: httpx.AsyncClient, sm2_app: RegisteredApp, patient_token: str
) -> None:
    nonce = secrets.token_urlsafe(24)
    headers = _headers(sm2_app.app_id, "", UNKNOWN_PAYMENT, patient_token, nonce)
    message = canonical_request("GET", UNKNOWN_PAYMENT, headers["X-Timestamp"], nonce, b"")
    der = gm.sign(gm.load_private_key(sm2_app.private_key_pem), message)
    r, s = gm.signature_der_to_raw(der)[:32], gm.signature_der_to_raw(der)[32:]
    tampered = gm.signature_raw_to_der(r + (int.from_bytes(s, "big") ^ 1).to_bytes(32, "big"))
    headers["X-Signature"] = base64.b64encode(tampered).decode()

    response = await client.get(UNKNOWN_PAYMENT, headers=headers)

    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_an_sm2_signature_over_another_request_is_refused(
    client: httpx.AsyncClient, sm2_app: RegisteredApp, patient_token: str
) -> None:
    nonce = secrets.token_urlsafe(24)
    headers = _headers(sm2_app.app_id, "", UNKNOWN_PAYMENT, patient_token, nonce)
    message = canonical_request("GET", "/v1/payments/other", headers["X-Timestamp"], nonce, b"")
    headers["X-Signature"] = gm.sign_base64(gm.load_private_key(sm2_app.private_key_pem), message)

    response = await client.get(UNKNOWN_PAYMENT, headers=headers)

    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_a_raw_sm2_signature_is_refused_only_der_counts(
    client: httpx.AsyncClient, sm2_app: RegisteredApp, patient_token: str
) -> None:
    nonce = secrets.token_urlsafe(24)
    headers = _headers(sm2_app.app_id, "", UNKNOWN_PAYMENT, patient_token, nonce)
    message = canonical_request("GET", UNKNOWN_PAYMENT, headers["X-Timestamp"], nonce, b"")
    key = gm.load_private_key(sm2_app.private_key_pem)
    headers["X-Signature"] = gm.sign_base64(key, message, encoding="raw")

    response = await client.get(UNKNOWN_PAYMENT, headers=headers)

    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_an_sm2_app_signing_with_an_ed25519_key_is_refused(
    client, sm2_app: RegisteredApp, patient_token: str
) -> None:
    other_private, _ = generate_key_pair("ed25519")
    auth = AppSignatureAuth(sm2_app.app_id, other_private, patient_token)
    response = await client.get(UNKNOWN_PAYMENT, auth=auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_an_ed25519_app_signing_with_an_sm2_key_is_refused(
    client, patient_app: RegisteredApp, patient_token: str
) -> None:
    sm2_private, _ = generate_key_pair("sm2")
    auth = AppSignatureAuth(patient_app.app_id, sm2_private, patient_token)
    response = await client.get(UNKNOWN_PAYMENT, auth=auth)
    assert response.status_code == 401
    assert problem(response)["code"] == "signature_invalid"


async def test_an_sm2_nonce_is_spent_once(client, sm2_signed) -> None:
    sm2_signed._nonce = lambda: "sm2-nonce-used-once-000001"
    first = await client.get(UNKNOWN_PAYMENT, auth=sm2_signed)
    second = await client.get(UNKNOWN_PAYMENT, auth=sm2_signed)
    assert first.status_code == 404
    assert second.status_code == 401
    assert problem(second)["code"] == "nonce_replayed"


async def test_registering_an_sm2_app_with_a_key_of_another_type_is_refused(db_pool) -> None:
    _, ed25519_public = generate_key_pair("ed25519")
    with pytest.raises(ValueError, match="sm2"):
        await register_app(db_pool, "Mislabelled", "sm2", public_key_pem=ed25519_public)
    _, sm2_public = generate_key_pair("sm2")
    with pytest.raises(ValueError):
        await register_app(db_pool, "Mislabelled", "ed25519", public_key_pem=sm2_public)


def test_the_command_registers_sm2_apps() -> None:
    args = _parser().parse_args(["apps", "add", "Hospital", "--algorithm", "sm2"])
    assert (args.apps_command, args.algorithm) == ("add", "sm2")
