r"""The national mobile-payment envelope: SM2-signed, SM4-encrypted JSON (DOMAIN.md section 8).

On the wire (both directions)::

    {"appId": "...", "timestamp": 1757326792488, "encType": "SM4", "signType": "SM2",
     "version": "1.0.0", "encData": "<upper-case hex>", "signData": "<base64>"}

``timestamp`` is unix milliseconds; ``version`` is optional. The rules below follow the
"安全规范" (security rules) of the NHSA mobile-payment interface specification as
provincial access guides reproduce it (for example Tianjin's guide to the 医保移动支付
centre, sections 2.3.1 签名算法 and 2.3.2 加密算法), the national service platform's own
web client, and vendors' SDK ports (Java, C#, PHP), which agree on what follows
except where noted. Checked by hand against the platform itself: a ``signData`` made
by its public web client verifies under :func:`sign_string`, and an ``encData`` it
answered decrypts under :func:`derive_sm4_key` to JSON ending in a full PKCS#7 block
(that client's keys stay out of our tests).

**Signature** (``signData``), :func:`sign_string`:

1. Every field takes part except ``signData``, ``encData`` and ``extra``; empty values
   (null, ``""``) are skipped ("空值不参与签名").
2. The **plaintext business data** takes part as the field ``data``: the sender signs,
   then encrypts ``data`` into ``encData`` and drops ``data``. So the signature covers
   what the parties mean, not the ciphertext, and a receiver decrypts before it can
   verify. (DOMAIN.md's "nested JSON compact" is this ``data``.)
3. Keys sorted by ASCII code ("按照...ASCII码递增排序"); pairs ``key=value`` joined
   by ``&``; strings as they are; ``data`` (and any object or list) as compact JSON
   with keys sorted, empty values and empty lists skipped at every depth, and every
   scalar inside written as a string (``1`` -> ``"1"``, ``true`` -> ``"true"``), as
   the Java SDK writes them. Numbers keep the text they were sent with (``123.40``
   stays ``"123.40"``, as Java's BigDecimal writes it; JavaScript would write
   ``123.4``), which is why business data decodes numbers as Decimal.
4. ``&key=<appSecret>`` is appended; the UTF-8 bytes are signed with SM3withSM2 under
   the default user id (:mod:`medpay.wire.gm`); ``signData`` is base64 of the **raw**
   r ‖ s (64 bytes), as in the specification's example (DER is an option).

**Encryption** (``encData``), :func:`derive_sm4_key`: the app's SM4 key is derived
from ``appId`` and ``appSecret``: SM4-ECB (PKCS#7) of ``appSecret`` under the key
``appId[:16]``; the first 16 characters of that ciphertext's upper-case hex, as ASCII
bytes, are the key. ``encData`` is the upper-case hex of SM4-ECB (PKCS#7) of the
business data as JSON; we write that JSON ASCII-only (``\uXXXX`` escapes), as the
platform's web client does, so that no charset conversion on the way can alter it.

Where the sources disagree or are silent, medpay chose (and an adapter should confirm
against the platform's test environment):

* ASCII order, as the specification says, although one Java port sorts
  case-insensitively (the orders differ for keys like ``feeSumamt`` / ``feedetlSn``).
* The key from the *hex* of the SM4 output (the PHP port, the web client, and the
  platform's ciphertext above); one C# port takes it from the base64 instead, and
  sends DER signatures.
* Scalars are strings at every depth of ``data`` (Java); the web client does so only
  at the first level.
* ``timestamp`` is a JSON integer only; ``extra`` (unsigned by definition) and any
  other field are refused, so nothing unsigned is ever accepted.

What the canonical form cannot protect, by construction of the national scheme:
absent, null, ``""`` and ``[]`` sign alike, and so do a number and its string. Only a
holder of ``appSecret`` (hence of the SM4 key) can rewrite ``encData`` at all, but an
adapter should still decode the business data into typed Structs in which these mean
the same. The derived SM4 key has only 16 hex characters (64 bits), and ECB shows
repeated blocks; HTTPS carries the envelope, as the specification requires.

No replay or timestamp policy here: the gateway applies it to
:attr:`OpenedEnvelope.timestamp_ms`, and keys uniqueness on :func:`replay_digest`.

**Answers** (:class:`AnswerEnvelope`, :func:`seal_answer`, :func:`open_answer`) carry
the same fields and two more, as the platform's answers do: ``code`` (0 for success)
and ``message``; medpay adds ``errCode``, the stable name of a failure. They are
signed by the answering side's SM2 key by the same rules (``code``, ``message`` and
``errCode`` take part like any field), with ``&key=`` followed by the appSecret of
the ``appId`` the answer names, or by nothing when it names none (an answer to an
unknown or malformed appId: there is no secret to use). ``encData`` is present when
there is business data, encrypted with that app's SM4 key.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Final, TypeVar

import msgspec

from medpay.wire import gm
from medpay.wire.yuan import YuanFen, fen_to_yuan
from medpay.wire.yuan import enc_hook as yuan_enc_hook

__all__ = [
    "ENC_TYPE",
    "SIGN_TYPE",
    "AnswerEnvelope",
    "BusinessDataNotJson",
    "DecryptionFailed",
    "Envelope",
    "EnvelopeError",
    "MalformedEnvelope",
    "OpenedAnswer",
    "OpenedEnvelope",
    "SignatureInvalid",
    "UnsupportedAlgorithm",
    "decode_answer",
    "decode_envelope",
    "derive_sm4_key",
    "encode_answer",
    "encode_envelope",
    "open_answer",
    "open_envelope",
    "replay_digest",
    "seal",
    "seal_answer",
    "sign_string",
]

ENC_TYPE: Final = "SM4"
SIGN_TYPE: Final = "SM2"

#: Fields that never take part in the signed string (the specification's list).
_UNSIGNED: Final = frozenset({"signData", "encData", "extra"})
_DATA_FIELD: Final = "data"
_DEPTH_MAX: Final = 32
_ENC_DATA_MAX: Final = 8 * 1024 * 1024  # hex characters: 4 MiB of ciphertext
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+", re.ASCII)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class EnvelopeError(ValueError):
    """The envelope cannot be opened; the subclass says why (one stable code each)."""


class MalformedEnvelope(EnvelopeError):
    """Not JSON, not an object, a field missing, unknown or of the wrong type."""


class UnsupportedAlgorithm(EnvelopeError):
    """``encType`` is not "SM4" or ``signType`` is not "SM2"."""


class DecryptionFailed(EnvelopeError):
    """``encData`` is not hex, not whole SM4 blocks, or does not decrypt under the app's key.

    A wrong key is caught by the padding check (255 times in 256) and otherwise by
    the plaintext not being UTF-8; it is never taken for data.
    """


class BusinessDataNotJson(EnvelopeError):
    """``encData`` decrypts to text that is not a JSON object."""


class SignatureInvalid(EnvelopeError):
    """``signData`` is malformed or does not verify under the app's public key."""


