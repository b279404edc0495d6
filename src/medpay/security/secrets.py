"""Secrets the gateway must be able to read back, kept sealed at rest (AES-256-GCM).

The national mobile-payment interface signs with ``&key=<appSecret>`` appended to
the string and derives the app's SM4 key from that secret (:mod:`medpay.wire.mobile`),
so the gateway needs the secret itself, not a hash of it: it is stored sealed under
one key of the gateway's own (``MEDPAY_APP_SECRET_KEY``, 32 random bytes, base64),
never in the clear. A sealed value is ``version (1) || nonce (12) || ciphertext+tag``,
bound to its row by associated data (the app id), so a sealed secret copied to
another app's row does not open.

:meth:`SecretSealer.subkey` derives further keys for other purposes from the same
key (HKDF-SHA256 with the purpose as info), so one configured secret serves them all
without any two purposes sharing key material.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["KEY_BYTES", "SealedSecretInvalid", "SecretSealer", "generate_key", "parse_key"]

KEY_BYTES: Final = 32
_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12


class SealedSecretInvalid(ValueError):
    """A sealed value does not open: another key, another row, or altered."""


def generate_key() -> str:
    """A new sealing key, as configured (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key(text: str) -> bytes:
    """The 32 bytes of a configured key (base64, standard or URL-safe alphabet).

    Raises:
        ValueError: not base64, or not 32 bytes.
    """
    cleaned = text.strip()
    try:
        raw = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the app-secret key is not base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the app-secret key must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


class SecretSealer:
    """Seals and opens secrets under the gateway's key; see the module docstring."""

    def __init__(self, key: bytes | str) -> None:
        raw = parse_key(key) if isinstance(key, str) else key
        if len(raw) != KEY_BYTES:
            raise ValueError(f"the app-secret key must be {KEY_BYTES} bytes")
        self._key = raw
        self._aead = AESGCM(raw)

    def seal(self, secret: str, *, context: str) -> bytes:
        """``secret`` sealed for the row named by ``context`` (an app id)."""
        return self.seal_bytes(secret.encode(), context=context)

    def open(self, sealed: bytes, *, context: str) -> str:
        """The secret sealed for ``context``.

        Raises:
            SealedSecretInvalid: another key, another context, or altered.
        """
        try:
            return self.open_bytes(sealed, context=context).decode()
        except UnicodeDecodeError as exc:
            raise SealedSecretInvalid("the sealed secret is not text") from exc

    def seal_bytes(self, data: bytes, *, context: str) -> bytes:
        """``data`` sealed for ``context``: ``version || nonce || ciphertext+tag``."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, context.encode())

    def open_bytes(self, sealed: bytes, *, context: str) -> bytes:
        """What :meth:`seal_bytes` sealed for ``context``.

        Raises:
            SealedSecretInvalid: another key, another context, or altered.
        """
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SealedSecretInvalid("not a sealed secret of this version")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, context.encode())
        except InvalidTag as exc:
            raise SealedSecretInvalid("the sealed secret does not open under this key") from exc

    def subkey(self, purpose: str, length: int = 32) -> bytes:
        """A key for ``purpose`` derived from the sealing key (HKDF-SHA256)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()
        ).derive(self._key)
