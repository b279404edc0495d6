"""The simulator's tables in schema ``simulator``, and every SQL statement on them.

Plain SQL with ``$n`` parameters, in this one place. Callers own the transaction:
a settlement or reversal changes the record, the balance and the year-to-date totals
in one transaction, with the person's row locked (``SELECT ... FOR UPDATE``) so
that concurrent settlements of one person are serialised (DOMAIN.md section 3,
step 13).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from medpay.db.migrate import apply_migrations

if TYPE_CHECKING:
    import asyncpg

    from medpay.wire.national import SettlementInput

__all__ = [
    "SIMULATOR_MIGRATIONS",
    "SIMULATOR_SCHEMA",
    "AsyncSettlementRow",
    "LoggedResponse",
    "PersonRecord",
    "PersonRow",
    "ReconciliationRow",
    "SettlementRow",
    "StateTotals",
    "StatementLineRow",
    "StatementTotalsRow",
    "YearTotals",
    "add_to_balance",
    "add_to_totals",
    "async_counts",
    "find_async_settlement",
    "find_logged",
    "find_settlement_by_msgid",
    "forget_settlement",
    "get_person",
    "get_year_totals",
    "insert_async_settlement",
    "insert_settlement",
    "list_processing_async",
    "list_settlements",
    "list_year_totals",
    "live_settlement_for_charge",
    "lock_msgid",
    "lock_settlement",
    "lock_year_totals",
    "log_response",
    "mark_async_failed",
    "mark_async_settled",
    "mark_reversed",
    "migrate",
    "move_enrolment",
    "next_serial",
    "replace_logged_response",
    "set_basic_fund",
    "settlement_totals",
    "statement_lines",
    "statement_totals",
    "upsert_persons",
]

SIMULATOR_MIGRATIONS = Path(__file__).parent / "migrations"
SIMULATOR_SCHEMA = "simulator"

#: Namespace of the simulator's advisory locks (first key of the two-key form).
_MSGID_LOCK_SPACE = 7301


class PersonRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An insured person as the sample file and seeding describe them."""

    psn_no: str
    name: str
    insuplc_admdvs: str
    insutype: Literal["310", "390"]
    acct_balance_fen: int
    maf_eligible: bool = False


class PersonRow(msgspec.Struct, frozen=True, kw_only=True):
    """A person as stored, with the province derived from the insured area."""

    psn_no: str
    name: str
    insuplc_admdvs: str
    province: str
    insutype: str
    acct_balance_fen: int
    maf_eligible: bool


class YearTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Year-to-date totals of one person and year."""

    year: int
    deductible_used_ytd_fen: int = 0
    fund_paid_ytd_fen: int = 0
    burden_ytd_fen: int = 0


class SettlementRow(msgspec.Struct, frozen=True, kw_only=True):
    """A settlement as stored."""

    setl_id: str
    msgid: str
    province: str
    psn_no: str
    mdtrt_id: str
    chrg_bchno: str
    insutype: str
    year: int
    state: str
    medfee_total_fen: int
    deductible_applied_fen: int
    basic_fund_fen: int
    burden_fen: int
    fund_total_fen: int
    personal_account_fen: int
    cash_fen: int
    response: dict[str, Any]
    settled_at: dt.datetime
    reversal_msgid: str | None
    reversed_at: dt.datetime | None


class AsyncSettlementRow(msgspec.Struct, frozen=True, kw_only=True):
    """A 2207 accepted by an asynchronous province, and what became of it."""

    msgid: str
    province: str
    infno: str
    insuplc_admdvs: str
    mdtrtarea_admvs: str
    fixmedins_code: str
    input: Any  # the 2207 input as received
    received_at: dt.datetime
    due_at: dt.datetime
    state: Literal["processing", "settled", "failed"]
    setl_id: str | None
    err_code: int | None
    err_msg: str | None
    finished_at: dt.datetime | None


class ReconciliationRow(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement as a reconciliation compares it (national names, integer fen)."""

    setl_id: str
    msgid: str  # of the 2207
    province: str
    psn_no: str
    mdtrt_id: str
    chrg_bchno: str
    fixmedins_code: str
    insutype: str
    state: str  # settled | reversed
    medfee_sumamt: int
    hifp_pay: int
    hifmi_pay: int
    maf_pay: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    settled_at: dt.datetime
    reversal_msgid: str | None  # of the 2208
    reversed_at: dt.datetime | None


class StateTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Count and sums of the settlements in one state."""

    count: int = 0
    medfee_sumamt: int = 0
    fund_pay_sumamt: int = 0
    acct_pay: int = 0
    psn_cash_pay: int = 0


class LoggedResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The answer once given to a msgid."""

    infno: str
    request_digest: str
    infcode: int
    response_body: str


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Bring schema ``simulator`` to the newest version."""
    return await apply_migrations(conn, SIMULATOR_MIGRATIONS, schema=SIMULATOR_SCHEMA)


# --- persons -------------------------------------------------------------------------------

_UPSERT_PERSON = """
INSERT INTO simulator.persons (psn_no, name, insuplc_admdvs, insutype, acct_balance_fen, maf_eligible)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (psn_no) DO UPDATE
   SET name = EXCLUDED.name, maf_eligible = EXCLUDED.maf_eligible
"""

_GET_PERSON = """
SELECT psn_no, name, insuplc_admdvs, province, insutype, acct_balance_fen, maf_eligible
  FROM simulator.persons
 WHERE psn_no = $1
"""
_LOCK_PERSON = _GET_PERSON + " FOR UPDATE"

_ADD_TO_BALANCE = """
UPDATE simulator.persons SET acct_balance_fen = acct_balance_fen + $2
 WHERE psn_no = $1
RETURNING acct_balance_fen
"""


async def upsert_persons(conn: asyncpg.Connection, persons: Iterable[PersonRecord]) -> None:
    """Create missing persons; refresh name and assistance flag of existing ones.

    Insured area, scheme and balance of an existing person are left alone: the
    balance belongs to the settlements since made, and area and scheme change only
    through a relationship transfer (DOMAIN.md section 6), not by re-seeding.
    """
    await conn.executemany(
        _UPSERT_PERSON,
        [
            (p.psn_no, p.name, p.insuplc_admdvs, p.insutype, p.acct_balance_fen, p.maf_eligible)
            for p in persons
        ],
    )


async def get_person(
    conn: asyncpg.Connection, psn_no: str, *, for_update: bool = False
) -> PersonRow | None:
    """The person ``psn_no``; with ``for_update``, locked until the transaction ends."""
    row = await conn.fetchrow(_LOCK_PERSON if for_update else _GET_PERSON, psn_no)
    return None if row is None else PersonRow(**dict(row))


_MOVE_ENROLMENT = """
UPDATE simulator.persons SET insuplc_admdvs = $2, insutype = $3, acct_balance_fen = $4
 WHERE psn_no = $1
RETURNING psn_no, name, insuplc_admdvs, province, insutype, acct_balance_fen, maf_eligible
"""


async def move_enrolment(
    conn: asyncpg.Connection,
    psn_no: str,
    *,
    insuplc_admdvs: str,
    insutype: str,
    acct_balance_fen: int,
) -> PersonRow | None:
    """Enrol the person in another insured area with its balance (DOMAIN.md section 6).

    What the provinces' own systems do once a relationship transfer is accepted; the
    year-to-date totals stay as they are. None if the person is unknown.
    """
    row = await conn.fetchrow(_MOVE_ENROLMENT, psn_no, insuplc_admdvs, insutype, acct_balance_fen)
    return None if row is None else PersonRow(**dict(row))


async def add_to_balance(conn: asyncpg.Connection, psn_no: str, delta_fen: int) -> int:
    """Move the personal account balance by ``delta_fen``; return the new balance."""
    balance = await conn.fetchval(_ADD_TO_BALANCE, psn_no, delta_fen)
    assert balance is not None, psn_no
    return int(balance)


# --- year-to-date totals ----------------------------------------------------------------

_GET_TOTALS = """
SELECT year, deductible_used_ytd_fen, fund_paid_ytd_fen, burden_ytd_fen
  FROM simulator.person_year_totals
 WHERE psn_no = $1 AND year = $2
