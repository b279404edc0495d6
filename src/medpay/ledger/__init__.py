"""The double-entry ledger: balanced journals written beside the state change they record.

Layer: beside security, above the foundations. Imports only ``medpay.db`` and the foundations.
"""

from __future__ import annotations

__all__: list[str] = []
