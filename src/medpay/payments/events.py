"""The transactional outbox: a final state's notification is written with the state.

Delivering it is ``medpay.notifications``'s business; writing it belongs to the payment.

A payment's final state (settled, failed, reversed) and the event telling its app
are committed in one transaction, so a crash can neither lose the event nor send it
for a state that was rolled back. The dispatcher delivers it afterwards.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.payments import queries
from medpay.payments.views import payment_view
from medpay.security.persons import person_ref

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.schemas import PaymentView

__all__ = ["EventType", "PaymentEvent", "enqueue_notification"]

EventType = Literal["payment.settled", "payment.failed", "payment.reversed"]


class PaymentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What an app's webhook receives (JSON body)."""

    event_id: uuid.UUID
    event_type: EventType
    sequence: int  # per payment, 1, 2, ...: apply in this order
    payment: dict[str, object]  # the payment as GET /v1/payments/{id} shows it


async def enqueue_notification(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    event_type: EventType,
    *,
    view: PaymentView | None = None,
    app_id: str | None = None,
    webhook_url: str | None = None,
) -> None:
    """Write the event for ``payment_id``'s new state, inside the caller's transaction.

    Nothing is written for an app without a webhook URL. A caller that holds the
    payment's view and its app's webhook (the recorders do) passes them, and nothing
    is read again.
    """
    assert conn.is_in_transaction(), (
        "a notification is written in the same transaction as its state"
    )
    if app_id is None:
        target = await conn.fetchrow(queries.PAYMENT_FOR_NOTIFICATION, payment_id)
        if target is None:
            return
        app_id, webhook_url = target["app_id"], target["webhook_url"]
    if not webhook_url:
        return
    if view is None:
        row = await conn.fetchrow(queries.PAYMENT_BY_ID, payment_id)
        assert row is not None
        view = payment_view(row)
    payload = msgspec.to_builtins(view)
    payload["psn_no"] = person_ref(view.psn_no)  # kept by reference; opened when sent
    await conn.execute(queries.ENQUEUE_EVENT, uuid.uuid4(), payment_id, app_id, event_type, payload)
