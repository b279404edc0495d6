"""The payment state machine, checked in one place.

received -> settling -> settled -> reversing -> reversed; a settlement the
province refused is ``failed``; one whose outcome we do not know yet is ``unknown``
until the resolver learns it. No other move is allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medpay.payments.schemas import PaymentState

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CORRECTIONS",
    "FINAL_STATES",
    "UNFINISHED_STATES",
    "IllegalTransition",
    "app_state",
    "can_move",
    "check_correction",
    "check_transition",
]

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"settling", "failed"}),
    "settling": frozenset({"settled", "failed", "unknown"}),
    "unknown": frozenset({"settled", "failed"}),
    "settled": frozenset({"reversing"}),
    "reversing": frozenset({"reversed", "settled"}),
    "reversed": frozenset(),
    "failed": frozenset(),
}

#: Moves only reconciliation makes, never the flow: kept out of ALLOWED_TRANSITIONS so that
#: no answer or callback can fail a settled payment without mirroring its journal.
CORRECTIONS: dict[str, frozenset[str]] = {"settled": frozenset({"failed"})}


#: States a payment ends in; nothing moves it out of them.
FINAL_STATES = frozenset({"reversed", "failed"})
#: States the resolver watches until they end.
UNFINISHED_STATES = frozenset({"received", "settling", "unknown", "reversing"})


class IllegalTransition(AssertionError):
    """A state change the machine does not allow: a bug, never a client error."""


def can_move(current: PaymentState | str | None, target: PaymentState | str) -> bool:
    """Whether ``current -> target`` is allowed (None: no such payment)."""
    return current is not None and target in ALLOWED_TRANSITIONS.get(current, frozenset())


def check_transition(current: PaymentState | str, target: PaymentState | str) -> None:
    """Raise unless ``current -> target`` is allowed."""
    if target not in ALLOWED_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"payment state {current} -> {target} is not allowed")


def check_correction(current: PaymentState | str, target: PaymentState | str) -> None:
    """Raise unless reconciliation may correct ``current`` to ``target``."""
    if target not in CORRECTIONS.get(current, frozenset()):
        raise IllegalTransition(f"payment state {current} -> {target} is not a correction")


def app_state(state: str) -> PaymentState:
    """What an app is shown: ``settling`` and ``unknown`` are both ``processing`` to it."""
    shown = "processing" if state in ("settling", "unknown") else state
    assert shown in ("received", "processing", "settled", "reversing", "reversed", "failed"), state
    return shown  # type: ignore[return-value]
