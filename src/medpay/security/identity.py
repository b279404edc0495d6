"""Patient identity tokens (foundation issue, item 5).

``Authorization: Bearer <JWT>`` from an identity service we trust, after face
verification. Only asymmetric EdDSA and ES256 are accepted: ``none`` and HS*
would let anyone holding a shared secret (or nobody) mint identities. ``iss``,
``aud``, ``exp`` and ``nbf`` are required and enforced; ``sub`` is the person
number ``psn_no``; a payment needs ``face`` among the ``amr`` methods.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from medpay.config import IdentityIssuer
from medpay.errors import Forbidden, Unauthenticated
from medpay.security.signatures import generate_key_pair

__all__ = [
    "DEV_ISSUER",
    "DevelopmentIssuer",
    "IdentityVerifier",
    "PatientIdentity",
    "require_face",
]

DEV_ISSUER = "medpay-dev-identity"
PSN_NO_PATTERN = re.compile(r"^[0-9A-Za-z]{6,32}$")
_BEARER = "bearer "


class PatientIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who the patient is, as the identity service vouches."""

    psn_no: str  # psn_no
    issuer: str
    authentication_methods: tuple[str, ...]  # amr
    token_id: str | None = None  # jti


def _unauthenticated(code: str, title: str, detail: str | None = None) -> Unauthenticated:
    return Unauthenticated(code, title, detail, credential="identity")


def require_face(identity: PatientIdentity) -> None:
    """A payment needs a face-verified identity (DOMAIN.md section 1)."""
    if "face" not in identity.authentication_methods:
        raise Forbidden(
            "face_verification_required",
            "Face verification is required to pay",
            "The identity token's amr does not include face.",
        )


