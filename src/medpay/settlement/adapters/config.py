"""The clearing configuration: the gateway's signing key and how to reach each province.

Read from a JSON file (``MEDPAY_CLEARING_CONFIG_FILE``); one line per province names
its adapter ``kind`` (see :mod:`.registry`), URL and key.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["ClearingConfig", "ProvinceEndpoint"]


class ProvinceEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One province's clearing platform: how to reach it and whom to believe."""

    admdvs: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}0000$")]
    #: ``national_http``: our profile (Ed25519, integer fen); ``national_sm2``: the national
    #: profile (SM2, yuan). See :mod:`.registry`.
    kind: str = "national_http"
    url: str
    #: Verifies the province's answers and its callbacks: Ed25519 PEM for ``national_http``,
    #: SM2 (PEM or hex ``04 || x || y``) for ``national_sm2``.
    public_key_pem: str
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    read_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    #: The province's own negative infcodes beyond the national -1..-7, and the problem
    #: code each means (for example ``{"-9": "wrong_province"}``); others: province_error.
    infcodes: dict[Annotated[int, msgspec.Meta(lt=0)], str] = {}


class ClearingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The gateway's clearing configuration: its own signing key and every province."""

    signing_key_pem: str  # the gateway's Ed25519 private key: signs cainfo
    provinces: list[ProvinceEndpoint]
    recer_sys_code: str = "MEDPAY"
    #: The gateway's SM2 private key (PEM): signs cainfo towards national_sm2 provinces.
    sm2_signing_key_pem: str | None = None
