"""Payment orders: record what the patient asked to pay, and show it to them alone."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msgspec

from medpay.db.pool import transaction
from medpay.payments import queries
from medpay.payments.schemas import FeeItemView, PaymentOrder, PaymentView
from medpay.security.idempotency import IdempotencyKeyReused
from medpay.security.problems import ProblemError

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PaymentNotFound", "get_payment", "receive_payment"]


class PaymentNotFound(ProblemError):
    """No payment of this app and person has that id (others' payments look the same)."""

    def __init__(self) -> None:
        super().__init__(404, "payment_not_found", "No such payment")


def _view(row: asyncpg.Record) -> PaymentView:
    return PaymentView(
        payment_id=row["payment_id"],
        state=row["state"],
        psn_no=row["psn_no"],
        institution_code=row["institution_code"],
        treatment_area=row["treatment_area"],
        visit_type=row["visit_type"],
        personal_account_allowed=row["personal_account_allowed"],
        medical_fee_total_fen=row["medical_fee_total_fen"],
        items=msgspec.convert(row["items"], list[FeeItemView]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        prescription_id=row["prescription_id"],
        failure_code=row["failure_code"],
    )


def check_order(order: PaymentOrder) -> None:
    """Rules a schema cannot say (DOMAIN.md section 4)."""
    if order.visit_type == "pharmacy_purchase" and order.prescription_id is None:
        raise ProblemError(
            422,
            "prescription_required",
            "A pharmacy purchase needs an electronic prescription",
            "Send prescription_id.",
        )


async def receive_payment(
    pool: asyncpg.Pool,
    *,
    app_id: str,
    idempotency_key: str,
    request_digest: str,
    psn_no: str,
    order: PaymentOrder,
) -> PaymentView:
    """Record the order as ``received``, once per (app, Idempotency-Key).

    A payment keeps its key for good: the same key with another request, even after
    the idempotency record has expired, is refused rather than answered with the
    old payment.
    """
    check_order(order)
    payment_id = uuid.uuid4()
    async with transaction(pool) as conn:
        inserted = await conn.fetchval(
            queries.INSERT_PAYMENT,
            payment_id,
            app_id,
            idempotency_key,
            request_digest,
            psn_no,
            order.institution_code,
            order.treatment_area,
            order.visit_type,
            order.prescription_id,
            order.personal_account_allowed,
            order.medical_fee_total_fen,
        )
        if inserted is not None:
            await conn.execute(
                queries.INSERT_ITEMS,
                payment_id,
                list(range(1, len(order.items) + 1)),
                [item.item_code for item in order.items],
                [item.quantity for item in order.items],
                [item.unit_price_fen for item in order.items],
            )
        row = await conn.fetchrow(queries.PAYMENT_BY_IDEMPOTENCY_KEY, app_id, idempotency_key)
    assert row is not None
    if row["request_digest"] != request_digest:
        raise IdempotencyKeyReused()
    return _view(row)


async def get_payment(
    pool: asyncpg.Pool, payment_id: str, *, app_id: str, psn_no: str
) -> PaymentView:
    """The payment, if this app made it for this person; otherwise not found."""
    try:
        key = uuid.UUID(payment_id)
    except ValueError:
        raise PaymentNotFound() from None
    row = await pool.fetchrow(queries.PAYMENT_BY_ID, key)
    if row is None or row["app_id"] != app_id or row["psn_no"] != psn_no:
        raise PaymentNotFound()
    return _view(row)
