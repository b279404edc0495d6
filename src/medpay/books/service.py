"""What the operator's view and ``medpay ledger check`` ask of the books.

Reads only: every invariant at once (``check_books``), a service date's volumes by
insured province (``volumes_on``), and a payment's whole story (``payment_story``):
the states it passed through, each message to its province exactly as sent, the
province's callbacks, its journals, its app notifications, its clearing entries and
what reconciliation found about it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from medpay.books import queries
from medpay.books.schemas import (
    CallbackRecord,
    DayVolumes,
    JournalView,
    MessageRecord,
    NotificationRecord,
    PaymentStory,
    ProvinceVolume,
    StateChange,
)
from medpay.clearing.service import check_clearing, entries_of_payment
from medpay.clock import china_today
from medpay.db.pool import connection
from medpay.errors import NotFound
from medpay.ledger import queries as ledger_queries
from medpay.ledger.check import FAILURES_PER_INVARIANT, check_ledger
from medpay.notifications import queries as notification_queries
from medpay.payments import queries as payment_queries
from medpay.reconciliation.service import differences_of_payment
from medpay.schemas import view_of
from medpay.security.persons import psn_no_of
from medpay.wire.national import PROVINCES

if TYPE_CHECKING:
    import datetime as dt

    import asyncpg

    from medpay.ledger.schemas import InvariantCheck

__all__ = ["check_books", "parse_payment_id", "payment_story", "volumes_on"]

_SETTLEMENT_FIELDS = (
    "setl_id",
    "full_own_pay_fen",
    "over_limit_self_pay_fen",
    "pre_self_pay_fen",
    "in_scope_fen",
    "deductible_fen",
    "reimbursement_ratio_bp",
    "basic_fund_fen",
    "critical_illness_fen",
    "medical_assistance_fen",
    "fund_total_fen",
    "personal_share_fen",
    "personal_account_fen",
    "cash_fen",
    "account_balance_after_fen",
    "settled_at",
)
_VOLUME_FIGURES = (
    "payments",
    "settled",
    "reversed",
    "failed",
    "processing",
    "medical_fee_total_fen",
    "fund_total_fen",
    "personal_account_fen",
    "cash_fen",
    "reversed_fee_total_fen",
)


async def check_books(
    pool: asyncpg.Pool | asyncpg.Connection, *, limit: int = FAILURES_PER_INVARIANT
) -> InvariantCheck:
    """Every invariant: the ledger's (journals against records) and clearing's, in one report."""
    ledger = await check_ledger(pool, limit=limit)
    return ledger.merged(await check_clearing(pool, limit=limit))


async def volumes_on(pool: asyncpg.Pool, day: dt.date | None = None) -> DayVolumes:
    """A service date's payments (default: today in China) by the insured province."""
    day = day or china_today()
    provinces = [
        ProvinceVolume(
            province=row["province"],
            name=PROVINCES.get(row["province"], row["province"])
            if row["province"]
            else "not routed",
            **{name: row[name] for name in _VOLUME_FIGURES},
        )
        for row in await pool.fetch(queries.VOLUMES_OF_DAY, day)
    ]
    total = ProvinceVolume(
        province=None,
        name="all provinces",
        **{name: sum(getattr(p, name) for p in provinces) for name in _VOLUME_FIGURES},
    )
    return DayVolumes(day=day, provinces=provinces, total=total)


def parse_payment_id(raw: str) -> uuid.UUID:
    """A payment id of a path; anything malformed is an unknown payment (404)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _no_such_payment() from None


def _no_such_payment() -> NotFound:
    return NotFound("payment_not_found", "No such payment")


def _settlement(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["setl_id"] is None:
        return None
    return msgspec.to_builtins({name: row[name] for name in _SETTLEMENT_FIELDS})


def _as_sent(message: asyncpg.Record, psn_no: str) -> dict[str, Any]:
    """A stored message as it was sent: with the person's number for its reference."""
    fields = dict(message)
    if isinstance(fields.get("request"), dict) and "psn_no" in fields["request"]:
        fields["request"] = fields["request"] | {"psn_no": psn_no}
    return fields


async def payment_story(pool: asyncpg.Pool, payment_id: uuid.UUID) -> PaymentStory:
    """Everything that happened to a payment, read in one snapshot; 404 ``payment_not_found``."""
    async with (
        connection(pool) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        row = await conn.fetchrow(payment_queries.PAYMENT_BY_ID, payment_id)
        if row is None:
            raise _no_such_payment()
        states = await conn.fetch(queries.STATES_OF_PAYMENT, payment_id)
        messages = await conn.fetch(queries.MESSAGES_OF_PAYMENT, payment_id)
        callbacks = await conn.fetch(queries.CALLBACKS_OF_PAYMENT, payment_id)
        journals = await conn.fetch(ledger_queries.JOURNALS_OF_PAYMENT, payment_id)
        notifications = await conn.fetch(notification_queries.NOTIFICATIONS_OF_PAYMENT, payment_id)
        correction = await conn.fetchrow(queries.CORRECTION_OF_PAYMENT, payment_id)
        refunds = await conn.fetch(queries.REFUNDS_OF_PAYMENT, payment_id)
        clearing = await entries_of_payment(conn, payment_id)
        differences = await differences_of_payment(conn, payment_id)
    number = psn_no_of(row)  # kept by reference; the operator's story names the person
    return view_of(
        row,
        PaymentStory,
        psn_no=number,
        settlement=_settlement(row),
        correction=None if correction is None else msgspec.to_builtins(dict(correction)),
        refunds=[msgspec.to_builtins(dict(r)) for r in refunds],
        states=[StateChange(**dict(r)) for r in states],
        messages=[MessageRecord(**_as_sent(r, number)) for r in messages],
        callbacks=[CallbackRecord(**dict(r)) for r in callbacks],
        journals=[msgspec.convert(dict(r), JournalView) for r in journals],
        notifications=[NotificationRecord(**dict(r)) for r in notifications],
        clearing=clearing,
        differences=differences,
    )
