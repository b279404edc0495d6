"""Daily reconciliation with each province (DOMAIN.md section 7).

For one province and one China day: fetch the province's statement (3202 details, all
pages), compare it line by line with our confirmed settlements and reversals of the
day, compare the totals (3201), and take every difference one by one:

- **resolved by the rules in force**: an unfinished payment the province settled or
  reversed is recorded through the payment flow, by its resolver's 6301 logic, with its
  journal; a settlement the province never made (6301: not found) fails and its
  journal is mirrored by a correction journal; both sides having it on different days
  (midnight, an answer recorded late) is explained;
- **handed to a person** when no rule applies (figures differ, a settlement the
  province has under a msgid we never sent, a payment we failed that the province
  settled, a reversal on one side only, a callback that contradicts us), until an
  operator explains it;
- **waiting for the province** when it cannot be asked now; the next run asks again.

The statement is the province's claim: it is checked (signatures and shapes by the
adapter, its details against its own totals here), and nothing is done on its word
alone: the 6301 query is the source of truth before acting. Differences are stored
under a key (province, day, kind, msgid), so running it twice changes nothing the
second time: a resolved difference stays as it was, an open one is looked at again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from medpay.clock import CHINA, backoff_seconds, china_date, china_day_bounds, china_now
from medpay.db.pool import connection, transaction
from medpay.errors import Conflict, InvalidRequest, NotFound
from medpay.payments.states import UNFINISHED_STATES
from medpay.reconciliation import queries
from medpay.reconciliation.compare import (
    Candidate,
    OurRecord,
    compare_day,
    inconsistent_totals,
    line_snapshot,
    record_snapshot,
    totals_of_lines,
    totals_of_records,
)
from medpay.reconciliation.schemas import (
    DayReport,
    DifferenceList,
    DifferenceView,
    ReconciliationReport,
    RunOutcome,
    TotalsLineView,
    TotalsView,
)
from medpay.security.persons import person_ref
from medpay.settlement import queries as settlement_queries
from medpay.settlement.adapters.base import (
    ClearingError,
    QueryRequest,
    QueryResult,
    StatementDetailsRequest,
    StatementLine,
    StatementPage,
    StatementTotals,
    StatementTotalsLine,
    StatementTotalsRequest,
)
from medpay.settlement.routing import ProvinceNotConnected
from medpay.wire.national import (
    INFNO_SETTLE,
    PLATFORM_FIXMEDINS_CODE,
    is_province_code,
    new_msgid,
)

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.flow import PaymentFlow
    from medpay.settlement.adapters.base import ClearingAdapter

__all__ = [
    "ANNULLED_CODE",
    "RECONCILIATION",
    "Reconciler",
    "differences_of_payment",
    "explain_difference",
    "get_difference",
    "list_differences",
]

_log = logging.getLogger("medpay.reconciliation")
T = TypeVar("T")

#: Who resolves what the rules in force resolve.
RECONCILIATION = "reconciliation"
#: The failure code of a payment whose settlement the province never made.
ANNULLED_CODE = "not_settled_by_province"
#: Kinds that come from comparing the statement, and vanish when it agrees again.
_STATEMENT_KINDS = frozenset(
    {
        "missing_here",
        "missing_there",
        "figures_differ",
        "reversed_there_only",
        "reversed_here_only",
        "statement_inconsistent",
    }
)
#: How the province's 6301 statuses agree with our states (for callbacks in conflict).
_AGREES = {
    "settled": frozenset({"settled", "reversing"}),
    "reversed": frozenset({"reversed"}),
    "not_found": frozenset({"failed"}),
    "failed": frozenset({"failed"}),
}
_BREAKDOWN_NAMES = {
    "settlement_id": "settlement_id",
    "medical_fee_total_fen": "medfee_total_fen",
    "basic_fund_fen": "basic_fund_fen",
    "critical_illness_fen": "critical_illness_fen",
    "medical_assistance_fen": "medical_assistance_fen",
    "fund_total_fen": "fund_total_fen",
    "personal_account_fen": "personal_account_fen",
    "cash_fen": "cash_fen",
}


class _Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What examining a difference concluded: resolved (``resolution``) or open (``awaiting``)."""

    text: str
    resolution: str | None = None
    awaiting: str | None = None
    journal_id: int | None = None
    annul: uuid.UUID | None = None  # fail this payment and correct its journal, then resolve

    def __post_init__(self) -> None:
        assert (self.resolution is None) != (self.awaiting is None), self