# --- the envelope ---------------------------------------------------------------------------

AppId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{16,64}$")]
TimestampMs = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Version = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z._-]{1,16}$")]


class Envelope(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The envelope as it travels; its fields keep the national names.

    ``appId`` is 16 to 64 letters and digits (its first 16 characters key the SM4
    derivation), ``version`` letters, digits and ``._-``: neither can contain ``&`` or
    ``=``, so no value can pose as another field in the signed string.
    """

    appId: AppId
    timestamp: TimestampMs  # unix milliseconds
    encType: Annotated[str, msgspec.Meta(max_length=16)]  # "SM4"
    signType: Annotated[str, msgspec.Meta(max_length=16)]  # "SM2"
    encData: Annotated[str, msgspec.Meta(max_length=_ENC_DATA_MAX)]  # upper-case hex
    signData: Annotated[str, msgspec.Meta(max_length=256)]  # base64 of r || s
    version: Version | None = None


class OpenedEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified, decrypted envelope says.

    ``data`` is the business data, JSON numbers with a fraction or exponent as
    Decimal (exactly as sent; :mod:`medpay.wire.yuan` turns yuan into fen).
    """

    app_id: str
    timestamp_ms: int
    version: str | None
    data: dict[str, Any]


_T = TypeVar("_T")

_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)
_ENVELOPE_ENCODER = msgspec.json.Encoder()
_DATA_DECODER = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal)
_DATA_ENCODER = msgspec.json.Encoder(
    enc_hook=yuan_enc_hook, decimal_format="number", order="sorted"
)
_CANONICAL_ENCODER = msgspec.json.Encoder(order="sorted")


