"""Provincial callbacks: each signed result taken exactly once, only if it matches (DOMAIN.md 8).

Layer: callbacks (above payments). May import payments, settlement, the registries,
security and the foundations; nothing imports it but the wiring.
"""

from __future__ import annotations

__all__: list[str] = []
