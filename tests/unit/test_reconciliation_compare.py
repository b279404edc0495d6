"""Comparing a province's statement of a day with our records: one difference per kind and line."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from medpay.clock import CHINA
from medpay.reconciliation.compare import (
    OurRecord,
    compare_day,
    inconsistent_totals,
    totals_of_lines,
    totals_of_records,
)
from medpay.settlement.adapters.base import StatementLine

DAY = dt.date(2026, 11, 26)
AT = dt.datetime(2026, 11, 26, 10, 0, tzinfo=CHINA)
YESTERDAY = AT - dt.timedelta(days=1)
PAYMENT = uuid.UUID(int=1)


def ours(msgid: str = "M1", **overrides: Any) -> OurRecord:
    fields: dict[str, Any] = {
        "payment_id": PAYMENT,
        "msgid": msgid,
        "reversal_msgid": None,
        "settlement_id": "S1",
        "psn_no": "33000000000000000001",
        "insurance_scheme": "employee",
        "clearing_type": "11",
        "institution_code": "H11010800124",
        "medical_fee_total_fen": 11_100,
        "basic_fund_fen": 4_000,
        "critical_illness_fen": 0,
        "medical_assistance_fen": 0,
        "fund_total_fen": 4_000,
        "personal_account_fen": 3_000,
        "cash_fen": 4_100,
        "settled_at": AT,
        "reversed_at": None,
        "state": "settled",
    }
    fields.update(overrides)
    return OurRecord(**fields)


def theirs(msgid: str = "M1", **overrides: Any) -> StatementLine:
    record = ours(msgid)
    fields: dict[str, Any] = {
        "settlement_id": record.settlement_id,
        "msgid": msgid,
        "psn_no": record.psn_no,
        "visit_id": PAYMENT.hex,
        "insurance_scheme": "employee",
        "clearing_type": "11",
        "institution_code": record.institution_code,
        **{
            name: getattr(record, name)
            for name in (
                "medical_fee_total_fen",
                "basic_fund_fen",
                "critical_illness_fen",
                "medical_assistance_fen",
                "fund_total_fen",
                "personal_account_fen",
                "cash_fen",
            )
        },
        "settled_at": AT,
    }
    fields.update(overrides)
    return StatementLine(**fields)


def kinds(candidates) -> list[tuple[str, str]]:
    return [(c.kind, c.subject) for c in candidates]


def test_alike_lines_are_no_difference() -> None:
    assert compare_day(DAY, [theirs()], [ours()]) == []


def test_a_settlement_only_the_province_has_is_missing_here() -> None:
    assert kinds(compare_day(DAY, [theirs()], [])) == [("missing_here", "M1")]


def test_a_settlement_only_we_have_is_missing_there() -> None:
    assert kinds(compare_day(DAY, [], [ours()])) == [("missing_there", "M1")]


def test_a_settlement_of_another_day_is_missing_on_this_one() -> None:
    # The province settled it yesterday and reversed it today; we recorded it today.
    line = theirs(settled_at=YESTERDAY, reversal_msgid="R1", reversed_at=AT)
    assert kinds(compare_day(DAY, [line], [ours()])) == [("missing_there", "M1")]


def test_figures_that_differ_name_the_fields() -> None:
    (candidate,) = compare_day(
        DAY, [theirs(basic_fund_fen=4_100, fund_total_fen=4_100, cash_fen=4_000)], [ours()]
    )
    assert candidate.kind == "figures_differ"
    assert candidate.differing == ("basic_fund_fen", "fund_total_fen", "cash_fen")


def test_another_person_under_the_same_msgid_is_a_difference() -> None:
    (candidate,) = compare_day(DAY, [theirs(psn_no="44000000000000000002")], [ours()])
    assert (candidate.kind, candidate.differing) == ("figures_differ", ("psn_no",))


def test_a_reversal_on_one_side_only_is_reported_by_side() -> None:
    reversed_there = theirs(reversal_msgid="R1", reversed_at=AT)
    reversed_here = ours(reversal_msgid="R1", reversed_at=AT, state="reversed")
    assert kinds(compare_day(DAY, [reversed_there], [ours()])) == [("reversed_there_only", "M1")]
    assert kinds(compare_day(DAY, [theirs()], [reversed_here])) == [("reversed_here_only", "M1")]


def test_a_reversal_of_an_earlier_settlement_alike_on_both_sides_is_no_difference() -> None:
    line = theirs(settled_at=YESTERDAY, reversal_msgid="R1", reversed_at=AT)
    record = ours(settled_at=YESTERDAY, reversal_msgid="R1", reversed_at=AT, state="reversed")
    assert compare_day(DAY, [line], [record]) == []


def test_every_difference_is_listed_one_by_one() -> None:
    candidates = compare_day(
        DAY,
        [
            theirs("M1"),
            theirs("M2", settlement_id="S2"),
            theirs("M4", cash_fen=4_000, fund_total_fen=4_100, basic_fund_fen=4_100),
        ],
        [ours("M1"), ours("M3", settlement_id="S3"), ours("M4")],
    )
    assert kinds(candidates) == [
        ("missing_here", "M2"),
        ("missing_there", "M3"),
        ("figures_differ", "M4"),
    ]


def test_totals_are_net_of_the_days_reversals() -> None:
    settled = ours("M1")
    undone_today = ours("M2", settled_at=YESTERDAY, reversed_at=AT)
    resident = ours("M3", insurance_scheme="resident")

    (employee, residents) = totals_of_records(DAY, [settled, undone_today, resident])

    assert (employee.settlement_count, employee.medical_fee_total_fen) == (0, 0)
    assert (residents.insurance_scheme, residents.settlement_count) == ("resident", 1)
    assert residents.fund_total_fen == 4_000


def test_details_that_do_not_add_up_to_the_totals_are_named() -> None:
    details = totals_of_lines(DAY, [theirs("M1"), theirs("M2")])
    claimed = totals_of_lines(DAY, [theirs("M1")])

    assert inconsistent_totals(details, details) == []
    (problem,) = inconsistent_totals(details, claimed)
    assert problem.startswith("employee/11: details [22200, 8000, 6000, 2]")


def test_a_difference_keeps_both_records_as_json() -> None:
    (candidate,) = compare_day(DAY, [theirs()], [])
    assert msgspec.json.decode(msgspec.json.encode(candidate.theirs))["msgid"] == "M1"