def _resolved(resolution: str, text: str, journal_id: int | None = None) -> _Verdict:
    return _Verdict(resolution=resolution, text=text[:1000], journal_id=journal_id)


def _for_person(text: str) -> _Verdict:
    return _Verdict(awaiting="person", text=text[:1000])


def _for_province(text: str) -> _Verdict:
    return _Verdict(awaiting="province", text=text[:1000])


def _difference(row: asyncpg.Record) -> DifferenceView:
    return msgspec.convert(dict(row), DifferenceView)


def _totals_view(ours: list[StatementTotalsLine], theirs: StatementTotals) -> TotalsView:
    def view(line: StatementTotalsLine, agreed: bool | None = None) -> TotalsLineView:
        return TotalsLineView(**msgspec.structs.asdict(line), agreed=agreed)

    return TotalsView(
        agreed=theirs.agreed,
        ours=[view(line) for line in ours],
        theirs=[view(v.line, v.agreed) for v in theirs.lines],
    )


@dataclasses.dataclass(eq=False, repr=False)
class Reconciler:
    """Reconciles our books with each province's statement of a China day."""

    pool: asyncpg.Pool
    flow: PaymentFlow
    _: dataclasses.KW_ONLY
    clock: Callable[[], dt.datetime] = china_now
    #: How often one statement call is tried (queries: always safe to ask again).
    attempts: int = 5
    retry_seconds: float = 0.5
    concurrency: int = 4
    page_size: int = 1000

    # --- entry points ---------------------------------------------------------------------

    async def reconcile_day(self, day: dt.date, *, triggered_by: str) -> DayReport:
        """Reconcile ``day`` with every connected province, a few at a time."""
        self._check_day(day)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(province: str) -> ReconciliationReport:
            async with gate:
                return await self.reconcile(province, day, triggered_by=triggered_by)

        reports = list(
            await asyncio.gather(*(one(province) for province in self.flow.provinces.provinces))
        )
        return DayReport(
            day=day,
            provinces=reports,
            unexplained=sum(report.unexplained for report in reports),
            unavailable=sum(report.outcome == "statement_unavailable" for report in reports),
        )

    async def reconcile(
        self, province: str, day: dt.date, *, triggered_by: str
    ) -> ReconciliationReport:
        """Reconcile one province's ``day``: compare, resolve what the rules allow, report.

        Problems: 400 ``reconciliation_province_invalid``, ``reconciliation_day_invalid``,
        422 ``province_not_connected``.
        """
        if not is_province_code(province):
            raise InvalidRequest(
                "reconciliation_province_invalid",
                "Not a province",
                "Give one of the 31 provincial codes, e.g. 330000.",
            )
        self._check_day(day)
        adapter = self.flow.provinces.for_province(province)
        if adapter is None:
            raise ProvinceNotConnected(province)
        async with self._one_run_at_a_time(province, day):
            return await self._reconcile(adapter, province, day, triggered_by)

    def _check_day(self, day: dt.date) -> None:
        if day > self.clock().astimezone(CHINA).date():
            raise InvalidRequest(
                "reconciliation_day_invalid",
                "The day has not begun yet",
                f"{day} is in the future (China time).",
            )

    @contextlib.asynccontextmanager
    async def _one_run_at_a_time(self, province: str, day: dt.date) -> AsyncIterator[None]:
        key = f"{province}:{day.isoformat()}"
        async with connection(self.pool) as conn:
            await conn.execute(queries.RUN_LOCK, key)
            try:
                yield
            finally:
                await conn.execute(queries.RUN_UNLOCK, key)

    # --- one run --------------------------------------------------------------------------

    async def _reconcile(
        self, adapter: ClearingAdapter, province: str, day: dt.date, triggered_by: str
    ) -> ReconciliationReport:
        run = await self.pool.fetchrow(queries.INSERT_RUN, province, day, triggered_by)
        assert run is not None
        run_id: int = run["run_id"]
        try:
            lines, ours, ours_totals, totals = await self._statement(adapter, province, day)
        except ClearingError as exc:
            _log.warning("statement of %s for %s unavailable: %s", province, day, exc)
            return await self._finish(
                run,
                province,
                day,
                triggered_by,
                outcome="statement_unavailable",
                error=f"{exc.code}: {exc.message}",
                statement_lines=0,
                our_lines=0,
                matched=0,
                new_differences=0,
                resolved_now=0,
            )
        totals_at_start = _totals_view(ours_totals, totals)
        candidates = compare_day(day, lines, ours)
        examined: list[tuple[str, str]] = []
        new = resolved_now = 0
        for candidate in candidates:
            is_new, did_resolve = await self._examine(
                run_id,
                adapter,
                province,
                day,
                candidate,
                functools.partial(self._line, adapter, province, day, candidate),
            )
            examined.append((candidate.kind, candidate.subject))
            new += is_new
            resolved_now += did_resolve
        inconsistent = inconsistent_totals(
            totals_of_lines(day, lines), [verdict.line for verdict in totals.lines]
        )
        if inconsistent:
            statement = Candidate(kind="statement_inconsistent", subject="statement")
            detail = "; ".join(inconsistent)
            is_new, did_resolve = await self._examine(
                run_id,
                adapter,
                province,
                day,
                statement,
                functools.partial(self._inconsistent, detail),
                theirs={"inconsistent": inconsistent},
            )
            examined.append(("statement_inconsistent", "statement"))
            new += is_new
            resolved_now += did_resolve
        start, end = china_day_bounds(day)
        for callback in await self.pool.fetch(queries.CALLBACKS_TO_REPORT, province, start, end):
            kind = f"callback_{callback['outcome']}"
            is_new, did_resolve = await self._examine(
                run_id,
                adapter,
                province,
                day,
                Candidate(kind=kind, subject=callback["callback_id"]),
                functools.partial(self._callback, adapter, province, callback),
                payment_id=callback["payment_id"],
                theirs={
                    "callback_id": callback["callback_id"],
                    "ref_msgid": callback["ref_msgid"],
                    "result": callback["result"],
                    "received_at": callback["received_at"].isoformat(),
                },
            )
            examined.append((kind, callback["callback_id"]))
            new += is_new
            resolved_now += did_resolve
        resolved_now += await self._vanished(province, day, set(examined))
        final_totals = totals_at_start
        if resolved_now:  # what was recorded or corrected may have changed our totals
            try:
                ours_after = await self._our_records(province, day)
                after = totals_of_records(day, ours_after)
                final_totals = _totals_view(
                    after, await self._totals(adapter, province, day, after)
                )
            except ClearingError as exc:
                _log.info("closing 3201 of %s for %s not answered: %s", province, day, exc)
        return await self._finish(
            run,
            province,
            day,
            triggered_by,
            statement_lines=len(lines),
            our_lines=len(ours),
            matched=len({line.msgid for line in lines} & {r.msgid for r in ours})
            - sum(1 for c in candidates if c.kind == "figures_differ"),
            totals_at_start=totals_at_start,
            totals=final_totals,
            new_differences=new,
            resolved_now=resolved_now,
        )

    async def _finish(
        self,
        run: asyncpg.Record,
        province: str,
        day: dt.date,
        triggered_by: str,
        *,
        outcome: RunOutcome | None = None,
        error: str | None = None,
        **figures: Any,
    ) -> ReconciliationReport:
        differences = [
            _difference(row)
            for row in await self.pool.fetch(queries.DIFFERENCES_OF_DAY, province, day)
        ]
        unexplained = sum(d.status == "open" for d in differences)
        if outcome is None:
            if unexplained:
                outcome = "unexplained"
            elif differences or not figures["totals"].agreed:
                outcome = "explained"
            else:
                outcome = "balanced"
        report = ReconciliationReport(
            run_id=run["run_id"],
            province=province,
            day=day,
            triggered_by=triggered_by,
            outcome=outcome,
            started_at=run["started_at"],
            finished_at=dt.datetime.now(dt.UTC),
            differences=differences,
            unexplained=unexplained,
            error=error,
            **figures,
        )
        totals = figures.get("totals")
        finished_at = await self.pool.fetchval(
            queries.FINISH_RUN,
            run["run_id"],
            outcome,
            None if totals is None else totals.agreed,
            msgspec.to_builtins(report),
        )
        return msgspec.structs.replace(report, finished_at=finished_at)

    # --- the statement ----------------------------------------------------------------------

    async def _statement(
        self, adapter: ClearingAdapter, province: str, day: dt.date
    ) -> tuple[list[StatementLine], list[OurRecord], list[StatementTotalsLine], StatementTotals]:
        """The province's lines and totals of the day, and ours, consistent with each other.

        When the province's details disagree with its own totals, it is asked once more
        (a settlement made between the two calls of a day still running explains it).
        """
        for attempt in range(2):
            lines = await self._details(adapter, province, day)
            ours = await self._our_records(province, day)
            ours_totals = totals_of_records(day, ours)
            totals = await self._totals(adapter, province, day, ours_totals)
            consistent = not inconsistent_totals(
                totals_of_lines(day, lines), [verdict.line for verdict in totals.lines]
            )
            if consistent or attempt == 1:
                return lines, ours, ours_totals, totals
        raise AssertionError("unreachable")

    async def _msgid(self, institution_code: str = PLATFORM_FIXMEDINS_CODE) -> str:
        serial = await self.pool.fetchval(settlement_queries.ALLOCATE_MSGID_SERIAL)
        return new_msgid(institution_code, self.clock(), int(serial) % 10_000)

    async def _asked(
        self,
        call: Callable[[str], Awaitable[T]],
        institution_code: str = PLATFORM_FIXMEDINS_CODE,
    ) -> T:
        """``call(msgid)``, tried again under a new msgid when the province fails to answer.

        Only for questions (statements, 6301): asking again can have no effect.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return await call(await self._msgid(institution_code))
            except ClearingError:
                if attempt == self.attempts:
                    raise
                await asyncio.sleep(backoff_seconds(attempt, first=self.retry_seconds))
        raise AssertionError("unreachable")

    async def _details(
        self, adapter: ClearingAdapter, province: str, day: dt.date
    ) -> list[StatementLine]:
        lines: dict[str, StatementLine] = {}
        page = 1
        while True:
            request = functools.partial(
                StatementDetailsRequest,
                province=province,
                first_day=day,
                last_day=day,
                page=page,
                page_size=self.page_size,
            )
            answer = await self._asked(functools.partial(self._page, adapter, request))
            for line in answer.lines:
                # Compared and kept as ours are: the person by reference.
                kept = msgspec.structs.replace(line, psn_no=person_ref(line.psn_no))
                lines[line.msgid] = kept  # a line repeated by a page shift counts once
            if answer.last or not answer.lines:
                return sorted(lines.values(), key=lambda line: line.settlement_id)
            page += 1

    @staticmethod
    async def _page(
        adapter: ClearingAdapter,
        request: Callable[..., StatementDetailsRequest],
        msgid: str,
    ) -> StatementPage:
        return await adapter.statement_details(request(msgid=msgid))

    async def _totals(
        self,
        adapter: ClearingAdapter,
        province: str,
        day: dt.date,
        ours: list[StatementTotalsLine],
    ) -> StatementTotals:
        return await self._asked(
            lambda msgid: adapter.statement_totals(
                StatementTotalsRequest(
                    msgid=msgid, province=province, first_day=day, last_day=day, lines=ours
                )
            )
        )

    async def _our_records(self, province: str, day: dt.date) -> list[OurRecord]:
        start, end = china_day_bounds(day)
        rows = await self.pool.fetch(queries.OUR_SETTLEMENTS_OF_DAY, province, start, end)
        return [
            OurRecord(
                payment_id=row["payment_id"],
                msgid=row["msgid"],
                reversal_msgid=row["reversal_msgid"],
                settlement_id=row["setl_id"],
                psn_no=row["psn_no"],
                insurance_scheme=row["scheme"],
                clearing_type=row["clearing_type"],
                institution_code=row["institution_code"],
                medical_fee_total_fen=row["medical_fee_total_fen"],
                basic_fund_fen=row["basic_fund_fen"],
                critical_illness_fen=row["critical_illness_fen"],
                medical_assistance_fen=row["medical_assistance_fen"],
                fund_total_fen=row["fund_total_fen"],
                personal_account_fen=row["personal_account_fen"],
                cash_fen=row["cash_fen"],
                settled_at=row["settled_at"],
                reversed_at=row["reversed_at"],
                state=row["state"],
            )
            for row in rows
        ]

    # --- one difference -------------------------------------------------------------------

    async def _examine(
        self,
        run_id: int,
        adapter: ClearingAdapter,
        province: str,
        day: dt.date,
        candidate: Candidate,
        judge: Callable[[], Awaitable[_Verdict]],
        *,
        payment_id: uuid.UUID | None = None,
        theirs: dict[str, Any] | None = None,
    ) -> tuple[bool, bool]:
        """Record ``candidate`` (once), judge it unless resolved, apply the verdict.

        Returns (found now for the first time, resolved now).
        """
        ours = candidate.ours
        row = await self.pool.fetchrow(
            queries.INSERT_DIFFERENCE,
            province,
            day,
            candidate.kind,
            candidate.subject,
            payment_id or (ours.payment_id if ours else await self._payment_of(candidate.subject)),
            ours.settlement_id
            if ours
            else (candidate.theirs.settlement_id if candidate.theirs else None),
            record_snapshot(ours),
            theirs if theirs is not None else line_snapshot(candidate.theirs),
            run_id,
        )
        is_new = row is not None
        if row is None:
            row = await self.pool.fetchrow(
                queries.DIFFERENCE_BY_KEY, province, day, candidate.kind, candidate.subject
            )
            assert row is not None
        if row["status"] == "resolved":
            return is_new, False
        verdict = await judge()
        return is_new, await self._apply(row, verdict)

    async def _apply(self, row: asyncpg.Record, verdict: _Verdict) -> bool:
        """Write the verdict; an annulment in the same transaction as the correction."""
        difference_id = row["difference_id"]
        if verdict.annul is not None:
            async with transaction(self.pool) as conn:
                locked = await conn.fetchrow(queries.LOCK_DIFFERENCE, difference_id)
                assert locked is not None
                if locked["status"] == "resolved":
                    return False
                journal_id = await self.flow.record_annulled_in(
                    conn, verdict.annul, ANNULLED_CODE, verdict.text[:500]
                )
                if journal_id is None:  # it moved meanwhile: look again next run
                    await conn.execute(
                        queries.SET_DIFFERENCE_OPEN,
                        difference_id,
                        "province",
                        "the payment changed while it was examined; examined again next run",
                    )
                    return False
                await conn.execute(
                    queries.RESOLVE_DIFFERENCE,
                    difference_id,
                    "annulled",
                    verdict.text,
                    RECONCILIATION,
                    journal_id,
                )
            return True
        if verdict.resolution is not None:
            await self.pool.execute(
                queries.RESOLVE_DIFFERENCE,
                difference_id,
                verdict.resolution,
                verdict.text,
                RECONCILIATION,
                verdict.journal_id,
            )
            return True
        if (row["awaiting"], row["note"]) != (verdict.awaiting, verdict.text):
            await self.pool.execute(
                queries.SET_DIFFERENCE_OPEN, difference_id, verdict.awaiting, verdict.text
            )
        return False

    async def _vanished(self, province: str, day: dt.date, examined: set[tuple[str, str]]) -> int:
        """Open differences of the statement this run no longer finds: resolved as gone."""
        resolved = 0
        for row in await self.pool.fetch(queries.DIFFERENCES_OF_DAY, province, day):
            key = (row["kind"], row["subject"])
            if row["status"] == "open" and row["kind"] in _STATEMENT_KINDS and key not in examined:
                await self.pool.execute(
                    queries.RESOLVE_DIFFERENCE,
                    row["difference_id"],
                    "no_longer_present",
                    "a later run found the statement and our books agreeing here",
                    RECONCILIATION,
                    None,
                )
                resolved += 1
        return resolved

    async def _payment_of(self, msgid: str) -> uuid.UUID | None:
        facts = await self.pool.fetchrow(queries.PAYMENT_OF_MSGID, msgid)
        return None if facts is None else facts["payment_id"]

    async def _ask(self, adapter: ClearingAdapter, facts: asyncpg.Record) -> QueryResult:
        """6301 on the message ``facts`` is about: what the province says it did."""
        return await self._asked(
            lambda msgid: adapter.query(
                QueryRequest(
                    msgid=msgid,
                    ref_msgid=facts["msgid"],
                    insured_area=facts["insured_area"],
                    treatment_area=facts["treatment_area"],
                    institution_code=facts["institution_code"],
                    institution_name=facts["institution_name"] or facts["institution_code"],
                )
            ),
            facts["institution_code"],
        )

    async def _resolved_state(self, payment_id: uuid.UUID) -> str:
        """Take an unfinished payment as far as the province's word (6301) allows now."""
        return await self.flow.resolve(payment_id)

    async def _journal(self, payment_id: uuid.UUID, kind: str) -> int | None:
        return await self.pool.fetchval(queries.JOURNAL_OF_PAYMENT, payment_id, kind)

    # --- the rules, kind by kind -----------------------------------------------------------------

    async def _line(
        self, adapter: ClearingAdapter, province: str, day: dt.date, candidate: Candidate
    ) -> _Verdict:
        facts = await self.pool.fetchrow(queries.PAYMENT_OF_MSGID, candidate.subject)
        if facts is None:
            return _for_person(
                f"the province lists {candidate.subject} as settled, a msgid we never sent: "
                "not ours to record; ask the province what it is"
            )
        if facts["infno"] != INFNO_SETTLE or facts["province"] != province:
            return _for_person(
                f"the province lists {candidate.subject} as a settlement, but we sent it as "
                f"a {facts['infno']} to {facts['province']}"
            )
        try:
            if candidate.kind == "missing_here":
                return await self._missing_here(adapter, day, candidate, facts)
            if candidate.kind == "missing_there":
                return await self._missing_there(adapter, day, candidate, facts)
            if candidate.kind == "figures_differ":
                return await self._figures_differ(adapter, candidate, facts)
            if candidate.kind == "reversed_there_only":
                return await self._reversed_there_only(candidate, facts)
            return await self._reversed_here_only(adapter, candidate, facts)
        except ClearingError as exc:
            return _for_province(
                f"the province could not be asked (6301): {exc.code}; asked again next run"
            )

    async def _missing_here(
        self, adapter: ClearingAdapter, day: dt.date, candidate: Candidate, facts: asyncpg.Record
    ) -> _Verdict:
        """The province settled it on the day; we have not recorded it on the day."""
        payment_id: uuid.UUID = facts["payment_id"]
        state = facts["state"]
        if state in UNFINISHED_STATES:
            state = await self._resolved_state(payment_id)
            if state in ("settled", "reversing", "reversed"):
                return _resolved(
                    "recorded_from_province",
                    f"the payment was {facts['state']}; 6301 confirmed the settlement and it was "
                    "recorded through the payment flow with its journal",
                    await self._journal(payment_id, "settlement"),
                )
            if state in UNFINISHED_STATES:
                return _for_province(
                    f"still {state} after asking the province; asked again next run"
                )
            return _for_person(
                "the statement lists a settlement that 6301 did not confirm: the payment "
                f"ended {state}; ask the province which is right"
            )
        if facts["corrected_at"] is not None:
            return _for_person(
                f"annulled on {china_date(facts['corrected_at'])} because the province said it never "
                "made it, and now it lists it settled: ask the province which is right"
            )
        if state == "failed":
            return _for_person(
                "the province settled a payment we recorded as failed (and told the app so): "
                "have the province reverse it (2208), or settle it anew with the patient"
            )
        our_day = china_date(facts["settled_at"])
        if our_day == day:
            return _resolved(
                "no_longer_present", "recorded while the statement was being compared; alike now"
            )
        return _resolved(
            "recorded_on_another_day",
            f"we recorded the settlement on {our_day}, the province on {day}",
        )

    async def _missing_there(
        self, adapter: ClearingAdapter, day: dt.date, candidate: Candidate, facts: asyncpg.Record
    ) -> _Verdict:
        """We recorded it as settled on the day; the province's statement does not."""
        if candidate.theirs is not None:
            return _resolved(
                "recorded_on_another_day",
                f"the province settled it on {china_date(candidate.theirs.settled_at)}, we recorded it on {day}",
            )
        payment_id: uuid.UUID = facts["payment_id"]
        state = facts["state"]
        if state in UNFINISHED_STATES:  # a reversal under way: the province's word first
            state = await self._resolved_state(payment_id)
        result = await self._ask(adapter, facts)
        if result.status in ("not_found", "failed"):
            if state == "settled":
                return _Verdict(
                    resolution="annulled",
                    annul=payment_id,
                    text=(
                        f"6301 says {result.status}: the province never made settlement "
                        f"{facts['setl_id']}; the payment failed and its journal was reversed "
                        "by a correction journal"
                    ),
                )
            return _for_person(
                f"the province has no settlement under {candidate.subject} (6301: "
                f"{result.status}), yet the payment is {state} here: check both books"
            )
        if result.status in ("settled", "reversed") and result.breakdown is not None:
            their_day = china_date(result.breakdown.settled_at)
            if their_day != day:
                return _resolved(
                    "recorded_on_another_day",
                    f"6301 says {result.status}; the province settled it on {their_day}, "
                    f"we recorded it on {day}",
                )
            return _for_person(
                f"6301 confirms the settlement of {day}, but the province's statement of that "
                "day leaves it out: the statement is incomplete"
            )
        return _for_province(f"6301 says {result.status}; asked again next run")

    async def _figures_differ(
        self, adapter: ClearingAdapter, candidate: Candidate, facts: asyncpg.Record
    ) -> _Verdict:
        """Both have it; some figure or identity differs. No rule rewrites a settlement."""
        ours, theirs = candidate.ours, candidate.theirs
        assert ours is not None and theirs is not None
        differing = ", ".join(
            f"{name} ours {getattr(ours, name)} theirs {getattr(theirs, name)}"
            for name in candidate.differing
        )
        try:
            result = await self._ask(adapter, facts)
        except ClearingError as exc:
            return _for_person(f"{differing}; 6301 could not be asked ({exc.code})")
        if result.breakdown is None:
            return _for_person(f"{differing}; 6301 says {result.status}")
        answered = {
            name: getattr(result.breakdown, _BREAKDOWN_NAMES[name])
            for name in candidate.differing
            if name in _BREAKDOWN_NAMES
        }
        if all(getattr(ours, name) == value for name, value in answered.items()):
            side = "6301 answers our figures: the province's statement is wrong"
        elif all(getattr(theirs, name) == value for name, value in answered.items()):
            side = "6301 answers the statement's figures: our record differs from the province's"
        else:
            side = f"6301 answers yet other figures: {answered}"
        return _for_person(f"{differing}; {side}")

    async def _reversed_there_only(self, candidate: Candidate, facts: asyncpg.Record) -> _Verdict:
        """The province reversed it on the day; we have no reversal of it on the day."""
        payment_id: uuid.UUID = facts["payment_id"]
        state = facts["state"]
        if state == "reversing":
            state = await self._resolved_state(payment_id)
            if state == "reversed":
                return _resolved(
                    "reversal_recorded",
                    "the reversal was under way; 6301 confirmed it and it was recorded with "
                    "its journal",
                    await self._journal(payment_id, "reversal"),
                )
        if state == "reversed":
            return _resolved(
                "recorded_on_another_day",
                f"we recorded the reversal on {china_date(facts['reversed_at'])}, the province on "
                f"{china_date(candidate.theirs.reversed_at) if candidate.theirs else 'another day'}",
            )
        return _for_person(
            f"the province reversed it (2208 {candidate.theirs.reversal_msgid if candidate.theirs else '?'}), "
            f"but the payment is {state} here: a reversal we did not ask for, or one it refused us"
        )

    async def _reversed_here_only(
        self, adapter: ClearingAdapter, candidate: Candidate, facts: asyncpg.Record
    ) -> _Verdict:
        """We recorded a reversal on the day; the province's statement shows none on the day."""
        if candidate.theirs is not None and candidate.theirs.reversed:
            return _resolved(
                "recorded_on_another_day",
                f"the province reversed it on {china_date(candidate.theirs.reversed_at)}, we recorded "
                f"the reversal on {china_date(facts['reversed_at'])}",
            )
        result = await self._ask(adapter, facts)
        if result.status == "reversed":
            return _resolved(
                "confirmed_by_province", "6301 says reversed; the statement had not caught up"
            )
        return _for_person(
            f"we recorded a reversal the province does not have (6301: {result.status}): "
            "its books still hold the settlement"
        )

    async def _inconsistent(self, detail: str) -> _Verdict:
        return _for_person(f"the province's details do not add up to its own totals: {detail}")

    async def _callback(
        self, adapter: ClearingAdapter, province: str, callback: asyncpg.Record
    ) -> _Verdict:
        """A callback that matched nothing, or contradicted what we had recorded."""
        if callback["outcome"] == "unmatched":
            return _for_person(
                f"a callback reporting {callback['result']} for {callback['ref_msgid']}, a msgid "
                "we never sent"
            )
        facts = await self.pool.fetchrow(queries.PAYMENT_OF_MSGID, callback["ref_msgid"])
        if facts is None:
            return _for_person(f"a callback in conflict about {callback['ref_msgid']}, now unknown")
        try:
            result = await self._ask(adapter, facts)
        except ClearingError as exc:
            return _for_province(
                f"the callback said {callback['result']}; 6301 could not be asked ({exc.code})"
            )
        if facts["state"] in _AGREES.get(result.status, frozenset()):
            return _resolved(
                "confirmed_by_province",
                f"the callback said {callback['result']}; 6301 now says {result.status}, as "
                f"our record ({facts['state']})",
            )
        return _for_person(
            f"the callback said {callback['result']}, 6301 says {result.status}, our record "
            f"says {facts['state']}"
        )


