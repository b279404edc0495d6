"""Off-site filings before cross-provincial settlement, with their whole history (DOMAIN.md 5).

Layer: registries. May import the other registries (parties), security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