"""
_ENSURE_TOTALS = """
INSERT INTO simulator.person_year_totals (psn_no, year) VALUES ($1, $2)
ON CONFLICT (psn_no, year) DO NOTHING
"""
_LIST_TOTALS = """
SELECT year, deductible_used_ytd_fen, fund_paid_ytd_fen, burden_ytd_fen
  FROM simulator.person_year_totals
 WHERE psn_no = $1
 ORDER BY year
"""
_ADD_TO_TOTALS = """
UPDATE simulator.person_year_totals
   SET deductible_used_ytd_fen = deductible_used_ytd_fen + $3,
       fund_paid_ytd_fen = fund_paid_ytd_fen + $4,
       burden_ytd_fen = burden_ytd_fen + $5
 WHERE psn_no = $1 AND year = $2
RETURNING year, deductible_used_ytd_fen, fund_paid_ytd_fen, burden_ytd_fen
"""


async def get_year_totals(conn: asyncpg.Connection, psn_no: str, year: int) -> YearTotals:
    """The totals of ``year`` without locking (zeros when none are recorded)."""
    row = await conn.fetchrow(_GET_TOTALS, psn_no, year)
    return YearTotals(year=year) if row is None else YearTotals(**dict(row))


async def lock_year_totals(conn: asyncpg.Connection, psn_no: str, year: int) -> YearTotals:
    """The totals of ``year``, created at zero if new, locked until the transaction ends."""
    await conn.execute(_ENSURE_TOTALS, psn_no, year)
    row = await conn.fetchrow(_GET_TOTALS + " FOR UPDATE", psn_no, year)
    assert row is not None
    return YearTotals(**dict(row))


async def add_to_totals(
    conn: asyncpg.Connection,
    psn_no: str,
    year: int,
    *,
    deductible_fen: int,
    fund_fen: int,
    burden_fen: int,
) -> YearTotals:
    """Move the totals of ``year`` by the given deltas (negative on reversal)."""
    row = await conn.fetchrow(_ADD_TO_TOTALS, psn_no, year, deductible_fen, fund_fen, burden_fen)
    assert row is not None, (psn_no, year)
    return YearTotals(**dict(row))


async def list_year_totals(conn: asyncpg.Connection, psn_no: str) -> list[YearTotals]:
    """Every year's totals of ``psn_no``, oldest first."""
    return [YearTotals(**dict(row)) for row in await conn.fetch(_LIST_TOTALS, psn_no)]


# --- settlements -------------------------------------------------------------------------

