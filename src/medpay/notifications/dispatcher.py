r"""Deliver outbox events to patient apps' webhooks: signed, retried, in order per payment.

Each POST carries ``X-Medpay-Event-Id`` (apps deduplicate by it: a delivery whose
acknowledgement was lost is sent again), ``X-Medpay-Timestamp`` and
``X-Medpay-Signature``: base64 Ed25519 over ``TIMESTAMP\\nHEX(SHA-256(BODY))`` with the
gateway's key. An event is sent only after every earlier event of the same payment
was acknowledged; failures back off exponentially (1 s doubling to 5 minutes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

import httpx
import msgspec

from medpay.clock import backoff_seconds, repeat
from medpay.notifications import queries
from medpay.payments.events import PaymentEvent
from medpay.security.persons import open_person
from medpay.wire.signing import body_signature_headers

if TYPE_CHECKING:
    import asyncpg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["NotificationDispatcher"]

_log = logging.getLogger("medpay.notifications")
_encoder = msgspec.json.Encoder()
MAX_BACKOFF_SECONDS = 300.0
#: How long a claimed event is reserved for the dispatcher that claimed it.
LEASE_SECONDS = 30.0


@dataclasses.dataclass(eq=False, repr=False)
class NotificationDispatcher:
    """Sends due outbox events; run ``run_forever`` in the app's lifespan."""

    pool: asyncpg.Pool
    client: httpx.AsyncClient
    signing_key: Ed25519PrivateKey
    _: dataclasses.KW_ONLY
    interval_seconds: float = 1.0
    batch: int = 50
    timeout_seconds: float = 5.0

    async def run_once(self) -> int:
        """Deliver what is due now; return how many were acknowledged."""
        rows = await self.pool.fetch(queries.CLAIM_DUE, self.batch, LEASE_SECONDS)
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        return sum(results)

    async def _deliver(self, row: asyncpg.Record) -> bool:
        payload = row["payload"]
        event = PaymentEvent(
            event_id=row["event_id"],
            event_type=row["event_type"],
            sequence=row["sequence"],
            # The payment's view as the app knows it: its person's number, not the reference.
            payment=payload
            | {"psn_no": open_person(row["person_sealed"], payload["psn_no"]).psn_no},
        )
        body = _encoder.encode(event)
        signed = body_signature_headers(body, self.signing_key)
        headers = {
            "Content-Type": "application/json",
            "X-Medpay-Event-Id": str(event.event_id),
            "X-Medpay-Timestamp": next(v for k, v in signed.items() if "Timestamp" in k),
            "X-Medpay-Signature": next(v for k, v in signed.items() if "Signature" in k),
        }
        error: str
        try:
            response = await self.client.post(
                row["webhook_url"], content=body, headers=headers, timeout=self.timeout_seconds
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= response.status_code < 300:
                await self.pool.execute(queries.MARK_DELIVERED, row["event_id"])
                return True
            error = f"HTTP {response.status_code}"
        await self.pool.execute(
            queries.MARK_FAILED_ATTEMPT,
            row["event_id"],
            backoff_seconds(row["attempts"], most=MAX_BACKOFF_SECONDS),
            error[:500],
        )
        return False

    async def run_forever(self) -> None:
        """Deliver until cancelled; a database hiccup is logged and retried."""

        async def drain() -> None:
            while await self.run_once():
                pass

        await repeat(drain, every=self.interval_seconds, log=_log, what="notification dispatch")
