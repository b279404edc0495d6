"""The payment state machine allows exactly the documented moves."""

from __future__ import annotations

from typing import get_args

import pytest

from medpay.payments.schemas import PaymentState
from medpay.payments.states import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    app_state,
    check_transition,
)

ALLOWED = [
    ("received", "settling"),
    ("received", "failed"),
    ("settling", "settled"),
    ("settling", "failed"),
    ("settling", "unknown"),
    ("unknown", "settled"),
    ("unknown", "failed"),
    ("settled", "reversing"),
    ("reversing", "reversed"),
    ("reversing", "settled"),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_documented_moves_are_allowed(current: str, target: str) -> None:
    check_transition(current, target)


def test_every_other_move_is_refused() -> None:
    states = list(ALLOWED_TRANSITIONS)
    refused = [(a, b) for a in states for b in states if (a, b) not in ALLOWED]
    assert len(refused) == len(states) ** 2 - len(ALLOWED)
    for current, target in refused:
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


def test_final_states_have_no_way_out() -> None:
    assert ALLOWED_TRANSITIONS["reversed"] == frozenset()
    assert ALLOWED_TRANSITIONS["failed"] == frozenset()


@pytest.mark.parametrize("state", sorted(ALLOWED_TRANSITIONS))
def test_every_internal_state_is_shown_as_a_documented_state(state: str) -> None:
    assert app_state(state) in get_args(PaymentState)


def test_the_province_outcome_in_doubt_is_shown_as_processing() -> None:
    assert app_state("settling") == app_state("unknown") == "processing"
