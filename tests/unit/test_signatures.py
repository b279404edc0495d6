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


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256", "sm2"])
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


def test_an_sm2_signature_is_der_over_the_same_string_and_checks_with_gmssl() -> None:
    """SM3withSM2 under the default user id, as a second implementation reads it."""
    import base64

    from medpay.wire import gm

    from .gmssl_keys import gmssl_for, key_gmssl_reads

    key = key_gmssl_reads()
    signature = base64.b64decode(sign_request(gm.private_key_pem(key), b"POST\n/v1/payments"))
    raw = gm.signature_der_to_raw(signature)  # it is DER
    checker = gmssl_for(key)
    assert checker.verify_with_sm3(raw.hex(), b"POST\n/v1/payments")


def test_sm2_and_ed25519_keys_do_not_pass_for_each_other() -> None:
    _, sm2_public = generate_key_pair("sm2")
    ed_private, ed_public = generate_key_pair("ed25519")
    with pytest.raises(ValueError, match="sm2"):
        load_public_key(ed_public, "sm2")
    with pytest.raises(ValueError):
        load_public_key(sm2_public, "ed25519")
    sm2_key = load_public_key(sm2_public, "sm2")
    assert not verify_signature(sm2_key, sign_request(ed_private, b"m"), b"m")
