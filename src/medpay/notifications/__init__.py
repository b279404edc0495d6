"""Delivering payment events to apps' webhooks from the transactional outbox.

Layer: callbacks and notifications (above payments). The outbox rows are written by
``medpay.payments.events``; this package only delivers them.
"""

from __future__ import annotations

__all__: list[str] = []
