"""Insurance agencies and medpay operators: who they are and the keys they sign with.

Layer: registries. May import security and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
