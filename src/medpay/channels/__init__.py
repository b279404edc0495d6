"""Patient apps (channels): the registry of apps and the keys they sign with (DOMAIN.md 1).

Layer: registries. May import security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