_NEXT_SERIAL = "SELECT nextval('simulator.serial_seq')"
_LIVE_FOR_CHARGE = """
SELECT setl_id FROM simulator.settlements
 WHERE psn_no = $1 AND mdtrt_id = $2 AND chrg_bchno = $3 AND state = 'settled'
"""
_INSERT_SETTLEMENT = """
INSERT INTO simulator.settlements (
    setl_id, msgid, province, psn_no, mdtrt_id, chrg_bchno, fixmedins_code, insutype, year,
    medfee_total_fen, full_own_pay_fen, over_limit_self_pay_fen, pre_self_pay_fen, in_scope_fen,
    deductible_applied_fen, ratio_bp, basic_fund_fen, burden_fen, critical_illness_fen,
    medical_assistance_fen, fund_total_fen, personal_account_fen, cash_fen, balance_after_fen,
    request, response, settled_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26, $27)
"""
_LOCK_SETTLEMENT = """
SELECT setl_id, msgid, province, psn_no, mdtrt_id, chrg_bchno, insutype, year, state,
       medfee_total_fen, deductible_applied_fen, basic_fund_fen, burden_fen, fund_total_fen,
       personal_account_fen, cash_fen, response, settled_at, reversal_msgid, reversed_at
  FROM simulator.settlements
 WHERE setl_id = $1
   FOR UPDATE
"""
_MARK_REVERSED = """
UPDATE simulator.settlements
   SET state = 'reversed', reversal_msgid = $2, reversed_at = $3
 WHERE setl_id = $1 AND state = 'settled'
"""
_BY_MSGID = """
SELECT setl_id, msgid, province, psn_no, mdtrt_id, chrg_bchno, insutype, year, state,
       medfee_total_fen, deductible_applied_fen, basic_fund_fen, burden_fen, fund_total_fen,
       personal_account_fen, cash_fen, response, settled_at, reversal_msgid, reversed_at
  FROM simulator.settlements
 WHERE province = $2 AND (msgid = $1 OR reversal_msgid = $1)
"""


async def next_serial(conn: asyncpg.Connection) -> int:
    """A fresh serial for ``setl_id`` and ``inf_refmsgid``."""
    return int(await conn.fetchval(_NEXT_SERIAL))


async def live_settlement_for_charge(
    conn: asyncpg.Connection, psn_no: str, mdtrt_id: str, chrg_bchno: str
) -> str | None:
    """The ``setl_id`` of a settled (not reversed) settlement of this charge batch."""
    return await conn.fetchval(_LIVE_FOR_CHARGE, psn_no, mdtrt_id, chrg_bchno)


async def insert_settlement(
    conn: asyncpg.Connection,
    *,
    setl_id: str,
    msgid: str,
    province: str,
    fixmedins_code: str,
    settlement_input: SettlementInput,
    figures: Any,
    request: Any,
    response: Any,
    settled_at: dt.datetime,
) -> None:
    """Record a confirmed settlement; ``figures`` is a ``policy.Calculation``.

    Whom, which visit and charge batch, and the year it counts in are the input's.
    """
    await conn.execute(
        _INSERT_SETTLEMENT,
        setl_id,
        msgid,
        province,
        settlement_input.psn_no,
        settlement_input.mdtrt_id,
        settlement_input.chrg_bchno,
        fixmedins_code,
        settlement_input.insutype,
        settlement_input.begntime.year,
        figures.medfee_total_fen,
        figures.full_own_pay_fen,
        figures.over_limit_self_pay_fen,
        figures.pre_self_pay_fen,
        figures.in_scope_fen,
        figures.deductible_applied_fen,
        figures.ratio_bp,
        figures.basic_fund_fen,
        figures.burden_fen,
        figures.critical_illness_fen,
        figures.medical_assistance_fen,
        figures.fund_total_fen,
        figures.personal_account_fen,
        figures.cash_fen,
        figures.balance_after_fen,
        request,
        response,
        settled_at,
    )


async def lock_settlement(conn: asyncpg.Connection, setl_id: str) -> SettlementRow | None:
    """The settlement ``setl_id``, locked until the transaction ends."""
    row = await conn.fetchrow(_LOCK_SETTLEMENT, setl_id)
    return None if row is None else SettlementRow(**dict(row))


async def mark_reversed(
    conn: asyncpg.Connection, setl_id: str, reversal_msgid: str, reversed_at: dt.datetime
) -> None:
    """Mark a settled settlement reversed by ``reversal_msgid``."""
    status = await conn.execute(_MARK_REVERSED, setl_id, reversal_msgid, reversed_at)
    assert status == "UPDATE 1", (setl_id, status)


