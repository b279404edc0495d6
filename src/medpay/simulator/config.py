r"""Configuration of the simulator: which provinces, their policies, keys and faults.

One JSON file describes any set of provinces (DOMAIN.md section 1): each with its
``admdvs`` code, overrides of the reference policy (section 3), its signing key and
fault knobs for chaos tests. A province without a key gets a fresh one at load time;
:func:`save_config` writes the keys back so that the gateway can keep trusting them
across restarts. Example::

    {
      "seed": 7,
      "require_signature": true,
      "gateway_public_keys": ["-----BEGIN PUBLIC KEY-----\n..."],
      "callback_base_url": "http://127.0.0.1:8000",
      "provinces": [
        {"admdvs": "330000", "name": "Zhejiang",
         "policy": {"refuse_without_filing": true, "employee_deductible_fen": 100000},
         "faults": {"latency_ms": 50, "error_rate": 0.01}},
        {"admdvs": "440000", "async_mode": true,
         "faults": {"async_delay_ms": 500, "callback_duplicate_rate": 0.1}},
        {"admdvs": "110000", "profile": "national"}
      ]
    }

A province on the ``national`` profile signs with SM2 and carries amounts in yuan
(:mod:`.profiles`); its ``private_key_pem`` is an SM2 key, and the gateway's SM2
public keys it trusts are ``gateway_sm2_public_keys``.

With ``callback_base_url`` set, every province also POSTs a signed callback to
``{callback_base_url}/v1/callbacks/{admdvs}`` after each 2207 it settles and each
2208 it reverses (DOMAIN.md section 8, our profile). The simulator has no business
calling anywhere else: only loopback URLs are accepted.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from medpay.simulator.codes import GATEWAY_PROBLEMS
from medpay.simulator.policy import Policy
from medpay.simulator.profiles import Profile, province_wire
from medpay.wire import gm
from medpay.wire.national import PROVINCES
from medpay.wire.signing import generate_private_key, private_key_pem

__all__ = [
    "FaultKnobs",
    "ProvinceConfig",
    "SimulatorConfig",
    "check_loopback_url",
    "clearing_provinces",
    "default_config",
    "every_third_province",
    "load_config",
    "parse_config",
    "save_config",
    "simulator_public_keys",
]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=600_000)]
ProvinceCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}0000$")]


def check_loopback_url(url: str) -> str:
    """``url`` if it is an http(s) URL on a loopback host; ValueError otherwise.

    The simulator sends callbacks only to a gateway on the same machine: it is a test
    double with unauthenticated admin endpoints, never a client of real systems.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"callback_base_url must be an http(s) URL: {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"callback_base_url takes no credentials, query or fragment: {url!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"callback_base_url must be on a loopback address, not {host!r}")
    return url


