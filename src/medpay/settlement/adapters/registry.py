"""Which adapter speaks to which province: configuration in, ``{admdvs: adapter}`` out.

Each province (by its ``admdvs``) names an adapter ``kind``, a URL and the public
key its answers are signed with. Supporting a province with another wire format is
one new adapter class registered in :data:`ADAPTER_KINDS` and one configuration
line with that ``kind``; nothing else in the gateway changes (DOMAIN.md section 8).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
from medpay.settlement.adapters.national_http import NationalHttpAdapter
from medpay.settlement.adapters.national_sm2 import NationalSm2Adapter

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
]


class AdapterFactory(Protocol):
    """What an adapter class offers the registry."""

    def from_endpoint(
        self, endpoint: ProvinceEndpoint, config: ClearingConfig, client: httpx.AsyncClient
    ) -> ClearingAdapter:
        """Build the adapter for one configured province."""
        ...


#: kind -> adapter class. One line per wire format.
ADAPTER_KINDS: dict[str, AdapterFactory] = {
    NationalHttpAdapter.kind: NationalHttpAdapter,  # our profile: Ed25519, integer fen
    NationalSm2Adapter.kind: NationalSm2Adapter,  # the national profile: SM2, yuan
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
