"""Payments as apps see them: recorded rows and province figures shaped into our answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from medpay.payments.schemas import (
    EstimateView,
    FeeItem,
    FeeItemView,
    PaymentOrder,
    PaymentView,
    SettlementView,
)
from medpay.payments.states import app_state

if TYPE_CHECKING:
    import asyncpg

    from medpay.settlement.adapters.base import SettlementBreakdown

__all__ = ["estimate_view", "order_of", "payment_view"]


def _settlement_view(row: asyncpg.Record) -> SettlementView | None:
    if row["setl_id"] is None:
        return None
    return SettlementView(
        settlement_id=row["setl_id"],
        medical_fee_total_fen=row["medical_fee_total_fen"],
        full_own_pay_fen=row["full_own_pay_fen"],
        over_limit_self_pay_fen=row["over_limit_self_pay_fen"],
        pre_self_pay_fen=row["pre_self_pay_fen"],
        in_scope_fen=row["in_scope_fen"],
        deductible_fen=row["deductible_fen"],
        reimbursement_ratio_bp=row["reimbursement_ratio_bp"],
        basic_fund_fen=row["basic_fund_fen"],
        critical_illness_fen=row["critical_illness_fen"],
        medical_assistance_fen=row["medical_assistance_fen"],
        fund_total_fen=row["fund_total_fen"],
        personal_share_fen=row["personal_share_fen"],
        personal_account_fen=row["personal_account_fen"],
        cash_fen=row["cash_fen"],
        account_balance_after_fen=row["account_balance_after_fen"],
        settled_at=row["settled_at"],
        reversed_at=row["reversed_at"],
    )


def payment_view(row: asyncpg.Record) -> PaymentView:
    """A payment row (``queries.PAYMENT_BY_ID``) as the app sees it."""
    return PaymentView(
        payment_id=row["payment_id"],
        state=app_state(row["state"]),
        psn_no=row["psn_no"],
        institution_code=row["institution_code"],
        treatment_area=row["treatment_area"],
        visit_type=row["visit_type"],
        personal_account_allowed=row["personal_account_allowed"],
        medical_fee_total_fen=row["medical_fee_total_fen"],
        items=msgspec.convert(row["items"], list[FeeItemView]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        service_date=row["service_date"],
        insured_area=row["insured_area"],
        scheme=row["scheme"],
        prescription_id=row["prescription_id"],
        failure_code=row["failure_code"],
        failure_detail=row["failure_detail"],
        settlement=_settlement_view(row),
        replaces_payment_id=row["replaces_payment_id"],
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
