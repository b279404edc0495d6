"""The gateway reconciles yesterday with every province by itself, once a day, in one process.

Every gateway process runs this loop; the day's job is a row in ``daily_jobs`` that one
process takes under a lease (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the lease
has expired), so one process does it. A process that dies mid-run lets its lease
lapse and another takes over; reconciliation is idempotent, so a second run changes
nothing the first one did. A day whose statements could not all be had is tried again
later; unexplained differences are a result, not a failure: they wait for a person.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

from medpay.clock import CHINA, china_now, repeat
from medpay.reconciliation import queries

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg

    from medpay.reconciliation.schemas import DayReport
    from medpay.reconciliation.service import Reconciler

__all__ = ["JOB", "DailyReconciliation", "parse_time_of_day"]

_log = logging.getLogger("medpay.reconciliation.daily")
JOB = "reconciliation"


def parse_time_of_day(text: str) -> dt.time:
    """``HH:MM`` (China time) as a time; ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(hours) == 2 and len(minutes) == 2):
        raise ValueError(f"not a time of day HH:MM: {text!r}")
    return dt.time(int(hours), int(minutes))


@dataclasses.dataclass(eq=False, repr=False)
class DailyReconciliation:
    """Reconciles the previous China day after ``at`` each day, under a lease in PostgreSQL."""

    pool: asyncpg.Pool
    reconciler: Reconciler
    _: dataclasses.KW_ONLY
    at: dt.time
    lease_seconds: float = 900.0
    retry_seconds: float = 600.0
    interval_seconds: float = 60.0
    clock: Callable[[], dt.datetime] = china_now
    holder: str | None = None

    def __post_init__(self) -> None:
        self.holder = self.holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def due_day(self) -> dt.date | None:
        """The day to reconcile now: yesterday, once today's time ``at`` has passed."""
        now = self.clock().astimezone(CHINA)
        if now.time() < self.at:
            return None
        return now.date() - dt.timedelta(days=1)

    async def run_once(self) -> DayReport | None:
        """Reconcile the due day if no process has done it or holds it; its report, or None."""
        day = self.due_day()
        if day is None:
            return None
        claimed = await self.pool.fetchval(
            queries.CLAIM_DAILY_JOB, JOB, day, self.holder, self.lease_seconds
        )
        if claimed is None:  # done already, or another process holds a live lease
            return None
        try:
            report = await self.reconciler.reconcile_day(day, triggered_by="daily job")
        except Exception as exc:
            await self._release(day, f"{type(exc).__name__}: {exc}")
            raise
        if report.unavailable:
            await self._release(day, f"{report.unavailable} statements could not be had")
        else:
            await self.pool.execute(queries.FINISH_DAILY_JOB, JOB, day, self.holder)
        _log.info(
            "reconciled %s with %d provinces: %d unexplained, %d unavailable",
            day,
            len(report.provinces),
            report.unexplained,
            report.unavailable,
        )
        return report

    async def _release(self, day: dt.date, why: str) -> None:
        await self.pool.execute(
            queries.RELEASE_DAILY_JOB, JOB, day, self.holder, self.retry_seconds, why[:500]
        )

    async def run_forever(self) -> None:
        """Look once a minute until cancelled."""
        await repeat(
            self.run_once, every=self.interval_seconds, log=_log, what="daily reconciliation"
        )
