"""Time: China's calendar, and how long to wait before trying again.

Every service date, deadline and validity is a day in China (UTC+8, no daylight
saving); every retry of background work backs off the same way, and every background
loop outlives a failed pass the same way.

Foundation module: imports nothing of medpay.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import math
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import logging
    from collections.abc import Awaitable, Callable

__all__ = [
    "CHINA",
    "add_months",
    "backoff_seconds",
    "china_date",
    "china_day_bounds",
    "china_now",
    "china_today",
    "month_bounds",
    "repeat",
]

#: China Standard Time (UTC+8, no daylight saving).
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def china_now() -> dt.datetime:
    """Now, on China's clock (the default clock of whatever keeps China days)."""
    return dt.datetime.now(CHINA)


def china_today() -> dt.date:
    """Today in China."""
    return china_now().date()


def china_date(moment: dt.datetime | None) -> dt.date | None:
    """The China day of an instant (None for none): what a statement's day is made of."""
    return None if moment is None else moment.astimezone(CHINA).date()


def china_day_bounds(
    first: dt.date, last: dt.date | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The instants ``[start, end)`` of China days ``first`` to ``last`` (default: one day).

    Days of statements and reconciliation are China days (DOMAIN.md section 7); a query
    by instant range uses a plain index where a query by computed date would not.
    """
    last = first if last is None else last
    start = dt.datetime.combine(first, dt.time(), tzinfo=CHINA)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=CHINA)
    return start, end


def month_bounds(year: int, month: int) -> tuple[dt.date, dt.date]:
    """The first and the last day of a calendar month."""
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months, clamped to the last day of the month.

    31 January + 1 month is 28 or 29 February (filing validities, waiting periods).
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def backoff_seconds(attempts: int, *, most: float = math.inf, first: float = 1.0) -> float:
    """``first`` (1 s), twice, four times that ... after the first, second, third attempt.

    Never more than ``most``.
    """
    return float(min(first * 2 ** max(attempts - 1, 0), most))


async def repeat(
    work: Callable[[], Awaitable[object]], *, every: float, log: logging.Logger, what: str
) -> NoReturn:
    """``work()``, then again ``every`` seconds later, until cancelled; a failure is logged."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed; will try again", what)
        await asyncio.sleep(every)
