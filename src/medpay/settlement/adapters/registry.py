"""Which adapter speaks to which province: configuration in, ``{admdvs: adapter}`` out.

Each province (by its ``admdvs``) names an adapter ``kind``, a URL and the public
key its answers are signed with. Supporting a province with another wire format is
one new adapter class registered in :data:`ADAPTER_KINDS` and one configuration
line with that ``kind``; nothing else in the gateway changes (DOMAIN.md section 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import msgspec

from medpay.settlement.adapters.national_http import NationalHttpAdapter

if TYPE_CHECKING:
    import httpx

    from medpay.settlement.adapters.base import ClearingAdapter

__all__ = [
    "ADAPTER_KINDS",
    "AdapterFactory",
    "ClearingConfig",
    "ProvinceEndpoint",
    "build_adapters",
    "load_clearing_config",
    "simulator_endpoints",
]


class ProvinceEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One province's clearing platform: how to reach it and whom to believe."""

    admdvs: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}0000$")]
    kind: str = "national_http"
    url: str
    public_key_pem: str  # verifies the province's answers and its callbacks
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    read_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class ClearingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The gateway's clearing configuration: its own signing key and every province."""

    signing_key_pem: str  # the gateway's Ed25519 private key: signs cainfo
    provinces: list[ProvinceEndpoint]
    recer_sys_code: str = "MEDPAY"


class AdapterFactory(Protocol):
    """What an adapter class offers the registry."""

    def from_endpoint(
        self, endpoint: ProvinceEndpoint, config: ClearingConfig, client: httpx.AsyncClient
    ) -> ClearingAdapter:
        """Build the adapter for one configured province."""
        ...


#: kind -> adapter class. One line per wire format.
ADAPTER_KINDS: dict[str, AdapterFactory] = {
    NationalHttpAdapter.kind: NationalHttpAdapter,
}


def build_adapters(config: ClearingConfig, client: httpx.AsyncClient) -> dict[str, ClearingAdapter]:
    """One adapter per configured province, by ``admdvs``, all sharing ``client``.

    Raises:
        ValueError: a province configured twice, or an unknown ``kind``.
    """
    adapters: dict[str, ClearingAdapter] = {}
    for endpoint in config.provinces:
        if endpoint.admdvs in adapters:
            raise ValueError(f"province {endpoint.admdvs} configured twice")
        factory = ADAPTER_KINDS.get(endpoint.kind)
        if factory is None:
            raise ValueError(
                f"province {endpoint.admdvs}: unknown adapter kind {endpoint.kind!r}; "
                f"known: {sorted(ADAPTER_KINDS)}"
            )
        adapters[endpoint.admdvs] = factory.from_endpoint(endpoint, config, client)
    return adapters


def load_clearing_config(path: str | Path) -> ClearingConfig:
    """Read a clearing configuration from a JSON file."""
    return msgspec.json.decode(Path(path).read_bytes(), type=ClearingConfig)


def simulator_endpoints(
    base_url: str, public_keys: Mapping[str, str], *, read_timeout_s: float = 10.0
) -> list[ProvinceEndpoint]:
    """Endpoints for every province the simulator at ``base_url`` serves.

    ``public_keys`` is ``medpay.simulator.config.simulator_public_keys(config)``
    (passed in, so the gateway does not import the simulator).
    """
    base = base_url.rstrip("/")
    return [
        ProvinceEndpoint(
            admdvs=admdvs,
            url=f"{base}/provinces/{admdvs}/api",
            public_key_pem=pem,
            read_timeout_s=read_timeout_s,
        )
        for admdvs, pem in sorted(public_keys.items())
    ]
