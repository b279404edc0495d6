"""The treatment place's catalogue: classify each fee item before it goes to the province.

"Treatment-place catalogue, insured-place policy" (DOMAIN.md section 2): the class,
price limit and pre-self-pay share come from the catalogue of the area where the
patient is treated. A city may keep its own catalogue; otherwise the province's
applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec

from medpay.errors import Refused
from medpay.settlement import queries
from medpay.settlement.adapters.base import ClassifiedItem
from medpay.wire.national import province_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = ["CatalogueEntry", "FeeLine", "UnknownItems", "add_catalogue_entry", "classify_items"]


class FeeLine(Protocol):
    """A line of a bill as sent: which item, how many, at what unit price."""

    @property
    def item_code(self) -> str:
        """med_list_codg."""
        ...

    @property
    def quantity(self) -> int:
        """Cnt."""
        ...

    @property
    def unit_price_fen(self) -> int:
        """Pric."""
        ...


class CatalogueEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One item of an area's catalogue."""

    item_code: str  # med_list_codg
    name: str  # med_list_name
    kind: str  # drug, service, consumable, non_medical
    item_class: str  # A, B, C (chrgitm_lv 01, 02, 03)
    price_limit_fen: int | None = None  # pric_uplmt_amt
    pre_self_pay_bp: int | None = None  # selfpay_prop


class UnknownItems(Refused):
    """Items the treatment place's catalogue does not list."""

    def __init__(self, codes: list[str], treatment_area: str) -> None:
        super().__init__(
            "item_unknown",
            "An item is not in the treatment place's catalogue",
            f"Not in the catalogue of {treatment_area}: {', '.join(sorted(codes))}.",
        )
        self.codes = codes


async def classify_items(
    conn: asyncpg.Connection | asyncpg.Pool, treatment_area: str, items: Sequence[FeeLine]
) -> list[ClassifiedItem]:
    """Each item with its class, limit and share, in order; 422 for any item not listed."""
    codes = sorted({item.item_code for item in items})
    areas = [treatment_area, province_of(treatment_area)]
    rows = await conn.fetch(queries.CATALOGUE_ENTRIES, codes, areas, treatment_area)
    entries = {row["item_code"]: row for row in rows}
    missing = [code for code in codes if code not in entries]
    if missing:
        raise UnknownItems(missing, treatment_area)
    classified = []
    for line_no, item in enumerate(items, start=1):
        entry = entries[item.item_code]
        classified.append(
            ClassifiedItem(
                line_no=str(line_no),
                code=item.item_code,
                name=entry["name"],
                quantity=item.quantity,
                unit_price_fen=item.unit_price_fen,
                item_class=entry["item_class"],
                price_limit_fen=entry["price_limit_fen"],
                pre_self_pay_bp=entry["pre_self_pay_bp"],
                non_medical=entry["kind"] == "non_medical",
            )
        )
    return classified


async def add_catalogue_entry(
    conn: asyncpg.Connection | asyncpg.Pool, area: str, entry: CatalogueEntry
) -> None:
    """Add an item to an area's catalogue (idempotent; for seeding)."""
    await conn.execute(
        queries.INSERT_CATALOGUE_ENTRY,
        area,
        entry.item_code,
        entry.name,
        entry.kind,
        entry.item_class,
        entry.price_limit_fen,
        entry.pre_self_pay_bp,
    )