def encode_envelope(envelope: Envelope) -> bytes:
    """The envelope as JSON bytes (``version`` omitted when None)."""
    return _ENVELOPE_ENCODER.encode(envelope)


def decode_envelope(body: bytes | str) -> Envelope:
    """Parse an envelope; nothing is verified or decrypted yet.

    Raises:
        MalformedEnvelope: not JSON, or a field is missing, unknown or of the wrong type.
    """
    return _decoded(_ENVELOPE_DECODER, body, "envelope")


def _decoded(decoder: msgspec.json.Decoder[_T], body: bytes | str, what: str) -> _T:
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedEnvelope(f"malformed {what}: {exc}") from exc


# --- the signed string ------------------------------------------------------------------------

_SKIP: Final = object()


def _scalar_text(value: Any) -> str:
    # bool before int (a bool is an int); YuanFen before int: it is fen, sent as yuan.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, YuanFen):
        return fen_to_yuan(value)
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"not a JSON number: {value!r}")
    if isinstance(value, int | Decimal | str):
        return str(value)
    if isinstance(value, float):
        raise TypeError(f"a float is not exact ({value!r}): use Decimal or str")
    raise TypeError(f"cannot sign a value of type {type(value).__name__}")


def _canonical(value: Any, depth: int = 0) -> Any:
    """``value`` as the signed JSON holds it: empties skipped, scalars as strings."""
    if depth > _DEPTH_MAX:
        raise ValueError(f"business data nested deeper than {_DEPTH_MAX} levels")
    if value is None or value == "":
        return _SKIP
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, got {type(key).__name__}")
            canonical = _canonical(item, depth + 1)
            if canonical is not _SKIP:
                out[key] = canonical
        return out
    if isinstance(value, list | tuple):
        items = [c for c in (_canonical(v, depth + 1) for v in value) if c is not _SKIP]
        return items or _SKIP
    return _scalar_text(value)


def sign_string(fields: Mapping[str, Any], app_secret: str) -> bytes:
    """The bytes ``signData`` signs: sorted ``key=value`` pairs, ``&key=<appSecret>``.

    ``fields`` are the envelope's fields with the plaintext business data as ``data``
    (see the module docstring for every rule).

    Raises:
        TypeError: a value cannot be signed (a float, an unknown type).
        ValueError: ``data`` is nested too deeply, or holds a Decimal NaN or Infinity.
    """
    parts = []
    for key in sorted(fields):
        if key in _UNSIGNED:
            continue
        value = _canonical(fields[key])
        if value is _SKIP:
            continue
        text = value if isinstance(value, str) else _CANONICAL_ENCODER.encode(value).decode()
        parts.append(f"{key}={text}")
    parts.append(f"key={app_secret}")
    return "&".join(parts).encode()


def _signed_fields(
    *, app_id: str, timestamp_ms: int, version: str | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "appId": app_id,
        _DATA_FIELD: data,
        "encType": ENC_TYPE,
        "signType": SIGN_TYPE,
        "timestamp": timestamp_ms,
        "version": version,
    }


# --- the SM4 key and encData ---------------------------------------------------------------------


def derive_sm4_key(app_id: str, app_secret: str) -> bytes:
    """The app's SM4 key: 16 ASCII hex characters derived from ``appId`` and ``appSecret``.

    Raises:
        ValueError: ``app_id`` has fewer than 16 ASCII characters, or ``app_secret`` is
            empty.
    """
    seed = app_id[: gm.SM4_KEY_LENGTH]
    if len(seed) != gm.SM4_KEY_LENGTH or not seed.isascii():
        raise ValueError("appId must start with 16 ASCII characters")
    if not app_secret:
        raise ValueError("appSecret must not be empty")
    ciphertext = gm.sm4_ecb_encrypt(seed.encode("ascii"), app_secret.encode())
    return ciphertext.hex().upper()[: gm.SM4_KEY_LENGTH].encode("ascii")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON writes it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _ascii_json(data: Mapping[str, Any]) -> bytes:
    # Non-ASCII characters occur only inside JSON strings, where \u escapes mean the same.
    return _NON_ASCII.sub(_escape, _DATA_ENCODER.encode(data).decode()).encode("ascii")


