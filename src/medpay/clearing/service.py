"""Monthly clearing between provinces (DOMAIN.md section 7).

For a period (a calendar month, China time), the fund amounts of off-site settlements
per pair (insured province, treatment province): the insured province's funds pay,
the treatment province's institutions are owed. Netted, each province ends with one
figure, and the figures sum to zero.

Each off-site settlement, reversal and correction is a clearing entry of one period,
written by PostgreSQL in the transaction that records it (migration 0032): the China
month of the event, or the first open period after it when that month is closed, so
a reversal that arrives after its period closed lands in the next open period.
Closing a period freezes its matrix; PostgreSQL refuses any later write to it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import msgspec

from medpay.clearing import queries
from medpay.clearing.schemas import (
    PERIOD_PATTERN,
    ClearingCell,
    ClearingEntryView,
    ClearingMatrix,
    ProvincePosition,
)
from medpay.clock import china_today, month_bounds
from medpay.db.pool import transaction
from medpay.errors import Conflict, InvalidRequest
from medpay.ledger.check import Invariant, failures_of
from medpay.ledger.schemas import InvariantCheck, InvariantFailure
from medpay.wire.national import PROVINCES

if TYPE_CHECKING:
    import uuid

    import asyncpg

__all__ = [
    "check_clearing",
    "clearing_matrix",
    "close_period",
    "entries_of_payment",
    "parse_period",
    "period_of",
]

_PERIOD = re.compile(PERIOD_PATTERN)


def parse_period(text: str) -> str:
    """``text`` if it is a period ``YYYY-MM``; otherwise a 400 problem."""
    if not _PERIOD.fullmatch(text):
        raise InvalidRequest(
            "clearing_period_invalid",
            "Not a clearing period",
            "A period is a month, YYYY-MM (2000-01 to 2999-12).",
        )
    return text


def period_of(day: dt.date) -> str:
    """The period a China day belongs to."""
    return f"{day.year:04d}-{day.month:02d}"


def _last_day(period: str) -> dt.date:
    year, month = (int(part) for part in period.split("-"))
    return month_bounds(year, month)[1]


def _matrix(
    period: str, state_row: asyncpg.Record | None, rows: list[asyncpg.Record]
) -> ClearingMatrix:
    # A line's columns are named as the cell's fields; its fund columns, as FundAmounts'.
    cells = [msgspec.convert({**row, "funds": dict(row)}, ClearingCell) for row in rows]
    receivable = dict.fromkeys(PROVINCES, 0)
    payable = dict.fromkeys(PROVINCES, 0)
    for cell in cells:
        if cell.insured_province == cell.treatment_province:
            continue  # a province's off-site care of its own insured: nothing to clear
        receivable[cell.treatment_province] = (
            receivable.get(cell.treatment_province, 0) + cell.fund_total_fen
        )
        payable[cell.insured_province] = payable.get(cell.insured_province, 0) + cell.fund_total_fen
    positions = [
        ProvincePosition(
            province=code,
            name=PROVINCES.get(code, code),
            receivable_fen=receivable[code],
            payable_fen=payable[code],
            net_fen=receivable[code] - payable[code],
        )
        for code in sorted(receivable.keys() | payable.keys())
    ]
    net_sum = sum(position.net_fen for position in positions)
    assert net_sum == 0, f"clearing of {period} does not net to zero: {net_sum}"
    return ClearingMatrix(
        period=period,
        state="closed" if state_row is not None and state_row["state"] == "closed" else "open",
        closed_at=state_row["closed_at"] if state_row is not None else None,
        closed_by=state_row["closed_by"] if state_row is not None else None,
        cells=cells,
        positions=positions,
        cross_provincial_fen=sum(receivable.values()),
        net_sum_fen=net_sum,
    )


async def clearing_matrix(pool: asyncpg.Pool | asyncpg.Connection, period: str) -> ClearingMatrix:
    """The matrix of ``period``: frozen if it is closed, the entries so far if open."""
    period = parse_period(period)
    async with transaction(pool) as conn:
        state = await conn.fetchrow(queries.PERIOD, period)
        closed = state is not None and state["state"] == "closed"
        rows = await conn.fetch(
            queries.LINES_OF_CLOSED_PERIOD if closed else queries.LINES_OF_OPEN_PERIOD, period
        )
    return _matrix(period, state, rows)


async def close_period(
    pool: asyncpg.Pool,
    period: str,
    *,
    closed_by: str,
    today: dt.date | None = None,
) -> ClearingMatrix:
    """Close ``period`` once it has ended (China time): its matrix is frozen for good.

    Closing waits for every transaction writing an entry to finish and holds new ones
    back until it commits, so nothing lands in the period while it closes; later
    events land in the next open period. Closing a closed period answers its matrix.
    Problems: 400 ``clearing_period_invalid``, 409 ``clearing_period_not_over``.
    """
    period = parse_period(period)
    today = today or china_today()
    if today <= _last_day(period):
        raise Conflict(
            "clearing_period_not_over",
            "The period has not ended yet",
            f"{period} can be closed from {_last_day(period) + dt.timedelta(days=1)} (China time).",
        )
    async with transaction(pool) as conn:
        await conn.execute(queries.CLOSING_LOCK)
        await conn.execute(queries.ENSURE_PERIOD, period)
        state = await conn.fetchrow(queries.LOCK_PERIOD, period)
        assert state is not None
        if state["state"] == "open":
            await conn.execute(queries.FREEZE_LINES, period)
            await conn.execute(queries.CLOSE_PERIOD, period, closed_by)
    return await clearing_matrix(pool, period)


async def entries_of_payment(
    conn: asyncpg.Pool | asyncpg.Connection, payment_id: uuid.UUID
) -> list[ClearingEntryView]:
    """A payment's clearing entries: in which period it was cleared, and undone."""
    rows = await conn.fetch(queries.ENTRIES_OF_PAYMENT, payment_id)
    return [ClearingEntryView(**dict(row)) for row in rows]


