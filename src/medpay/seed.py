"""Sample data for development, the demo and tests: persons, institutions, catalogue.

Read from the data files of ``medpay.samples``: the persons are shared with the
simulator (so both sides of the wire know the same people); institutions and the
catalogue are the gateway's own.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import TYPE_CHECKING

import msgspec

from medpay.db.pool import connection
from medpay.institutions.service import Institution, register_institution, sign_sample_agreement
from medpay.relationships.service import register_person
from medpay.settlement.catalogue import CatalogueEntry, add_catalogue_entry

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PROVINCES", "seed_sample_data"]

#: The 31 provincial codes of DOMAIN.md section 1.
PROVINCES = (
    "110000 120000 130000 140000 150000 210000 220000 230000 310000 320000 330000 340000 350000 "
    "360000 370000 410000 420000 430000 440000 450000 460000 500000 510000 520000 530000 540000 "
    "610000 620000 630000 640000 650000"
).split()
_INSUTYPE_SCHEME = {"310": "employee", "390": "resident"}
SAMPLE_SEGMENT_START = dt.date(2020, 1, 1)
#: Every sample institution is designated from this day, with no agreed end.
SAMPLE_AGREEMENT_START = dt.date(2020, 1, 1)


class _CityOverride(CatalogueEntry, frozen=True, kw_only=True):
    area: str


class _SampleCatalogue(msgspec.Struct, frozen=True):
    items: list[CatalogueEntry]
    city_overrides: list[_CityOverride] = []
    comment: str = ""


def _read(name: str) -> bytes:
    return resources.files("medpay.samples").joinpath(name).read_bytes()


async def seed_sample_data(pool: asyncpg.Pool) -> None:
    """Load the samples; running it again changes nothing."""
    for person in json.loads(_read("persons.json")):
        await register_person(
            pool,
            psn_no=person["psn_no"],
            name=person["name"],
            insured_area=person["insuplc_admdvs"],
            scheme=_INSUTYPE_SCHEME[person["insutype"]],  # type: ignore[arg-type]
            valid_from=SAMPLE_SEGMENT_START,
            contribution_months=60,
        )
    institutions = msgspec.json.decode(_read("institutions.json"), type=list[Institution])
    # Physical institutions first: an internet hospital refers to the one it relies on.
    for institution in sorted(institutions, key=lambda i: i.relies_on is not None):
        await register_institution(pool, institution)
        await sign_sample_agreement(pool, institution.institution_code, SAMPLE_AGREEMENT_START)
    catalogue = msgspec.json.decode(_read("catalogue.json"), type=_SampleCatalogue)
    async with connection(pool) as conn, conn.transaction():
        for province in PROVINCES:
            for entry in catalogue.items:
                await add_catalogue_entry(conn, province, entry)
        for override in catalogue.city_overrides:
            entry = CatalogueEntry(
                **{f: getattr(override, f) for f in CatalogueEntry.__struct_fields__}
            )
            await add_catalogue_entry(conn, override.area, entry)
