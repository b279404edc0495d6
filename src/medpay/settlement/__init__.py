"""Settlement: the treatment place's catalogue and routing to the home province (DOMAIN.md 2).

Layer: settlement (above the registries). ``adapters/`` turn our requests into each
province's wire format. May import the registries, security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
