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
      "provinces": [
        {"admdvs": "330000", "name": "Zhejiang",
         "policy": {"refuse_without_filing": true, "employee_deductible_fen": 100000},
         "faults": {"latency_ms": 50, "error_rate": 0.01}}
      ]
    }
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec

from medpay.simulator.policy import Policy
from medpay.wire.national import PROVINCES
from medpay.wire.signing import (
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)

__all__ = [
    "FaultKnobs",
    "ProvinceConfig",
    "SimulatorConfig",
    "default_config",
    "load_config",
    "parse_config",
    "save_config",
    "simulator_public_keys",
]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
ProvinceCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}0000$")]


class FaultKnobs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Faults one province injects, to test the gateway against an unreliable platform.

    ``error_rate``: answer infcode -1 and do nothing. ``drop_rate``: do the work and
    commit, then send no answer: hold the request ``drop_hold_s`` seconds and close
    with HTTP 504, the case that leaves the gateway with an unknown outcome.
    """

    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 0
    error_rate: Rate = 0.0
    drop_rate: Rate = 0.0
    drop_hold_s: Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)] = 30.0


class ProvinceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulated province."""

    admdvs: ProvinceCode
    name: str = ""
    policy: Policy = msgspec.field(default_factory=Policy)
    private_key_pem: str | None = None  # None in a file: generated at load time
    faults: FaultKnobs = msgspec.field(default_factory=FaultKnobs)


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole simulator: its provinces and whom it trusts.

    ``gateway_public_keys`` verify ``cainfo``; with none, requests are accepted
    unsigned only when ``require_signature`` is false (local experiments).
    """

    provinces: list[ProvinceConfig]
    gateway_public_keys: list[str] = msgspec.field(default_factory=list)
    require_signature: bool = True
    seed: int | None = None  # fault draws are reproducible when set

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
        pem = province.private_key_pem or private_key_pem(generate_private_key())
        load_private_key(pem)  # fails early on a bad key
        provinces.append(
            msgspec.structs.replace(
                province,
                private_key_pem=pem,
                name=province.name or PROVINCES.get(province.admdvs, province.admdvs),
            )
        )
    for pem in config.gateway_public_keys:
        load_public_key(pem)
    return msgspec.structs.replace(config, provinces=provinces)


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
) -> SimulatorConfig:
    """All 31 provinces of DOMAIN.md section 1 on the reference policy, fresh keys, no faults."""
    return _complete(
        SimulatorConfig(
            provinces=[ProvinceConfig(admdvs=code, name=name) for code, name in PROVINCES.items()],
            gateway_public_keys=list(gateway_public_keys or []),
            require_signature=require_signature,
            seed=seed,
        )
    )


def simulator_public_keys(config: SimulatorConfig) -> dict[str, str]:
    """Each province's public key (PEM) by ``admdvs``, for the gateway to trust."""
    keys = {}
    for province in config.provinces:
        if province.private_key_pem is None:
            raise ValueError(f"province {province.admdvs} has no key; load the config first")
        keys[province.admdvs] = public_key_pem(load_private_key(province.private_key_pem))
    return keys
