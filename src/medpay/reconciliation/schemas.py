"""What reconciliation answers: a run's report, its differences and how each was resolved."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from medpay.schemas import ApiAnswer, ApiRequest

__all__ = [
    "DIFFERENCE_KINDS",
    "RESOLUTIONS",
    "DayReport",
    "DifferenceExplanation",
    "DifferenceKind",
    "DifferenceList",
    "DifferenceView",
    "ReconciliationReport",
    "Resolution",
    "RunOutcome",
    "TotalsLineView",
    "TotalsView",
]

DifferenceKind = Literal[
    "missing_here",  # the province has a settlement we do not
    "missing_there",  # we have a settlement the province does not
    "figures_differ",  # both have it, with other figures
    "reversed_there_only",  # the province reversed it, we did not
    "reversed_here_only",  # we reversed it, the province did not
    "statement_inconsistent",  # the province's details disagree with its own totals
    "callback_unmatched",  # a callback about a msgid we never sent
    "callback_conflict",  # a callback contradicting our record
]
DIFFERENCE_KINDS: tuple[str, ...] = DifferenceKind.__args__  # type: ignore[attr-defined]

Resolution = Literal[
    "recorded_from_province",  # an unfinished payment recorded, with its journal, by 6301
    "reversal_recorded",  # an unfinished reversal recorded, with its journal, by 6301
    "annulled",  # the province never made it: failed, its journal mirrored by a correction
    "recorded_on_another_day",  # both sides have it; the days differ (midnight, late answers)
    "confirmed_by_province",  # 6301 agrees with our record
    "no_longer_present",  # a later run found no difference any more
    "explained_by_operator",  # a person explained it
]
RESOLUTIONS: tuple[str, ...] = Resolution.__args__  # type: ignore[attr-defined]

#: balanced: nothing differed; explained: every difference of the day is resolved;
#: unexplained: one is open; statement_unavailable: the province could not be asked.
RunOutcome = Literal["balanced", "explained", "unexplained", "statement_unavailable"]


class DifferenceView(ApiAnswer, frozen=True, kw_only=True):
    """One difference between our books and a province's statement of a day."""

    difference_id: int
    province: str
    day: dt.date
    kind: DifferenceKind
    subject: str  # the msgid of the 2207 it is about, or a callback's id, or "statement"
    status: Literal["open", "resolved"]
    awaiting: Literal["province", "person"] | None = None  # why it is still open
    note: str | None = None  # what was found out while it is open
    payment_id: uuid.UUID | None = None
    settlement_id: str | None = None  # setl_id
    ours: dict[str, Any] | None = None  # our record as compared
    theirs: dict[str, Any] | None = None  # the province's as compared
    resolution: Resolution | None = None
    resolution_detail: str | None = None
    resolved_by: str | None = None  # "reconciliation", or the operator
    resolved_at: dt.datetime | None = None
    journal_id: int | None = None  # the journal its resolution wrote, if any
    found_in_run: int
    found_at: dt.datetime


class TotalsLineView(ApiAnswer, frozen=True, kw_only=True):
    """Net totals of one (scheme, clearing type) over the day: reversals count minus."""

    insurance_scheme: Literal["employee", "resident"]  # insutype 310 / 390
    clearing_type: str  # clr_type
    medical_fee_total_fen: int  # medfee_sumamt
    fund_total_fen: int  # fund_pay_sumamt
    personal_account_fen: int  # acct_pay
    settlement_count: int  # fixmedins_setl_cnt
    agreed: bool | None = None  # stmt_rslt, on the province's lines


class TotalsView(ApiAnswer, frozen=True, kw_only=True):
    """Our totals of the day and the province's (3201), and whether they agree."""

    agreed: bool  # stmt_rslt
    ours: list[TotalsLineView]
    theirs: list[TotalsLineView]


class ReconciliationReport(ApiAnswer, frozen=True, kw_only=True):
    """One reconciliation of a province's day: what was compared, found and resolved.

    ``differences`` are all the day's differences, found in this run or before, each
    with its state; ``unexplained`` counts the open ones.
    """

    run_id: int
    province: str
    day: dt.date
    triggered_by: str
    outcome: RunOutcome
    started_at: dt.datetime
    finished_at: dt.datetime
    statement_lines: int  # 3202 lines of the province
    our_lines: int  # our settlements and reversals of the day
    matched: int  # lines alike on both sides
    new_differences: int
    resolved_now: int
    differences: list[DifferenceView]
    unexplained: int
    totals_at_start: TotalsView | None = None  # 3201 before anything was resolved
    totals: TotalsView | None = None  # 3201 at the end
    error: str | None = None  # why the statement could not be had


class DayReport(ApiAnswer, frozen=True, kw_only=True):
    """Reconciliation of one day with every connected province."""

    day: dt.date
    provinces: list[ReconciliationReport]
    unexplained: int
    unavailable: int  # provinces whose statement could not be had

    @property
    def ok(self) -> bool:
        """No unexplained difference and every statement had."""
        return self.unexplained == 0 and self.unavailable == 0


class DifferenceList(ApiAnswer, frozen=True, kw_only=True):
    """Differences, newest first; ``next_before`` pages on (None: no more)."""

    differences: list[DifferenceView]
    next_before: int | None = None


class DifferenceExplanation(ApiRequest, frozen=True, kw_only=True):
    """An operator's explanation of an open difference: what a person found and did."""

    note: Annotated[
        str, msgspec.Meta(min_length=3, max_length=1000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")
    ]
