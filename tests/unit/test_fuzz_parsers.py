"""Property fuzzing of what parses untrusted input (issue 12, item 2): only our errors escape.

- The request-signature guard (``verify_signed_request``): any set of headers, repeated,
  huge, of any bytes, malformed base64, a signature by a key of another type, ends in
  the verified caller or an :class:`~medpay.errors.Unauthenticated` (a 401), never
  anything else; and it verifies only the genuine signature.
- Identity tokens (``IdentityVerifier``): garbage, JWT-shaped garbage, ``alg`` tricks
  (``none``, HS256 keyed with the issuer's public key, RS256, ES256 for an EdDSA
  issuer), ``kid``/``jku``/``x5u`` headers, expired, not yet valid, too long-lived,
  claims of the wrong types: a :class:`PatientIdentity` only for a good token, else a
  401.
- Provinces' answers and callbacks on both profiles (``national_http``, ``national_sm2``):
  any body, correctly signed or not, ends in a result or a :class:`ClearingError` /
  :class:`CallbackRejected`.
- The national profile's codec (``wire.national_gm``): any JSON and any amount ends in
  fen or a :class:`YuanError`; fen survive the round trip through yuan exactly.

The guard and the parsers are called directly (no server), so each example costs
microseconds; ``MEDPAY_FUZZ_PROPERTY_EXAMPLES`` (default 60) sets how many per property.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Request

from medpay.config import IdentityIssuer
from medpay.errors import Unauthenticated
from medpay.security.guards import Gatekeeper, verify_signed_request
from medpay.security.identity import DevelopmentIssuer, IdentityVerifier, PatientIdentity
from medpay.security.signatures import (
    canonical_request,
    generate_key_pair,
    parsed_key,
    sign_request,
)
from medpay.settlement.adapters.base import (
    CallbackRejected,
    ClearingError,
    ProvinceCallback,
    SettlementResult,
)
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.settlement.adapters.national_sm2 import NationalSm2Adapter
from medpay.wire import gm, national_gm
from medpay.wire.national_gm import AMOUNT_FIELDS
from medpay.wire.signing import body_signature_headers, generate_private_key
from medpay.wire.yuan import YuanError

from .test_national_adapter_respx import callback_body, output, settlement_request

FUZZ = settings(
    max_examples=int(os.environ.get("MEDPAY_FUZZ_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NOW = 1_740_789_006  # 2025-03-01 08:30:06 Beijing, the callbacks' time

latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=80)
huge = st.integers(1_000, 200_000).map(lambda n: "A" * n)
b64 = st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
header_value = st.one_of(latin1, huge, b64, st.just(""), st.just("=" * 7))


# --- the request-signature guard ------------------------------------------------------------

APP_ID = "app_fuzz_0001"
APP_PRIVATE, APP_PUBLIC = generate_key_pair("ed25519")
OTHER_KEYS = {alg: generate_key_pair(alg)[0] for alg in ("ed25519", "ecdsa-p256", "sm2")}


class _App(msgspec.Struct, frozen=True):
    status: str
    keys: tuple[Any, ...]


class _Pool:
    """What the guard asks of the database: the nonce, spent once."""

    def __init__(self) -> None:
        self.spent: set[tuple[str, str]] = set()

    async def fetchval(self, _query: str, scope: str, nonce: str) -> int | None:
        if (scope, nonce) in self.spent:
            return None
        self.spent.add((scope, nonce))
        return 1


async def _find(_pool: Any, caller_id: str) -> _App | None:
    if caller_id == APP_ID:
        return _App("active", (parsed_key(APP_PUBLIC, "ed25519"),))
    return _App("suspended", ()) if caller_id == "app_suspended" else None


def _gatekeeper() -> Gatekeeper:
    return Gatekeeper(
        _Pool(),  # type: ignore[arg-type]
        lookups={"app": _find},  # type: ignore[dict-item]
        identity=IdentityVerifier((), "medpay", 30),
        signature_window_seconds=300,
    )


class _Handler:
    """The route's one setting the body reader asks for."""

    def resolve_request_max_body_size(self) -> int:
        return 64 * 1024


def _request(headers: list[tuple[str, str]], body: bytes, path: str = "/v1/payments") -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "state": {},
        "route_handler": _Handler(),
    }
    return Request(scope, receive)  # type: ignore[arg-type]


