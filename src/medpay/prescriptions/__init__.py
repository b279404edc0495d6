"""Electronic prescriptions: issued by a designated institution, redeemed once (DOMAIN.md 4).

Layer: registries. May import the other registries (institutions), security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
