"""Recording outcomes: each a state change with its journal, message outcome and event.

Whoever learns an outcome first (the province's answer, its callback, the resolver's
6301 query, reconciliation) records it here, inside a transaction of its own choosing;
the others find the payment already moved and change nothing. Every recorder starts
the same way (:func:`lock`: the payment row, locked) and moves the state through
:func:`move` (the state machine checked, then the update), so no recorder can skip
either. A province's report is checked against the payment before anything is
written (:func:`report_mismatch`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from medpay.ledger.service import post_journal, reversal_postings, settlement_postings
from medpay.payments import queries, refunds
from medpay.payments.events import enqueue_notification
from medpay.payments.states import can_move, check_correction, check_transition
from medpay.payments.views import payment_view
from medpay.prescriptions.service import confirm_redemption, release_redemption
from medpay.security.persons import person_ref
from medpay.settlement import queries as settlement_queries
from medpay.settlement.adapters.base import ProvinceUnavailable
from medpay.wire.national import province_of

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.schemas import PaymentView
    from medpay.settlement.adapters.base import ClearingError, SettlementBreakdown

__all__ = [
    "ReportMismatch",
    "back_to_settled_in",
    "lock",
    "mark_unknown_in",
    "move",
    "record_annulled_in",
    "record_failed_in",
    "record_reversed_in",
    "record_settled_in",
    "report_mismatch",
    "view_in",
]


class ReportMismatch(Exception):
    """A province's report does not describe the payment it names: nothing is recorded.

    Signed by the right province is not enough: its word must match what we sent
    (the person, the visit, the total) and, for a reversal, what it settled.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def report_mismatch(payment: asyncpg.Record, report: SettlementBreakdown) -> str | None:
    """Why ``report`` does not describe ``payment`` (a row of :func:`lock`), or None."""
    if report.psn_no is not None and person_ref(report.psn_no) != payment["psn_no"]:
        return "psn_no is another person's"
    key: uuid.UUID = payment["payment_id"]
    if report.visit_id is not None and report.visit_id != key.hex:
        return "mdtrt_id is another visit's"
    if report.medfee_total_fen != payment["medical_fee_total_fen"]:
        return (
            f"medfee_sumamt {report.medfee_total_fen} fen, "
            f"the payment is {payment['medical_fee_total_fen']} fen"
        )
    if not report.settlement_id:
        return "no setl_id"
    if payment["setl_id"] is not None and report.settlement_id != payment["setl_id"]:
        return "setl_id is another settlement's"
    return None


async def lock(conn: asyncpg.Connection, payment_id: uuid.UUID) -> asyncpg.Record:
    """The payment, its settlement id, prescription and app's webhook, locked for a move."""
    row = await conn.fetchrow(queries.LOCK_PAYMENT_FOR_SETTLEMENT, payment_id)
    assert row is not None, f"no payment {payment_id}"
    return row


async def move(
    conn: asyncpg.Connection,
    payment: asyncpg.Record,
    target: str,
    *,
    code: str | None = None,
    detail: str | None = None,
    check_at: dt.datetime | None = None,
) -> None:
    """Move the locked ``payment`` to ``target``: the one place a state changes.

    ``check_at``: when the resolver should look at it next (None for a final state).
    """
    check_transition(payment["state"], target)
    await conn.execute(queries.SET_STATE, payment["payment_id"], target, code, detail, check_at)


async def view_in(conn: asyncpg.Connection, payment_id: uuid.UUID) -> PaymentView:
    """The payment as the app sees it, read in ``conn``'s transaction."""
    row = await conn.fetchrow(queries.PAYMENT_BY_ID, payment_id)
    assert row is not None
    return payment_view(row)


async def _announce(conn: asyncpg.Connection, payment: asyncpg.Record, event: str) -> PaymentView:
    """The payment's view after a final move, and its event in the outbox."""
    view = await view_in(conn, payment["payment_id"])
    await enqueue_notification(
        conn,
        payment["payment_id"],
        event,  # type: ignore[arg-type]
        view=view,
        app_id=payment["app_id"],
        webhook_url=payment["webhook_url"],
    )
    return view


async def record_settled_in(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    msgid: str,
    breakdown: SettlementBreakdown,
) -> PaymentView | None:
    """The settlement, its journal, the message outcome and the event, in ``conn``'s transaction.

    Returns the payment's view, or None when it was no longer waiting for a settlement.

    Raises:
        ReportMismatch: ``breakdown`` is about another person, visit, total or
            settlement; nothing was written.
    """
    payment = await lock(conn, payment_id)
    if (reason := report_mismatch(payment, breakdown)) is not None:
        raise ReportMismatch(reason)
    if payment["state"] not in ("settling", "unknown"):
        return None
    insured_province = province_of(payment["insured_area"])
    await conn.execute(
        queries.INSERT_SETTLEMENT,
        payment_id,
        breakdown.settlement_id,
        insured_province,
        province_of(payment["treatment_area"]),
        breakdown.medfee_total_fen,
        breakdown.full_own_pay_fen,
        breakdown.over_limit_self_pay_fen,
        breakdown.pre_self_pay_fen,
        breakdown.in_scope_fen,
        breakdown.deductible_applied_fen,
        breakdown.basic_fund_fen,
        breakdown.ratio_bp,
        breakdown.critical_illness_fen,
        breakdown.medical_assistance_fen,
        breakdown.fund_total_fen,
        breakdown.personal_part_fen,
        breakdown.personal_account_fen,
        breakdown.cash_fen,
        breakdown.balance_after_fen,
    )
    await post_journal(
        conn,
        payment_id,
        "settlement",
        settlement_postings(
            insured_province=insured_province,
            institution_code=payment["institution_code"],
            fund_total_fen=breakdown.fund_total_fen,
            personal_account_fen=breakdown.personal_account_fen,
            cash_fen=breakdown.cash_fen,
            medical_fee_total_fen=breakdown.medfee_total_fen,
        ),
    )
    await move(conn, payment, "settled")
    await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "accepted")
    if payment["prescription_id"] is not None:
        await confirm_redemption(conn, payment_id)
    if payment["replaces_payment_id"] is not None:  # the lines a partial refund kept
        await refunds.replacement_ended_in(conn, payment_id, "refunded")
    return await _announce(conn, payment, "payment.settled")


