"""What the ledger answers when questioned: balances, and the invariants it checked."""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = ["AccountBalance", "Balances", "InvariantCheck", "InvariantFailure"]


class AccountBalance(msgspec.Struct, frozen=True, kw_only=True):
    """One account's balance in fen: debits minus credits of its postings."""

    account: str
    balance_fen: int


class Balances(msgspec.Struct, frozen=True, kw_only=True):
    """Balances of the accounts asked for, as of a time (None: now), and their sum."""

    as_of: dt.datetime | None
    account: str | None = None
    prefix: str | None = None
    accounts: list[AccountBalance]
    total_fen: int


class InvariantFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One record that breaks an invariant of the books."""

    invariant: str  # e.g. "journal_balanced"
    subject: str  # what it is about: "journal 12", "payment <uuid>", "transfer <uuid>"
    detail: str


class InvariantCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Which invariants were checked over how many records, and the first failures of each."""

    checked: dict[str, int]  # invariant -> records it was checked over
    failures: list[InvariantFailure]

    @property
    def ok(self) -> bool:
        """Whether every invariant holds."""
        return not self.failures

    def merged(self, other: InvariantCheck) -> InvariantCheck:
        """Both checks as one report."""
        return InvariantCheck(
            checked={**self.checked, **other.checked}, failures=[*self.failures, *other.failures]
        )