async def find_settlement_by_msgid(
    conn: asyncpg.Connection, msgid: str, province: str
) -> SettlementRow | None:
    """The settlement of ``province`` that ``msgid`` settled or reversed, if any."""
    row = await conn.fetchrow(_BY_MSGID, msgid, province)
    return None if row is None else SettlementRow(**dict(row))


# --- reconciliation ------------------------------------------------------------------------

_LIST_SETTLEMENTS = """
SELECT setl_id, msgid, province, psn_no, mdtrt_id, chrg_bchno, fixmedins_code, insutype, state,
       medfee_total_fen AS medfee_sumamt, basic_fund_fen AS hifp_pay,
       critical_illness_fen AS hifmi_pay, medical_assistance_fen AS maf_pay,
       fund_total_fen AS fund_pay_sumamt, personal_account_fen AS acct_pay,
       cash_fen AS psn_cash_pay, settled_at, reversal_msgid, reversed_at
  FROM simulator.settlements
 WHERE ($1::text IS NULL OR province = $1)
   AND ($2::text IS NULL OR mdtrt_id = $2)
   AND ($3::text IS NULL OR psn_no = $3)
   AND ($4::text IS NULL OR setl_id > $4)
   AND ($6::text IS NULL OR setl_id = $6)
 ORDER BY setl_id
 LIMIT $5
"""
_SETTLEMENT_TOTALS = """
SELECT state, count(*) AS count,
       sum(medfee_total_fen)::bigint AS medfee_sumamt,
       sum(fund_total_fen)::bigint AS fund_pay_sumamt,
       sum(personal_account_fen)::bigint AS acct_pay,
       sum(cash_fen)::bigint AS psn_cash_pay
  FROM simulator.settlements
 WHERE ($1::text IS NULL OR province = $1)
   AND ($2::text IS NULL OR mdtrt_id = $2)
   AND ($3::text IS NULL OR psn_no = $3)
 GROUP BY state
"""
_ASYNC_COUNTS = """
SELECT state, count(*) AS count FROM simulator.async_settlements
 WHERE ($1::text IS NULL OR province = $1)
 GROUP BY state
"""


async def list_settlements(
    conn: asyncpg.Connection,
    *,
    province: str | None = None,
    mdtrt_id: str | None = None,
    psn_no: str | None = None,
    after: str | None = None,
    limit: int = 1000,
    setl_id: str | None = None,
) -> list[ReconciliationRow]:
    """Settlements in ``setl_id`` order, after ``after`` (a cursor), at most ``limit``."""
    rows = await conn.fetch(_LIST_SETTLEMENTS, province, mdtrt_id, psn_no, after, limit, setl_id)
    return [ReconciliationRow(**dict(row)) for row in rows]


async def settlement_totals(
    conn: asyncpg.Connection,
    *,
    province: str | None = None,
    mdtrt_id: str | None = None,
    psn_no: str | None = None,
) -> dict[str, StateTotals]:
    """Count and sums by state (settled, reversed) of the settlements matching the filter."""
    rows = await conn.fetch(_SETTLEMENT_TOTALS, province, mdtrt_id, psn_no)
    totals = {"settled": StateTotals(), "reversed": StateTotals()}
    for row in rows:
        fields = dict(row)
        state = fields.pop("state")
        totals[state] = StateTotals(**fields)
    return totals


async def async_counts(conn: asyncpg.Connection, *, province: str | None = None) -> dict[str, int]:
    """How many asynchronous 2207s are processing, settled and failed."""
    counts = {"processing": 0, "settled": 0, "failed": 0}
    for row in await conn.fetch(_ASYNC_COUNTS, province):
        counts[row["state"]] = int(row["count"])
    return counts


# --- statements (3201 / 3202) -----------------------------------------------------------------

