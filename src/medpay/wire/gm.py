"""The national algorithms SM2, SM3 and SM4 for the national wire (DOMAIN.md section 8).

The national profile signs with **SM2 with SM3** (GB/T 32918.2) and encrypts with
**SM4** (GB/T 32907); these are the primitives, as plain functions over maintained
native libraries; the envelopes that use them live in :mod:`medpay.wire.mobile`.

* **SM2** runs on tongsuopy (Tongsuo, formerly BabaSSL): ``cryptography`` has SM3 and
  SM4 but no SM2 curve. tongsuopy's ``key.sign(data, ECDSA(SM3()))`` is, for an SM2
  key, an SM2 signature (not ECDSA, despite the name) over e = SM3(ZA ‖ M) with the
  **default user id** ``1234567812345678`` (GM/T 0009 section 10) in ZA: the
  standard's own example (GM/T 0003.5 / GB/T 32918.5, Annex A) verifies with it and a
  signature over SM3(M) alone does not (see the tests). tongsuopy has no way to set
  another user id (no ``EVP_PKEY_CTX_set1_id`` binding) and no prehashed signing, so
  :func:`sign` and :func:`verify` use the default id, which is the one the national
  platforms use.
* **Signature encoding**: DER (``SEQUENCE { r INTEGER, s INTEGER }``, GM/T 0009) by
  default, or ``"raw"`` r ‖ s (64 bytes), since national SDKs use both; base64 on the
  wire (:func:`sign_base64`, :func:`verify_base64`).
* **SM3** and **SM4** come from ``cryptography`` (OpenSSL). SM4 is used in **ECB mode
  with PKCS#7 padding**, the mode of the national mobile-payment guidance
  (:mod:`medpay.wire.mobile` says why); ECB shows equal plaintext blocks as equal
  ciphertext blocks, which that guidance accepts inside HTTPS.

Written here rather than taken from a library, and why:

* :func:`sm2_za` / :func:`sm2_digest` (the Z value, a few lines of SM3): tongsuopy
  applies Z internally and exposes neither Z nor e; we compute them to prove in
  tests which id the library applies, and for a caller that must hand e to a
  prehashed signer (an HSM).
* Range checks on keys (1 <= d <= n - 2, GB/T 32918.1 section 6.1: signing needs the
  inverse of 1 + d) and on r, s (1 <= r, s <= n - 1) before the native call: tongsuopy
  accepts d = n - 1 and values above n, and answers malformed signatures with an
  ``InternalError`` instead of ``InvalidSignature``. DER itself is parsed and written
  by ``cryptography`` (strict DER).

Every signature that does not verify and every ciphertext that does not decrypt
raises :class:`GmError`, so that callers map one exception to one stable code.
Invalid keys raise a plain ``ValueError``: they are configuration errors, not wire
input.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final, Literal, TypeVar

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.crypto import hashes as ts_hashes
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto.exceptions import InternalError as TsInternalError
from tongsuopy.crypto.exceptions import InvalidSignature as TsInvalidSignature
from tongsuopy.crypto.exceptions import UnsupportedAlgorithm as TsUnsupportedAlgorithm

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_USER_ID",
    "SM2_N",
    "SM4_KEY_LENGTH",
    "GmError",
    "SignatureEncoding",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "generate_private_key",
    "load_private_key",
    "load_private_key_hex",
    "load_public_key",
    "load_public_key_hex",
    "private_key_hex",
    "private_key_pem",
    "public_key_hex",
    "public_key_pem",
    "sign",
    "sign_base64",
    "signature_der_to_raw",
    "signature_raw_to_der",
    "sm2_digest",
    "sm2_za",
    "sm3",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
    "verify",
    "verify_base64",
]

_KeyT = TypeVar("_KeyT", ts_ec.EllipticCurvePrivateKey, ts_ec.EllipticCurvePublicKey)

#: The user id of GM/T 0009 section 10, used when the parties agree on no other.
DEFAULT_USER_ID: Final = b"1234567812345678"

# The recommended curve (GB/T 32918.5): y^2 = x^3 + ax + b over F_p, base point G of order n.
SM2_P: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
SM2_B: Final = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_GX: Final = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
SM2_GY: Final = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
SM2_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

SM4_KEY_LENGTH: Final = 16
_SM4_BLOCK_BYTES: Final = 16
_COORDINATE_BYTES: Final = 32

#: ``"der"``: ASN.1 SEQUENCE of r and s; ``"raw"``: r ‖ s, 32 bytes each, big-endian.
SignatureEncoding = Literal["der", "raw"]

_SM3_WITH_SM2: Final = ts_ec.ECDSA(ts_hashes.SM3())


class GmError(ValueError):
    """A signature does not verify, or a ciphertext does not decrypt.

    Raised for every malformed, tampered or wrongly keyed input, so callers map one
    exception to one stable code and never see the libraries' own exceptions.
    """


# --- keys ---------------------------------------------------------------------------------


class Sm2PublicKey:
    """An SM2 public key on the recommended curve, checked when it was loaded."""

    __slots__ = ("_key", "x", "y")

    def __init__(self, key: ts_ec.EllipticCurvePublicKey) -> None:
        numbers = key.public_numbers()
        self._key = key
        self.x: int = numbers.x
        self.y: int = numbers.y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sm2PublicKey) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    def __repr__(self) -> str:
        return f"Sm2PublicKey({public_key_hex(self)[:18]}...)"


class Sm2PrivateKey:
    """An SM2 private key (1 <= d <= n - 2) with its public key."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: ts_ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = Sm2PublicKey(key.public_key())

    def public_key(self) -> Sm2PublicKey:
        """The public half."""
        return self._public

    def __repr__(self) -> str:  # never the secret
        return f"Sm2PrivateKey(public={self._public!r})"


