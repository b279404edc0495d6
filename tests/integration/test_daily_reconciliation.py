"""The gateway reconciles yesterday by itself, once a day, in one process (a lease in PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from medpay.clock import CHINA
from medpay.plugin import resources_of
from medpay.reconciliation.scheduler import DailyReconciliation, parse_time_of_day
from medpay.reconciliation.service import Reconciler

NOW = dt.datetime(2026, 11, 27, 3, 30, tzinfo=CHINA)


@pytest.fixture
def reconciler(gateway, db_pool, client) -> Reconciler:
    return Reconciler(
        db_pool, resources_of(gateway).payment_flow, retry_seconds=0.01, clock=lambda: NOW
    )


def _daily(db_pool, reconciler, *, now=NOW, holder="gateway-a", **kwargs) -> DailyReconciliation:
    return DailyReconciliation(
        db_pool,
        reconciler,
        at=dt.time(3, 0),
        clock=lambda: now,
        holder=holder,
        **kwargs,
    )


async def test_nothing_is_due_before_the_time_of_day(db_pool, reconciler) -> None:
    early = _daily(db_pool, reconciler, now=NOW.replace(hour=2, minute=59))
    assert early.due_day() is None
    assert await early.run_once() is None
    assert await db_pool.fetchval("SELECT count(*) FROM daily_jobs") == 0


async def test_yesterday_is_reconciled_once_with_every_province(db_pool, reconciler) -> None:
    daily = _daily(db_pool, reconciler)

    report = await daily.run_once()
    again = await daily.run_once()
    other = await _daily(db_pool, reconciler, holder="gateway-b").run_once()

    assert report is not None and report.day == dt.date(2026, 11, 26)
    assert len(report.provinces) == 31 and report.ok
    assert again is None and other is None
    job = await db_pool.fetchrow("SELECT holder, finished_at, attempts FROM daily_jobs")
    assert (job["holder"], job["attempts"]) == ("gateway-a", 1) and job["finished_at"]
    runs = await db_pool.fetch("SELECT DISTINCT triggered_by, day FROM reconciliation_runs")
    assert [tuple(r) for r in runs] == [("daily job", dt.date(2026, 11, 26))]


async def test_two_processes_at_once_make_one_run(db_pool, reconciler) -> None:
    first, second = await asyncio.gather(
        _daily(db_pool, reconciler, holder="gateway-a").run_once(),
        _daily(db_pool, reconciler, holder="gateway-b").run_once(),
    )
    assert [report is None for report in (first, second)].count(True) == 1
    assert await db_pool.fetchval("SELECT count(*) FROM reconciliation_runs") == 31


async def test_a_lapsed_lease_is_taken_over(db_pool, reconciler) -> None:
    await db_pool.execute(
        "INSERT INTO daily_jobs (job, day, holder, lease_until)"
        " VALUES ('reconciliation', '2026-11-26', 'crashed', now() - interval '1 second')"
    )

    report = await _daily(db_pool, reconciler).run_once()

    assert report is not None
    job = await db_pool.fetchrow("SELECT holder, attempts, finished_at FROM daily_jobs")
    assert (job["holder"], job["attempts"]) == ("gateway-a", 2) and job["finished_at"]


async def test_a_live_lease_of_another_process_is_left_alone(db_pool, reconciler) -> None:
    await db_pool.execute(
        "INSERT INTO daily_jobs (job, day, holder, lease_until)"
        " VALUES ('reconciliation', '2026-11-26', 'busy', now() + interval '5 minutes')"
    )
    assert await _daily(db_pool, reconciler).run_once() is None
    assert await db_pool.fetchval("SELECT count(*) FROM reconciliation_runs") == 0


async def test_a_day_with_a_statement_missing_is_tried_again(
    db_pool, reconciler, simulator
) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.put("/admin/provinces/540000/faults", json={"error_rate": 1.0})
    daily = _daily(db_pool, reconciler, retry_seconds=0.0)

    first = await daily.run_once()
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.put("/admin/provinces/540000/faults", json={})
    second = await daily.run_once()

    assert first is not None and first.unavailable == 1
    assert second is not None and second.unavailable == 0
    job = await db_pool.fetchrow("SELECT attempts, finished_at, last_error FROM daily_jobs")
    assert job["attempts"] == 2 and job["finished_at"] and job["last_error"] is None


@pytest.mark.parametrize("text", ["3:00", "24:00", "03:60", "0300", "03:00:00", ""])
def test_a_time_of_day_is_hh_mm(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_of_day(text)
