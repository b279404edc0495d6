"""Daily reconciliation with each province: every difference listed, resolved or handed on.

Layer: beside callbacks and notifications, above payments: it records what it finds
through the payment flow (its public recording methods and its resolver's 6301 logic)
and asks provinces through the clearing adapters.
"""

from __future__ import annotations

__all__: list[str] = []
