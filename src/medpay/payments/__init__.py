"""Payments: the flow from a patient's order to a settled, failed or reversed payment.

Layer: payments (above settlement). May import settlement, the registries, the ledger,
security and the foundations; callbacks, notifications and the wiring import it.
"""

from __future__ import annotations

__all__: list[str] = []
