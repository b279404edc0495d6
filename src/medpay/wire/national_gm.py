r"""The national profile of the settlement wire: SM2 ``cainfo`` and yuan amounts (DOMAIN.md 8).

:mod:`medpay.wire.national` is our profile: integer fen under the national field
names and Ed25519 (:mod:`medpay.wire.signing`). The national profile differs in two
things only, and this module is both of them, as codecs over the same envelopes and
Structs, so that the gateway's adapter and the simulator convert in one place:

* **Amounts are yuan**, "以元为单位" with two decimals as the national field lists
  give them (``数值型(16,2)``): every field named in :data:`AMOUNT_FIELDS` travels as
  a JSON number with exactly two places (``"medfee_sumamt": 123.40``), written from
  integer fen and read back to integer fen by :mod:`medpay.wire.yuan`, which never
  rounds: more than two decimals, a negative amount, exponent notation, NaN, a
  boolean or anything that is not a decimal number is a :class:`~medpay.wire.yuan.YuanError`.
  JSON numbers are read as Decimal, never as float. Ratios (``pool_prop_selfpay``,
  ``selfpay_prop``) stay integer basis points, as our profile's extensions define them.
* **Signatures are SM2** (SM3withSM2 under the default user id, :mod:`medpay.wire.gm`):
  ``cainfo`` is base64 of the raw ``r || s`` over the same canonical string as our
  profile (:func:`medpay.wire.signing.canonical_string`: sorted ``key=value`` pairs,
  nested values as compact JSON with sorted keys), computed over the envelope **as
  sent**, amounts in yuan; ``signtype`` is "SM2". Answers and callbacks are signed by
  the province over their raw bytes, in the same two headers as our profile
  (``X-Province-Timestamp``, ``X-Province-Signature``), with SM2 over
  ``f"{timestamp}\n{hex(SM3(body))}"``: the bytes parsed are the bytes signed, and the
  timestamp bounds replays.

In the canonical string a Decimal is written as its text (``"123.40"``, quoted, as
the canonical JSON writes it), so sender and receiver, both holding Decimals read
from or written to the same JSON text, sign the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import msgspec

from medpay.wire import gm
from medpay.wire.signing import (
    DEFAULT_MAX_SKEW_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    canonical_string,
    fresh_signature_headers,
)
from medpay.wire.yuan import fen_to_decimal, yuan_to_fen

__all__ = [
    "AMOUNT_FIELDS",
    "SIGNTYPE_SM2",
    "SignatureError",
    "amounts_to_fen",
    "amounts_to_yuan",
    "body_signature_headers",
    "decode",
    "encode",
    "encode_request",
    "sign_envelope",
    "verify_body_signature",
    "verify_envelope",
]

SIGNTYPE_SM2: Final = "SM2"

#: The national fields that carry money (yuan on this profile, integer fen in code):
#: fee items (2204/2206/2207 ``feedetail``), ``setlinfo``, ``setldetail`` and the 2208
#: answer. A field not listed here is never converted.
AMOUNT_FIELDS: Final = frozenset(
    {
        "pric",  # unit price
        "det_item_fee_sumamt",  # cnt * pric
        "pric_uplmt_amt",  # price limit per unit
        "medfee_sumamt",  # medical fee total
        "fulamt_ownpay_amt",  # fully self-paid (class C, non-medical)
        "overlmt_selfpay",  # over the price limit
        "preselfpay_amt",  # class B pre-self-pay
        "inscp_scp_amt",  # in scope
        "act_pay_dedc",  # deductible applied
        "hifp_pay",  # basic fund
        "hifmi_pay",  # critical-illness insurance
        "maf_pay",  # medical assistance
        "fund_pay_sumamt",  # all funds
        "psn_part_amt",  # the person's share
        "acct_pay",  # personal account
        "psn_cash_pay",  # cash
        "balc",  # personal account balance after
        "crt_payb_lmt_amt",  # the base a fund's ratio applied to
        "fund_payamt",  # one fund's payment
    }
)

_CAINFO: Final = "cainfo"
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _convert(value: Any, convert_amount: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                convert_amount(item)
                if key in AMOUNT_FIELDS and item is not None
                else _convert(item, convert_amount)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_convert(item, convert_amount) for item in value]
    return value


def amounts_to_yuan(value: Any) -> Any:
    """``value`` (JSON builtins) with every amount field as a two-place Decimal of yuan.

    Raises:
        YuanError: an amount field holds something that is not integer fen in range.
    """
    return _convert(value, fen_to_decimal)


def amounts_to_fen(value: Any) -> Any:
    """``value`` (JSON builtins read with Decimal numbers) with every amount as integer fen.

    Raises:
        YuanError: an amount is not exact yuan: more than two decimals, negative,
            exponent notation, a float or boolean, or not a number at all.
    """
    return _convert(value, yuan_to_fen)


def encode(value: Any) -> bytes:
    """JSON bytes with Decimals as numbers (``123.40``), as the national wire carries them."""
    return _ENCODER.encode(value)


def decode(body: bytes | str) -> Any:
    """JSON with every number that has a fraction or exponent read as Decimal, exactly.

    Raises:
        msgspec.DecodeError: not JSON.
    """
    return _DECODER.decode(body)


# --- cainfo ---------------------------------------------------------------------------------


def sign_envelope(fields: Mapping[str, Any], key: gm.Sm2PrivateKey) -> dict[str, Any]:
    """``fields`` (an envelope's builtins, amounts in yuan) with ``signtype`` SM2 and ``cainfo``."""
    signed = {**fields, "signtype": SIGNTYPE_SM2, _CAINFO: ""}
    signed[_CAINFO] = gm.sign_base64(key, canonical_string(signed), encoding="raw")
    return signed


def verify_envelope(fields: Mapping[str, Any], public_keys: Iterable[gm.Sm2PublicKey]) -> None:
    """Check ``cainfo`` over ``fields`` (the envelope as received) against any of ``public_keys``.

    Raises:
        SignatureError: ``signtype`` is not SM2, ``cainfo`` is missing, or no key verifies it.
    """
    if fields.get("signtype") != SIGNTYPE_SM2:
        raise SignatureError(f"signtype must be {SIGNTYPE_SM2}")
    signature = fields.get(_CAINFO)
    if not signature or not isinstance(signature, str):
        raise SignatureError("cainfo missing")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("cainfo does not verify") from exc
    _verify_by_any(public_keys, raw, canonical_string(fields), "cainfo does not verify")


def encode_request(envelope: msgspec.Struct, key: gm.Sm2PrivateKey) -> bytes:
    """A request envelope as sent on this profile: amounts in yuan, then signed, then JSON.

    Raises:
        YuanError: an amount in ``input`` cannot be carried (negative, out of range).
    """
    fields = msgspec.to_builtins(envelope)
    fields["input"] = amounts_to_yuan(fields.get("input"))
    return encode(sign_envelope(fields, key))


# --- answers and callbacks (the raw body, in headers) ----------------------------------------


def _body_message(timestamp: str, body: bytes) -> bytes:
    return f"{timestamp}\n{gm.sm3(body).hex()}".encode()


def body_signature_headers(
    body: bytes, key: gm.Sm2PrivateKey, *, timestamp: int | None = None
) -> dict[str, str]:
    """The two headers that sign ``body`` as sent, with SM2."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = gm.sign_base64(key, _body_message(stamp, body), encoding="raw")
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}


def verify_body_signature(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    public_keys: Iterable[gm.Sm2PublicKey] | gm.Sm2PublicKey,
    *,
    now: float | None = None,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> None:
    """Check a body signed with SM2: a fresh timestamp and a signature by one of ``public_keys``.

    Raises:
        SignatureError: as :func:`medpay.wire.signing.verify_body_signature` (and a
            timestamp of more than 12 digits is not unix seconds).
    """
    timestamp, signature = fresh_signature_headers(
        timestamp, signature, now=now, max_skew_s=max_skew_s, max_digits=12
    )
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature is not base64") from exc
    keys = [public_keys] if isinstance(public_keys, gm.Sm2PublicKey) else public_keys
    _verify_by_any(keys, raw, _body_message(timestamp, body), "body signature does not verify")


def _verify_by_any(
    public_keys: Iterable[gm.Sm2PublicKey], signature: bytes, message: bytes, failure: str
) -> None:
    """Pass when one of ``public_keys`` verifies ``signature`` (raw r || s) over ``message``.

    Raises:
        SignatureError: ``failure``, when none does.
    """
    for public_key in public_keys:
        try:
            gm.verify(public_key, signature, message, encoding="raw")
        except gm.GmError:
            continue
        return
    raise SignatureError(failure)
