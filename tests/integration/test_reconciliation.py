"""Daily reconciliation against the simulator's statements, over real HTTP (DOMAIN.md 7).

Differences are planted on either side: the simulator loses a settlement (its admin
endpoint), our side loses an answer (the simulator drops it and no resolver runs),
figures are changed in the province's statement, a settlement is made under a msgid we
never sent. Each is listed, one by one, and resolved by the rules in force or left to a
person; running again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import httpx
import msgspec
import pytest

from medpay.books.service import check_books
from medpay.clock import china_today
from medpay.demo import DEMO_ORDER
from medpay.plugin import resources_of
from medpay.reconciliation.service import Reconciler, explain_difference
from medpay.settlement.adapters.base import SettlementRequest
from medpay.wire.national import CHINA_TZ, new_msgid

from .conftest import ZHEJIANG_EMPLOYEE

ZJ = "330000"
_keys = itertools.count()


@pytest.fixture
def reconciler(gateway, db_pool, client) -> Reconciler:
    """The gateway's own flow and provinces; the client fixture has started the gateway."""
    return Reconciler(db_pool, resources_of(gateway).payment_flow, retry_seconds=0.01)


async def _pay(client, signed) -> dict:
    response = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": f"reconcile-{next(_keys):04d}-{uuid.uuid4().hex[:8]}"},
        auth=signed,
    )
    assert response.status_code in (201, 202), response.text
    return response.json()


async def _reverse(client, signed, payment_id: str) -> dict:
    response = await client.post(
        f"/v1/payments/{payment_id}/reversal",
        headers={"Idempotency-Key": f"reverse-{payment_id}"},
        auth=signed,
    )
    assert response.status_code in (200, 202), response.text
    return response.json()


async def _admin(simulator, method: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        response = await http.request(method, path, **kwargs)
    response.raise_for_status()
    return response


async def _faults(simulator, **knobs) -> None:
    await _admin(simulator, "PUT", f"/admin/provinces/{ZJ}/faults", json=knobs)


async def _books(db_pool) -> dict:
    """Everything reconciliation could change: states, journals, differences."""
    return {
        "states": [
            tuple(r)
            for r in await db_pool.fetch("SELECT payment_id, state FROM payments ORDER BY 1")
        ],
        "journals": [
            tuple(r)
            for r in await db_pool.fetch("SELECT journal_id, kind FROM ledger_journals ORDER BY 1")
        ],
        "differences": [
            tuple(r)
            for r in await db_pool.fetch(
                "SELECT difference_id, status, awaiting, note, resolution, resolution_detail"
                " FROM reconciliation_differences ORDER BY 1"
            )
        ],
    }


async def test_matching_books_are_balanced(client, signed, reconciler, db_pool) -> None:
    kept = await _pay(client, signed)
    undone = await _pay(client, signed)
    await _reverse(client, signed, undone["payment_id"])

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    assert report.outcome == "balanced"
    assert (report.statement_lines, report.our_lines, report.matched) == (2, 2, 2)
    assert report.differences == [] and report.unexplained == 0
    assert report.totals is not None and report.totals.agreed
    (line,) = report.totals.theirs
    # Net of the day: two settlements made, one reversed.
    assert (line.insurance_scheme, line.clearing_type, line.settlement_count) == (
        "employee",
        "11",
        1,
    )
    assert line.medical_fee_total_fen == kept["medical_fee_total_fen"]
    run = await db_pool.fetchrow("SELECT outcome, totals_agreed, report FROM reconciliation_runs")
    assert (run["outcome"], run["totals_agreed"]) == ("balanced", True)
    assert run["report"]["run_id"] == report.run_id


async def test_a_province_without_settlements_is_balanced(reconciler) -> None:
    report = await reconciler.reconcile("650000", china_today(), triggered_by="test")
    assert report.outcome == "balanced" and report.statement_lines == 0


async def test_a_settlement_the_province_lost_is_annulled_with_a_correction(
    client, signed, simulator, reconciler, db_pool
) -> None:
    paid = await _pay(client, signed)
    setl_id = paid["settlement"]["settlement_id"]
    await _admin(simulator, "DELETE", f"/admin/settlements/{setl_id}")

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.status, difference.resolution) == (
        "missing_there",
        "resolved",
        "annulled",
    )
    assert difference.settlement_id == setl_id
    assert str(difference.payment_id) == paid["payment_id"]
    assert difference.resolved_by == "reconciliation"
    assert "6301 says not_found" in (difference.resolution_detail or "")
    assert report.outcome == "explained" and report.unexplained == 0
    assert report.totals_at_start is not None and not report.totals_at_start.agreed
    assert report.totals is not None and report.totals.agreed  # after the correction
    payment = await db_pool.fetchrow(
        "SELECT state, failure_code FROM payments WHERE payment_id = $1",
        uuid.UUID(paid["payment_id"]),
    )
    assert (payment["state"], payment["failure_code"]) == ("failed", "not_settled_by_province")
    journals = await db_pool.fetch(
        "SELECT j.journal_id, j.kind, p.account, p.amount_fen FROM ledger_journals j"
        " JOIN ledger_postings p USING (journal_id) ORDER BY j.journal_id, p.line_no"
    )
    settlement = {(r["account"], r["amount_fen"]) for r in journals if r["kind"] == "settlement"}
    correction = {(r["account"], -r["amount_fen"]) for r in journals if r["kind"] == "correction"}
    assert settlement == correction and settlement
    assert difference.journal_id == next(
        r["journal_id"] for r in journals if r["kind"] == "correction"
    )
    assert (await check_books(db_pool)).ok


