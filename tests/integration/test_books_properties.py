"""Property: any sequence of settlements, reversals, refunds, corrections, transfers and period
closes keeps every journal balanced, ``medpay ledger check`` clean and clearing netting to zero.

The payment flow is the real one on the real database; the provinces are an in-memory
fake whose answers hypothesis chooses (any consistent split of the bill, an answer lost
after the province settled, a request lost before it, a refusal), so the sequences
reach states a well-behaved simulator rarely gives. Examples of one test share its
database, so each example also continues the books the previous ones left: the
invariants must hold for the longer sequence too.

To add an operation: write ``async def _operation(world, draw)`` and add a line
``"operation": (weight, strategy, _operation)`` to :data:`OPERATIONS`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpay.books.service import check_books
from medpay.channels.service import register_app
from medpay.clearing.service import clearing_matrix, close_period
from medpay.clock import CHINA, china_today
from medpay.db.pool import transaction
from medpay.errors import DomainError
from medpay.payments.flow import PaymentFlow
from medpay.payments.schemas import PaymentOrder, RefundRequest
from medpay.payments.states import UNFINISHED_STATES
from medpay.relationships.service import insurer_on
from medpay.settlement.adapters.base import (
    ClearingError,
    OutcomeUnknown,
    ProvinceRejected,
    QueryRequest,
    QueryResult,
    ReversalRequest,
    ReversalResult,
    SettlementBreakdown,
    SettlementRequest,
    SettlementResult,
)
from medpay.settlement.routing import ProvinceDirectory
from medpay.wire.national import PROVINCES

from .books_helpers import move_relationship

#: The sample persons, as both systems seed them.
PERSONS = [
    p["psn_no"]
    for p in json.loads(resources.files("medpay.samples").joinpath("persons.json").read_bytes())
]


# --- a province whose answers the test chooses ---------------------------------------------------


@dataclass
class Plan:
    """What the province does with the next settlement or reversal it is sent."""

    outcome: str = "done"  # done | lost (done, answer lost) | unsent (never arrived) | refused
    fund_bp: int = 5_000  # share of the bill the funds pay
    account_bp: int = 5_000  # share of the rest the personal account pays
    critical_bp: int = 0  # share of the funds' part paid by critical-illness insurance
    assistance_bp: int = 0  # share of the rest paid by medical assistance

    def breakdown(self, request: SettlementRequest, settlement_id: str) -> SettlementBreakdown:
        total = request.medfee_total_fen
        fund = total * self.fund_bp // 10_000
        account = (total - fund) * self.account_bp // 10_000
        critical = fund * self.critical_bp // 10_000
        assistance = (fund - critical) * self.assistance_bp // 10_000
        return SettlementBreakdown(
            settlement_id=settlement_id,
            medfee_total_fen=total,
            full_own_pay_fen=0,
            over_limit_self_pay_fen=0,
            pre_self_pay_fen=0,
            in_scope_fen=total,
            deductible_applied_fen=0,
            ratio_bp=self.fund_bp,
            basic_fund_fen=fund - critical - assistance,
            critical_illness_fen=critical,
            medical_assistance_fen=assistance,
            fund_total_fen=fund,
            personal_part_fen=total - fund,
            personal_account_fen=account,
            cash_fen=total - fund - account,
            balance_after_fen=0,
            settled_at=dt.datetime.now(CHINA),
        )


@dataclass
class Provinces:
    """What every fake province has done, by msgid: the province's own books."""

    plans: deque[Plan] = field(default_factory=deque)
    settled: dict[str, SettlementBreakdown] = field(default_factory=dict)
    reversal_of: dict[str, str] = field(default_factory=dict)  # 2208 msgid -> 2207 msgid
    serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    def plan(self) -> Plan:
        return self.plans.popleft() if self.plans else Plan()


class FakeProvince:
    """The clearing adapter of one province, answering as its plans say."""

    def __init__(self, province_code: str, books: Provinces) -> None:
        self.province_code = province_code
        self.books = books

    async def settle(self, request: SettlementRequest) -> SettlementResult:
        books = self.books
        if request.msgid not in books.settled:  # a repeat gets the answer once given
            plan = books.plan()
            if plan.outcome == "refused":
                raise ProvinceRejected("province_error", -1, "refused by plan")
            if plan.outcome == "unsent":
                raise OutcomeUnknown("lost before it arrived")
            setl_id = f"{self.province_code}{next(books.serial):018d}"
            books.settled[request.msgid] = plan.breakdown(request, setl_id)
            if plan.outcome == "lost":
                raise OutcomeUnknown("settled, and the answer lost")
        return SettlementResult(
            msgid=request.msgid, province_msgid="P", breakdown=books.settled[request.msgid]
        )

    async def reverse(self, request: ReversalRequest) -> ReversalResult:
        books = self.books
        settled = next(
            msgid for msgid, b in books.settled.items() if b.settlement_id == request.settlement_id
        )
        if request.msgid not in books.reversal_of:
            plan = books.plan()
            if plan.outcome in ("refused", "unsent"):
                raise ProvinceRejected("province_error", -1, "refused by plan")
            books.reversal_of[request.msgid] = settled
            if plan.outcome == "lost":
                raise OutcomeUnknown("reversed, and the answer lost")
        breakdown = books.settled[settled]
        return ReversalResult(
            msgid=request.msgid,
            province_msgid="P",
            settlement_id=request.settlement_id,
            medfee_total_fen=breakdown.medfee_total_fen,
            fund_total_fen=breakdown.fund_total_fen,
            personal_account_fen=breakdown.personal_account_fen,
            cash_fen=breakdown.cash_fen,
            balance_after_fen=0,
            reversed_at=dt.datetime.now(CHINA),
        )

    async def query(self, request: QueryRequest) -> QueryResult:
        books = self.books
        ref = request.ref_msgid
        settled = books.reversal_of.get(ref, ref)
        if settled not in books.settled:
            return QueryResult(
                msgid=request.msgid, province_msgid="P", ref_msgid=ref, status="not_found"
            )
        reversed_ = settled in books.reversal_of.values()
        return QueryResult(
            msgid=request.msgid,
            province_msgid="P",
            ref_msgid=ref,
            status="reversed" if reversed_ else "settled",
            breakdown=books.settled[settled],
        )