# --- seal and open ---------------------------------------------------------------------------------


def seal(
    data: Mapping[str, Any] | msgspec.Struct,
    *,
    app_id: str,
    app_secret: str,
    private_key: gm.Sm2PrivateKey,
    timestamp_ms: int | None = None,
    version: str | None = None,
    signature_encoding: gm.SignatureEncoding = "raw",
) -> Envelope:
    """Sign ``data`` with the app's SM2 key, then encrypt it with the app's SM4 key.

    ``data`` is a JSON object: a mapping of JSON values (amounts as Decimal, str or
    :class:`~medpay.wire.yuan.YuanFen`, never float), or a Struct. ``timestamp_ms``
    defaults to now.

    Raises:
        TypeError: ``data`` holds a float or another value JSON cannot carry exactly.
        ValueError: ``app_id`` or ``version`` is not of the envelope's form.
    """
    if isinstance(data, msgspec.Struct):
        data = msgspec.to_builtins(data, builtin_types=(Decimal,), enc_hook=yuan_enc_hook)
    if not isinstance(data, Mapping):
        raise TypeError("business data must be a JSON object")
    stamp = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    signed = sign_string(
        _signed_fields(app_id=app_id, timestamp_ms=stamp, version=version, data=data),
        app_secret,
    )
    signature = base64.b64encode(gm.sign(private_key, signed, encoding=signature_encoding))
    ciphertext = gm.sm4_ecb_encrypt(derive_sm4_key(app_id, app_secret), _ascii_json(data))
    fields = {
        "appId": app_id,
        "timestamp": stamp,
        "encType": ENC_TYPE,
        "signType": SIGN_TYPE,
        "encData": ciphertext.hex().upper(),
        "signData": signature.decode("ascii"),
        "version": version,
    }
    try:  # the same checks a receiver makes: we never send what we would refuse
        return msgspec.convert(fields, Envelope)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a valid envelope: {exc}") from exc


def _decrypt(app_id: str, enc_data: str, app_secret: str) -> dict[str, Any]:
    """The business data of ``encData``, an envelope's or an answer's, sealed for ``app_id``."""
    if not _HEX.fullmatch(enc_data):
        raise DecryptionFailed("encData is not hex (whole bytes)")
    key = derive_sm4_key(app_id, app_secret)
    try:
        plaintext = gm.sm4_ecb_decrypt(key, bytes.fromhex(enc_data))
    except gm.GmError as exc:
        raise DecryptionFailed(f"encData does not decrypt: {exc}") from exc
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionFailed("encData decrypts to bytes that are not UTF-8") from exc
    try:  # msgspec answers JSON nested beyond Python's recursion limit with RecursionError
        return _DATA_DECODER.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise BusinessDataNotJson(f"business data is not a JSON object: {exc}") from exc


def open_envelope(
    envelope: Envelope,
    *,
    app_secret: str,
    public_key: gm.Sm2PublicKey,
    signature_encoding: gm.SignatureEncoding = "raw",
) -> OpenedEnvelope:
    """Decrypt ``encData`` with the app's SM4 key and verify ``signData`` over it.

    The order is the scheme's: the signature covers the plaintext, so decryption
    comes first; nothing is returned unless the signature verifies.

    Raises:
        UnsupportedAlgorithm: ``encType`` / ``signType`` are not SM4 / SM2.
        DecryptionFailed: ``encData`` does not decrypt under the app's key.
        BusinessDataNotJson: it decrypts to something that is not a JSON object.
        SignatureInvalid: ``signData`` is malformed or does not verify.
    """
    if envelope.encType != ENC_TYPE or envelope.signType != SIGN_TYPE:
        raise UnsupportedAlgorithm(
            f"encType {envelope.encType!r} / signType {envelope.signType!r}: "
            f"only {ENC_TYPE} / {SIGN_TYPE}"
        )
    data = _decrypt(envelope.appId, envelope.encData, app_secret)
    fields = _signed_fields(
        app_id=envelope.appId,
        timestamp_ms=envelope.timestamp,
        version=envelope.version,
        data=data,
    )
    _check_sign_data(public_key, envelope.signData, fields, app_secret, signature_encoding)
    return _opened(OpenedEnvelope, envelope, data)


