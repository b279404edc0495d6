"""Route each settlement to the insured person's home province (DOMAIN.md section 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.errors import Refused
from medpay.wire.national import province_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from medpay.settlement.adapters.base import ClearingAdapter

__all__ = ["ProvinceDirectory", "ProvinceNotConnected"]


class ProvinceNotConnected(Refused):
    """The person's home province has no clearing adapter configured."""

    def __init__(self, province: str) -> None:
        super().__init__(
            "province_not_connected",
            "The insured person's home province is not connected",
            f"No clearing adapter is configured for province {province}.",
        )
        self.province = province


class ProvinceDirectory:
    """The clearing adapter of each province, by its code."""

    def __init__(self, adapters: Mapping[str, ClearingAdapter]) -> None:
        self._adapters = dict(adapters)

    def adapter_for(self, insured_area: str) -> ClearingAdapter:
        """The adapter of the province ``insured_area`` belongs to."""
        province = province_of(insured_area)
        adapter = self._adapters.get(province)
        if adapter is None:
            raise ProvinceNotConnected(province)
        return adapter

    def for_province(self, province: str) -> ClearingAdapter | None:
        """The adapter of ``province`` (a code like 330000), or None."""
        return self._adapters.get(province)

    @property
    def provinces(self) -> list[str]:
        """The provinces with an adapter."""
        return sorted(self._adapters)