# --- the world an example acts on, and the operations -------------------------------------------


@dataclass
class World:
    pool: asyncpg.Pool
    flow: PaymentFlow
    provinces: Provinces
    app_id: str
    payments: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (id, psn_no)
    moved: set[str] = field(default_factory=set)
    frozen: dict[str, Any] = field(default_factory=dict)  # closed period -> its matrix

    def pick(self, index: int) -> tuple[uuid.UUID, str] | None:
        return self.payments[index % len(self.payments)] if self.payments else None


def _order(quantity: int) -> PaymentOrder:
    return msgspec.convert(
        {
            "institution_code": "H11010800124",
            "treatment_area": "110108",
            "visit_type": "online_revisit",
            "items": [
                {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
                {
                    "item_code": "XC10AAA096A001010178938",
                    "quantity": quantity,
                    "unit_price_fen": 3800,
                },
                {"item_code": "FEE-DRUG-DELIVERY", "quantity": 1, "unit_price_fen": 1000},
            ],
            "personal_account_allowed": True,
        },
        PaymentOrder,
    )


plans = st.builds(
    Plan,
    outcome=st.sampled_from(["done", "done", "lost", "unsent", "refused"]),
    fund_bp=st.integers(0, 10_000),
    account_bp=st.integers(0, 10_000),
    critical_bp=st.integers(0, 10_000),
    assistance_bp=st.integers(0, 10_000),
)


#: A refund's reversal is mostly answered; its failures are drawn less often, so that the
#: lines kept are settled anew (or not) often enough to matter.
reversal_plans = st.builds(
    Plan, outcome=st.sampled_from(["done", "done", "done", "lost", "refused"])
)


async def _settle(world: World, draw: tuple[int, int, Plan]) -> None:
    person, quantity, plan = draw
    psn_no = PERSONS[person % len(PERSONS)]
    world.provinces.plans.append(plan)
    key = f"property-{uuid.uuid4().hex}"
    outcome = await world.flow.pay(
        app_id=world.app_id,
        idempotency_key=key,
        request_digest=key,
        psn_no=psn_no,
        order=_order(quantity),
    )
    world.payments.append((outcome.payment.payment_id, psn_no))


async def _reverse(world: World, draw: tuple[int, Plan]) -> None:
    index, plan = draw
    picked = world.pick(index)
    if picked is None:
        return
    world.provinces.plans.append(plan)
    try:
        await world.flow.reverse(str(picked[0]), app_id=world.app_id, psn_no=picked[1])
    except DomainError:  # not settled (any more): refused, as it must be
        pass


async def _refund(world: World, draw: tuple[int, int, int, Plan, Plan]) -> None:
    """Give back some of one line (all of it, or every line: a full refund)."""
    index, line, quantity, reversal, resettlement = draw
    picked = world.pick(index)
    if picked is None:
        return
    if index % 2 == 0:  # mostly a payment that can be refunded; sometimes any payment
        settled = await world.pool.fetch(
            "SELECT payment_id, psn_no FROM payments WHERE state = 'settled' AND app_id = $1"
            " ORDER BY created_at",
            world.app_id,
        )
        if settled:
            row = settled[index % len(settled)]
            picked = (row["payment_id"], row["psn_no"])
    items = await world.pool.fetch(
        "SELECT line_no, quantity FROM payment_items WHERE payment_id = $1 ORDER BY line_no",
        picked[0],
    )
    chosen = items[line % len(items)]
    lines = [{"line_no": chosen["line_no"], "quantity": min(quantity, chosen["quantity"])}]
    if quantity > 40:  # every line in full
        lines = [{"line_no": i["line_no"], "quantity": i["quantity"]} for i in items]
    world.provinces.plans.extend([reversal, resettlement])
    key = f"refund-{uuid.uuid4().hex}"
    try:
        await world.flow.refund(
            str(picked[0]),
            app_id=world.app_id,
            psn_no=picked[1],
            request=msgspec.convert({"items": lines}, RefundRequest),
            idempotency_key=key,
            request_digest=key,
        )
    except DomainError:  # not settled (any more): refused, as it must be
        pass
    await _adopt_replacements(world)


async def _adopt_replacements(world: World) -> None:
    """The lines kept by refunds are payments too: later operations may pick them."""
    known = {payment_id for payment_id, _ in world.payments}
    for row in await world.pool.fetch(
        "SELECT payment_id, psn_no FROM payments"
        " WHERE replaces_payment_id IS NOT NULL ORDER BY created_at"
    ):
        if row["payment_id"] not in known:
            world.payments.append((row["payment_id"], row["psn_no"]))


async def _resolve(world: World, _: None) -> None:
    """What the resolver does: every unfinished payment asked about (6301) and finished."""
    for payment_id, _psn in world.payments:
        state = await world.pool.fetchval(
            "SELECT state FROM payments WHERE payment_id = $1", payment_id
        )
        if state in UNFINISHED_STATES:
            try:
                await world.flow.resolve(payment_id)
            except ClearingError:
                pass
    await _adopt_replacements(world)


async def _annul(world: World, index: int) -> None:
    """Reconciliation found the province never made a settlement: failed, journal corrected."""
    picked = world.pick(index)
    if picked is None:
        return
    async with transaction(world.pool) as conn:
        await world.flow.record_annulled_in(conn, picked[0], "not_settled_by_province", "property")


async def _transfer(world: World, draw: tuple[int, int]) -> None:
    person, balance = draw
    psn_no = PERSONS[person % len(PERSONS)]
    if psn_no in world.moved:
        return  # one move a day per person: a new segment starts after the old one
    current = await insurer_on(world.pool, psn_no, china_today())
    assert current is not None
    to_area = "330106" if current.insured_area.startswith("44") else "440104"
    await move_relationship(
        world.pool,
        psn_no,
        from_area=current.insured_area,
        to_area=to_area,
        scheme=current.scheme,
        balance_fen=balance if current.scheme == "employee" else 0,
    )
    world.moved.add(psn_no)


async def _close(world: World, _: None) -> None:
    """Close the period new entries land in now; later ones go to the next."""
    period = await world.pool.fetchval("SELECT clearing_period_for(now())")
    year, month = (int(part) for part in period.split("-"))
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    world.frozen[period] = await close_period(world.pool, period, closed_by="property", today=after)


Operation = tuple[int, st.SearchStrategy[Any], Callable[[World, Any], Awaitable[None]]]

#: Every operation the property draws from: how often, its arguments' strategy, what it does.
OPERATIONS: dict[str, Operation] = {
    "settle": (5, st.tuples(st.integers(0, 11), st.integers(1, 40), plans), _settle),
    "reverse": (2, st.tuples(st.integers(0, 50), plans), _reverse),
    "refund": (
        2,
        st.tuples(st.integers(0, 50), st.integers(0, 2), st.integers(1, 45), reversal_plans, plans),
        _refund,
    ),
    "resolve": (2, st.none(), _resolve),
    "annul": (1, st.integers(0, 50), _annul),
    "transfer": (1, st.tuples(st.integers(0, 11), st.integers(0, 500_000)), _transfer),
    "close": (1, st.none(), _close),
}

sequences = st.lists(
    st.one_of(
        *(
            st.tuples(st.just(name), args)
            for name, (weight, args, _) in OPERATIONS.items()
            for _ in range(weight)
        )
    ),
    min_size=1,
    max_size=16,
)


@pytest.fixture
async def world(db_pool) -> World:
    books = Provinces()
    flow = PaymentFlow(
        db_pool, ProvinceDirectory({code: FakeProvince(code, books) for code in PROVINCES})
    )
    app = await register_app(db_pool, "Property app")
    return World(pool=db_pool, flow=flow, provinces=books, app_id=app.app_id)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=sequences)
async def test_any_sequence_keeps_the_books_balanced_and_clearing_at_zero(world, sequence) -> None:
    for name, args in sequence:
        await OPERATIONS[name][2](world, args)
        world.provinces.plans.clear()  # a plan the flow did not use is not carried over

    check = await check_books(world.pool)

    assert check.ok, check.failures
    imbalance = await world.pool.fetchval(
        "SELECT count(*) FROM (SELECT journal_id FROM ledger_postings GROUP BY journal_id"
        " HAVING sum(amount_fen) <> 0) unbalanced"
    )
    assert imbalance == 0
    assert (
        await world.pool.fetchval("SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings") == 0
    )
    for period in await world.pool.fetch("SELECT period FROM clearing_periods"):
        matrix = await clearing_matrix(world.pool, period["period"])
        assert matrix.net_sum_fen == 0
        assert sum(p.net_fen for p in matrix.positions) == 0
    for period, matrix in world.frozen.items():
        assert await clearing_matrix(world.pool, period) == matrix  # a closed period never changes