def _genuine(body: bytes, *, nonce: str, key: str = APP_PRIVATE) -> dict[str, str]:
    timestamp = str(int(time.time()))
    message = canonical_request("POST", "/v1/payments", timestamp, nonce, body)
    return {
        "x-app-id": APP_ID,
        "x-timestamp": timestamp,
        "x-nonce": nonce,
        "x-signature": sign_request(key, message),
    }


@st.composite
def signed_headers(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes, bool]:
    """Headers of a request: genuine, then perhaps spoiled; and whether they still are."""
    body = draw(st.binary(max_size=300))
    nonce = draw(st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True))
    headers = _genuine(body, nonce=nonce)
    genuine = True
    for name in draw(st.sets(st.sampled_from(sorted(headers)), max_size=4)):
        headers[name] = draw(header_value)
        genuine = False
    if draw(st.booleans()):  # a signature by a key of another type, or of another app
        headers["x-signature"] = _genuine(
            body, nonce=nonce, key=OTHER_KEYS[draw(st.sampled_from(sorted(OTHER_KEYS)))]
        )["x-signature"]
        genuine = False
    pairs = list(headers.items())
    for name in draw(st.lists(st.sampled_from([*headers, "authorization"]), max_size=2)):
        pairs.append((name, draw(header_value)))  # repeated security headers
        genuine = genuine and name not in headers
    return pairs, body, genuine


@FUZZ
@given(signed_headers())
async def test_the_signature_guard_only_verifies_or_says_401(
    case: tuple[list[tuple[str, str]], bytes, bool],
) -> None:
    headers, body, genuine = case
    try:
        caller = await verify_signed_request(
            _request(headers, body), kind="app", gatekeeper=_gatekeeper()
        )
    except Unauthenticated as exc:
        assert not genuine, exc
        assert exc.code
    else:
        assert genuine
        assert caller.status == "active"


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["x-app-id", "x-timestamp", "x-nonce", "x-signature", "x-other"]), header_value), max_size=8), st.binary(max_size=100))  # fmt: skip
async def test_any_headers_at_all_are_a_401_never_an_error(
    headers: list[tuple[str, str]], body: bytes
) -> None:
    with pytest.raises(Unauthenticated):
        await verify_signed_request(_request(headers, body), kind="app", gatekeeper=_gatekeeper())


# --- identity tokens ----------------------------------------------------------------------------

