"""Insured persons, their insurance segments and transfers between areas (DOMAIN.md 6).

Layer: registries. May import the other registries (parties), the ledger, security
and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
