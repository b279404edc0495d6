r"""Signed requests from patient apps (foundation issue, item 4).

Every patient-app request carries ``X-App-Id``, ``X-Timestamp`` (unix seconds),
``X-Nonce`` (16 to 64 characters) and ``X-Signature``: base64 of the app's Ed25519,
ECDSA P-256 (SHA-256, DER) or SM2 (SM3withSM2 under the default user id, DER; the
national algorithm, :mod:`medpay.wire.gm`) signature over::

    METHOD \n PATH_WITH_QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(BODY))

The string is the same for every algorithm (its body digest stays SHA-256): an app
moving to SM2 changes its key, not its canonical string. SM2 signatures are DER, as
ECDSA's are here and as GM/T 0009 encodes them; a raw ``r || s`` is refused, so one
signature has one encoding.

The app is looked up first, then the clock, then the signature, and only a request
whose signature verifies spends its nonce, so a forger cannot burn a real
client's nonces.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from medpay.errors import Unauthenticated
from medpay.wire import gm

__all__ = [
    "NONCE_PATTERN",
    "KeyAlgorithm",
    "canonical_request",
    "generate_key_pair",
    "load_public_key",
    "parsed_key",
    "parsed_keys",
    "registered_key_pair",
    "sign_request",
    "signature_headers",
    "unauthorized",
    "verify_signature",
]

KeyAlgorithm = Literal["ed25519", "ecdsa-p256", "sm2"]
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | gm.Sm2PublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def unauthorized(code: str, title: str, detail: str | None = None) -> Unauthenticated:
    """The request signature was refused (the edge names the scheme to sign with)."""
    return Unauthenticated(code, title, detail, credential="signature")


def canonical_request(
    method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """The exact bytes an app signs."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n{digest}".encode()


def load_public_key(pem: str, algorithm: KeyAlgorithm) -> PublicKey:
    """Parse a PEM public key and check that it is of the declared algorithm."""
    if algorithm == "sm2":
        try:  # cryptography has no SM2 curve: tongsuopy reads it (medpay.wire.gm)
            return gm.load_public_key(pem)
        except ValueError as exc:
            raise ValueError(f"the key is not an sm2 public key: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if algorithm == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if (
        algorithm == "ecdsa-p256"
        and isinstance(key, ec.EllipticCurvePublicKey)
        and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise ValueError(f"the key is not an {algorithm} public key")


@functools.lru_cache(maxsize=4096)
def parsed_key(pem: str, algorithm: KeyAlgorithm) -> PublicKey:
    """Parse each stored key once per process: parsing PEM is slower than verifying."""
    return load_public_key(pem, algorithm)


def parsed_keys(algorithms: list[str], pems: list[str]) -> tuple[PublicKey, ...]:
    """A registry row's active keys (parallel arrays of algorithms and PEMs), parsed."""
    return tuple(
        parsed_key(pem, algorithm) for algorithm, pem in zip(algorithms, pems, strict=True)
    )


def verify_signature(public_key: PublicKey, signature_b64: str, message: bytes) -> bool:
    """True when ``signature_b64`` is a valid signature of ``message`` by ``public_key``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if isinstance(public_key, gm.Sm2PublicKey):
        try:
            gm.verify(public_key, signature, message, encoding="der")
        except gm.GmError:
            return False
        return True
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def registered_key_pair(algorithm: KeyAlgorithm, public_key_pem: str | None) -> tuple[str, str]:
    """The (private PEM, public PEM) a registry records for a new caller.

    With ``public_key_pem`` (the caller keeps its private key) it is checked to be of
    ``algorithm`` now and the private half comes back empty; without one a development
    pair is made (for dev and tests).
    """
    if public_key_pem is None:
        return generate_key_pair(algorithm)
    load_public_key(public_key_pem, algorithm)  # refuse a key of the wrong kind now
    return "", public_key_pem


def generate_key_pair(algorithm: KeyAlgorithm) -> tuple[str, str]:
    """A new (private PEM, public PEM) pair, for development and tests."""
    if algorithm == "sm2":
        sm2 = gm.generate_private_key()
        return gm.private_key_pem(sm2), gm.public_key_pem(sm2)
    private: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@functools.lru_cache(maxsize=64)
def _signing_key(private_pem: str) -> PrivateKey | gm.Sm2PrivateKey:
    """A client's private key, parsed once per process (SM2 keys are checked on loading)."""
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except UnsupportedAlgorithm:  # the SM2 curve: cryptography does not know it
        return gm.load_private_key(private_pem)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only Ed25519, ECDSA P-256 and SM2 keys sign medpay requests")
    return key


def sign_request(private_pem: str, message: bytes) -> str:
    """Sign ``message`` as a client would; base64 of the signature (DER for ECDSA and SM2)."""
    key = _signing_key(private_pem)
    if isinstance(key, gm.Sm2PrivateKey):
        signature = gm.sign(key, message, encoding="der")
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(message)
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def signature_headers(
    *,
    app_id: str,
    private_pem: str,
    method: str,
    path_with_query: str,
    body: bytes,
    timestamp: int,
    nonce: str,
    id_header: str = "X-App-Id",
) -> dict[str, str]:
    """The four headers of a signed request: what a client library would send.

    ``id_header`` is X-App-Id for patient apps, X-Agency-Id or X-Operator-Id for those.
    """
    message = canonical_request(method, path_with_query, str(timestamp), nonce, body)
    return {
        id_header: app_id,
        "X-Timestamp": str(timestamp),
        "X-Nonce": nonce,
        "X-Signature": sign_request(private_pem, message),
    }