def _check_sign_data(
    public_key: gm.Sm2PublicKey,
    sign_data: str,
    fields: Mapping[str, Any],
    app_secret: str,
    encoding: gm.SignatureEncoding,
) -> None:
    """Check ``signData`` over the signed string of ``fields``, an envelope's or an answer's.

    Raises:
        BusinessDataNotJson: the data is nested too deeply to be signed.
        SignatureInvalid: ``signData`` is malformed or does not verify.
    """
    try:
        signed = sign_string(fields, app_secret)
    except ValueError as exc:  # nested too deeply
        raise BusinessDataNotJson(str(exc)) from exc
    try:
        gm.verify_base64(public_key, sign_data, signed, encoding=encoding)
    except gm.GmError as exc:
        raise SignatureInvalid(f"signData: {exc}") from exc


def replay_digest(opened: OpenedEnvelope) -> str:
    """What identifies one signed message, for replay protection: SHA-256 of its signed string.

    The string of :func:`sign_string` without the appSecret (so nothing derived from
    the secret is stored): ``appId``, ``timestamp``, ``version`` and the business data,
    canonical. Two envelopes with the same digest say the same thing at the same
    millisecond, whatever their signature bytes.
    """
    fields = _signed_fields(
        app_id=opened.app_id,
        timestamp_ms=opened.timestamp_ms,
        version=opened.version,
        data=opened.data,
    )
    return hashlib.sha256(sign_string(fields, "")).hexdigest()


# --- answers -------------------------------------------------------------------------------------

ErrCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,64}$")]