def _private_value(key: Sm2PrivateKey) -> int:
    return int(key._key.private_numbers().private_value)


def _check_private_value(d: int) -> None:
    if not 1 <= d <= SM2_N - 2:
        raise ValueError("SM2 private key out of range: need 1 <= d <= n - 2")


def _from_private_value(d: int) -> Sm2PrivateKey:
    _check_private_value(d)
    return Sm2PrivateKey(ts_ec.derive_private_key(d, ts_ec.SM2()))


def generate_private_key() -> Sm2PrivateKey:
    """A fresh SM2 key from the library's random generator."""
    key = ts_ec.generate_private_key(ts_ec.SM2())
    _check_private_value(int(key.private_numbers().private_value))
    return Sm2PrivateKey(key)


def private_key_pem(key: Sm2PrivateKey) -> str:
    """PKCS#8 PEM of ``key``, unencrypted (configuration files hold it; protect them)."""
    return bytes(
        key._key.private_bytes(
            ts_serialization.Encoding.PEM,
            ts_serialization.PrivateFormat.PKCS8,
            ts_serialization.NoEncryption(),
        )
    ).decode()


def public_key_pem(key: Sm2PrivateKey | Sm2PublicKey) -> str:
    """SubjectPublicKeyInfo PEM of ``key`` (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, Sm2PrivateKey) else key
    return bytes(
        public._key.public_bytes(
            ts_serialization.Encoding.PEM, ts_serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()


def _load_sm2_pem(
    load: Callable[[bytes], object],
    pem: str | bytes,
    kind: type[_KeyT],
    half: Literal["private", "public"],
    *,
    unreadable: str,
) -> _KeyT:
    """Read a PEM key with ``load`` and insist it is an SM2 key of ``kind``.

    Raises:
        ValueError: ``unreadable`` when it is not PEM, or not an SM2 ``half`` key.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load(data)
    except TsUnsupportedAlgorithm as exc:
        raise ValueError(f"not an SM2 {half} key: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError(unreadable) from exc
    if not isinstance(key, kind) or key.curve.name != "SM2":
        raise ValueError(f"not an SM2 {half} key")
    return key


def load_private_key(pem: str | bytes) -> Sm2PrivateKey:
    """Read an SM2 private key from PKCS#8 (or SEC1) PEM.

    Raises:
        ValueError: not PEM, not an SM2 key, out of range, or its embedded public key
            is not d·G.
    """
    key = _load_sm2_pem(
        lambda data: ts_serialization.load_pem_private_key(data, None),
        pem,
        ts_ec.EllipticCurvePrivateKey,
        "private",
        unreadable="not a PEM private key (or it is encrypted)",
    )
    loaded = Sm2PrivateKey(key)
    derived = _from_private_value(_private_value(loaded))
    if derived.public_key() != loaded.public_key():
        raise ValueError("SM2 private key: embedded public key is not d·G")
    return loaded


def load_public_key(pem: str | bytes) -> Sm2PublicKey:
    """Read an SM2 public key from SubjectPublicKeyInfo PEM.

    Raises:
        ValueError: not PEM, not an SM2 key, or the point is not on the SM2 curve.
    """
    key = _load_sm2_pem(
        ts_serialization.load_pem_public_key,
        pem,
        ts_ec.EllipticCurvePublicKey,
        "public",
        unreadable="not a PEM public key, or its point is not on the SM2 curve",
    )
    return Sm2PublicKey(key)


def _unhex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ValueError(f"{what} is not hex") from exc


def load_private_key_hex(text: str) -> Sm2PrivateKey:
    """Read a private key handed out as hex: d, 32 bytes (64 hex digits).

    A leading ``00`` byte (33 bytes, as Java's ``BigInteger.toByteArray`` writes d
    when its top bit is set) is accepted.

    Raises:
        ValueError: not 32 bytes of hex, or out of range.
    """
    raw = _unhex(text, "SM2 private key")
    if len(raw) == _COORDINATE_BYTES + 1 and raw[0] == 0:
        raw = raw[1:]
    if len(raw) != _COORDINATE_BYTES:
        raise ValueError(f"SM2 private key must be 32 bytes, got {len(raw)}")
    return _from_private_value(int.from_bytes(raw, "big"))


def load_public_key_hex(text: str) -> Sm2PublicKey:
    """Read a public key handed out as hex: ``04`` ‖ x ‖ y (65 bytes), or x ‖ y (64).

    Raises:
        ValueError: not hex of that shape, or the point is not on the SM2 curve.
    """
    raw = _unhex(text, "SM2 public key")
    if len(raw) == 2 * _COORDINATE_BYTES:
        raw = b"\x04" + raw
    if len(raw) != 2 * _COORDINATE_BYTES + 1 or raw[0] != 0x04:
        raise ValueError("SM2 public key must be 04 || x || y (65 bytes) or x || y (64 bytes)")
    try:  # the library checks 0 <= x, y < p and the curve equation
        key = ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), raw)
    except ValueError as exc:
        raise ValueError("SM2 public key: the point is not on the SM2 curve") from exc
    return Sm2PublicKey(key)