# clr_type is the settlement's med_type (see medpay.wire.national, statements).
_STATEMENT_LINES = """
SELECT setl_id, msgid, psn_no, mdtrt_id, insutype, coalesce(request->>'med_type', '11') AS clr_type,
       fixmedins_code, medfee_total_fen, basic_fund_fen, critical_illness_fen,
       medical_assistance_fen, fund_total_fen, personal_account_fen, cash_fen, settled_at, state,
       reversal_msgid, reversed_at
  FROM simulator.settlements
 WHERE province = $1
   AND ((settled_at >= $2 AND settled_at < $3) OR (reversed_at >= $2 AND reversed_at < $3))
 ORDER BY setl_id
 LIMIT $4 OFFSET $5
"""
_STATEMENT_LINE_COUNT = """
SELECT count(*) FROM simulator.settlements
 WHERE province = $1
   AND ((settled_at >= $2 AND settled_at < $3) OR (reversed_at >= $2 AND reversed_at < $3))
"""
# Net figures of the days: a settlement made counts once, a reversal made counts minus once.
_STATEMENT_TOTALS = """
WITH events AS (
    SELECT insutype, coalesce(request->>'med_type', '11') AS clr_type, 1 AS sign,
           medfee_total_fen, fund_total_fen, personal_account_fen
      FROM simulator.settlements
     WHERE province = $1 AND settled_at >= $2 AND settled_at < $3
    UNION ALL
    SELECT insutype, coalesce(request->>'med_type', '11'), -1,
           medfee_total_fen, fund_total_fen, personal_account_fen
      FROM simulator.settlements
     WHERE province = $1 AND reversed_at >= $2 AND reversed_at < $3
)
SELECT insutype, clr_type,
       sum(sign * medfee_total_fen)::bigint AS medfee_sumamt,
       sum(sign * fund_total_fen)::bigint AS fund_pay_sumamt,
       sum(sign * personal_account_fen)::bigint AS acct_pay,
       sum(sign)::bigint AS fixmedins_setl_cnt
  FROM events
 GROUP BY insutype, clr_type
 ORDER BY insutype, clr_type
"""