ISSUER = DevelopmentIssuer.generate()
VERIFIER = IdentityVerifier((ISSUER.trusted(),), "medpay", 30, max_lifetime_seconds=4 * 3600)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256_KEY = ec.generate_private_key(ec.SECP256R1())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """Good claims, perhaps with tricks played on them; and whether none was."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER.issuer,
        "aud": "medpay",
        "sub": "33000000000000000001",
        "nbf": now - 10,
        "exp": now + 600,
        "amr": ["face"],
    }
    pristine = True
    odd = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        latin1,
        st.lists(latin1, max_size=3),
        st.dictionaries(latin1, latin1, max_size=2),
    )
    tricks = {
        "expired": {"exp": now - 3600, "nbf": now - 7200},
        "not yet valid": {"nbf": now + 3600, "exp": now + 7200},
        "too long-lived": {"exp": now + 30 * 24 * 3600},
        "foreign issuer": {"iss": "someone-else"},
        "other audience": {"aud": "not-medpay"},
        "bad subject": {"sub": "../../etc/passwd"},
    }
    for name in draw(st.sets(st.sampled_from(sorted(tricks)), max_size=2)):
        claims.update(tricks[name])
        pristine = False
    for field in draw(st.sets(st.sampled_from(sorted(claims)), max_size=2)):
        claims[field] = draw(odd)
        pristine = False
    for field in draw(st.sets(st.sampled_from(["iss", "aud", "sub", "nbf", "exp"]), max_size=1)):
        claims.pop(field, None)
        pristine = False
    return claims, pristine


ISSUER_KEY = serialization.load_pem_private_key(ISSUER.private_key_pem.encode(), None)


class Token(msgspec.Struct, frozen=True):
    """A drawn token: its text, how it was signed, its claims, and whether it is untouched."""

    text: str
    how: str
    claims: dict[str, Any]
    pristine: bool


@st.composite
def tokens(draw: st.DrawFn) -> Token:
    claims, pristine = _claims(draw)
    header_extra = draw(
        st.sampled_from(
            [
                {},
                {"kid": "../../../../dev/null"},
                {"kid": 7},
                {"jku": "http://127.0.0.1/keys"},
                {"x5u": "http://127.0.0.1/cert"},
                {"typ": "none"},
                {"crit": ["exp"]},
            ]
        )
    )
    pristine = pristine and header_extra in ({}, {"jku": "http://127.0.0.1/keys"})
    how = draw(st.sampled_from(["issuer", "none", "hs256-public-key", "rs256", "es256", "garbage"]))
    if how == "garbage":
        parts = draw(st.lists(st.one_of(latin1, b64, huge), min_size=1, max_size=4))
        return Token(".".join(parts), how, claims, False)
    alg = {
        "issuer": "EdDSA",
        "none": "none",
        "hs256-public-key": "HS256",
        "rs256": "RS256",
        "es256": "ES256",
    }[how]
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT", **header_extra}).encode())
    signing_input = f"{header}.{_b64url(json.dumps(claims, default=str).encode())}".encode()
    if how == "issuer":
        signature = ISSUER_KEY.sign(signing_input)  # type: ignore[call-arg, union-attr]
    elif how == "none":
        signature = b""
    elif how == "hs256-public-key":  # key confusion: the public key as an HMAC secret
        signature = hmac.new(ISSUER.public_key_pem.encode(), signing_input, hashlib.sha256).digest()
    elif how == "rs256":
        signature = RSA_KEY.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        der = P256_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return Token(
        f"{signing_input.decode()}.{_b64url(signature)}", how, claims, pristine and how == "issuer"
    )


def _acceptable(claims: dict[str, Any]) -> bool:
    """What an accepted token must have been: in time, for us, of a person, not too long-lived."""
    now, leeway = time.time(), 30
    exp, nbf = claims.get("exp"), claims.get("nbf")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, nbf))
    aud = claims.get("aud")
    return (
        numbers
        and exp > now - leeway  # type: ignore[operator]
        and nbf <= now + leeway  # type: ignore[operator]
        and exp - nbf <= 4 * 3600  # type: ignore[operator]
        and claims.get("iss") == ISSUER.issuer
        and (aud == "medpay" or (isinstance(aud, list) and "medpay" in aud))
        and isinstance(claims.get("sub"), str)
    )


@FUZZ
@given(tokens(), st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Basic ", ""]))
def test_identity_tokens_are_accepted_only_when_good(token: Token, scheme: str) -> None:
    bearer = scheme.lower().startswith("bearer")
    try:
        identity = VERIFIER.verify(scheme + token.text)
    except Unauthenticated as exc:
        assert exc.credential == "identity"
        assert not (token.pristine and bearer), exc
    else:
        assert bearer and token.how == "issuer", token
        assert _acceptable(token.claims), token
        assert isinstance(identity, PatientIdentity)
        assert identity.psn_no == token.claims["sub"]


@FUZZ
@given(st.one_of(latin1, huge, b64, st.text(max_size=500)))
def test_any_authorization_header_is_a_401_or_an_identity(authorization: str) -> None:
    with pytest.raises(Unauthenticated):
        VERIFIER.verify(authorization)


def test_an_issuer_with_a_key_of_another_type_is_refused_at_configuration() -> None:
    pem = (
        RSA_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="only Ed25519 and P-256"):
        IdentityVerifier((IdentityIssuer(issuer="rsa", public_key_pem=pem),), "medpay", 30)


# --- provinces' answers and callbacks -------------------------------------------------------

ED_GATEWAY, ED_PROVINCE = generate_private_key(), generate_private_key()
SM2_GATEWAY, SM2_PROVINCE = gm.generate_private_key(), gm.generate_private_key()
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _adapter(profile: str, client: httpx.AsyncClient) -> NationalHttpAdapter:
    if profile == "national_sm2":
        return NationalSm2Adapter(
            "http://province.test/api",
            "330000",
            SM2_GATEWAY,
            SM2_PROVINCE.public_key(),
            client,
            httpx.Timeout(1.0),
        )
    return NationalHttpAdapter(
        "http://province.test/api",
        "330000",
        ED_GATEWAY,
        ED_PROVINCE.public_key(),
        client,
        httpx.Timeout(1.0),
    )


def _signed(profile: str, body: bytes, at: int) -> dict[str, str]:
    if profile == "national_sm2":
        return national_gm.body_signature_headers(body, SM2_PROVINCE, timestamp=at)
    return body_signature_headers(body, ED_PROVINCE, timestamp=at)


@st.composite
def callback_bodies(draw: st.DrawFn) -> bytes:
    """A callback: any bytes, any JSON, or a real one with fields replaced by anything."""
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    fields = json.loads(callback_body())
    for name in draw(st.sets(st.sampled_from(sorted(fields)), min_size=1, max_size=3)):
        fields[name] = draw(json_values)
    amounts = (
        sorted(AMOUNT_FIELDS & set(fields["setlinfo"] or {}))
        if isinstance(fields.get("setlinfo"), dict)
        else []
    )
    if amounts and draw(st.booleans()):
        amount = draw(st.sampled_from(amounts))
        fields["setlinfo"][amount] = draw(
            st.one_of(json_values, st.decimals(allow_nan=False, allow_infinity=False).map(str))
        )
    return json.dumps(fields, default=str).encode()


@FUZZ
@given(
    profile=st.sampled_from(["national_http", "national_sm2"]),
    body=callback_bodies(),
    signed=st.booleans(),
    timestamp=st.one_of(st.none(), latin1, st.integers(0, 10**13).map(str)),
    signature=st.one_of(st.none(), latin1, b64),
)
async def test_callbacks_are_read_or_rejected_never_an_error(
    profile: str, body: bytes, signed: bool, timestamp: str | None, signature: str | None
) -> None:
    async with httpx.AsyncClient() as client:
        adapter = _adapter(profile, client)
        if signed:
            headers = _signed(profile, body, NOW)
            timestamp, signature = headers["X-Province-Timestamp"], headers["X-Province-Signature"]
        try:
            callback = adapter.parse_callback(body, timestamp, signature, now=NOW)
        except CallbackRejected as exc:
            assert exc.code.startswith("callback_")
        else:
            assert signed
            assert isinstance(callback, ProvinceCallback)


@st.composite
def answer_bodies(draw: st.DrawFn) -> bytes:
    """A 2207 answer: any bytes, any JSON, or a real one with fields replaced by anything."""
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    envelope: dict[str, Any] = {
        "infcode": 0,
        "inf_refmsgid": "330000202503010830060000000001",
        "refmsg_time": "20250301083006000",
        "respond_time": "20250301083006010",
        "output": msgspec.to_builtins(output()),
    }
    target = envelope if draw(st.booleans()) else envelope["output"]["setlinfo"]
    for name in draw(st.sets(st.sampled_from(sorted(target)), min_size=1, max_size=3)):
        target[name] = draw(json_values)
    return json.dumps(envelope, default=str).encode()


@FUZZ
@given(
    profile=st.sampled_from(["national_http", "national_sm2"]),
    body=answer_bodies(),
    signed=st.booleans(),
    status=st.sampled_from([200, 200, 200, 201, 400, 500]),
)
async def test_answers_are_results_or_clearing_errors_never_anything_else(
    profile: str, body: bytes, signed: bool, status: int
) -> None:
    def province(request: httpx.Request) -> httpx.Response:
        headers = _signed(profile, body, int(time.time())) if signed else {}
        return httpx.Response(status, content=body, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(province)) as client:
        adapter = _adapter(profile, client)
        try:
            result = await adapter.settle(settlement_request())
        except ClearingError as exc:
            assert exc.code
        else:
            assert signed and status == 200
            assert isinstance(result, SettlementResult)


# --- the national profile's codec -----------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_decoding_any_bytes_is_json_or_a_decode_error(body: bytes) -> None:
    try:
        national_gm.decode(body)
    except msgspec.DecodeError:
        pass


amount_values = st.one_of(
    json_values,
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(AMOUNT_FIELDS)), amount_values, max_size=4))
def test_amounts_become_fen_or_a_yuan_error(fields: dict[str, Any]) -> None:
    try:
        converted = national_gm.amounts_to_fen({"setlinfo": fields})
    except YuanError:
        return
    for value in converted["setlinfo"].values():
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(AMOUNT_FIELDS)), st.integers(0, 10**12), max_size=6))
def test_fen_survive_the_round_trip_through_yuan(fields: dict[str, int]) -> None:
    wire = national_gm.encode(national_gm.amounts_to_yuan({"output": fields}))
    assert national_gm.amounts_to_fen(national_gm.decode(wire)) == {"output": fields}
    for value in national_gm.decode(wire)["output"].values():
        assert isinstance(value, Decimal | int)


@FUZZ
@given(st.one_of(latin1, b64, huge), st.binary(max_size=64))
def test_sm2_verification_of_any_signature_is_true_or_a_gm_error(
    signature: str, message: bytes
) -> None:
    try:
        gm.verify_base64(SM2_PROVINCE.public_key(), signature, message, encoding="raw")
    except gm.GmError:
        return
    raise AssertionError("a signature nobody made verified")
