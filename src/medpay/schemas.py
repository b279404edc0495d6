"""Base Structs for our own HTTP API, and the vocabulary every domain's schemas share.

What a client sends forbids unknown fields (a typo is an error, not a silent
default); what we answer omits defaults. Encoders and decoders are built once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec

__all__ = [
    "AREA_CODE",
    "ApiAnswer",
    "ApiRequest",
    "InstitutionCode",
    "ItemCode",
    "PrescriptionId",
    "Quantity",
    "Row",
    "SafeText",
    "UnitPriceFen",
    "VisitType",
    "view_of",
]


AnswerT = TypeVar("AnswerT", bound=msgspec.Struct)


class Row(Protocol):
    """A database row by column name (an asyncpg Record, or a mapping)."""

    def keys(self) -> Iterable[str]:
        """The column names."""
        ...

    def __getitem__(self, key: str, /) -> Any: ...


def view_of(row: Row, view: type[AnswerT], **fields: Any) -> AnswerT:
    """A database row (and ``fields`` computed beside it) as an answer, by field name.

    msgspec converts and checks each field, so a view never needs a hand-written copy
    of its columns; a column the view does not have is ignored.
    """
    return msgspec.convert({key: row[key] for key in row.keys()} | fields, view)


class ApiRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body."""


class ApiAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every response body."""


#: What the patient is paying for (DOMAIN.md section 4).
VisitType = Literal["online_revisit", "pharmacy_purchase", "home_nursing"]

#: A 6-digit administrative division code (admdvs).
AREA_CODE = Annotated[str, msgspec.Meta(pattern=r"^[1-6][0-9]{5}$", examples=["330106"])]
#: Free text with no control characters (PostgreSQL text cannot hold NUL).
SafeText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]

#: fixmedins_code: a letter for the kind of institution and 11 digits.
InstitutionCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z][0-9]{11}$", examples=["H11010800123"])
]
#: med_list_codg: a national catalogue code.
ItemCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9.-]{1,50}$", examples=["XA01BCA123A001010100000"])
]
PrescriptionId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
#: A unit price in fen, at most 1,000,000 yuan.
UnitPriceFen = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