class StatementLineRow(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement made or reversed within a statement's days."""

    setl_id: str
    msgid: str
    psn_no: str
    mdtrt_id: str
    insutype: str
    clr_type: str
    fixmedins_code: str
    medfee_total_fen: int
    basic_fund_fen: int
    critical_illness_fen: int
    medical_assistance_fen: int
    fund_total_fen: int
    personal_account_fen: int
    cash_fen: int
    settled_at: dt.datetime
    state: str
    reversal_msgid: str | None
    reversed_at: dt.datetime | None


class StatementTotalsRow(msgspec.Struct, frozen=True, kw_only=True):
    """The net totals of one (insutype, clr_type) over a statement's days."""

    insutype: str
    clr_type: str
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    fixmedins_setl_cnt: int


async def statement_lines(
    conn: asyncpg.Connection,
    province: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    limit: int,
    offset: int,
) -> tuple[int, list[StatementLineRow]]:
    """How many settlements were made or reversed in ``[start, end)``, and one page of them."""
    total = await conn.fetchval(_STATEMENT_LINE_COUNT, province, start, end)
    rows = await conn.fetch(_STATEMENT_LINES, province, start, end, limit, offset)
    return int(total), [StatementLineRow(**dict(row)) for row in rows]


async def statement_totals(
    conn: asyncpg.Connection, province: str, start: dt.datetime, end: dt.datetime
) -> list[StatementTotalsRow]:
    """The net totals by (insutype, clr_type) of the settlements and reversals in ``[start, end)``."""
    rows = await conn.fetch(_STATEMENT_TOTALS, province, start, end)
    return [StatementTotalsRow(**dict(row)) for row in rows]


# --- planted differences (admin, for tests and demonstrations) -----------------------------------

_FORGET_ASYNC = "DELETE FROM simulator.async_settlements WHERE setl_id = $1"
_FORGET_SETTLEMENT = "DELETE FROM simulator.settlements WHERE setl_id = $1"
_SET_BASIC_FUND = """
UPDATE simulator.settlements
   SET basic_fund_fen = $2,
       fund_total_fen = fund_total_fen + ($2 - basic_fund_fen),
       cash_fen = cash_fen - ($2 - basic_fund_fen)
 WHERE setl_id = $1
"""


async def forget_settlement(conn: asyncpg.Connection, setl_id: str) -> SettlementRow | None:
    """Take a settlement out of the province's books as if it had never been made.

    Its balance and year-to-date effects are undone too (a settled one), so the
    province is consistent with itself; the msgid log keeps its answer. None if unknown.
    """
    settlement = await lock_settlement(conn, setl_id)
    if settlement is None:
        return None
    if settlement.state == "settled":
        await undo_effects(conn, settlement)
    await conn.execute(_FORGET_ASYNC, setl_id)
    await conn.execute(_FORGET_SETTLEMENT, setl_id)
    return settlement


async def undo_effects(conn: asyncpg.Connection, settlement: SettlementRow) -> int:
    """Give back what ``settlement`` took, to the fen: year-to-date totals and balance.

    Locks the person, then the year's totals, in the order a settlement takes them.
    Returns the balance after.
    """
    await get_person(conn, settlement.psn_no, for_update=True)
    await lock_year_totals(conn, settlement.psn_no, settlement.year)
    await add_to_totals(
        conn,
        settlement.psn_no,
        settlement.year,
        deductible_fen=-settlement.deductible_applied_fen,
        fund_fen=-settlement.basic_fund_fen,
        burden_fen=-settlement.burden_fen,
    )
    return await add_to_balance(conn, settlement.psn_no, settlement.personal_account_fen)


async def set_basic_fund(conn: asyncpg.Connection, setl_id: str, basic_fund_fen: int) -> bool:
    """Record another basic-fund figure (hifp_pay) in the statement, the cash share absorbing it.

    Only the figures a statement reports change (the 6301 answer kept in ``response``
    stays), so the province's statement disagrees with what it once answered. False if
    the settlement is unknown; a CheckViolationError if the cash share cannot absorb it.
    """
    return await conn.execute(_SET_BASIC_FUND, setl_id, basic_fund_fen) == "UPDATE 1"


# --- asynchronous settlements ---------------------------------------------------------------

_INSERT_ASYNC = """
INSERT INTO simulator.async_settlements (
    msgid, province, infno, insuplc_admdvs, mdtrtarea_admvs, fixmedins_code, input,
    received_at, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
_FIND_ASYNC = """
SELECT msgid, province, infno, insuplc_admdvs, mdtrtarea_admvs, fixmedins_code, input,
       received_at, due_at, state, setl_id, err_code, err_msg, finished_at
  FROM simulator.async_settlements
 WHERE msgid = $1
"""
_LOCK_ASYNC = _FIND_ASYNC + " FOR UPDATE"
_PROCESSING_ASYNC = """
SELECT msgid, province, infno, insuplc_admdvs, mdtrtarea_admvs, fixmedins_code, input,
       received_at, due_at, state, setl_id, err_code, err_msg, finished_at
  FROM simulator.async_settlements
 WHERE state = 'processing'
 ORDER BY due_at
"""
_MARK_ASYNC_SETTLED = """
UPDATE simulator.async_settlements
   SET state = 'settled', setl_id = $2, finished_at = $3
 WHERE msgid = $1 AND state = 'processing'
"""
_MARK_ASYNC_FAILED = """
UPDATE simulator.async_settlements
   SET state = 'failed', err_code = $2, err_msg = $3, finished_at = $4
 WHERE msgid = $1 AND state = 'processing'
"""


async def insert_async_settlement(
    conn: asyncpg.Connection,
    *,
    msgid: str,
    province: str,
    infno: str,
    insuplc_admdvs: str,
    mdtrtarea_admvs: str,
    fixmedins_code: str,
    input_builtins: Any,
    received_at: dt.datetime,
    due_at: dt.datetime,
) -> None:
    """Record an accepted 2207 as processing (after its acceptance is logged)."""
    await conn.execute(
        _INSERT_ASYNC,
        msgid,
        province,
        infno,
        insuplc_admdvs,
        mdtrtarea_admvs,
        fixmedins_code,
        input_builtins,
        received_at,
        due_at,
    )


async def find_async_settlement(
    conn: asyncpg.Connection, msgid: str, *, for_update: bool = False
) -> AsyncSettlementRow | None:
    """The asynchronous 2207 under ``msgid``; with ``for_update``, locked."""
    row = await conn.fetchrow(_LOCK_ASYNC if for_update else _FIND_ASYNC, msgid)
    return None if row is None else AsyncSettlementRow(**dict(row))


async def list_processing_async(conn: asyncpg.Connection) -> list[AsyncSettlementRow]:
    """Every asynchronous 2207 still processing, the most due first."""
    return [AsyncSettlementRow(**dict(row)) for row in await conn.fetch(_PROCESSING_ASYNC)]


async def mark_async_settled(
    conn: asyncpg.Connection, msgid: str, setl_id: str, finished_at: dt.datetime
) -> None:
    """The asynchronous 2207 ``msgid`` settled as ``setl_id``."""
    status = await conn.execute(_MARK_ASYNC_SETTLED, msgid, setl_id, finished_at)
    assert status == "UPDATE 1", (msgid, status)


async def mark_async_failed(
    conn: asyncpg.Connection, msgid: str, err_code: int, err_msg: str, finished_at: dt.datetime
) -> None:
    """The asynchronous 2207 ``msgid`` failed and did nothing."""
    status = await conn.execute(_MARK_ASYNC_FAILED, msgid, err_code, err_msg, finished_at)
    assert status == "UPDATE 1", (msgid, status)


# --- msgid log -------------------------------------------------------------------------------

_LOCK_MSGID = f"SELECT pg_advisory_xact_lock({_MSGID_LOCK_SPACE}, hashtext($1))"
_FIND_LOGGED = """
SELECT infno, request_digest, infcode, response_body FROM simulator.msgid_log WHERE msgid = $1
"""
_LOG_RESPONSE = """
INSERT INTO simulator.msgid_log (msgid, province, infno, request_digest, infcode, response_body)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_REPLACE_LOGGED = """
UPDATE simulator.msgid_log SET infcode = $2, response_body = $3 WHERE msgid = $1
"""


async def lock_msgid(conn: asyncpg.Connection, msgid: str) -> None:
    """Serialise requests under one msgid until the transaction ends.

    A repeat arriving while the first is still being processed waits, then finds
    its logged answer; a 6301 query on that msgid waits the same way.
    """
    await conn.execute(_LOCK_MSGID, msgid)


async def find_logged(conn: asyncpg.Connection, msgid: str) -> LoggedResponse | None:
    """The answer already given to ``msgid``, if any."""
    row = await conn.fetchrow(_FIND_LOGGED, msgid)
    return None if row is None else LoggedResponse(**dict(row))


async def log_response(
    conn: asyncpg.Connection,
    *,
    msgid: str,
    province: str,
    infno: str,
    request_digest: str,
    infcode: int,
    response_body: bytes,
) -> None:
    """Remember the answer to ``msgid`` in the transaction that produced it."""
    await conn.execute(
        _LOG_RESPONSE, msgid, province, infno, request_digest, infcode, response_body.decode()
    )


async def replace_logged_response(
    conn: asyncpg.Connection, msgid: str, infcode: int, response_body: bytes
) -> None:
    """Replace the answer to ``msgid``: an asynchronous 2207's acceptance by its outcome."""
    status = await conn.execute(_REPLACE_LOGGED, msgid, infcode, response_body.decode())
    assert status == "UPDATE 1", (msgid, status)
