"""Secrets sealed at rest (AES-256-GCM), bound to their row."""

from __future__ import annotations

import pytest

from medpay.security.secrets import SealedSecretInvalid, SecretSealer, generate_key, parse_key


def test_a_sealed_secret_opens_for_its_row_only() -> None:
    sealer = SecretSealer(generate_key())
    sealed = sealer.seal("app secret", context="APP0000000000001")
    assert b"app secret" not in sealed
    assert sealer.open(sealed, context="APP0000000000001") == "app secret"
    with pytest.raises(SealedSecretInvalid):
        sealer.open(sealed, context="APP0000000000002")


def test_another_key_or_an_altered_value_does_not_open() -> None:
    sealed = SecretSealer(generate_key()).seal("s", context="a")
    with pytest.raises(SealedSecretInvalid):
        SecretSealer(generate_key()).open(sealed, context="a")
    sealer = SecretSealer(generate_key())
    altered = bytearray(sealer.seal("s", context="a"))
    altered[-1] ^= 1
    with pytest.raises(SealedSecretInvalid):
        sealer.open(bytes(altered), context="a")
    with pytest.raises(SealedSecretInvalid):
        sealer.open(b"\x02" + bytes(40), context="a")


def test_subkeys_differ_by_purpose_and_are_stable() -> None:
    sealer = SecretSealer(generate_key())
    assert sealer.subkey("a") == sealer.subkey("a") != sealer.subkey("b")


@pytest.mark.parametrize("text", ["", "not base64!", "AAAA"])
def test_a_key_that_is_not_32_bytes_of_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_key(text)
