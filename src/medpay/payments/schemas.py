"""What patient apps send and what we answer about payments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from medpay.schemas import (
    AREA_CODE,
    ApiAnswer,
    ApiRequest,
    InstitutionCode,
    ItemCode,
    PrescriptionId,
    Quantity,
    UnitPriceFen,
    VisitType,
)

__all__ = [
    "EstimateView",
    "FeeItem",
    "PaymentOrder",
    "PaymentState",
    "PaymentView",
    "RefundRequest",
    "RefundState",
    "RefundView",
    "ReturnedLine",
    "SettlementView",
    "VisitType",
]

#: What an app sees: ``processing`` while the province's answer is awaited or being resolved
#: (internally ``settling`` or ``unknown``).
PaymentState = Literal["received", "processing", "settled", "reversing", "reversed", "failed"]


class FeeItem(ApiRequest, frozen=True, kw_only=True):
    """One line of the bill: a drug, a service, a consumable or a non-medical fee."""

    item_code: ItemCode  # med_list_codg
    quantity: Quantity  # cnt
    unit_price_fen: UnitPriceFen  # pric


class PaymentOrder(ApiRequest, frozen=True, kw_only=True):
    """A patient's request to pay for care with basic medical insurance."""

    institution_code: InstitutionCode  # fixmedins_code
    treatment_area: AREA_CODE  # mdtrtarea_admvs
    visit_type: VisitType
    items: Annotated[list[FeeItem], msgspec.Meta(min_length=1, max_length=100)]
    prescription_id: PrescriptionId | None = None
    personal_account_allowed: bool = False  # acct_used_flag

    @property
    def medical_fee_total_fen(self) -> int:
        """medfee_sumamt: the sum of every line."""
        return sum(item.quantity * item.unit_price_fen for item in self.items)


class FeeItemView(ApiAnswer, frozen=True, kw_only=True):
    """A fee line as recorded."""

    line_no: int
    item_code: str
    quantity: int
    unit_price_fen: int
    total_fen: int  # det_item_fee_sumamt


class SplitFigures(ApiAnswer, frozen=True, kw_only=True):
    """The split of DOMAIN.md section 3, as the insured province computed it."""

    medical_fee_total_fen: int  # medfee_sumamt
    full_own_pay_fen: int  # fulamt_ownpay_amt: class C and non-medical fees
    over_limit_self_pay_fen: int  # overlmt_selfpay
    pre_self_pay_fen: int  # preselfpay_amt: class B pre-self-pay
    in_scope_fen: int  # inscp_scp_amt
    deductible_fen: int  # act_pay_dedc
    reimbursement_ratio_bp: int  # the ratio applied, basis points
    basic_fund_fen: int  # hifp_pay
    critical_illness_fen: int  # hifmi_pay
    medical_assistance_fen: int  # maf_pay
    fund_total_fen: int  # fund_pay_sumamt: the funds pay this
    personal_share_fen: int  # psn_part_amt
    personal_account_fen: int  # acct_pay: from the personal account
    cash_fen: int  # psn_cash_pay: the patient pays this by card or wallet
    account_balance_after_fen: int  # balc


class SettlementView(SplitFigures, frozen=True, kw_only=True):
    """A confirmed settlement."""

    settlement_id: str  # setl_id
    settled_at: dt.datetime
    reversed_at: dt.datetime | None = None


class EstimateView(SplitFigures, frozen=True, kw_only=True):
    """A pre-settlement (2206): what the split would be now; nothing was recorded."""

    insured_area: str  # insuplc_admdvs


class PaymentView(ApiAnswer, frozen=True, kw_only=True):
    """A payment as the app and its patient see it."""

    payment_id: uuid.UUID
    state: PaymentState
    psn_no: str
    institution_code: str
    treatment_area: str
    visit_type: VisitType
    personal_account_allowed: bool
    medical_fee_total_fen: int  # medfee_sumamt
    items: list[FeeItemView]
    created_at: dt.datetime
    updated_at: dt.datetime
    service_date: dt.date
    insured_area: str | None = None  # insuplc_admdvs: the home province's area
    scheme: Literal["employee", "resident"] | None = None  # insutype
    prescription_id: str | None = None
    failure_code: str | None = None
    failure_detail: str | None = None
    settlement: SettlementView | None = None
    #: A replacement (the lines kept after a partial refund) names the payment it replaces.
    replaces_payment_id: uuid.UUID | None = None


#: ``reversing``: the original's 2208 is under way; ``resettling``: it is reversed and the
#: lines kept are being settled anew; ``refunded``: done; ``refused``: the province
#: refused the reversal and nothing changed; ``resettlement_failed``: the original is
#: given back in full and the lines kept could not be settled (they are to be paid anew).
RefundState = Literal["reversing", "resettling", "refunded", "refused", "resettlement_failed"]
#: Why: the patient returned goods, or the institution corrected its bill.
RefundReason = Literal["returned", "bill_corrected"]


class ReturnedLine(ApiRequest, frozen=True, kw_only=True):
    """How much of one line of the payment is given back."""

    line_no: Annotated[int, msgspec.Meta(ge=1, le=100)]  # the payment's line (items[].line_no)
    quantity: Quantity  # cnt returned, at most the line's


class RefundRequest(ApiRequest, frozen=True, kw_only=True):
    """Give back part of a settled payment (or all of it: then it is a reversal)."""

    items: Annotated[list[ReturnedLine], msgspec.Meta(min_length=1, max_length=100)]
    reason: RefundReason = "returned"


class RefundedSplit(ApiAnswer, frozen=True, kw_only=True):
    """What went back where: the original settlement less the replacement's."""

    medical_fee_total_fen: int  # medfee_sumamt
    fund_total_fen: int  # fund_pay_sumamt: back to the funds
    basic_fund_fen: int  # hifp_pay
    critical_illness_fen: int  # hifmi_pay
    medical_assistance_fen: int  # maf_pay
    personal_account_fen: int  # acct_pay: back to the personal account
    cash_fen: int  # psn_cash_pay: back to the patient's card or wallet


class RefundView(ApiAnswer, frozen=True, kw_only=True):
    """A refund as the app sees it: one object over the reversal and the new settlement."""

    refund_id: uuid.UUID
    payment_id: uuid.UUID  # the payment given back
    kind: Literal["full", "partial"]
    reason: RefundReason
    state: RefundState
    items: list[FeeItemView]  # the lines given back, with the quantities returned
    returned_total_fen: int  # the returned lines' total
    created_at: dt.datetime
    updated_at: dt.datetime
    replacement_payment_id: uuid.UUID | None = None  # the lines kept, settled anew
    refunded: RefundedSplit | None = None  # once refunded (or reversed in full)
    failure_code: str | None = None
    failure_detail: str | None = None
