"""The ledger questioned (balances, every invariant) and monthly clearing, on real payments."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from medpay.books.service import check_books
from medpay.clearing.service import clearing_matrix, close_period, period_of
from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.errors import Conflict, InvalidRequest
from medpay.ledger.service import balances

from .books_helpers import FUNDED_ORDER, GUANGDONG_RESIDENT, move_relationship, pay, reverse

BEIJING_EMPLOYEE = "11000000000000000003"  # insured in 110105, off-site in 110108


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


@pytest.fixture
def guangdong(patient_app, identity_issuer) -> AppSignatureAuth:
    return AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(GUANGDONG_RESIDENT)
    )


@pytest.fixture
def beijing(patient_app, identity_issuer) -> AppSignatureAuth:
    return AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(BEIJING_EMPLOYEE)
    )


# --- balances ---------------------------------------------------------------------------------


async def test_balances_by_account_and_by_prefix(client, guangdong, db_pool) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)
    split = paid["settlement"]
    assert split["fund_total_fen"] > 0

    one = await balances(db_pool, account="fund_receivable:440000")
    institutions = await balances(db_pool, prefix="institution_payable:")
    everything = await balances(db_pool)

    assert [(a.account, a.balance_fen) for a in one.accounts] == [
        ("fund_receivable:440000", split["fund_total_fen"])
    ]
    assert institutions.total_fen == -paid["medical_fee_total_fen"]
    assert [a.account for a in institutions.accounts] == ["institution_payable:H11010800124"]
    assert everything.total_fen == 0  # double entry: the whole ledger sums to nothing
    assert {a.account for a in everything.accounts} == {
        "fund_receivable:440000",
        "patient_cash_receivable",
        "institution_payable:H11010800124",
    }


async def test_a_prefix_is_a_prefix_not_a_pattern(client, signed, db_pool) -> None:
    await pay(client, signed)
    assert (await balances(db_pool, prefix="fund_receivable_")).accounts == []
    assert (await balances(db_pool, prefix="fund%")).accounts == []


async def test_balances_as_of_a_time_count_the_journals_written_by_then(
    client, guangdong, db_pool
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    paid = await pay(client, guangdong, FUNDED_ORDER)
    await reverse(client, guangdong, paid["payment_id"])
    reversed_at = await db_pool.fetchval("SELECT max(created_at) FROM ledger_journals")
    settled_at = await db_pool.fetchval("SELECT min(created_at) FROM ledger_journals")

    assert (await balances(db_pool, as_of=before)).accounts == []
    settled = await balances(db_pool, account="fund_receivable:440000", as_of=settled_at)
    assert settled.total_fen == paid["settlement"]["fund_total_fen"] > 0
    undone = await balances(db_pool, account="fund_receivable:440000", as_of=reversed_at)
    assert undone.total_fen == 0


# --- the invariants ---------------------------------------------------------------------------


async def test_the_books_check_clean_after_settlements_reversals_and_a_transfer(
    client, signed, beijing, db_pool
) -> None:
    kept = await pay(client, signed)
    undone = await pay(client, beijing)
    await reverse(client, beijing, undone["payment_id"])
    await move_relationship(
        db_pool,
        "42000000000000000008",
        from_area="420106",
        to_area="440104",
        scheme="employee",
        balance_fen=2_450_000,
    )

    check = await check_books(db_pool)

    assert check.ok, check.failures
    assert kept["state"] == "settled"
    assert check.checked["journal_balanced"] == 4  # 2 settlements, 1 reversal, 1 transfer
    assert check.checked["settlement_matches_breakdown"] == 2
    assert check.checked["undone_nets_to_zero"] == 1
    assert check.checked["transfer_matches_balance"] == 1
    assert check.checked["clearing_entry_matches_record"] == 3


async def test_a_journal_without_postings_is_named(client, signed, db_pool) -> None:
    paid = await pay(client, signed)
    await db_pool.execute(
        "INSERT INTO ledger_journals (payment_id, kind) VALUES ($1, 'reversal')",
        uuid.UUID(paid["payment_id"]),
    )

    check = await check_books(db_pool)

    names = {(f.invariant, f.detail) for f in check.failures}
    assert ("journal_balanced", "reversal journal has no postings") in names
    assert any(f.invariant == "journals_match_state" for f in check.failures)


async def test_a_breakdown_changed_behind_the_ledger_is_named(client, signed, db_pool) -> None:
    paid = await pay(client, signed)
    # Figures moved from cash to the fund, consistent in themselves, but not what was journalled.
    await db_pool.execute(
        "UPDATE settlements SET basic_fund_fen = basic_fund_fen + 100,"
        " fund_total_fen = fund_total_fen + 100, cash_fen = cash_fen - 100,"
        " personal_share_fen = personal_share_fen - 100"
    )

    check = await check_books(db_pool)

    assert not check.ok
    failing = {f.invariant for f in check.failures}
    assert failing == {"settlement_matches_breakdown", "clearing_entry_matches_record"}
    subjects = {f.subject for f in check.failures}
    assert subjects == {f"payment {uuid.UUID(paid['payment_id'])}"}


# --- clearing ---------------------------------------------------------------------------------


async def test_an_offsite_settlement_is_owed_by_the_insured_province_to_the_treatment_province(
    client, guangdong, beijing, db_pool
) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)  # Guangdong's insured, treated in Beijing
    local = await pay(client, beijing)  # Beijing's insured off-site within Beijing
    fund = paid["settlement"]["fund_total_fen"]
    assert fund > 0

    matrix = await clearing_matrix(db_pool, period_of(china_today()))

    assert matrix.state == "open"
    cells = {(c.insured_province, c.treatment_province): c for c in matrix.cells}
    assert set(cells) == {("440000", "110000"), ("110000", "110000")}
    cell = cells[("440000", "110000")]
    assert (cell.fund_total_fen, cell.settlements) == (fund, 1)
    assert cell.funds.resident_basic_fen == paid["settlement"]["basic_fund_fen"]
    assert cell.funds.employee_basic_fen == 0
    assert cells[("110000", "110000")].fund_total_fen == local["settlement"]["fund_total_fen"]
    positions = {p.province: p for p in matrix.positions}
    assert len(positions) == 31
    assert (positions["110000"].receivable_fen, positions["110000"].net_fen) == (fund, fund)
    assert (positions["440000"].payable_fen, positions["440000"].net_fen) == (fund, -fund)
    assert matrix.net_sum_fen == 0 and sum(p.net_fen for p in matrix.positions) == 0
    assert matrix.cross_provincial_fen == fund


async def test_a_reversal_nets_its_settlement_out_of_the_period(client, guangdong, db_pool) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)
    await reverse(client, guangdong, paid["payment_id"])

    matrix = await clearing_matrix(db_pool, period_of(china_today()))

    (cell,) = matrix.cells
    assert (cell.settlements, cell.fund_total_fen) == (0, 0)
    assert all(p.net_fen == 0 for p in matrix.positions)


async def test_a_closed_period_is_frozen_and_postgresql_refuses_any_write(
    client, guangdong, db_pool
) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)
    period = period_of(china_today())

    closed = await close_period(db_pool, period, closed_by="test", today=_next_month(china_today()))

    assert (closed.state, closed.closed_by) == ("closed", "test")
    assert closed.cells[0].fund_total_fen == paid["settlement"]["fund_total_fen"]
    writes = [
        "UPDATE clearing_period_lines SET fund_total_fen = 0",
        "DELETE FROM clearing_period_lines",
        "UPDATE clearing_entries SET fund_total_fen = 0",
        "DELETE FROM clearing_entries",
        "UPDATE clearing_periods SET state = 'open', closed_at = NULL, closed_by = NULL",
        "DELETE FROM clearing_periods",
        "TRUNCATE clearing_entries CASCADE",
        f"INSERT INTO clearing_period_lines VALUES ('{period}', '330000', '110000', 1, 1, 0, 0, 0, 0, 0)",
    ]
    for write in writes:
        with pytest.raises(asyncpg.RestrictViolationError, match=r"never|closed"):
            await db_pool.execute(write)
    assert await clearing_matrix(db_pool, period) == closed


async def test_a_reversal_after_its_period_closed_lands_in_the_next_open_one(
    client, guangdong, db_pool
) -> None:
    paid = await pay(client, guangdong, FUNDED_ORDER)
    fund = paid["settlement"]["fund_total_fen"]
    assert fund > 0
    period = period_of(china_today())
    closed = await close_period(db_pool, period, closed_by="test", today=_next_month(china_today()))

    await reverse(client, guangdong, paid["payment_id"])

    assert await clearing_matrix(db_pool, period) == closed  # never changes
    following = period_of(_next_month(china_today()))
    later = await clearing_matrix(db_pool, following)
    (cell,) = later.cells
    assert (cell.settlements, cell.fund_total_fen) == (-1, -fund)
    positions = {p.province: p.net_fen for p in later.positions}
    assert (positions["110000"], positions["440000"]) == (-fund, fund)
    assert (await check_books(db_pool)).ok


async def test_a_period_is_closed_only_once_it_has_ended(db_pool) -> None:
    with pytest.raises(Conflict) as early:
        await close_period(db_pool, period_of(china_today()), closed_by="test")
    assert early.value.code == "clearing_period_not_over"


async def test_closing_twice_answers_the_same_frozen_matrix(client, signed, db_pool) -> None:
    await pay(client, signed)
    period, later = period_of(china_today()), _next_month(china_today())
    first = await close_period(db_pool, period, closed_by="first", today=later)
    second = await close_period(db_pool, period, closed_by="second", today=later)
    assert first == second and second.closed_by == "first"


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "26-11", "1999-12", "2026-11-01", ""])
async def test_a_malformed_period_is_refused(db_pool, period: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await clearing_matrix(db_pool, period)
    assert refused.value.code == "clearing_period_invalid"


async def test_closing_waits_for_a_writer_of_its_period_to_commit(db_pool) -> None:
    period = period_of(china_today())
    async with db_pool.acquire() as writer:
        transaction = writer.transaction()
        await transaction.start()
        chosen = await writer.fetchval("SELECT clearing_period_for(now())")
        assert chosen == period
        closing = asyncio.create_task(
            close_period(db_pool, period, closed_by="test", today=_next_month(china_today()))
        )
        await asyncio.sleep(0.3)
        assert not closing.done()  # held back while the writer may still add to the period
        await transaction.commit()
        matrix = await asyncio.wait_for(closing, 10)
    assert matrix.state == "closed"
    # A writer that comes after the close is sent to the next open period.
    assert await db_pool.fetchval("SELECT clearing_period_for(now())") == period_of(
        _next_month(china_today())
    )
