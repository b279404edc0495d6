"""The books as operators see them: every invariant at once, the day's volumes, a payment's story.

Layer: above reconciliation and clearing, below the wiring. Reads what the payment flow,
the ledger, callbacks, reconciliation and clearing record; writes nothing.
"""

from __future__ import annotations

__all__: list[str] = []