def _entry_unlike_record(row: asyncpg.Record) -> str:
    if row["missing"]:
        return f"no {row['kind']} entry for it ({row['expected_fen']} fen expected)"
    if row["unexpected"]:
        return f"a {row['kind']} entry of {row['actual_fen']} fen that no record explains"
    return (
        f"its {row['kind']} entry says {row['actual_fen']} fen, "
        f"the record {row['expected_fen']} fen (or other provinces or funds)"
    )


_INVARIANTS = (
    Invariant(
        "clearing_entry_matches_record",
        queries.ENTRIES_UNLIKE_RECORDS,
        "entries",
        "payment",
        "payment_id",
        _entry_unlike_record,
    ),
    Invariant(
        "closed_period_frozen",
        queries.CLOSED_LINES_UNLIKE_ENTRIES,
        "closed_periods",
        "period",
        "period",
        lambda row: (
            f"{row['insured_province']} -> {row['treatment_province']}: frozen "
            f"{row['frozen_fen']} fen, entries {row['entries_fen']} fen"
        ),
    ),
)


async def check_clearing(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int = 20
) -> InvariantCheck:
    """The clearing invariants, in the shape of the ledger's check.

    ``clearing_entry_matches_record``: every off-site settlement has its entry with its
    fund amounts, every reversal and correction of one has the negated entry, and no
    other entry exists. ``closed_period_frozen``: a closed period's frozen matrix is the
    sum of its entries. ``clearing_nets_to_zero``: every period's nets sum to zero.
    """
    counts = await conn.fetchrow(queries.COUNTS)
    assert counts is not None
    failures = await failures_of(conn, _INVARIANTS, limit)
    periods = await conn.fetch(queries.PERIODS)
    for row in periods:
        try:
            await clearing_matrix(conn, row["period"])
        except AssertionError as exc:
            failures.append(
                InvariantFailure(
                    invariant="clearing_nets_to_zero",
                    subject=f"period {row['period']}",
                    detail=str(exc),
                )
            )
    return InvariantCheck(
        checked={invariant.name: counts[invariant.counted] for invariant in _INVARIANTS}
        | {"clearing_nets_to_zero": counts["periods"]},
        failures=failures,
    )
