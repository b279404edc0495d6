"""The comparison itself: a province's statement of a day against our records, line by line.

Pure functions, no I/O: what differs, one candidate difference per settlement and kind;
what to do about each is :mod:`medpay.reconciliation.service`'s. Lines are matched by
the msgid of the 2207 (ours, unique, and the province's idempotency key); a day is a
China day; "on the day" means made (settled) or reversed within it, on each side by
its own clock: our ``settled_at`` and ``reversed_at``, the province's ``setl_time``
and ``revs_time``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from medpay.clock import china_date
from medpay.settlement.adapters.base import StatementLine, StatementTotalsLine

__all__ = [
    "Candidate",
    "OurRecord",
    "compare_day",
    "inconsistent_totals",
    "line_snapshot",
    "record_snapshot",
    "totals_of_lines",
    "totals_of_records",
]

#: The figures both sides must agree on, ours and the province's names alike.
_FIGURES = (
    "medical_fee_total_fen",
    "basic_fund_fen",
    "critical_illness_fen",
    "medical_assistance_fen",
    "fund_total_fen",
    "personal_account_fen",
    "cash_fen",
)


class OurRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One of our confirmed settlements, settled or reversed on the day."""

    payment_id: uuid.UUID
    msgid: str  # of the 2207
    reversal_msgid: str | None
    settlement_id: str
    psn_no: str
    insurance_scheme: Literal["employee", "resident"]
    clearing_type: str
    institution_code: str
    medical_fee_total_fen: int
    basic_fund_fen: int
    critical_illness_fen: int
    medical_assistance_fen: int
    fund_total_fen: int
    personal_account_fen: int
    cash_fen: int
    settled_at: dt.datetime
    reversed_at: dt.datetime | None
    state: str

    @property
    def visit_id(self) -> str:
        """mdtrt_id: the payment's id (one visit per payment)."""
        return self.payment_id.hex


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A difference the comparison found, before anything is done about it."""

    kind: str
    subject: str  # the 2207 msgid
    ours: OurRecord | None = None
    theirs: StatementLine | None = None
    differing: tuple[str, ...] = ()  # for figures_differ: which fields


def _differing(ours: OurRecord, theirs: StatementLine) -> tuple[str, ...]:
    fields = [name for name in _FIGURES if getattr(ours, name) != getattr(theirs, name)]
    identity = {
        "settlement_id": (ours.settlement_id, theirs.settlement_id),
        "psn_no": (ours.psn_no, theirs.psn_no),
        "visit_id": (ours.visit_id, theirs.visit_id),
        "insurance_scheme": (ours.insurance_scheme, theirs.insurance_scheme),
        "clearing_type": (ours.clearing_type, theirs.clearing_type),
        "institution_code": (ours.institution_code, theirs.institution_code),
    }
    return tuple(name for name, (a, b) in identity.items() if a != b) + tuple(fields)


def compare_day(
    day: dt.date, theirs: Iterable[StatementLine], ours: Iterable[OurRecord]
) -> list[Candidate]:
    """Every difference between the province's lines of ``day`` and our records of it.

    One settlement gives at most one "missing" difference; a reversal on one side only
    is reported separately only where both sides have the settlement.
    """
    by_msgid_theirs = {line.msgid: line for line in theirs}
    by_msgid_ours = {record.msgid: record for record in ours}
    candidates: list[Candidate] = []
    for msgid in sorted(by_msgid_theirs.keys() | by_msgid_ours.keys()):
        line = by_msgid_theirs.get(msgid)
        record = by_msgid_ours.get(msgid)
        line_settled = line is not None and china_date(line.settled_at) == day
        line_reversed = line is not None and china_date(line.reversed_at) == day
        ours_settled = record is not None and china_date(record.settled_at) == day
        ours_reversed = record is not None and china_date(record.reversed_at) == day
        if line_settled and not ours_settled:
            candidates.append(
                Candidate(kind="missing_here", subject=msgid, ours=record, theirs=line)
            )
            continue
        if ours_settled and not line_settled:
            candidates.append(
                Candidate(kind="missing_there", subject=msgid, ours=record, theirs=line)
            )
            continue
        if line is not None and record is not None:
            differing = _differing(record, line)
            if differing:
                candidates.append(
                    Candidate(
                        kind="figures_differ",
                        subject=msgid,
                        ours=record,
                        theirs=line,
                        differing=differing,
                    )
                )
        if line_reversed and not ours_reversed:
            candidates.append(
                Candidate(kind="reversed_there_only", subject=msgid, ours=record, theirs=line)
            )
        elif ours_reversed and not line_reversed:
            candidates.append(
                Candidate(kind="reversed_here_only", subject=msgid, ours=record, theirs=line)
            )
    return candidates


def _lines(totals: dict[tuple[str, str], list[int]]) -> list[StatementTotalsLine]:
    return [
        StatementTotalsLine(
            insurance_scheme=scheme,  # type: ignore[arg-type]
            clearing_type=clearing_type,
            medical_fee_total_fen=figures[0],
            fund_total_fen=figures[1],
            personal_account_fen=figures[2],
            settlement_count=figures[3],
        )
        for (scheme, clearing_type), figures in sorted(totals.items())
    ]


def totals_of_records(day: dt.date, records: Iterable[OurRecord]) -> list[StatementTotalsLine]:
    """Our net totals of ``day`` as 3201 lines: settlements made count, reversals minus."""
    return _net_totals(day, records)


def totals_of_lines(day: dt.date, lines: Iterable[StatementLine]) -> list[StatementTotalsLine]:
    """The net totals the province's own detail lines add up to."""
    return _net_totals(day, lines)


def _net_totals(
    day: dt.date, settlements: Iterable[OurRecord | StatementLine]
) -> list[StatementTotalsLine]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in settlements:
        for moment, sign in ((s.settled_at, 1), (s.reversed_at, -1)):
            if china_date(moment) == day:  # only then has the day a line for it
                line = totals[(s.insurance_scheme, s.clearing_type)]
                line[0] += sign * s.medical_fee_total_fen
                line[1] += sign * s.fund_total_fen
                line[2] += sign * s.personal_account_fen
                line[3] += sign
    return _lines(totals)


def inconsistent_totals(
    details: list[StatementTotalsLine], totals: list[StatementTotalsLine]
) -> list[str]:
    """Where the province's 3201 totals disagree with what its 3202 lines add up to."""
    zero = [0, 0, 0, 0]

    def figures(line: StatementTotalsLine | None) -> list[int]:
        if line is None:
            return zero
        return [
            line.medical_fee_total_fen,
            line.fund_total_fen,
            line.personal_account_fen,
            line.settlement_count,
        ]

    by_key_details = {line.key: line for line in details}
    by_key_totals = {line.key: line for line in totals}
    return [
        f"{scheme}/{clearing_type}: details {figures(by_key_details.get((scheme, clearing_type)))},"
        f" totals {figures(by_key_totals.get((scheme, clearing_type)))}"
        for scheme, clearing_type in sorted(by_key_details.keys() | by_key_totals.keys())
        if figures(by_key_details.get((scheme, clearing_type)))
        != figures(by_key_totals.get((scheme, clearing_type)))
    ]


def record_snapshot(record: OurRecord | None) -> dict[str, Any] | None:
    """Our record as stored with a difference (JSON)."""
    return None if record is None else msgspec.to_builtins(record)


def line_snapshot(line: StatementLine | None) -> dict[str, Any] | None:
    """The province's line as stored with a difference (JSON)."""
    return None if line is None else msgspec.to_builtins(line)
