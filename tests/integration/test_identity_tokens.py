"""Patient identity tokens: asymmetric, from a trusted issuer, in date, for us."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import jwt
import pytest

from medpay.security.identity import DevelopmentIssuer

from .conftest import ZHEJIANG_EMPLOYEE, problem, running_gateway

UNKNOWN_PAYMENT = f"/v1/payments/{uuid.uuid4()}"


async def _get_with_token(client, signed, token: str | None):
    signed.identity_token = token
    return await client.get(UNKNOWN_PAYMENT, auth=signed)


async def test_missing_token_is_refused(client, signed) -> None:
    response = await _get_with_token(client, signed, None)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_missing"


async def test_expired_token_is_refused(client, signed, identity_issuer: DevelopmentIssuer) -> None:
    token = identity_issuer.issue(ZHEJIANG_EMPLOYEE, now=int(time.time()) - 7200, ttl_seconds=3600)
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_expired"


async def test_token_not_yet_valid_is_refused(client, signed, identity_issuer) -> None:
    token = identity_issuer.issue(ZHEJIANG_EMPLOYEE, now=int(time.time()) + 600)
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_not_yet_valid"


async def test_token_for_another_audience_is_refused(client, signed, identity_issuer) -> None:
    token = identity_issuer.issue(ZHEJIANG_EMPLOYEE, audience="another-service")
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_token_signed_by_an_untrusted_key_under_a_trusted_name_is_refused(
    client, signed
) -> None:
    impostor = DevelopmentIssuer.generate()  # same iss name, different key
    response = await _get_with_token(client, signed, impostor.issue(ZHEJIANG_EMPLOYEE))
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_token_with_alg_none_is_refused(client, signed, identity_issuer) -> None:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": identity_issuer.issuer,
        "aud": "medpay",
        "sub": ZHEJIANG_EMPLOYEE,
        "nbf": now,
        "exp": now + 600,
        "amr": ["face"],
    }
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_token_with_hs256_keyed_by_the_public_key_is_refused(
    client, signed, identity_issuer
) -> None:
    """The classic algorithm-confusion attack: HMAC with the issuer's public key as secret."""
    now = int(time.time())
    claims = {
        "iss": identity_issuer.issuer,
        "aud": "medpay",
        "sub": ZHEJIANG_EMPLOYEE,
        "nbf": now,
        "exp": now + 600,
        "amr": ["face"],
    }

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(
        identity_issuer.public_key_pem.encode(), signing_input.encode(), hashlib.sha256
    ).digest()
    token = f"{signing_input}.{b64(mac)}"
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


@pytest.mark.parametrize("missing", ["exp", "nbf", "aud"])
async def test_token_without_a_required_claim_is_refused(
    client, signed, identity_issuer, missing: str
) -> None:
    now = int(time.time())
    claims = {
        "iss": identity_issuer.issuer,
        "aud": "medpay",
        "sub": ZHEJIANG_EMPLOYEE,
        "nbf": now,
        "exp": now + 600,
        "amr": ["face"],
    }
    del claims[missing]
    token = jwt.encode(claims, identity_issuer.private_key_pem, algorithm="EdDSA")
    response = await _get_with_token(client, signed, token)
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_garbage_token_is_refused(client, signed) -> None:
    response = await _get_with_token(client, signed, "not.a.jwt")
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_subject_that_is_not_a_person_number_is_refused(
    client, signed, identity_issuer
) -> None:
    response = await _get_with_token(
        client, signed, identity_issuer.issue("'; DROP TABLE payments; --")
    )
    assert response.status_code == 401
    assert problem(response)["code"] == "identity_token_invalid"


async def test_es256_issuer_is_trusted_when_configured(database_url, patient_app) -> None:
    from medpay.app import create_app
    from medpay.client import AppSignatureAuth
    from medpay.config import Settings

    issuer = DevelopmentIssuer.generate("ecdsa-p256")
    assert issuer.algorithm == "ES256"
    app = create_app(
        Settings(
            database_url=database_url,
            identity_issuers=(issuer.trusted(),),
            person_key=os.environ["MEDPAY_PERSON_KEY"],
        )
    )
    async with running_gateway(app) as client:
        auth = AppSignatureAuth(
            patient_app.app_id, patient_app.private_key_pem, issuer.issue(ZHEJIANG_EMPLOYEE)
        )
        response = await client.get(UNKNOWN_PAYMENT, auth=auth)
    assert response.status_code == 404
