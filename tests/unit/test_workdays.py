"""Working days and calendar months of a relationship transfer (DOMAIN.md section 6)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medpay.clock import add_months
from medpay.relationships.workdays import (
    add_working_days,
    is_working_day,
    whole_months_between,
    working_days_between,
)

D = dt.date
# Monday 2 November 2026 .. Sunday 8 November 2026.
MONDAY, FRIDAY, SATURDAY, SUNDAY = D(2026, 11, 2), D(2026, 11, 6), D(2026, 11, 7), D(2026, 11, 8)
dates = st.dates(min_value=D(2000, 1, 1), max_value=D(2100, 12, 31))


def test_weekends_are_not_working_days() -> None:
    assert is_working_day(MONDAY) and is_working_day(FRIDAY)
    assert not is_working_day(SATURDAY) and not is_working_day(SUNDAY)


def test_a_holiday_is_not_a_working_day() -> None:
    assert not is_working_day(MONDAY, {MONDAY})


def test_ten_working_days_from_a_monday_end_on_the_second_friday_after() -> None:
    assert add_working_days(MONDAY, 10) == D(2026, 11, 16)


def test_ten_working_days_from_a_friday_end_on_the_second_friday_after() -> None:
    assert add_working_days(FRIDAY, 10) == D(2026, 11, 20)


def test_counting_from_a_weekend_starts_on_monday() -> None:
    assert add_working_days(SATURDAY, 1) == D(2026, 11, 9)
    assert add_working_days(SUNDAY, 5) == D(2026, 11, 13)


def test_fifteen_working_days_skip_three_weekends() -> None:
    assert add_working_days(MONDAY, 15) == D(2026, 11, 23)


def test_holidays_push_a_deadline_back() -> None:
    national_day = {D(2026, 10, d) for d in range(1, 8)}  # Thursday 1 .. Wednesday 7 October
    # From Tuesday 29 September: Wednesday 30, then the holiday, then Thursday 8 onwards.
    assert add_working_days(D(2026, 9, 29), 5, national_day) == D(2026, 10, 13)
    assert add_working_days(D(2026, 9, 29), 5) == D(2026, 10, 6)


def test_zero_working_days_is_the_start_itself() -> None:
    assert add_working_days(SATURDAY, 0) == SATURDAY


def test_negative_working_days_are_an_error() -> None:
    with pytest.raises(ValueError, match="days must be >= 0"):
        add_working_days(MONDAY, -1)


def test_a_deadline_on_friday_is_one_working_day_late_on_monday() -> None:
    assert working_days_between(FRIDAY, SATURDAY) == 0
    assert working_days_between(FRIDAY, SUNDAY) == 0
    assert working_days_between(FRIDAY, D(2026, 11, 9)) == 1


def test_nothing_is_late_on_or_before_the_deadline() -> None:
    assert working_days_between(FRIDAY, FRIDAY) == 0
    assert working_days_between(FRIDAY, MONDAY) == 0


def test_holidays_are_not_counted_as_late_days() -> None:
    assert working_days_between(FRIDAY, D(2026, 11, 10), {D(2026, 11, 9)}) == 1
    # A holiday on a weekend changes nothing.
    assert working_days_between(FRIDAY, D(2026, 11, 10), {SATURDAY}) == 2


@given(start=dates, days=st.integers(min_value=0, max_value=60))
def test_counting_back_what_was_added_gives_the_same_number(start: dt.date, days: int) -> None:
    end = add_working_days(start, days)
    assert working_days_between(start, end) == days
    assert days == 0 or is_working_day(end)


@given(start=dates, end=dates)
def test_working_days_between_matches_counting_day_by_day(start: dt.date, end: dt.date) -> None:
    if (end - start).days > 400:
        end = start + dt.timedelta(days=400)
    holidays = {start + dt.timedelta(days=k) for k in (3, 10, 11)}
    slow = sum(
        is_working_day(start + dt.timedelta(days=k), holidays)
        for k in range(1, (end - start).days + 1)
    )
    assert working_days_between(start, end, holidays) == slow


def test_adding_months_keeps_the_day_or_clamps_to_the_month_end() -> None:
    assert add_months(D(2026, 3, 15), 3) == D(2026, 6, 15)
    assert add_months(D(2026, 1, 31), 1) == D(2026, 2, 28)
    assert add_months(D(2028, 1, 31), 1) == D(2028, 2, 29)
    assert add_months(D(2026, 11, 30), 3) == D(2027, 2, 28)
    assert add_months(D(2026, 5, 31), -3) == D(2026, 2, 28)


def test_a_month_is_complete_on_the_same_day_of_the_next_month() -> None:
    assert whole_months_between(D(2026, 3, 15), D(2026, 4, 14)) == 0
    assert whole_months_between(D(2026, 3, 15), D(2026, 4, 15)) == 1
    assert whole_months_between(D(2020, 1, 1), D(2026, 11, 26)) == 82
    assert whole_months_between(D(2026, 1, 31), D(2026, 2, 28)) == 1


def test_no_months_pass_backwards() -> None:
    assert whole_months_between(D(2026, 4, 15), D(2026, 3, 15)) == 0


@given(start=dates, months=st.integers(min_value=0, max_value=600))
def test_whole_months_after_adding_months_are_that_many(start: dt.date, months: int) -> None:
    assert whole_months_between(start, add_months(start, months)) == months