async def record_failed_in(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    code: str,
    detail: str | None,
    *,
    msgid: str | None = None,
    outcome: str | None = None,
) -> PaymentView | None:
    """Record that the payment did not settle; None when it was already final or settled."""
    payment = await lock(conn, payment_id)
    if not can_move(payment["state"], "failed"):
        return None
    await move(conn, payment, "failed", code=code, detail=detail)
    if msgid is not None:
        await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, outcome)
    if payment["prescription_id"] is not None:
        await release_redemption(conn, payment_id)
    if payment["replaces_payment_id"] is not None:
        await refunds.replacement_ended_in(conn, payment_id, "resettlement_failed", code, detail)
    return await _announce(conn, payment, "payment.failed")


async def mark_unknown_in(
    conn: asyncpg.Connection, payment_id: uuid.UUID, msgid: str, exc: ClearingError
) -> PaymentView:
    """The province may have settled: ``unknown`` until the resolver learns what it did."""
    payment = await lock(conn, payment_id)
    if payment["state"] == "settling":  # else already unknown, or final by a callback
        await move(
            conn,
            payment,
            "unknown",
            code=exc.code,
            detail=exc.message,
            check_at=dt.datetime.now(dt.UTC),
        )
        await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "unknown")
    return await view_in(conn, payment_id)


async def record_reversed_in(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    msgid: str,
    reported: SettlementBreakdown | None = None,
) -> PaymentView | None:
    """The reversal, its mirror journal, the message outcome and the event.

    ``reported``: the settlement the province says it reversed, checked first.
    Returns the view, or None when the payment was not being reversed.

    Raises:
        ReportMismatch: ``reported`` is not this payment's settlement; nothing written.
    """
    payment = await lock(conn, payment_id)
    if reported is not None and (reason := report_mismatch(payment, reported)) is not None:
        raise ReportMismatch(reason)
    if payment["state"] != "reversing":
        return None
    settlement = await conn.fetch(queries.SETTLEMENT_POSTINGS, payment_id)
    await post_journal(
        conn,
        payment_id,
        "reversal",
        reversal_postings([(p["account"], p["amount_fen"]) for p in settlement]),
    )
    await conn.execute(queries.INSERT_REVERSAL, payment_id)
    await move(conn, payment, "reversed")
    await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "accepted")
    if payment["prescription_id"] is not None:
        # The fund paid nothing in the end: the prescription may be redeemed again.
        await release_redemption(conn, payment_id)
    # A refund of part of it: the lines kept are recorded to be settled anew (refunds).
    await refunds.reversed_in(conn, payment_id)
    return await _announce(conn, payment, "payment.reversed")


async def record_annulled_in(
    conn: asyncpg.Connection, payment_id: uuid.UUID, code: str, reason: str
) -> int | None:
    """A settlement the province never made (reconciliation, DOMAIN.md section 7).

    The payment fails and its settlement journal is mirrored by a ``correction``
    journal, in ``conn``'s transaction, with the event. Returns the journal's id;
    None when the payment is no longer ``settled``. A correction is not a move of the
    flow (``states.CORRECTIONS``): no answer or callback can make it.
    """
    payment = await lock(conn, payment_id)
    if payment["state"] != "settled":
        return None
    check_correction(payment["state"], "failed")
    settlement = await conn.fetch(queries.SETTLEMENT_POSTINGS, payment_id)
    journal_id = await post_journal(
        conn,
        payment_id,
        "correction",
        reversal_postings([(p["account"], p["amount_fen"]) for p in settlement]),
    )
    await conn.execute(queries.INSERT_CORRECTION, payment_id, reason)
    await conn.execute(queries.SET_STATE, payment_id, "failed", code, reason, None)
    if payment["prescription_id"] is not None:
        await release_redemption(conn, payment_id)
    if payment["replaces_payment_id"] is not None:  # the lines kept were never settled
        await refunds.replacement_ended_in(conn, payment_id, "resettlement_failed", code, reason)
    await _announce(conn, payment, "payment.failed")
    return journal_id


async def back_to_settled_in(
    conn: asyncpg.Connection, payment_id: uuid.UUID, msgid: str, exc: ClearingError
) -> PaymentView:
    """The province refused the reversal or never got it: the settlement stands."""
    payment = await lock(conn, payment_id)
    if payment["state"] == "reversing":
        await move(conn, payment, "settled")
        outcome = "unavailable" if isinstance(exc, ProvinceUnavailable) else "rejected"
        await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, outcome)
        await refunds.reversal_refused_in(conn, payment_id, exc.code, exc.message)
    return await view_in(conn, payment_id)