class FaultKnobs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Faults one province injects, to test the gateway against an unreliable platform.

    Answers: ``error_rate``: answer infcode -1 and do nothing. ``drop_rate``: do the
    work and commit, then send no answer: hold the request ``drop_hold_s`` seconds
    and close with HTTP 504, the case that leaves the gateway with an unknown
    outcome. ``slow_rate``: do the work and commit, then answer only after
    ``slow_ms`` (past the gateway's read timeout, typically): the answer is still sent.

    Callbacks: ``callback_drop_rate``: never sent; ``callback_duplicate_rate``: the
    same callback (same ``callback_id``) delivered twice; ``callback_delay_ms``: sent
    this late. ``async_delay_ms``: how long an asynchronous province (see
    ``ProvinceConfig.async_mode``) takes to process a 2207 it accepted.
    """

    latency_ms: Millis = 0
    error_rate: Rate = 0.0
    drop_rate: Rate = 0.0
    drop_hold_s: Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)] = 30.0
    slow_rate: Rate = 0.0
    slow_ms: Millis = 0
    callback_drop_rate: Rate = 0.0
    callback_duplicate_rate: Rate = 0.0
    callback_delay_ms: Millis = 0
    async_delay_ms: Millis = 200


class ProvinceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulated province.

    ``async_mode``: a 2207 is answered at once with ``ord_stas`` "processing",
    settled ``faults.async_delay_ms`` later, and its outcome sent by callback (and
    told by 6301). 2206, 2208 and 6301 stay synchronous.

    ``profile``: ``medpay`` (Ed25519, integer fen) or ``national`` (SM2, yuan); the
    province's ``private_key_pem`` is a key of that profile's algorithm.
    """

    admdvs: ProvinceCode
    name: str = ""
    policy: Policy = msgspec.field(default_factory=Policy)
    private_key_pem: str | None = None  # None in a file: generated at load time
    faults: FaultKnobs = msgspec.field(default_factory=FaultKnobs)
    async_mode: bool = False
    profile: Profile = "medpay"


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole simulator: its provinces and whom it trusts.

    ``gateway_public_keys`` (Ed25519) verify ``cainfo`` on our profile and
    ``gateway_sm2_public_keys`` (SM2) on the national one; with none, requests are
    accepted unsigned only when ``require_signature`` is false (local experiments).
    ``callback_base_url`` (loopback only; None: no callbacks) is where callbacks go;
    each is tried at most ``callback_max_attempts`` times until a 2xx, waiting
    ``callback_retry_ms`` after the first failure and twice as long after each next
    one (at most ``callback_retry_max_ms``), each attempt bounded by
    ``callback_timeout_s``.
    """

    provinces: list[ProvinceConfig]
    gateway_public_keys: list[str] = msgspec.field(default_factory=list)
    gateway_sm2_public_keys: list[str] = msgspec.field(default_factory=list)
    require_signature: bool = True
    seed: int | None = None  # fault draws are reproducible when set
    callback_base_url: str | None = None
    callback_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    callback_retry_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 200
    callback_retry_max_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 10_000
    callback_timeout_s: Annotated[float, msgspec.Meta(gt=0.0, le=300.0)] = 5.0

    def __post_init__(self) -> None:
        if self.callback_base_url is not None:
            check_loopback_url(self.callback_base_url)

    def province(self, admdvs: str) -> ProvinceConfig | None:
        """The province ``admdvs``, if simulated."""
        for province in self.provinces:
            if province.admdvs == admdvs:
                return province
        return None


def _complete(config: SimulatorConfig) -> SimulatorConfig:
    """Generate missing keys and check what a file could get wrong."""
    seen: set[str] = set()
    provinces = []
    for province in config.provinces:
        if province.admdvs in seen:
            raise ValueError(f"province {province.admdvs} configured twice")
        seen.add(province.admdvs)
        pem = province.private_key_pem or _new_key(province.profile)
        # Fails early on a bad key, or one of the other profile's algorithm:
        province_wire(
            province.profile,
            pem,
            gateway_keys=config.gateway_public_keys,
            gateway_sm2_keys=config.gateway_sm2_public_keys,
            required=config.require_signature,
        )
        provinces.append(
            msgspec.structs.replace(
                province,
                private_key_pem=pem,
                name=province.name or PROVINCES.get(province.admdvs, province.admdvs),
            )
        )
    return msgspec.structs.replace(config, provinces=provinces)


def _new_key(profile: Profile) -> str:
    if profile == "national":
        return gm.private_key_pem(gm.generate_private_key())
    return private_key_pem(generate_private_key())


def parse_config(data: bytes | str) -> SimulatorConfig:
    """Read a configuration from JSON text; generate keys the text leaves out."""
    return _complete(msgspec.json.decode(data, type=SimulatorConfig))


def load_config(path: str | Path) -> SimulatorConfig:
    """Read a configuration file; generate keys the file leaves out."""
    return parse_config(Path(path).read_bytes())


def save_config(config: SimulatorConfig, path: str | Path) -> None:
    """Write ``config`` (with its private keys) to ``path``, readable by the owner only."""
    target = Path(path)
    data = msgspec.json.format(msgspec.json.encode(config), indent=2)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def default_config(
    gateway_public_keys: list[str] | None = None,
    *,
    require_signature: bool = True,
    seed: int | None = None,
    national: Collection[str] = (),
    gateway_sm2_public_keys: list[str] | None = None,
) -> SimulatorConfig:
    """All 31 provinces of DOMAIN.md section 1 on the reference policy, fresh keys, no faults.

    The provinces in ``national`` speak the national profile (SM2, yuan), the others ours.
    """
    unknown = set(national) - set(PROVINCES)
    if unknown:
        raise ValueError(f"not provinces: {sorted(unknown)}")
    return _complete(
        SimulatorConfig(
            provinces=[
                ProvinceConfig(
                    admdvs=code, name=name, profile="national" if code in national else "medpay"
                )
                for code, name in PROVINCES.items()
            ],
            gateway_public_keys=list(gateway_public_keys or []),
            gateway_sm2_public_keys=list(gateway_sm2_public_keys or []),
            require_signature=require_signature,
            seed=seed,
        )
    )


def every_third_province() -> list[str]:
    """A third of the 31 provinces, every third in code order (Tianjin, Inner Mongolia, ...)."""
    return [code for n, code in enumerate(sorted(PROVINCES)) if n % 3 == 1]


def simulator_public_keys(config: SimulatorConfig) -> dict[str, str]:
    """Each province's public key (PEM, of its profile's algorithm) by ``admdvs``."""
    keys = {}
    for province in config.provinces:
        if province.private_key_pem is None:
            raise ValueError(f"province {province.admdvs} has no key; load the config first")
        keys[province.admdvs] = province_wire(
            province.profile,
            province.private_key_pem,
            gateway_keys=[],
            gateway_sm2_keys=[],
            required=False,
        ).public_key_pem
    return keys


def clearing_provinces(
    config: SimulatorConfig, base_url: str, *, read_timeout_s: float = 10.0
) -> list[dict[str, object]]:
    """Every simulated province as a line of the gateway's clearing configuration (JSON).

    The simulator knows its own URL layout, its finer answer codes and which profile
    each province speaks (``kind`` national_http for ours, national_sm2 for the
    national one, with the province's SM2 key); the gateway reads only the
    configuration this produces, never the simulator's code.
    """
    base = base_url.rstrip("/")
    kinds = {
        p.admdvs: "national_sm2" if p.profile == "national" else "national_http"
        for p in config.provinces
    }
    return [
        {
            "admdvs": admdvs,
            "kind": kinds[admdvs],
            "url": f"{base}/provinces/{admdvs}/api",
            "public_key_pem": pem,
            "read_timeout_s": read_timeout_s,
            "infcodes": dict(GATEWAY_PROBLEMS),
        }
        for admdvs, pem in sorted(simulator_public_keys(config).items())
    ]
