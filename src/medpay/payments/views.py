"""Payments as apps see them: recorded rows and province figures shaped into our answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.payments.schemas import (
    EstimateView,
    FeeItem,
    PaymentOrder,
    PaymentView,
    SettlementView,
)
from medpay.payments.states import app_state
from medpay.schemas import view_of
from medpay.security.persons import psn_no_of

if TYPE_CHECKING:
    import asyncpg

    from medpay.settlement.adapters.base import SettlementBreakdown

__all__ = ["estimate_view", "order_of", "payment_view"]


def _settlement_view(row: asyncpg.Record) -> SettlementView | None:
    if row["setl_id"] is None:
        return None
    return view_of(row, SettlementView, settlement_id=row["setl_id"])


def payment_view(row: asyncpg.Record) -> PaymentView:
    """A payment row (``queries.PAYMENT_BY_ID``) as the app sees it."""
    return view_of(
        row,
        PaymentView,
        psn_no=psn_no_of(row),
        state=app_state(row["state"]),
        settlement=_settlement_view(row),
    )


def estimate_view(breakdown: SettlementBreakdown, insured_area: str) -> EstimateView:
    """A pre-settlement's figures as the app sees them."""
    return EstimateView(
        insured_area=insured_area,
        medical_fee_total_fen=breakdown.medfee_total_fen,
        full_own_pay_fen=breakdown.full_own_pay_fen,
        over_limit_self_pay_fen=breakdown.over_limit_self_pay_fen,
        pre_self_pay_fen=breakdown.pre_self_pay_fen,
        in_scope_fen=breakdown.in_scope_fen,
        deductible_fen=breakdown.deductible_applied_fen,
        reimbursement_ratio_bp=breakdown.ratio_bp,
        basic_fund_fen=breakdown.basic_fund_fen,
        critical_illness_fen=breakdown.critical_illness_fen,
        medical_assistance_fen=breakdown.medical_assistance_fen,
        fund_total_fen=breakdown.fund_total_fen,
        personal_share_fen=breakdown.personal_part_fen,
        personal_account_fen=breakdown.personal_account_fen,
        cash_fen=breakdown.cash_fen,
        account_balance_after_fen=breakdown.balance_after_fen,
    )


def order_of(row: asyncpg.Record) -> PaymentOrder:
    """The order as the app sent it, from the recorded payment (to continue it later)."""
    return PaymentOrder(
        institution_code=row["institution_code"],
        treatment_area=row["treatment_area"],
        visit_type=row["visit_type"],
        items=[
            FeeItem(
                item_code=i["item_code"], quantity=i["quantity"], unit_price_fen=i["unit_price_fen"]
            )
            for i in row["items"]
        ],
        prescription_id=row["prescription_id"],
        personal_account_allowed=row["personal_account_allowed"],
    )
