"""The national wire format on the national profile: SM2 ``cainfo``, amounts in yuan.

The same transactions, envelopes, transport and error classification as
:class:`~medpay.settlement.adapters.national_http.NationalHttpAdapter` (our profile);
what differs is the codec of :mod:`medpay.wire.national_gm`:

* requests carry every amount as two-place yuan and are signed with the gateway's SM2
  key (``signtype`` "SM2", ``cainfo`` over the envelope as sent);
* answers and callbacks are checked against the province's SM2 key (over their raw
  bytes) and their amounts read back to integer fen exactly. An amount with more
  than two decimals, a negative one, exponent notation or anything that is not a
  decimal number makes the answer :class:`ProvinceResponseInvalid`: the outcome stays
  unknown and is resolved by 6301 or a resend under the same msgid, never settled on
  a guess; in a callback it is ``callback_malformed``.

Configured per province (``kind`` "national_sm2" in the clearing configuration): its
``public_key_pem`` is the province's SM2 key (PEM, or hex ``04 || x || y`` as
national platforms hand keys out), and ``ClearingConfig.sm2_signing_key_pem`` is
the gateway's SM2 private key. Provinces on either profile settle side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec

from medpay.settlement.adapters.base import PROBLEM_PROVINCE_REFUSED_REQUEST, ProvinceRejected
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.wire import gm, national_gm
from medpay.wire.national import ResponseEnvelope, SettlementCallback
from medpay.wire.yuan import YuanError

if TYPE_CHECKING:
    from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
    from medpay.wire.national import RequestEnvelope

__all__ = ["NationalSm2Adapter", "load_sm2_public_key"]


def load_sm2_public_key(text: str) -> gm.Sm2PublicKey:
    """A province's SM2 public key from PEM or from hex (``04 || x || y`` or ``x || y``).

    Raises:
        ValueError: neither, or not a point on the SM2 curve.
    """
    if text.lstrip().startswith("-----BEGIN"):
        return gm.load_public_key(text)
    return gm.load_public_key_hex(text)


class NationalSm2Adapter(NationalHttpAdapter):
    """A province speaking the national envelope on the national profile (SM2, yuan)."""

    kind = "national_sm2"

    def __init__(
        self,
        url: str,
        province_code: str,
        signing_key: gm.Sm2PrivateKey,
        province_public_key: gm.Sm2PublicKey,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """As :class:`NationalHttpAdapter` (client, timeout, options), with SM2 keys."""
        # The base keeps the keys for its own (Ed25519) codec, which this class replaces.
        super().__init__(
            url,
            province_code,
            cast("Any", signing_key),
            cast("Any", province_public_key),
            *args,
            **kwargs,
        )
        self._sm2_signing_key = signing_key
        self._sm2_province_key = province_public_key

    @classmethod
    def from_endpoint(
        cls, endpoint: ProvinceEndpoint, config: ClearingConfig, client: httpx.AsyncClient
    ) -> NationalSm2Adapter:
        """Build from one line of the clearing configuration (see ``registry``).

        Raises:
            ValueError: the configuration has no SM2 signing key, or a key is not SM2.
        """
        if not config.sm2_signing_key_pem:
            raise ValueError(
                f"province {endpoint.admdvs} is on the national profile (national_sm2): "
                "the clearing configuration needs sm2_signing_key_pem"
            )
        return cls._configured(
            endpoint,
            config,
            client,
            gm.load_private_key(config.sm2_signing_key_pem),
            load_sm2_public_key(endpoint.public_key_pem),
        )

    # --- the national profile's codec -------------------------------------------------------

    def _encode_request(self, envelope: RequestEnvelope[Any]) -> bytes:
        try:
            return national_gm.encode_request(envelope, self._sm2_signing_key)
        except YuanError as exc:  # nothing was sent: the request cannot be carried in yuan
            raise ProvinceRejected(
                PROBLEM_PROVINCE_REFUSED_REQUEST,
                0,
                f"an amount cannot be carried as yuan: {exc}",
                province=self.province_code,
                msgid=envelope.msgid,
            ) from exc

    def _verify_body(
        self, body: bytes, timestamp: str | None, signature: str | None, *, now: float
    ) -> None:
        national_gm.verify_body_signature(
            body, timestamp, signature, self._sm2_province_key, now=now
        )

    def _decode_answer(self, body: bytes, output_type: type[Any]) -> ResponseEnvelope[Any]:
        answer = national_gm.decode(body)
        if isinstance(answer, dict) and answer.get("output") is not None:
            answer["output"] = _to_fen(answer["output"])
        return msgspec.convert(answer, ResponseEnvelope[output_type])  # type: ignore[valid-type]

    def _decode_callback(self, body: bytes) -> SettlementCallback:
        return msgspec.convert(_to_fen(national_gm.decode(body)), SettlementCallback)


def _to_fen(value: Any) -> Any:
    try:
        return national_gm.amounts_to_fen(value)
    except YuanError as exc:
        raise ValueError(f"an amount is not exact yuan: {exc}") from exc
