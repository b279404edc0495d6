"""Settlement: routing each settlement to the insured person's home province (DOMAIN.md section 2)."""

from __future__ import annotations

__all__: list[str] = []