# --- for operators -----------------------------------------------------------------------------


async def get_difference(pool: asyncpg.Pool, difference_id: int) -> DifferenceView:
    """One difference; 404 ``difference_not_found``."""
    row = await pool.fetchrow(queries.DIFFERENCE_BY_ID, difference_id)
    if row is None:
        raise NotFound("difference_not_found", "No such reconciliation difference")
    return _difference(row)


async def list_differences(
    pool: asyncpg.Pool,
    *,
    status: str | None = None,
    province: str | None = None,
    day: dt.date | None = None,
    before: int | None = None,
    limit: int = 100,
) -> DifferenceList:
    """Differences, newest first, filtered; page with ``before`` (``next_before``)."""
    rows = await pool.fetch(queries.DIFFERENCES, status, province, day, before, limit)
    differences = [_difference(row) for row in rows]
    return DifferenceList(
        differences=differences,
        next_before=differences[-1].difference_id if len(differences) == limit else None,
    )


async def differences_of_payment(
    pool: asyncpg.Pool | asyncpg.Connection, payment_id: uuid.UUID
) -> list[DifferenceView]:
    """Every difference reconciliation found about one payment."""
    return [
        _difference(row) for row in await pool.fetch(queries.DIFFERENCES_OF_PAYMENT, payment_id)
    ]


async def explain_difference(
    pool: asyncpg.Pool, difference_id: int, *, operator_id: str, note: str
) -> DifferenceView:
    """A person explains an open difference; it is resolved for good with their note.

    Problems: 404 ``difference_not_found``, 409 ``difference_already_resolved``.
    """
    row = await pool.fetchrow(
        queries.EXPLAIN_DIFFERENCE, difference_id, note, f"operator:{operator_id}"
    )
    if row is not None:
        return _difference(row)
    current = await get_difference(pool, difference_id)
    raise Conflict(
        "difference_already_resolved",
        "The difference is already resolved",
        f"It was resolved as {current.resolution} by {current.resolved_by}.",
    )