async def test_a_settlement_whose_answer_we_lost_is_recorded_from_the_province(
    client, signed, simulator, reconciler, db_pool
) -> None:
    await _faults(simulator, drop_rate=1.0, drop_hold_s=2.5)
    paid = await _pay(client, signed)
    assert paid["state"] == "processing"  # our books have no settlement: the answer was lost
    await _faults(simulator)

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.resolution) == ("missing_here", "recorded_from_province")
    assert difference.theirs is not None and difference.theirs["msgid"] == difference.subject
    assert difference.journal_id is not None
    state = await db_pool.fetchval(
        "SELECT state FROM payments WHERE payment_id = $1", uuid.UUID(paid["payment_id"])
    )
    assert state == "settled"
    # Recorded through the flow: one 2207 message, never a second msgid.
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == 1
    assert report.outcome == "explained"
    assert (await check_books(db_pool)).ok


async def test_running_it_twice_changes_nothing_the_second_time(
    client, signed, simulator, reconciler, db_pool
) -> None:
    lost_there = await _pay(client, signed)
    await _admin(
        simulator, "DELETE", f"/admin/settlements/{lost_there['settlement']['settlement_id']}"
    )
    await _faults(simulator, drop_rate=1.0, drop_hold_s=2.5)
    await _pay(client, signed)
    await _faults(simulator)
    changed = await _pay(client, signed)
    await _admin(
        simulator,
        "PUT",
        f"/admin/settlements/{changed['settlement']['settlement_id']}/basic-fund",
        json={"hifp_pay": changed["settlement"]["basic_fund_fen"] + 100},
    )
    first = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")
    books = await _books(db_pool)

    second = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    assert await _books(db_pool) == books
    assert (second.new_differences, second.resolved_now) == (0, 0)
    assert [d.difference_id for d in second.differences] == [
        d.difference_id for d in first.differences
    ]
    assert sorted(d.kind for d in first.differences) == [
        "figures_differ",
        "missing_here",
        "missing_there",
    ]
    assert second.unexplained == first.unexplained == 1  # the figures need a person


async def test_figures_that_differ_need_a_person_until_one_explains_them(
    client, signed, simulator, reconciler, db_pool, operator
) -> None:
    paid = await _pay(client, signed)
    basic = paid["settlement"]["basic_fund_fen"]
    await _admin(
        simulator,
        "PUT",
        f"/admin/settlements/{paid['settlement']['settlement_id']}/basic-fund",
        json={"hifp_pay": basic + 100},
    )

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.status, difference.awaiting) == (
        "figures_differ",
        "open",
        "person",
    )
    assert f"basic_fund_fen ours {basic} theirs {basic + 100}" in (difference.note or "")
    assert "6301 answers our figures" in (difference.note or "")
    assert report.outcome == "unexplained" and report.unexplained == 1
    # Nothing was changed on the statement's word.
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1

    explained = await explain_difference(
        db_pool,
        difference.difference_id,
        operator_id=operator.party_id,
        note="Province admits a data entry error; its statement is corrected tomorrow.",
    )
    again = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    assert (explained.status, explained.resolution) == ("resolved", "explained_by_operator")
    assert explained.resolved_by == f"operator:{operator.party_id}"
    assert again.outcome == "explained" and again.unexplained == 0


async def test_a_resolved_difference_is_never_changed(
    client, signed, simulator, reconciler, db_pool
):
    paid = await _pay(client, signed)
    await _admin(simulator, "DELETE", f"/admin/settlements/{paid['settlement']['settlement_id']}")
    await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    with pytest.raises(Exception, match="resolved; it never changes again"):
        await db_pool.execute("UPDATE reconciliation_differences SET note = 'rewritten'")
    with pytest.raises(Exception, match="never deleted"):
        await db_pool.execute("DELETE FROM reconciliation_differences")


