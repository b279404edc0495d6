"""What the console's pages show, computed without I/O: yuan, masked person numbers, the heat map.

Money stays integer fen until a page shows it: :func:`yuan` converts exactly (integer
arithmetic, never a float). A person number on a page shows its first and last four
digits only: operators need a payment's story, not whose identity number it is.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import msgspec

from medpay.books.text import fen
from medpay.clearing.schemas import ProvincePosition
from medpay.clock import CHINA
from medpay.privacy import masked_number as masked_person_number
from medpay.privacy import masked_text
from medpay.wire.national import INFNO_KINDS, PROVINCES

if TYPE_CHECKING:
    from medpay.clearing.schemas import ClearingMatrix

__all__ = [
    "HEAT_LEVELS",
    "INFNO_NAMES",
    "SETTLEMENT_FIGURES",
    "HeatCell",
    "HeatMap",
    "HeatRow",
    "china_time",
    "heat_level",
    "heat_map",
    "masked_person_number",
    "masked_text",
    "province_name",
    "yuan",
]

#: Shades of the heat map for positive amounts (1 the palest, 8 the largest amount).
HEAT_LEVELS = 8

#: What each transaction number a payment's story lists does.
INFNO_NAMES: dict[str, str] = dict(INFNO_KINDS)

#: The settlement's figures a payment's story shows, with their national names.
SETTLEMENT_FIGURES: tuple[tuple[str, str], ...] = (
    ("fund_total_fen", "funds (fund_pay_sumamt)"),
    ("basic_fund_fen", "basic fund (hifp_pay)"),
    ("critical_illness_fen", "critical illness (hifmi_pay)"),
    ("medical_assistance_fen", "medical assistance (maf_pay)"),
    ("personal_account_fen", "personal account (acct_pay)"),
    ("cash_fen", "cash (psn_cash_pay)"),
    ("full_own_pay_fen", "fully self-paid (fulamt_ownpay_amt)"),
    ("over_limit_self_pay_fen", "over the limit (overlmt_selfpay)"),
    ("pre_self_pay_fen", "self-paid first (preselfpay_amt)"),
    ("in_scope_fen", "in scope (inscp_scp_amt)"),
    ("deductible_fen", "deductible"),
    ("account_balance_after_fen", "account balance after (balc)"),
)


def yuan(amount_fen: int) -> str:
    """``amount_fen`` as yuan with two decimals and thousands separators, exactly."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError(f"an amount is integer fen, not {type(amount_fen).__name__}")
    return fen(amount_fen)


def china_time(moment: dt.datetime | str | None) -> str:
    """An instant (or its ISO text, as a story's settlement carries it) as China time."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def province_name(code: str | None) -> str:
    """A province's name, or its code when it is not one of the 31."""
    if code is None:
        return "not routed"
    return PROVINCES.get(code, code)


class HeatCell(msgspec.Struct, frozen=True, kw_only=True):
    """One pair (insured province, treatment province) of a period."""

    insured_province: str
    treatment_province: str
    fund_total_fen: int
    settlements: int
    level: int  # 0 nothing, 1..HEAT_LEVELS by amount, -1 negative (undone more than done)
    title: str  # what hovering says


class HeatRow(msgspec.Struct, frozen=True, kw_only=True):
    """An insured province's row: what its funds owe each treatment province, and its net."""

    province: str
    name: str
    cells: list[HeatCell]
    position: ProvincePosition


class HeatMap(msgspec.Struct, frozen=True, kw_only=True):
    """A period's clearing as a square of provinces, each row with its province's net."""

    columns: list[tuple[str, str]]  # (code, name) of each treatment province
    rows: list[HeatRow]
    largest_fen: int  # the amount shown darkest
    pairs: int  # pairs with entries


def heat_level(amount_fen: int, largest_fen: int) -> int:
    """The shade of ``amount_fen`` on a map whose darkest is ``largest_fen`` (linear)."""
    if amount_fen < 0:
        return -1
    if amount_fen == 0 or largest_fen <= 0:
        return 0
    return 1 + (HEAT_LEVELS - 1) * min(amount_fen, largest_fen) // largest_fen


def _title(insured: str, treatment: str, amount_fen: int, settlements: int) -> str:
    where = (
        f"{province_name(insured)} insured, treated within the province (nets to nothing)"
        if insured == treatment
        else f"{province_name(insured)} insured, treated in {province_name(treatment)}"
    )
    counted = "1 settlement" if settlements == 1 else f"{settlements} settlements"
    return f"{where}: {yuan(amount_fen)} yuan from the funds, {counted}"


def _no_position(code: str) -> ProvincePosition:
    return ProvincePosition(
        province=code, name=province_name(code), receivable_fen=0, payable_fen=0, net_fen=0
    )


def heat_map(matrix: ClearingMatrix) -> HeatMap:
    """Every province against every other (31 x 31), in code order, with every pair's cell.

    A province outside the 31 (never expected) gets a row and a column of its own rather
    than disappearing from the map.
    """
    by_pair = {(c.insured_province, c.treatment_province): c for c in matrix.cells}
    codes = sorted(
        set(PROVINCES)
        | {code for pair in by_pair for code in pair}
        | {p.province for p in matrix.positions}
    )
    positions = {p.province: p for p in matrix.positions}
    largest = max((c.fund_total_fen for c in matrix.cells), default=0)
    rows = []
    for insured in codes:
        cells = []
        for treatment in codes:
            cell = by_pair.get((insured, treatment))
            amount = cell.fund_total_fen if cell else 0
            settlements = cell.settlements if cell else 0
            cells.append(
                HeatCell(
                    insured_province=insured,
                    treatment_province=treatment,
                    fund_total_fen=amount,
                    settlements=settlements,
                    level=heat_level(amount, largest),
                    title=_title(insured, treatment, amount, settlements),
                )
            )
        rows.append(
            HeatRow(
                province=insured,
                name=province_name(insured),
                cells=cells,
                position=positions.get(insured) or _no_position(insured),
            )
        )
    return HeatMap(
        columns=[(code, province_name(code)) for code in codes],
        rows=rows,
        largest_fen=largest,
        pairs=len(by_pair),
    )
