"""Provincial callbacks, each taken exactly once (issue: exactly once under faults).

A province may report a result late, twice, before its synchronous answer, or after
the payment was reversed. The callback is recorded under its (province, callback_id)
and applied in the same transaction: a duplicate finds the row and does nothing; a
result for a payment already final is acknowledged and kept (``already_final``, or
``conflict`` when it contradicts what we recorded); one for a msgid we never sent is
kept as ``unmatched`` for reconciliation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.callbacks import queries
from medpay.db.pool import transaction
from medpay.errors import Forbidden
from medpay.payments import recording
from medpay.payments.queries import LOCK_PAYMENT_STATE
from medpay.payments.recording import ReportMismatch
from medpay.security.persons import by_reference
from medpay.settlement import queries as settlement_queries
from medpay.wire.national import INFNO_REVERSE, INFNO_SETTLE

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.flow import PaymentFlow
    from medpay.settlement.adapters.base import ProvinceCallback

__all__ = ["CallbackOutcome", "apply_callback"]

CallbackOutcome = Literal["applied", "duplicate", "already_final", "unmatched", "conflict"]

#: The states consistent with each reported result, once the payment is final.
_CONSISTENT = {
    "settled": frozenset({"settled", "reversing", "reversed"}),
    "failed": frozenset({"failed"}),
    "reversed": frozenset({"reversed"}),
}


async def apply_callback(
    pool: asyncpg.Pool, flow: PaymentFlow, province: str, callback: ProvinceCallback, body: bytes
) -> CallbackOutcome:
    """Record ``callback`` from ``province`` and apply it, all in one transaction."""
    raw = by_reference(msgspec.json.decode(body))  # kept as sent, the person by reference
    async with transaction(pool) as conn:
        message = await conn.fetchrow(settlement_queries.MESSAGE_BY_MSGID, callback.ref_msgid)
        if message is None:
            inserted = await conn.fetchval(
                queries.INSERT_CALLBACK,
                province,
                callback.callback_id,
                callback.ref_msgid,
                None,
                callback.result,
                "unmatched",
                raw,
            )
            return "unmatched" if inserted is not None else "duplicate"
        if message["province"] != province:
            raise Forbidden(
                "callback_wrong_province",
                "A province may only report on its own settlements",
                f"msgid {callback.ref_msgid} was sent to {message['province']}, not {province}.",
            )
        payment_id = message["payment_id"]
        row = await conn.fetchval(
            queries.INSERT_CALLBACK,
            province,
            callback.callback_id,
            callback.ref_msgid,
            payment_id,
            callback.result,
            "applied",
            raw,
        )
        if row is None:
            return "duplicate"
        try:
            applied = await _apply(conn, flow, message, callback)
        except ReportMismatch as mismatch:  # kept for reconciliation; nothing else changed
            await conn.execute(queries.SET_CALLBACK_OUTCOME, row, "conflict", mismatch.reason)
            return "conflict"
        if applied:
            return "applied"
        state = await conn.fetchval(LOCK_PAYMENT_STATE, payment_id)
        if state in _CONSISTENT.get(callback.result, frozenset()):
            await conn.execute(queries.SET_CALLBACK_OUTCOME, row, "already_final", None)
            return "already_final"
        detail = f"reported {callback.result}, the payment is {state}"
        await conn.execute(queries.SET_CALLBACK_OUTCOME, row, "conflict", detail)
        return "conflict"


async def _apply(
    conn: asyncpg.Connection,
    flow: PaymentFlow,
    message: asyncpg.Record,
    callback: ProvinceCallback,
) -> bool:
    """Record what the callback reports through the flow; False when it changes nothing.

    Raises:
        ReportMismatch: the callback's figures are not the payment's.
    """
    payment_id, msgid = message["payment_id"], message["msgid"]
    if message["infno"] == INFNO_SETTLE and callback.kind == "settlement":
        if callback.result == "settled" and callback.breakdown is not None:
            return await flow.record_settled_in(conn, payment_id, msgid, callback.breakdown)
        if callback.result == "failed":
            failed = await recording.record_failed_in(
                conn,
                payment_id,
                callback.error_code or "province_error",
                callback.message,
                msgid=msgid,
                outcome="rejected",
            )
            return failed is not None
    if (
        message["infno"] == INFNO_REVERSE
        and callback.kind == "reversal"
        and callback.result == "reversed"
    ):
        return await flow.record_reversed_in(conn, payment_id, msgid, callback.breakdown)
    return False
