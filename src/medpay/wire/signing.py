r"""Ed25519 signatures on the national wire, standing in for SM2 (DOMAIN.md section 8).

Two schemes, both reused later for province callbacks and statements:

* **Request signature** (``cainfo``): base64 Ed25519 over the canonical string of the
  envelope: every field except ``cainfo``, sorted by key, ``key=value`` joined by
  ``&``; strings verbatim, anything else (nested objects, lists, numbers, booleans)
  as compact JSON with sorted keys; ``None`` values are omitted in objects at every
  depth, so "absent" and "null" sign alike. This is the national canonical form
  with another algorithm. Verify over the *typed* envelope (every top-level field
  present, defaults filled in), never over whatever keys arrived: then no content
  can be shifted from one field into an absent neighbour behind ``&``.
* **Response signature**: the province signs the raw response body, so the bytes
  the client parses are the bytes that were signed: ``X-Province-Timestamp`` (unix
  seconds) and ``X-Province-Signature`` = base64 Ed25519 over
  ``f"{timestamp}\n{sha256_hex(body)}"``; the timestamp bounds replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "DEFAULT_MAX_SKEW_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureError",
    "body_signature_headers",
    "canonical_string",
    "fresh_signature_headers",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "sign_canonical",
    "sign_request",
    "verify_body_signature",
    "verify_canonical",
]

TIMESTAMP_HEADER = "X-Province-Timestamp"
SIGNATURE_HEADER = "X-Province-Signature"
#: A signed response older or newer than this (seconds) is refused.
DEFAULT_MAX_SKEW_S = 300

_SIGNATURE_FIELD = "cainfo"
_JSON = msgspec.json.Encoder(order="sorted")

S = TypeVar("S", bound=msgspec.Struct)


class SignatureError(ValueError):
    """A signature is missing, malformed, stale or does not verify."""


# --- keys ---------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> str:
    """PKCS#8 PEM of ``key``, unencrypted (configuration files hold it; protect them)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM of ``key`` (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private_key(pem: str | bytes) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from PEM; any other key type is refused."""
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM; any other key type is refused."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


# --- request signature (cainfo) --------------------------------------------------------


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def canonical_string(fields: Mapping[str, Any] | msgspec.Struct) -> bytes:
    """The bytes ``cainfo`` signs: sorted ``key=value`` pairs joined by ``&``, UTF-8.

    ``fields`` is an envelope Struct or its builtins (``msgspec.to_builtins``).
    """
    data = msgspec.to_builtins(fields) if isinstance(fields, msgspec.Struct) else dict(fields)
    parts = []
    for key in sorted(data):
        value = data[key]
        if key == _SIGNATURE_FIELD or value is None:
            continue
        if not isinstance(value, str):
            value = _JSON.encode(_without_none(value)).decode()
        parts.append(f"{key}={value}")
    return "&".join(parts).encode()


def sign_canonical(fields: Mapping[str, Any] | msgspec.Struct, key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature over ``canonical_string(fields)``."""
    return base64.b64encode(key.sign(canonical_string(fields))).decode()


def sign_request(envelope: S, key: Ed25519PrivateKey) -> S:
    """``envelope`` with ``cainfo`` set to its signature."""
    return msgspec.structs.replace(envelope, **{_SIGNATURE_FIELD: sign_canonical(envelope, key)})


def _b64(signature: str) -> bytes:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature is not base64") from exc


def verify_canonical(
    fields: Mapping[str, Any] | msgspec.Struct, public_keys: Iterable[Ed25519PublicKey]
) -> None:
    """Check ``cainfo`` in ``fields`` against any of ``public_keys`` (several: rotation).

    Raises:
        SignatureError: no signature, or none of the keys verifies it.
    """
    data = msgspec.to_builtins(fields) if isinstance(fields, msgspec.Struct) else fields
    signature = data.get(_SIGNATURE_FIELD)
    if not signature or not isinstance(signature, str):
        raise SignatureError("cainfo missing")
    raw = _b64(signature)
    message = canonical_string(data)
    for public_key in public_keys:
        try:
            public_key.verify(raw, message)
        except InvalidSignature:
            continue
        return
    raise SignatureError("cainfo does not verify")


# --- response signature (headers over the raw body) --------------------------------------


def _body_message(timestamp: str, body: bytes) -> bytes:
    return f"{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def body_signature_headers(
    body: bytes, key: Ed25519PrivateKey, *, timestamp: int | None = None
) -> dict[str, str]:
    """The two headers that sign ``body`` as sent."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = base64.b64encode(key.sign(_body_message(stamp, body))).decode()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}


def fresh_signature_headers(
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None,
    max_skew_s: float,
    max_digits: int | None = None,
) -> tuple[str, str]:
    """Both headers of a signed body, present and with a timestamp within ``max_skew_s`` of now.

    Raises:
        SignatureError: a header is missing, the timestamp is not unix seconds (of at
            most ``max_digits`` digits) or is outside the window.
    """
    if not timestamp or not signature:
        raise SignatureError("signature headers missing")
    if (
        not timestamp.isascii()
        or not timestamp.isdigit()
        or (max_digits is not None and len(timestamp) > max_digits)
    ):
        raise SignatureError("timestamp is not unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_skew_s:
        raise SignatureError("timestamp outside the allowed window")
    return timestamp, signature


def verify_body_signature(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    public_keys: Iterable[Ed25519PublicKey] | Ed25519PublicKey,
    *,
    now: float | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> None:
    """Check a signed body: fresh timestamp, and a signature by one of ``public_keys``.

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is outside
            ``max_skew_s`` of ``now``, or no key verifies the signature.
    """
    timestamp, signature = fresh_signature_headers(
        timestamp, signature, now=now, max_skew_s=max_skew_s
    )
    raw = _b64(signature)
    message = _body_message(timestamp, body)
    keys = [public_keys] if isinstance(public_keys, Ed25519PublicKey) else list(public_keys)
    for public_key in keys:
        try:
            public_key.verify(raw, message)
        except InvalidSignature:
            continue
        return
    raise SignatureError("body signature does not verify")
