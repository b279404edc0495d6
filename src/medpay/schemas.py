"""Base Structs for our own HTTP API, and the vocabulary every domain's schemas share.

What a client sends forbids unknown fields (a typo is an error, not a silent
default); what we answer omits defaults. Encoders and decoders are built once.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "AREA_CODE",
    "ApiAnswer",
    "ApiRequest",
    "InstitutionCode",
    "ItemCode",
    "PrescriptionId",
    "Quantity",
    "SafeText",
    "UnitPriceFen",
]


class ApiRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body."""


class ApiAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every response body."""


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
