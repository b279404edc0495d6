"""The signing scheme itself, independent of HTTP."""

from __future__ import annotations

import hashlib

import pytest

from medpay.security.signatures import (
    canonical_request,
    generate_key_pair,
    load_public_key,
    sign_request,
    verify_signature,
)


def test_canonical_request_is_the_documented_string() -> None:
    body = b'{"a":1}'
    message = canonical_request("post", "/v1/payments?x=1", "1700000000", "n" * 16, body)
    expected = f"POST\n/v1/payments?x=1\n1700000000\n{'n' * 16}\n{hashlib.sha256(body).hexdigest()}"
    assert message == expected.encode()


def test_empty_body_hashes_to_the_sha256_of_nothing() -> None:
    message = canonical_request("GET", "/p", "1", "n" * 16, b"")
    assert message.endswith(b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_signature_round_trip_and_tamper(algorithm) -> None:
    private_pem, public_pem = generate_key_pair(algorithm)
    key = load_public_key(public_pem, algorithm)
    signature = sign_request(private_pem, b"message")
    assert verify_signature(key, signature, b"message")
    assert not verify_signature(key, signature, b"messagE")


def test_key_of_the_wrong_algorithm_is_refused() -> None:
    _, public_pem = generate_key_pair("ed25519")
    with pytest.raises(ValueError, match="not an ecdsa-p256"):
        load_public_key(public_pem, "ecdsa-p256")


def test_garbage_pem_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PEM"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----", "ed25519")
