"""Base Structs for our own HTTP API.

What a client sends forbids unknown fields (a typo is an error, not a silent
default); what we answer omits defaults. Encoders and decoders are built once.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["AREA_CODE", "ApiAnswer", "ApiRequest", "SafeText"]


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
