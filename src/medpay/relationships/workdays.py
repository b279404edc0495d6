"""Calendar arithmetic of a relationship transfer (DOMAIN.md section 6).

Deadlines are in working days: 10 for the old area to issue the certificate, 5 for
the new area to accept, 15 in all. A working day is Monday to Friday, except the
holidays given (a province passes its own list; none by default). Months are
calendar months: ``add_months`` keeps the day of the month, or the month's last day
when the month is shorter (31 January + 1 month = 28 or 29 February).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from medpay.clock import add_months

__all__ = [
    "NO_HOLIDAYS",
    "add_months",
    "add_working_days",
    "is_working_day",
    "whole_months_between",
    "working_days_between",
]

NO_HOLIDAYS: frozenset[dt.date] = frozenset()
_ONE_DAY = dt.timedelta(days=1)


def is_working_day(day: dt.date, holidays: Collection[dt.date] = NO_HOLIDAYS) -> bool:
    """Monday to Friday, and not a holiday."""
    return day.weekday() < 5 and day not in holidays


def add_working_days(
    start: dt.date, days: int, holidays: Collection[dt.date] = NO_HOLIDAYS
) -> dt.date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts).

    A request made on a Friday with 10 working days is due on the second Friday after.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, not {days}")
    day = start
    while days:
        day += _ONE_DAY
        if is_working_day(day, holidays):
            days -= 1
    return day


def working_days_between(
    start: dt.date, end: dt.date, holidays: Collection[dt.date] = NO_HOLIDAYS
) -> int:
    """How many working days lie after ``start`` up to and including ``end`` (0 if none).

    With ``start`` a deadline and ``end`` today, this is how many working days late.
    """
    if end <= start:
        return 0
    full_weeks, rest = divmod((end - start).days, 7)
    count = 5 * full_weeks
    day = start + dt.timedelta(weeks=full_weeks)
    for _ in range(rest):
        day += _ONE_DAY
        count += day.weekday() < 5
    return count - sum(1 for h in set(holidays) if start < h <= end and h.weekday() < 5)


def whole_months_between(start: dt.date, end: dt.date) -> int:
    """The whole calendar months from ``start`` to ``end`` (0 when ``end`` is not after ``start``).

    The largest ``m`` with ``add_months(start, m) <= end``: from 15 March, one month is
    complete on 15 April, not on 14 April.
    """
    if end <= start:
        return 0
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if add_months(start, months) > end:
        months -= 1
    return months