def private_key_hex(key: Sm2PrivateKey) -> str:
    """The private value d as 64 lowercase hex digits (as national platforms exchange it)."""
    return f"{_private_value(key):064x}"


def public_key_hex(key: Sm2PrivateKey | Sm2PublicKey) -> str:
    """``04`` ‖ x ‖ y as 130 lowercase hex digits."""
    public = key.public_key() if isinstance(key, Sm2PrivateKey) else key
    return f"04{public.x:064x}{public.y:064x}"


# --- SM3 and the Z value --------------------------------------------------------------------


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905) digest of ``data``, 32 bytes."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _za(user_id: bytes, a: int, b: int, gx: int, gy: int, x: int, y: int) -> bytes:
    """ZA = SM3(ENTLA ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA), ENTLA the id's length in bits."""
    bits = 8 * len(user_id)
    if bits > 0xFFFF:
        raise ValueError("SM2 user id longer than 8191 bytes")
    fields = b"".join(v.to_bytes(_COORDINATE_BYTES, "big") for v in (a, b, gx, gy, x, y))
    return sm3(bits.to_bytes(2, "big") + user_id + fields)


def sm2_za(public_key: Sm2PublicKey, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """The signer's Z value (GB/T 32918.2 section 5.5) on the recommended curve."""
    return _za(user_id, SM2_A, SM2_B, SM2_GX, SM2_GY, public_key.x, public_key.y)


def sm2_digest(public_key: Sm2PublicKey, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """The value e = SM3(ZA ‖ M) that an SM2 signature of ``message`` signs."""
    return sm3(sm2_za(public_key, user_id) + message)


# --- SM2 signatures ---------------------------------------------------------------------------


def _scalars_in_range(r: int, s: int) -> bool:
    return 1 <= r < SM2_N and 1 <= s < SM2_N


def signature_der_to_raw(signature: bytes) -> bytes:
    """The raw form r ‖ s (64 bytes) of a DER signature.

    Raises:
        GmError: not strict DER, or r or s out of range.
    """
    try:
        r, s = decode_dss_signature(signature)
    except (ValueError, TypeError) as exc:
        raise GmError("signature is not DER") from exc
    if not _scalars_in_range(r, s):
        raise GmError("signature r or s out of range")
    return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


def signature_raw_to_der(signature: bytes) -> bytes:
    """DER from r ‖ s (64 bytes).

    Raises:
        GmError: not 64 bytes, or r or s out of range.
    """
    if not isinstance(signature, bytes) or len(signature) != 2 * _COORDINATE_BYTES:
        raise GmError("raw signature must be 64 bytes")
    r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
    if not _scalars_in_range(r, s):
        raise GmError("signature r or s out of range")
    return encode_dss_signature(r, s)


def _check_encoding(encoding: str) -> None:
    if encoding not in ("der", "raw"):
        raise ValueError(f"signature encoding must be 'der' or 'raw', not {encoding!r}")


def sign(
    private_key: Sm2PrivateKey, message: bytes, *, encoding: SignatureEncoding = "der"
) -> bytes:
    """SM2 signature with SM3 of ``message`` under the default user id."""
    _check_encoding(encoding)
    der = bytes(private_key._key.sign(message, _SM3_WITH_SM2))
    return der if encoding == "der" else signature_der_to_raw(der)


def verify(
    public_key: Sm2PublicKey,
    signature: bytes,
    message: bytes,
    *,
    encoding: SignatureEncoding = "der",
) -> None:
    """Check an SM2-with-SM3 signature of ``message`` under the default user id.

    Raises:
        GmError: the signature is malformed or does not verify.
    """
    _check_encoding(encoding)
    if not isinstance(signature, bytes):
        raise GmError("signature must be bytes")
    if encoding == "raw":
        der = signature_raw_to_der(signature)
    else:
        # Re-encoded from the parsed r and s: the library only ever sees canonical DER.
        der = signature_raw_to_der(signature_der_to_raw(signature))
    try:
        public_key._key.verify(der, message, _SM3_WITH_SM2)
    except (TsInvalidSignature, TsInternalError) as exc:
        raise GmError("signature does not verify") from exc


def sign_base64(
    private_key: Sm2PrivateKey, message: bytes, *, encoding: SignatureEncoding = "der"
) -> str:
    """:func:`sign`, base64 (standard alphabet, padded) as it travels on the wire."""
    return base64.b64encode(sign(private_key, message, encoding=encoding)).decode("ascii")


def verify_base64(
    public_key: Sm2PublicKey,
    signature: str,
    message: bytes,
    *,
    encoding: SignatureEncoding = "der",
) -> None:
    """:func:`verify` of a base64 signature.

    Raises:
        GmError: not base64, malformed, or does not verify.
    """
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise GmError("signature is not base64") from exc
    verify(public_key, raw, message, encoding=encoding)


# --- SM4 ------------------------------------------------------------------------------------


def _sm4_ecb(key: bytes) -> Cipher[modes.ECB]:
    if not isinstance(key, bytes) or len(key) != SM4_KEY_LENGTH:
        raise ValueError("SM4 key must be 16 bytes")
    return Cipher(algorithms.SM4(key), modes.ECB())  # noqa: S305 - the national mode, see above


def sm4_ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """SM4-ECB with PKCS#7 padding (always at least one byte of padding).

    Raises:
        ValueError: the key is not 16 bytes.
    """
    padder = padding.PKCS7(8 * _SM4_BLOCK_BYTES).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _sm4_ecb(key).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def sm4_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`sm4_ecb_encrypt`, with strict checks.

    Raises:
        ValueError: the key is not 16 bytes (a configuration error).
        GmError: empty, not whole blocks, or the padding is not PKCS#7 (a wrong key
            or a tampered ciphertext, almost always).
    """
    cipher = _sm4_ecb(key)
    if not isinstance(ciphertext, bytes) or not ciphertext or len(ciphertext) % _SM4_BLOCK_BYTES:
        raise GmError("SM4 ciphertext must be a non-empty multiple of 16 bytes")
    decryptor = cipher.decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(8 * _SM4_BLOCK_BYTES).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise GmError("SM4 padding is invalid (wrong key or tampered ciphertext)") from exc
