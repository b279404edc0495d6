"""The insured place's policy: the reference calculation of DOMAIN.md section 3.

A pure function over integer fen and basis points, so that every figure the
simulator answers can be recomputed by hand. The :class:`Policy` holds every number
a province may override; its defaults are the reference policy of section 3.
Step numbers in comments are the section's.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Amounts and ratios are bounded as the national wire bounds them (DOMAIN.md section 8).
from medpay.wire.national import BasisPoints as Bp
from medpay.wire.national import Fen, ItemClass, OutFilType, Scheme

__all__ = [
    "Calculation",
    "Claim",
    "FilingRequired",
    "FilingType",
    "Item",
    "ItemClass",
    "Policy",
    "PolicyError",
    "Scheme",
    "Standing",
    "apply_bp",
    "calculate",
    "fund_ratio_bp",
]

#: The filing valid on the service date (out_fil_type), as the request carries it.
FilingType = OutFilType


class PolicyError(Exception):
    """The policy refuses to settle."""


class FilingRequired(PolicyError):
    """Off-site without a valid filing, and the province refuses such settlements (step 7)."""


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every number of the insured place's policy; defaults are the reference policy.

    Ratios are per institution level 1, 2, 3. The off-site reductions follow the
    national rule (at most 10 points for referrals, 20 for other outings).
    """

    employee_deductible_fen: Fen = 180_000
    employee_ratio_bp: tuple[Bp, Bp, Bp] = (9000, 8000, 7000)
    employee_annual_cap_fen: Fen = 2_000_000
    resident_deductible_fen: Fen = 10_000
    resident_ratio_bp: tuple[Bp, Bp, Bp] = (5500, 5500, 5000)
    resident_annual_cap_fen: Fen = 400_000
    class_b_pre_self_pay_bp: Bp = 1000
    critical_illness_threshold_fen: Fen = 1_500_000
    critical_illness_ratio_bp: Bp = 6000
    medical_assistance_ratio_bp: Bp = 7000
    referral_reduction_bp: Bp = 1000  # referral and emergency rescue
    temporary_reduction_bp: Bp = 2000  # any other temporary outing
    unfiled_reduction_bp: Bp = 2000  # off-site with no valid filing...
    refuse_without_filing: bool = False  # ...or refused outright

    def deductible_fen(self, scheme: Scheme) -> int:
        """The yearly deductible of ``scheme``."""
        return (
            self.employee_deductible_fen if scheme == "employee" else self.resident_deductible_fen
        )

    def annual_cap_fen(self, scheme: Scheme) -> int:
        """The basic fund's yearly cap for ``scheme``."""
        return (
            self.employee_annual_cap_fen if scheme == "employee" else self.resident_annual_cap_fen
        )

    def base_ratio_bp(self, scheme: Scheme, institution_level: int) -> int:
        """The basic fund's ratio for ``scheme`` at an institution of ``institution_level``."""
        if institution_level not in (1, 2, 3):
            raise ValueError(f"institution level must be 1, 2 or 3: {institution_level}")
        ratios = self.employee_ratio_bp if scheme == "employee" else self.resident_ratio_bp
        return ratios[institution_level - 1]


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One fee item, classified by the treatment place's catalogue."""

    quantity: Annotated[int, msgspec.Meta(ge=1)]
    unit_price_fen: Fen
    item_class: ItemClass
    price_limit_fen: Fen | None = None
    pre_self_pay_bp: Bp | None = None  # class B only; None: the policy's default
    non_medical: bool = False  # drug delivery, on-site service fee: never covered


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """What one settlement asks for."""

    scheme: Scheme
    institution_level: Literal[1, 2, 3]
    offsite: bool  # insured area differs from treatment area
    filing_type: FilingType | None  # valid on the service date; None: no filing
    personal_account_allowed: bool
    items: tuple[Item, ...]


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """The person's state at the insured place before this settlement."""

    balance_fen: Fen  # personal account
    medical_assistance_eligible: bool = False
    deductible_used_ytd_fen: Fen = 0
    fund_paid_ytd_fen: Fen = 0
    burden_ytd_fen: Fen = 0


