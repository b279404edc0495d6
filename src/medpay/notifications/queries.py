"""SQL of the notification outbox (written by ``medpay.payments.events``): delivery, and reads."""

from __future__ import annotations

__all__ = [
    "CLAIM_DUE",
    "MARK_DELIVERED",
    "MARK_FAILED_ATTEMPT",
    "NOTIFICATIONS_OF_PAYMENT",
]

# Due events whose earlier events for the same payment are all delivered (order per
# payment), claimed for a lease so that several dispatchers never send one twice at once.
CLAIM_DUE = """
UPDATE notification_outbox o
   SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
  FROM (SELECT event_id FROM notification_outbox e
         WHERE e.delivered_at IS NULL AND e.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM notification_outbox before
                            WHERE before.payment_id = e.payment_id AND before.sequence < e.sequence
                              AND before.delivered_at IS NULL)
         ORDER BY e.next_attempt_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED) due
 WHERE o.event_id = due.event_id
RETURNING o.event_id, o.payment_id, o.sequence, o.event_type, o.payload, o.attempts,
          (SELECT webhook_url FROM apps WHERE apps.app_id = o.app_id) AS webhook_url,
          (SELECT person_sealed FROM payments WHERE payments.payment_id = o.payment_id)
          AS person_sealed
"""

MARK_DELIVERED = (
    "UPDATE notification_outbox SET delivered_at = now(), last_error = NULL WHERE event_id = $1"
)

MARK_FAILED_ATTEMPT = """
UPDATE notification_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
 WHERE event_id = $1
"""

# A payment's events and how their delivery went (the operator's story of the payment).
NOTIFICATIONS_OF_PAYMENT = """
SELECT event_id, sequence, event_type, created_at, attempts, delivered_at, last_error
  FROM notification_outbox
 WHERE payment_id = $1
 ORDER BY sequence
"""
