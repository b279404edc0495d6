"""What clearing answers: a period's matrix of fund amounts and each province's position."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from medpay.schemas import ApiAnswer

__all__ = [
    "PERIOD_PATTERN",
    "ClearingCell",
    "ClearingEntryView",
    "ClearingMatrix",
    "FundAmounts",
    "Period",
    "ProvincePosition",
]

PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"
#: A clearing period: a calendar month, ``YYYY-MM``.
Period = Annotated[str, msgspec.Meta(pattern=PERIOD_PATTERN, examples=["2026-11"])]


class FundAmounts(ApiAnswer, frozen=True, kw_only=True):
    """Fund amounts by national fund code (``setldetail.fund_pay_type``), in fen."""

    employee_basic_fen: int  # 310100: hifp_pay of employees
    resident_basic_fen: int  # 390100: hifp_pay of residents
    critical_illness_fen: int  # 390200: hifmi_pay
    medical_assistance_fen: int  # 610100: maf_pay


class ClearingCell(ApiAnswer, frozen=True, kw_only=True):
    """What the insured province's funds owe for care in the treatment province."""

    insured_province: str  # insuplc_admdvs, as a province
    treatment_province: str  # mdtrtarea_admvs, as a province
    settlements: int  # off-site settlements less reversals and corrections
    funds: FundAmounts
    fund_total_fen: int  # fund_pay_sumamt


class ProvincePosition(ApiAnswer, frozen=True, kw_only=True):
    """One province's figure: what its institutions are owed less what its funds pay."""

    province: str
    name: str
    receivable_fen: int  # by others' funds, for care given by its institutions
    payable_fen: int  # by its funds, for care of its insured elsewhere
    net_fen: int  # receivable - payable: > 0 it receives, < 0 it pays


class ClearingEntryView(ApiAnswer, frozen=True, kw_only=True):
    """One payment's entry in a period: its settlement, or the undoing of it (negative)."""

    entry_id: int
    period: str
    kind: Literal["settlement", "reversal", "correction"]
    insured_province: str
    treatment_province: str
    fund_total_fen: int
    occurred_at: dt.datetime


class ClearingMatrix(ApiAnswer, frozen=True, kw_only=True):
    """A period's clearing: every pair with entries, every province's net (they sum to 0).

    A closed period answers the matrix frozen when it closed; an open one, the entries so
    far. Pairs of one province with itself (off-site within a province) are shown and
    net to nothing.
    """

    period: str
    state: Literal["open", "closed"]
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    cells: list[ClearingCell]
    positions: list[ProvincePosition]
    cross_provincial_fen: int  # the fund amounts owed between different provinces
    net_sum_fen: int  # the sum of every province's net: always 0