class IdentityVerifier:
    """Checks identity tokens against the configured issuers' public keys."""

    def __init__(
        self,
        issuers: tuple[IdentityIssuer, ...],
        audience: str,
        leeway_seconds: int,
        *,
        max_lifetime_seconds: int = 4 * 3600,
        cache_size: int = 10_000,
    ) -> None:
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._cache_size = cache_size
        #: token -> (identity, nbf, exp), least recently used first.
        self._verified: OrderedDict[str, tuple[PatientIdentity, float, float]] = OrderedDict()
        self._keys: dict[str, tuple[object, str]] = {}
        for issuer in issuers:
            key = serialization.load_pem_public_key(issuer.public_key_pem.encode())
            if isinstance(key, ed25519.Ed25519PublicKey):
                algorithm = "EdDSA"
            elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
                algorithm = "ES256"
            else:
                raise ValueError(f"issuer {issuer.issuer}: only Ed25519 and P-256 keys are trusted")
            self._keys[issuer.issuer] = (key, algorithm)

    def verify(self, authorization: str | None) -> PatientIdentity:
        """The identity in an ``Authorization`` header, or a 401 problem saying why not."""
        if not authorization or not authorization[: len(_BEARER)].lower() == _BEARER:
            raise _unauthenticated(
                "identity_token_missing",
                "A patient identity token is required",
                "Send Authorization: Bearer <JWT>.",
            )
        return self.verify_token(authorization[len(_BEARER) :].strip())

    def verify_token(self, token: str) -> PatientIdentity:
        """The identity a bare token vouches for, or a 401 problem saying why not.

        For credentials that travel elsewhere than in ``Authorization`` (the national
        interface's ``payAuthNo``), checked by the same rules. A token verified once is
        remembered (a bounded cache) until its ``exp``, so an app's many requests with
        one token cost one signature check; outside its validity it is checked again,
        and refused with the reason.
        """
        remembered = self._verified.get(token)
        now = time.time()
        if remembered is not None:
            identity, not_before, expires = remembered
            if not_before - self._leeway <= now <= expires + self._leeway:
                self._verified.move_to_end(token)
                return identity
            del self._verified[token]
        identity, not_before, expires = self._verify(token)
        self._verified[token] = (identity, not_before, expires)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return identity

    def _verify(self, token: str) -> tuple[PatientIdentity, float, float]:
        """Check ``token`` fully: the identity, with the ``nbf`` and ``exp`` it holds for."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _unauthenticated(
                "identity_token_invalid", "The identity token is not valid", str(exc)
            ) from exc
        issuer = unverified.get("iss")
        trusted = self._keys.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise _unauthenticated(
                "identity_token_invalid", "The identity token is not valid", "Untrusted issuer."
            )
        assert isinstance(issuer, str)
        key, algorithm = trusted
        if header.get("alg") != algorithm:
            raise _unauthenticated(
                "identity_token_invalid",
                "The identity token is not valid",
                f"This issuer signs with {algorithm} only.",
            )
        try:
            claims = jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=self._audience,
                issuer=issuer,
                leeway=self._leeway,
                options={"require": ["iss", "aud", "exp", "nbf", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthenticated(
                "identity_token_expired", "The identity token has expired"
            ) from exc
        except jwt.ImmatureSignatureError as exc:
            raise _unauthenticated(
                "identity_token_not_yet_valid", "The identity token is not yet valid"
            ) from exc
        except jwt.PyJWTError as exc:
            raise _unauthenticated(
                "identity_token_invalid", "The identity token is not valid", str(exc)
            ) from exc
        lifetime = claims["exp"] - claims["nbf"]
        if not isinstance(lifetime, int | float) or lifetime > self._max_lifetime:
            raise _unauthenticated(
                "identity_token_lifetime_too_long",
                "The identity token lives too long",
                f"Tokens may live at most {self._max_lifetime} s (exp - nbf); this one {lifetime} s.",
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not PSN_NO_PATTERN.match(subject):
            raise _unauthenticated(
                "identity_token_invalid",
                "The identity token is not valid",
                "sub is not a person number.",
            )
        amr = claims.get("amr", [])
        methods = tuple(m for m in amr if isinstance(m, str)) if isinstance(amr, list) else ()
        jti = claims.get("jti")
        identity = PatientIdentity(
            psn_no=subject,
            issuer=issuer,
            authentication_methods=methods,
            token_id=jti if isinstance(jti, str) else None,
        )
        return identity, float(claims["nbf"]), float(claims["exp"])


class DevelopmentIssuer:
    """A local identity service for development and tests (``medpay tokens issue``).

    Its Ed25519 private key lives in the data folder, never in the repository.
    """

    def __init__(self, private_key_pem: str, issuer: str = DEV_ISSUER) -> None:
        self.issuer = issuer
        self.private_key_pem = private_key_pem
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        self.public_key_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.algorithm = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"

    @classmethod
    def generate(cls, algorithm: str = "ed25519") -> DevelopmentIssuer:
        """A new issuer with a fresh key (tests)."""
        private_pem, _ = generate_key_pair("ed25519" if algorithm == "ed25519" else "ecdsa-p256")
        return cls(private_pem)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DevelopmentIssuer:
        """The development issuer of this data folder, made on first use."""
        path = data_dir / "dev-identity-issuer.pem"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            private_pem, _ = generate_key_pair("ed25519")
            path.write_text(private_pem)
            path.chmod(0o600)
        return cls(path.read_text())

    def trusted(self) -> IdentityIssuer:
        """What the gateway's settings need to trust this issuer."""
        return IdentityIssuer(issuer=self.issuer, public_key_pem=self.public_key_pem)

    def issue(
        self,
        psn_no: str,
        *,
        audience: str = "medpay",
        amr: tuple[str, ...] = ("face",),
        ttl_seconds: int = 3600,
        now: int | None = None,
        extra: dict[str, object] | None = None,
    ) -> str:
        """Mint a token for ``psn_no``."""
        issued = int(time.time()) if now is None else now
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": psn_no,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            "amr": list(amr),
            "jti": secrets.token_hex(12),
        }
        claims.update(extra or {})
        return jwt.encode(claims, self.private_key_pem, algorithm=self.algorithm)