class Calculation(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure of one settlement; national names in comments."""

    medfee_total_fen: int  # medfee_sumamt
    full_own_pay_fen: int  # fulamt_ownpay_amt (class C and non-medical)
    over_limit_self_pay_fen: int  # overlmt_selfpay
    pre_self_pay_fen: int  # preselfpay_amt
    in_scope_fen: int  # inscp_scp_amt
    deductible_applied_fen: int  # act_pay_dedc
    ratio_bp: int  # pool_prop_selfpay in our profile: the ratio applied
    cap_left_fen: int  # the basic fund's cap left before this settlement
    basic_fund_fen: int  # hifp_pay
    burden_fen: int  # b: in-scope personal burden, added to burden_ytd
    critical_illness_base_fen: int  # the part of b above the threshold
    critical_illness_fen: int  # hifmi_pay
    medical_assistance_fen: int  # maf_pay
    fund_total_fen: int  # fund_pay_sumamt
    personal_part_fen: int  # psn_part_amt
    non_medical_fen: int  # the personal account never pays these
    personal_account_fen: int  # acct_pay
    cash_fen: int  # psn_cash_pay
    balance_after_fen: int  # balc


def apply_bp(amount: int, bp: int) -> int:
    """``amount`` times ``bp`` / 10000, rounded half up to the fen (section 3)."""
    return (amount * bp + 5000) // 10000


def fund_ratio_bp(
    policy: Policy,
    scheme: Scheme,
    institution_level: int,
    offsite: bool,
    filing_type: FilingType | None,
) -> int:
    """Step 7: the scheme's ratio at this level, reduced off-site by the filing type.

    Raises:
        FilingRequired: off-site, no filing, and the policy refuses such settlements.
    """
    ratio = policy.base_ratio_bp(scheme, institution_level)
    if not offsite or filing_type == "long_term":
        return ratio
    if filing_type in ("referral", "emergency"):  # an emergency counts as filed
        reduction = policy.referral_reduction_bp
    elif filing_type == "temporary":
        reduction = policy.temporary_reduction_bp
    elif policy.refuse_without_filing:
        raise FilingRequired("off-site settlement without a valid filing is refused")
    else:
        reduction = policy.unfiled_reduction_bp
    return max(0, ratio - reduction)


def calculate(policy: Policy, claim: Claim, standing: Standing) -> Calculation:
    """Settle ``claim`` for a person in ``standing`` under ``policy`` (section 3, steps 1-12).

    Pure: the caller applies step 13 (year-to-date totals and balance) only when the
    settlement is confirmed.

    Raises:
        FilingRequired: see :func:`fund_ratio_bp`.
    """
    medfee = full_own = over_limit = pre_self = in_scope = non_medical = 0
    for item in claim.items:
        total = item.quantity * item.unit_price_fen  # step 1
        medfee += total
        if item.non_medical or item.item_class == "C":  # step 2
            full_own += total
            non_medical += total if item.non_medical else 0
            continue
        over = 0
        if item.price_limit_fen is not None:  # step 3
            over = item.quantity * max(0, item.unit_price_fen - item.price_limit_fen)
        over_limit += over
        allowed = total - over
        pre = 0
        if item.item_class == "B":  # step 4
            share = (
                policy.class_b_pre_self_pay_bp
                if item.pre_self_pay_bp is None
                else item.pre_self_pay_bp
            )
            pre = apply_bp(allowed, share)
        pre_self += pre
        in_scope += allowed - pre  # step 5

    deductible_left = max(0, policy.deductible_fen(claim.scheme) - standing.deductible_used_ytd_fen)
    deductible = min(in_scope, deductible_left)  # step 6
    ratio = fund_ratio_bp(  # step 7
        policy, claim.scheme, claim.institution_level, claim.offsite, claim.filing_type
    )
    cap_left = max(0, policy.annual_cap_fen(claim.scheme) - standing.fund_paid_ytd_fen)
    basic_fund = min(apply_bp(in_scope - deductible, ratio), cap_left)  # step 8

    burden = in_scope - basic_fund  # step 9
    critical_base = critical = 0
    if claim.scheme == "resident":
        threshold = policy.critical_illness_threshold_fen
        critical_base = min(
            burden,
            max(0, standing.burden_ytd_fen + burden - max(threshold, standing.burden_ytd_fen)),
        )
        critical = apply_bp(critical_base, policy.critical_illness_ratio_bp)

    assistance = 0
    if standing.medical_assistance_eligible:  # step 10
        assistance = apply_bp(in_scope - basic_fund - critical, policy.medical_assistance_ratio_bp)

    fund_total = basic_fund + critical + assistance  # step 11
    personal_part = medfee - fund_total

    account = 0
    if claim.scheme == "employee" and claim.personal_account_allowed:  # step 12
        account = min(standing.balance_fen, personal_part - non_medical)
    cash = personal_part - account

    result = Calculation(
        medfee_total_fen=medfee,
        full_own_pay_fen=full_own,
        over_limit_self_pay_fen=over_limit,
        pre_self_pay_fen=pre_self,
        in_scope_fen=in_scope,
        deductible_applied_fen=deductible,
        ratio_bp=ratio,
        cap_left_fen=cap_left,
        basic_fund_fen=basic_fund,
        burden_fen=burden,
        critical_illness_base_fen=critical_base,
        critical_illness_fen=critical,
        medical_assistance_fen=assistance,
        fund_total_fen=fund_total,
        personal_part_fen=personal_part,
        non_medical_fen=non_medical,
        personal_account_fen=account,
        cash_fen=cash,
        balance_after_fen=standing.balance_fen - account,
    )
    _check(result, standing)
    return result


def _check(result: Calculation, standing: Standing) -> None:
    """Invariants that must hold for any input: stop a wrong figure before it is stored."""
    figures = msgspec.structs.asdict(result)
    negative = {name: value for name, value in figures.items() if value < 0}
    assert not negative, f"negative figures: {negative}"
    assert (
        result.full_own_pay_fen
        + result.over_limit_self_pay_fen
        + result.pre_self_pay_fen
        + result.in_scope_fen
        == result.medfee_total_fen
    ), result
    assert result.fund_total_fen + result.personal_account_fen + result.cash_fen == (
        result.medfee_total_fen
    ), result
    assert result.personal_account_fen <= standing.balance_fen, result
    assert result.cash_fen >= result.non_medical_fen, result
    assert result.basic_fund_fen <= result.cap_left_fen, result
