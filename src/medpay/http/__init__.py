"""The HTTP edge: problem details, JSON answers and the OpenAPI description.

Foundation package: it knows Litestar and :mod:`medpay.errors`, and no domain.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

__all__ = ["Injected"]

T = TypeVar("T")

#: A handler parameter the wiring provides by name (``Provide``): a resource or the
#: verified caller. Ours, not the client's, so Litestar does not validate it again.
Injected: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
