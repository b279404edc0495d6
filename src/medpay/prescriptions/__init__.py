"""Electronic prescriptions: issued by a designated institution, redeemed once (DOMAIN.md section 4)."""

from __future__ import annotations

__all__: list[str] = []
