"""Monthly clearing between provinces: the off-site fund amounts per pair, netted (DOMAIN.md 7).

Layer: beside callbacks, notifications and reconciliation, above payments. Imports the
ledger (the shape of an invariant check) and the foundations; its entries are written
by PostgreSQL itself, in the transaction of each settlement, reversal and correction.
"""

from __future__ import annotations

__all__: list[str] = []
