"""Time: China's calendar, and how long to wait before trying again.

Every service date, deadline and validity is a day in China (UTC+8, no daylight
saving); every retry of background work backs off the same way.

Foundation module: imports nothing of medpay.
"""

from __future__ import annotations

import calendar
import datetime as dt

__all__ = ["CHINA", "add_months", "backoff_seconds", "china_today"]

#: China Standard Time (UTC+8, no daylight saving).
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def china_today() -> dt.date:
    """Today in China."""
    return dt.datetime.now(CHINA).date()


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months, clamped to the last day of the month.

    31 January + 1 month is 28 or 29 February (filing validities, waiting periods).
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def backoff_seconds(attempts: int, *, most: float) -> float:
    """1, 2, 4, ... seconds after the first, second, third attempt; never more than ``most``."""
    return float(min(2 ** max(attempts - 1, 0), most))
