"""What the operator's view answers: a day's volumes by province, a payment's whole story."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from medpay.clearing.schemas import ClearingEntryView
from medpay.reconciliation.schemas import DifferenceView
from medpay.schemas import ApiAnswer

__all__ = [
    "CallbackRecord",
    "DayVolumes",
    "JournalView",
    "MessageRecord",
    "NotificationRecord",
    "PaymentStory",
    "PostingView",
    "ProvinceVolume",
    "StateChange",
]


class ProvinceVolume(ApiAnswer, frozen=True, kw_only=True):
    """One insured province's payments of the day, and the amounts now settled (fen)."""

    province: str | None  # None: payments refused before the insurer was known
    name: str
    payments: int
    settled: int  # settled or being reversed
    reversed: int
    failed: int
    processing: int  # received, settling or unknown
    medical_fee_total_fen: int  # medfee_sumamt of those settled
    fund_total_fen: int  # fund_pay_sumamt of those settled
    personal_account_fen: int  # acct_pay of those settled
    cash_fen: int  # psn_cash_pay of those settled
    reversed_fee_total_fen: int  # medfee_sumamt of those reversed


class DayVolumes(ApiAnswer, frozen=True, kw_only=True):
    """A service date's payments by insured province, and their sum."""

    day: dt.date
    provinces: list[ProvinceVolume]
    total: ProvinceVolume


class StateChange(ApiAnswer, frozen=True, kw_only=True):
    """One state the payment entered, when (recorded by PostgreSQL)."""

    to_state: str
    changed_at: dt.datetime
    from_state: str | None = None
    failure_code: str | None = None


class MessageRecord(ApiAnswer, frozen=True, kw_only=True):
    """A message sent to the province under its msgid, exactly as sent, and its outcome."""

    msgid: str
    infno: str
    province: str
    created_at: dt.datetime
    outcome: str | None = None
    request: dict[str, Any] | None = None


class CallbackRecord(ApiAnswer, frozen=True, kw_only=True):
    """A callback the province made about the payment, as received, and what it did."""

    province: str
    callback_id: str
    ref_msgid: str
    result: str
    outcome: str  # applied, already_final, unmatched, conflict
    received_at: dt.datetime
    body: dict[str, Any]


class PostingView(ApiAnswer, frozen=True, kw_only=True):
    """One line of a journal: debit > 0, credit < 0."""

    account: str
    amount_fen: int


class JournalView(ApiAnswer, frozen=True, kw_only=True):
    """One balanced journal of the payment."""

    journal_id: int
    kind: str  # settlement, reversal, correction
    created_at: dt.datetime
    postings: list[PostingView]


class NotificationRecord(ApiAnswer, frozen=True, kw_only=True):
    """An event for the app, and whether it was delivered."""

    event_id: uuid.UUID
    sequence: int
    event_type: str
    created_at: dt.datetime
    attempts: int
    delivered_at: dt.datetime | None = None
    last_error: str | None = None


class PaymentStory(ApiAnswer, frozen=True, kw_only=True):
    """Everything that happened to one payment, for an operator (any app's, any person's)."""

    payment_id: uuid.UUID
    app_id: str
    psn_no: str
    state: str  # the gateway's own state (settling and unknown told apart)
    institution_code: str
    treatment_area: str
    visit_type: str
    service_date: dt.date
    medical_fee_total_fen: int
    created_at: dt.datetime
    updated_at: dt.datetime
    insured_area: str | None = None
    scheme: str | None = None
    failure_code: str | None = None
    failure_detail: str | None = None
    items: list[dict[str, Any]] = []
    settlement: dict[str, Any] | None = None  # the province's figures as recorded
    reversed_at: dt.datetime | None = None
    correction: dict[str, Any] | None = None  # why reconciliation annulled it
    replaces_payment_id: uuid.UUID | None = None  # the payment whose lines kept this is
    refunds: list[dict[str, Any]] = []  # that gave it back, or that it is the lines kept of
    states: list[StateChange] = []
    messages: list[MessageRecord] = []
    callbacks: list[CallbackRecord] = []
    journals: list[JournalView] = []
    notifications: list[NotificationRecord] = []
    clearing: list[ClearingEntryView] = []
    differences: list[DifferenceView] = []
