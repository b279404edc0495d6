"""How one simulated province speaks on the wire: our profile, or the national one.

A province's ``profile`` (:class:`~medpay.simulator.config.ProvinceConfig`) decides
the algorithm of every signature and the unit of every amount it exchanges:

* ``medpay``: Ed25519 ``cainfo`` and body signatures, integer fen
  (:mod:`medpay.wire.signing`, :mod:`medpay.wire.national`);
* ``national``: SM2 ``cainfo`` (``signtype`` "SM2") and SM2 body signatures, amounts
  as two-place yuan (:mod:`medpay.wire.national_gm`).

Everything behind the HTTP edge (the policy, the msgid log, the store) works in
integer fen whatever the profile: a request is read into fen here, and answers and
callbacks are written from fen here. A request whose amounts are not exact yuan is
refused like any malformed request; nothing else about it is looked at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from medpay.wire import gm, national_gm
from medpay.wire.national import SIGNTYPE, encode
from medpay.wire.signing import (
    SignatureError,
    body_signature_headers,
    load_private_key,
    load_public_key,
    verify_canonical,
)
from medpay.wire.yuan import YuanError

if TYPE_CHECKING:
    from medpay.wire.national import SettlementCallback

__all__ = [
    "PROFILES",
    "MalformedInput",
    "MedpayProfile",
    "NationalProfile",
    "Profile",
    "ProvinceWire",
    "province_wire",
]

Profile = Literal["medpay", "national"]
PROFILES: tuple[Profile, ...] = ("medpay", "national")


class MalformedInput(ValueError):
    """The request's input cannot be read on this profile (an amount not exact yuan)."""


class ProvinceWire:
    """What differs between the profiles, for one province (see the module docstring)."""

    profile: Profile

    def read_input(self, raw: bytes) -> Any:
        """The request's ``input`` as JSON builtins, exactly as signed (raises DecodeError)."""
        raise NotImplementedError

    def check_signature(self, fields: dict[str, Any]) -> None:
        """Refuse a request whose ``cainfo`` the gateway's keys do not sign (SignatureError)."""
        raise NotImplementedError

    def input_in_fen(self, builtins: Any) -> Any:
        """The checked input with every amount in integer fen (raises MalformedInput)."""
        return builtins

    def answer(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        """An answer made in fen, as this province sends it: the bytes and their signature."""
        raise NotImplementedError

    def callback(self, callback: SettlementCallback) -> bytes:
        """A callback's body as this province sends it (signed later, at each attempt)."""
        return encode(callback)

    def sign(self, body: bytes) -> dict[str, str]:
        """The signature headers over ``body`` as sent."""
        raise NotImplementedError


class MedpayProfile(ProvinceWire):
    """Our profile: Ed25519, integer fen."""

    profile: Profile = "medpay"

    def __init__(self, private_key_pem: str, gateway_keys: list[str], *, required: bool) -> None:
        self._key = load_private_key(private_key_pem)
        self._gateway_keys = [load_public_key(pem) for pem in gateway_keys]
        self._required = required

    @property
    def public_key_pem(self) -> str:
        """The province's public key, for the gateway's clearing configuration."""
        from medpay.wire.signing import public_key_pem

        return public_key_pem(self._key)

    def read_input(self, raw: bytes) -> Any:
        """Integers are fen."""
        return msgspec.json.decode(raw)

    def check_signature(self, fields: dict[str, Any]) -> None:
        """Ed25519 ``cainfo`` by one of the gateway's keys."""
        if not self._gateway_keys:
            if self._required:
                raise SignatureError("no gateway key is trusted, and signatures are required")
            return
        if fields.get("signtype") != SIGNTYPE:
            raise SignatureError(f"signtype must be {SIGNTYPE}")
        verify_canonical(fields, self._gateway_keys)

    def answer(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        """Sent as made."""
        return body, self.sign(body)

    def sign(self, body: bytes) -> dict[str, str]:
        """Ed25519 over the body."""
        return body_signature_headers(body, self._key)


class NationalProfile(ProvinceWire):
    """The national profile: SM2 signatures, amounts as two-place yuan."""

    profile: Profile = "national"

    def __init__(self, private_key_pem: str, gateway_keys: list[str], *, required: bool) -> None:
        self._key = gm.load_private_key(private_key_pem)
        self._gateway_keys = [gm.load_public_key(pem) for pem in gateway_keys]
        self._required = required

    @property
    def public_key_pem(self) -> str:
        """The province's SM2 public key, for the gateway's clearing configuration."""
        return gm.public_key_pem(self._key)

    def read_input(self, raw: bytes) -> Any:
        """Numbers with a fraction as Decimal, exactly as sent (yuan)."""
        return national_gm.decode(raw)

    def check_signature(self, fields: dict[str, Any]) -> None:
        """SM2 ``cainfo`` (``signtype`` SM2) by one of the gateway's SM2 keys."""
        if not self._gateway_keys:
            if self._required:
                raise SignatureError("no gateway SM2 key is trusted, and signatures are required")
            return
        national_gm.verify_envelope(fields, self._gateway_keys)

    def input_in_fen(self, builtins: Any) -> Any:
        """Yuan to fen, exactly, or MalformedInput."""
        try:
            return national_gm.amounts_to_fen(builtins)
        except YuanError as exc:
            raise MalformedInput(f"an amount is not exact yuan: {exc}") from exc

    def answer(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        """The output's amounts in yuan, then SM2 over the bytes sent."""
        envelope = msgspec.json.decode(body)
        envelope["output"] = national_gm.amounts_to_yuan(envelope.get("output"))
        sent = national_gm.encode(envelope)
        return sent, self.sign(sent)

    def callback(self, callback: SettlementCallback) -> bytes:
        """Amounts in yuan."""
        return national_gm.encode(national_gm.amounts_to_yuan(msgspec.to_builtins(callback)))

    def sign(self, body: bytes) -> dict[str, str]:
        """SM2 over the body."""
        return national_gm.body_signature_headers(body, self._key)


def province_wire(
    profile: Profile,
    private_key_pem: str,
    *,
    gateway_keys: list[str],
    gateway_sm2_keys: list[str],
    required: bool,
) -> MedpayProfile | NationalProfile:
    """The wire of a province on ``profile``, signing with ``private_key_pem`` (of that profile).

    Raises:
        ValueError: the key is not of the profile's algorithm.
    """
    if profile == "national":
        return NationalProfile(private_key_pem, gateway_sm2_keys, required=required)
    return MedpayProfile(private_key_pem, gateway_keys, required=required)
