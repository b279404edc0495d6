"""Designated institutions, their agreements and signing keys (DOMAIN.md 1 and 4).

Layer: registries. May import security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