class AnswerEnvelope(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """An answer as it travels: the request envelope's fields, ``code`` and ``message``.

    ``code`` is 0 for success; ``errCode`` names a failure (stable, snake_case);
    ``appId`` is absent when the request named no registered app; ``encData`` is
    present when the answer carries business data.
    """

    code: int
    message: Annotated[str, msgspec.Meta(max_length=1000)]
    errCode: ErrCode | None = None
    appId: AppId | None = None
    timestamp: TimestampMs
    encType: Annotated[str, msgspec.Meta(max_length=16)] = ENC_TYPE
    signType: Annotated[str, msgspec.Meta(max_length=16)] = SIGN_TYPE
    encData: Annotated[str, msgspec.Meta(max_length=_ENC_DATA_MAX)] | None = None
    signData: Annotated[str, msgspec.Meta(max_length=256)]
    version: Version | None = None


class OpenedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified (and, with data, decrypted) answer says."""

    code: int
    message: str
    err_code: str | None
    app_id: str | None
    timestamp_ms: int
    data: dict[str, Any] | None


_ANSWER_DECODER = msgspec.json.Decoder(AnswerEnvelope)


#: Our name of each field an envelope or an answer travels with (camelCase on the wire).
_OPENED_NAMES: Final = {
    "code": "code",
    "message": "message",
    "errCode": "err_code",
    "appId": "app_id",
    "timestamp": "timestamp_ms",
    "version": "version",
}

_OpenedT = TypeVar("_OpenedT", OpenedEnvelope, OpenedAnswer)


def _opened(
    opened_type: type[_OpenedT], sent: Envelope | AnswerEnvelope, data: dict[str, Any] | None
) -> _OpenedT:
    """What ``sent`` says once verified, under our names, with its business data."""
    wanted = opened_type.__struct_fields__
    fields: dict[str, Any] = {
        ours: getattr(sent, theirs) for theirs, ours in _OPENED_NAMES.items() if ours in wanted
    }
    fields["data"] = data  # an envelope's always; an answer's when it carries any
    return opened_type(**fields)


def _answer_fields(answer: AnswerEnvelope, data: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "code": answer.code,
        "message": answer.message,
        "errCode": answer.errCode,
        "appId": answer.appId,
        _DATA_FIELD: data,
        "encType": answer.encType,
        "signType": answer.signType,
        "timestamp": answer.timestamp,
        "version": answer.version,
    }


def seal_answer(
    data: Mapping[str, Any] | msgspec.Struct | None,
    *,
    code: int,
    message: str,
    private_key: gm.Sm2PrivateKey,
    app_id: str | None = None,
    app_secret: str | None = None,
    err_code: str | None = None,
    timestamp_ms: int | None = None,
    version: str | None = None,
) -> AnswerEnvelope:
    """An answer signed with ``private_key``; ``data`` (if any) encrypted for ``app_id``.

    Raises:
        ValueError: data without an app and its secret, an app without its secret, or
            a field not of the answer's form.
        TypeError: ``data`` holds a float or another value JSON cannot carry exactly.
    """
    if (app_id is None) != (app_secret is None):
        raise ValueError("an answer names an app together with its secret, or neither")
    if isinstance(data, msgspec.Struct):
        data = msgspec.to_builtins(data, builtin_types=(Decimal,), enc_hook=yuan_enc_hook)
    if data is not None and not isinstance(data, Mapping):
        raise TypeError("business data must be a JSON object")
    if data is not None and (app_id is None or app_secret is None):
        raise ValueError("business data is encrypted for an app: name it and its secret")
    stamp = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    fields: dict[str, Any] = {
        "code": code,
        "message": message,
        "errCode": err_code,
        "appId": app_id,
        "timestamp": stamp,
        "version": version,
        "signData": "",
    }
    try:
        unsigned = msgspec.convert(fields, AnswerEnvelope)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a valid answer: {exc}") from exc
    signed = sign_string(_answer_fields(unsigned, data), app_secret or "")
    signature = base64.b64encode(gm.sign(private_key, signed, encoding="raw")).decode("ascii")
    enc_data = None
    if data is not None:
        assert app_id is not None and app_secret is not None
        ciphertext = gm.sm4_ecb_encrypt(derive_sm4_key(app_id, app_secret), _ascii_json(data))
        enc_data = ciphertext.hex().upper()
    return msgspec.structs.replace(unsigned, signData=signature, encData=enc_data)


def encode_answer(answer: AnswerEnvelope) -> bytes:
    """The answer as JSON bytes (absent fields omitted)."""
    return _ENVELOPE_ENCODER.encode(answer)


def decode_answer(body: bytes | str) -> AnswerEnvelope:
    """Parse an answer as :func:`decode_envelope` parses an envelope (and raises alike)."""
    return _decoded(_ANSWER_DECODER, body, "answer")


def open_answer(
    answer: AnswerEnvelope | bytes | str,
    *,
    app_id: str,
    app_secret: str,
    public_key: gm.Sm2PublicKey,
) -> OpenedAnswer:
    """Verify an answer to app ``app_id`` with the answering side's key; decrypt its data.

    Raises:
        MalformedEnvelope: not an answer, or an answer naming another app.
        UnsupportedAlgorithm: not SM4 / SM2.
        DecryptionFailed, BusinessDataNotJson: ``encData`` does not open.
        SignatureInvalid: ``signData`` does not verify.
    """
    if not isinstance(answer, AnswerEnvelope):
        answer = decode_answer(answer)
    if answer.encType != ENC_TYPE or answer.signType != SIGN_TYPE:
        raise UnsupportedAlgorithm(f"encType {answer.encType!r} / signType {answer.signType!r}")
    if answer.appId is not None and answer.appId != app_id:
        raise MalformedEnvelope(f"the answer is for app {answer.appId!r}, not {app_id!r}")
    secret = app_secret if answer.appId is not None else ""
    data = None
    if answer.encData is not None:
        if answer.appId is None:
            raise MalformedEnvelope("encData in an answer that names no app")
        data = _decrypt(answer.appId, answer.encData, secret)
    _check_sign_data(public_key, answer.signData, _answer_fields(answer, data), secret, "raw")
    return _opened(OpenedAnswer, answer, data)
