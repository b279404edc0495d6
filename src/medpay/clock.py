"""China's calendar: every service date, deadline and validity is a day in UTC+8."""

from __future__ import annotations

import datetime as dt

__all__ = ["CHINA", "china_today"]

#: China Standard Time (UTC+8, no daylight saving).
CHINA = dt.timezone(dt.timedelta(hours=8))


def china_today() -> dt.date:
    """Today in China."""
    return dt.datetime.now(CHINA).date()