async def test_a_settlement_under_a_msgid_we_never_sent_needs_a_person(
    client, signed, gateway, reconciler, db_pool
) -> None:
    paid = await _pay(client, signed)
    stored = await db_pool.fetchval(
        "SELECT request FROM province_messages WHERE payment_id = $1", uuid.UUID(paid["payment_id"])
    )
    foreign = msgspec.structs.replace(
        # Kept with the person by reference; the province is sent the number.
        msgspec.convert(stored | {"psn_no": ZHEJIANG_EMPLOYEE}, SettlementRequest),
        msgid=new_msgid("H11010800124", dt.datetime.now(CHINA_TZ), 9999),
        visit_id=uuid.uuid4().hex,
        charge_batch_no=uuid.uuid4().hex[:20],
    )
    await resources_of(gateway).provinces.for_province(ZJ).settle(foreign)  # not through us

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.subject, difference.awaiting) == (
        "missing_here",
        foreign.msgid,
        "person",
    )
    assert difference.payment_id is None
    assert "a msgid we never sent" in (difference.note or "")
    assert report.outcome == "unexplained"


async def test_a_reversal_whose_answer_we_lost_is_recorded_from_the_province(
    client, signed, simulator, reconciler, db_pool
) -> None:
    paid = await _pay(client, signed)
    await _faults(simulator, drop_rate=1.0, drop_hold_s=2.5)
    reversing = await _reverse(client, signed, paid["payment_id"])
    assert reversing["state"] == "reversing"
    await _faults(simulator)

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.resolution) == ("reversed_there_only", "reversal_recorded")
    assert await db_pool.fetchval("SELECT state FROM payments") == "reversed"
    assert (await check_books(db_pool)).ok


async def test_a_province_that_cannot_answer_leaves_the_day_unavailable(
    client, signed, simulator, reconciler, db_pool
) -> None:
    await _pay(client, signed)
    await _faults(simulator, error_rate=1.0)

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    assert report.outcome == "statement_unavailable"
    assert report.error is not None and report.error.startswith("province_error")
    assert await db_pool.fetchval("SELECT count(*) FROM reconciliation_differences") == 0
    assert await db_pool.fetchval("SELECT outcome FROM reconciliation_runs") == (
        "statement_unavailable"
    )


async def test_a_callback_that_matched_nothing_is_reported(reconciler, db_pool) -> None:
    await db_pool.execute(
        "INSERT INTO province_callbacks (province, callback_id, ref_msgid, result, outcome, body)"
        " VALUES ($1, 'CB-STRAY-1', 'H11010800124202611260000009999', 'settled', 'unmatched', '{}')",
        ZJ,
    )

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.subject, difference.awaiting) == (
        "callback_unmatched",
        "CB-STRAY-1",
        "person",
    )
    assert report.outcome == "unexplained"


async def test_every_connected_province_is_reconciled(client, signed, reconciler) -> None:
    await _pay(client, signed)

    day = await reconciler.reconcile_day(china_today(), triggered_by="test")

    assert len(day.provinces) == 31
    assert day.ok and day.unexplained == 0
    assert {r.outcome for r in day.provinces} == {"balanced"}
    assert sum(r.statement_lines for r in day.provinces) == 1


@pytest.mark.parametrize(
    ("province", "day", "code"),
    [
        ("999999", dt.date(2026, 1, 1), "reconciliation_province_invalid"),
        ("330106", dt.date(2026, 1, 1), "reconciliation_province_invalid"),
        (ZJ, china_today() + dt.timedelta(days=1), "reconciliation_day_invalid"),
    ],
)
async def test_a_province_or_day_that_cannot_be_reconciled_is_refused(
    reconciler, province, day, code
) -> None:
    from medpay.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        await reconciler.reconcile(province, day, triggered_by="test")
    assert refused.value.code == code


async def test_a_statement_whose_details_do_not_add_up_to_its_totals_needs_a_person(
    client, signed, gateway, reconciler, monkeypatch
) -> None:
    await _pay(client, signed)
    adapter = resources_of(gateway).provinces.for_province(ZJ)
    honest = adapter.statement_totals

    async def inflated(request):
        answer = await honest(request)
        first = answer.lines[0]
        line = msgspec.structs.replace(
            first.line, medical_fee_total_fen=first.line.medical_fee_total_fen + 1
        )
        return msgspec.structs.replace(
            answer, lines=[msgspec.structs.replace(first, line=line), *answer.lines[1:]]
        )

    monkeypatch.setattr(adapter, "statement_totals", inflated)

    report = await reconciler.reconcile(ZJ, china_today(), triggered_by="test")

    (difference,) = report.differences
    assert (difference.kind, difference.subject, difference.awaiting) == (
        "statement_inconsistent",
        "statement",
        "person",
    )
    assert "do not add up to its own totals" in (difference.note or "")
    assert report.outcome == "unexplained"
