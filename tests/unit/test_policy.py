"""The reference calculation (DOMAIN.md section 3), step by step, with figures worked by hand.

Each expected figure below is computed in the comment beside it from the section's
rules, never copied from the implementation's output.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medpay.simulator.policy import (
    Claim,
    FilingRequired,
    Item,
    Policy,
    Standing,
    apply_bp,
    calculate,
    fund_ratio_bp,
)

REFERENCE = Policy()
DEDUCTIBLE_USED_EMPLOYEE = 180_000  # the whole employee deductible already paid this year
DEDUCTIBLE_USED_RESIDENT = 10_000


def claim(*items: Item, scheme="employee", level=1, offsite=False, filing=None, account=False):
    return Claim(
        scheme=scheme,
        institution_level=level,
        offsite=offsite,
        filing_type=filing,
        personal_account_allowed=account,
        items=tuple(items),
    )


def a(qty: int, price: int, **kw) -> Item:
    return Item(quantity=qty, unit_price_fen=price, item_class="A", **kw)


def b(qty: int, price: int, **kw) -> Item:
    return Item(quantity=qty, unit_price_fen=price, item_class="B", **kw)


def c(qty: int, price: int, **kw) -> Item:
    return Item(quantity=qty, unit_price_fen=price, item_class="C", **kw)


# --- rounding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (5, 5000, 3),  # 2.5 -> 3: half rounds up
        (15, 5000, 8),  # 7.5 -> 8
        (1, 4999, 0),  # 0.4999 -> 0
        (8999, 9000, 8099),  # 8099.1 -> 8099
        (10_000, 10_000, 10_000),  # 100 % is exact
        (12_345, 0, 0),
    ],
)
def test_apply_rounds_half_up_to_the_fen(amount, bp, expected):
    assert apply_bp(amount, bp) == expected


def test_rounding_half_up_in_a_settlement():
    # resident, level 3 (5000 bp), deductible used: 15 fen in scope -> 7.5 -> 8 from the fund
    result = calculate(
        REFERENCE,
        claim(a(1, 15), scheme="resident", level=3),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_RESIDENT),
    )
    assert result.basic_fund_fen == 8
    assert result.personal_part_fen == 7


# --- per item: steps 1-5 -----------------------------------------------------------------------


def test_class_a_is_fully_in_scope():
    # employee, level 3 (7000 bp), deductible used: 2 x 5000 = 10000 in scope
    result = calculate(
        REFERENCE,
        claim(a(2, 5_000), level=3),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.medfee_total_fen == 10_000
    assert result.in_scope_fen == 10_000
    assert result.ratio_bp == 7_000
    assert result.basic_fund_fen == 7_000  # 10000 * 70 %
    assert result.personal_part_fen == 3_000
    assert result.cash_fen == 3_000  # account not allowed


def test_class_b_pays_the_default_pre_self_pay_share():
    # 3 x 3333 = 9999; pre-self-pay 10 % = 999.9 -> 1000; in scope 8999;
    # level 1 employee 90 %: 8099.1 -> 8099
    result = calculate(
        REFERENCE,
        claim(b(3, 3_333)),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.pre_self_pay_fen == 1_000
    assert result.in_scope_fen == 8_999
    assert result.basic_fund_fen == 8_099
    assert result.personal_part_fen == 9_999 - 8_099  # 1900 = 1000 pre-self-pay + 900


def test_class_b_item_share_overrides_the_policy_default():
    # 10000 at 20 % -> 2000 pre-self-pay, 8000 in scope, 90 % -> 7200
    result = calculate(
        REFERENCE,
        claim(b(1, 10_000, pre_self_pay_bp=2_000)),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.pre_self_pay_fen == 2_000
    assert result.in_scope_fen == 8_000
    assert result.basic_fund_fen == 7_200


def test_class_c_is_paid_in_full_by_the_person_but_may_use_the_account():
    # C 5000 all own pay; A 10000 in scope, 90 % -> 9000; personal part 6000 from the account
    result = calculate(
        REFERENCE,
        claim(c(1, 5_000), a(1, 10_000), account=True),
        Standing(balance_fen=100_000, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.full_own_pay_fen == 5_000
    assert result.in_scope_fen == 10_000
    assert result.basic_fund_fen == 9_000
    assert result.personal_part_fen == 6_000
    assert result.personal_account_fen == 6_000
    assert result.cash_fen == 0
    assert result.balance_after_fen == 94_000


def test_amount_over_the_price_limit_is_self_paid():
    # A: 2 x 1200 with limit 1000 -> over 2 x 200 = 400, allowed 2000
    # B: 1 x 5000 with limit 4000 -> over 1000, allowed 4000, pre 10 % = 400, in scope 3600
    # in scope 5600, 90 % -> 5040; personal part 7400 - 5040 = 2360
    result = calculate(
        REFERENCE,
        claim(a(2, 1_200, price_limit_fen=1_000), b(1, 5_000, price_limit_fen=4_000)),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.medfee_total_fen == 7_400
    assert result.over_limit_self_pay_fen == 1_400
    assert result.pre_self_pay_fen == 400
    assert result.in_scope_fen == 5_600
    assert result.basic_fund_fen == 5_040
    assert result.personal_part_fen == 2_360


def test_price_under_its_limit_is_not_over_limit():
    result = calculate(
        REFERENCE,
        claim(a(1, 900, price_limit_fen=1_000)),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.over_limit_self_pay_fen == 0
    assert result.in_scope_fen == 900


@pytest.mark.parametrize("item_class", ["A", "B", "C"])
def test_delivery_fee_is_never_paid_by_fund_or_account(item_class):
    # A 10000: 90 % -> 9000; delivery 800 own pay whatever its class
    # personal part 10800 - 9000 = 1800; the account pays 1800 - 800 = 1000; cash 800
    delivery = Item(quantity=1, unit_price_fen=800, item_class=item_class, non_medical=True)
    result = calculate(
        REFERENCE,
        claim(a(1, 10_000), delivery, account=True),
        Standing(balance_fen=100_000, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.full_own_pay_fen == 800
    assert result.non_medical_fen == 800
    assert result.fund_total_fen == 9_000
    assert result.personal_account_fen == 1_000
    assert result.cash_fen == 800


# --- deductible, cap: steps 6, 8 ------------------------------------------------------------------


def test_deductible_crossing_takes_only_what_is_left():
    # 170000 of 180000 used: 10000 left; in scope 30000 -> deductible 10000,
    # fund 90 % of 20000 = 18000, personal 12000
    result = calculate(
        REFERENCE,
        claim(a(1, 30_000)),
        Standing(balance_fen=0, deductible_used_ytd_fen=170_000),
    )
    assert result.deductible_applied_fen == 10_000
    assert result.basic_fund_fen == 18_000
    assert result.burden_fen == 12_000
    assert result.personal_part_fen == 12_000


def test_settlement_within_the_deductible_gets_nothing_from_the_fund():
    result = calculate(REFERENCE, claim(a(1, 30_000)), Standing(balance_fen=0))
    assert result.deductible_applied_fen == 30_000
    assert result.basic_fund_fen == 0
    assert result.burden_fen == 30_000


def test_fund_stops_at_the_annual_cap():
    # level 2, 80 % of 20000 = 16000, but only 2000000 - 1995000 = 5000 of the cap left
    result = calculate(
        REFERENCE,
        claim(a(1, 20_000), level=2),
        Standing(
            balance_fen=0,
            deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE,
            fund_paid_ytd_fen=1_995_000,
        ),
    )
    assert result.cap_left_fen == 5_000
    assert result.basic_fund_fen == 5_000
    assert result.burden_fen == 15_000


def test_cap_exhausted_means_no_fund_payment():
    result = calculate(
        REFERENCE,
        claim(a(1, 20_000)),
        Standing(
            balance_fen=0,
            deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE,
            fund_paid_ytd_fen=2_000_000,
        ),
    )
    assert result.basic_fund_fen == 0
    assert result.personal_part_fen == 20_000


# --- personal account: step 12 ----------------------------------------------------------------


def test_balance_too_small_pays_what_it_can():
    # personal part 1800 (see the delivery case), account payable 1000, balance only 300
    result = calculate(
        REFERENCE,
        claim(a(1, 10_000), a(1, 800, non_medical=True), account=True),
        Standing(balance_fen=300, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.personal_account_fen == 300
    assert result.cash_fen == 1_500
    assert result.balance_after_fen == 0


def test_account_unused_when_the_patient_does_not_allow_it():
    result = calculate(
        REFERENCE,
        claim(a(1, 10_000), account=False),
        Standing(balance_fen=100_000, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.personal_account_fen == 0
    assert result.balance_after_fen == 100_000


def test_residents_have_no_personal_account_payment():
    result = calculate(
        REFERENCE,
        claim(a(1, 10_000), scheme="resident", account=True),
        Standing(balance_fen=50_000, deductible_used_ytd_fen=DEDUCTIBLE_USED_RESIDENT),
    )
    assert result.personal_account_fen == 0


# --- critical illness, medical assistance: steps 9, 10 -------------------------------------------


def _resident_100k(burden_ytd: int, **standing):
    # resident level 1 (5500), deductible used: in scope 100000, fund 55000, b = 45000
    return calculate(
        REFERENCE,
        claim(a(1, 100_000), scheme="resident"),
        Standing(
            balance_fen=0,
            deductible_used_ytd_fen=DEDUCTIBLE_USED_RESIDENT,
            burden_ytd_fen=burden_ytd,
            **standing,
        ),
    )


def test_critical_illness_pays_the_part_above_the_threshold():
    # burden 1490000 + 45000 crosses 1500000 by 35000; 60 % -> 21000
    result = _resident_100k(1_490_000)
    assert result.basic_fund_fen == 55_000
    assert result.burden_fen == 45_000
    assert result.critical_illness_base_fen == 35_000
    assert result.critical_illness_fen == 21_000
    assert result.fund_total_fen == 76_000
    assert result.cash_fen == 24_000


def test_critical_illness_above_the_threshold_takes_the_whole_burden():
    result = _resident_100k(1_600_000)  # 60 % of 45000
    assert result.critical_illness_fen == 27_000


def test_critical_illness_below_the_threshold_pays_nothing():
    assert _resident_100k(0).critical_illness_fen == 0


def test_employees_get_no_critical_illness_payment():
    result = calculate(
        REFERENCE,
        claim(a(1, 100_000)),
        Standing(
            balance_fen=0,
            deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE,
            burden_ytd_fen=2_000_000,
        ),
    )
    assert result.critical_illness_fen == 0


def test_medical_assistance_pays_seventy_percent_of_what_remains():
    # resident level 2 (5500), nothing used: in scope 50000, deductible 10000,
    # fund 55 % of 40000 = 22000, critical illness 0 (below threshold),
    # assistance 70 % of (50000 - 22000) = 19600; personal 50000 - 41600 = 8400
    result = calculate(
        REFERENCE,
        claim(a(1, 50_000), scheme="resident", level=2),
        Standing(balance_fen=0, medical_assistance_eligible=True),
    )
    assert result.deductible_applied_fen == 10_000
    assert result.basic_fund_fen == 22_000
    assert result.medical_assistance_fen == 19_600
    assert result.fund_total_fen == 41_600
    assert result.personal_part_fen == 8_400


def test_medical_assistance_comes_after_critical_illness():
    # the crossing case: in scope 100000 - fund 55000 - critical illness 21000 = 24000; 70 % -> 16800
    result = _resident_100k(1_490_000, medical_assistance_eligible=True)
    assert result.medical_assistance_fen == 16_800
    assert result.cash_fen == 100_000 - 55_000 - 21_000 - 16_800


def test_no_assistance_for_ineligible_persons():
    assert _resident_100k(0).medical_assistance_fen == 0


# --- off-site filing: step 7 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filing", "expected_bp"),
    [
        ("long_term", 9_000),  # keeps the ratio
        ("referral", 8_000),  # minus 10 points
        ("emergency", 8_000),  # counts as filed, minus 10 points
        ("temporary", 7_000),  # minus 20 points
        (None, 7_000),  # no filing: minus 20 points
    ],
)
def test_offsite_ratio_depends_on_the_filing(filing, expected_bp):
    assert fund_ratio_bp(REFERENCE, "employee", 1, True, filing) == expected_bp


def test_local_settlement_keeps_the_ratio_without_filing():
    strict = Policy(refuse_without_filing=True)
    assert fund_ratio_bp(strict, "employee", 1, False, None) == 9_000


def test_offsite_referral_settlement_uses_the_reduced_ratio():
    result = calculate(
        REFERENCE,
        claim(a(1, 10_000), offsite=True, filing="referral"),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_EMPLOYEE),
    )
    assert result.basic_fund_fen == 8_000


def test_reduced_ratio_is_never_below_zero():
    low = Policy(resident_ratio_bp=(1_500, 1_500, 1_500))
    assert fund_ratio_bp(low, "resident", 1, True, "temporary") == 0
    result = calculate(
        low,
        claim(a(1, 10_000), scheme="resident", offsite=True, filing="temporary"),
        Standing(balance_fen=0, deductible_used_ytd_fen=DEDUCTIBLE_USED_RESIDENT),
    )
    assert result.basic_fund_fen == 0


def test_refusal_switch_refuses_offsite_without_filing():
    strict = Policy(refuse_without_filing=True)
    with pytest.raises(FilingRequired):
        calculate(strict, claim(a(1, 10_000), offsite=True), Standing(balance_fen=0))


def test_refusal_switch_accepts_an_emergency():
    strict = Policy(refuse_without_filing=True)
    assert fund_ratio_bp(strict, "employee", 1, True, "emergency") == 8_000


def test_policy_overrides_change_the_figures():
    generous = Policy(employee_deductible_fen=0, employee_ratio_bp=(10_000, 10_000, 10_000))
    result = calculate(generous, claim(a(1, 10_000)), Standing(balance_fen=0))
    assert result.basic_fund_fen == 10_000
    assert result.personal_part_fen == 0


# --- properties -----------------------------------------------------------------------------------

items = st.builds(
    Item,
    quantity=st.integers(1, 20),
    unit_price_fen=st.integers(0, 2_000_000),
    item_class=st.sampled_from(["A", "B", "C"]),
    price_limit_fen=st.none() | st.integers(0, 2_000_000),
    pre_self_pay_bp=st.none() | st.integers(0, 10_000),
    non_medical=st.booleans(),
)
claims = st.builds(
    Claim,
    scheme=st.sampled_from(["employee", "resident"]),
    institution_level=st.sampled_from([1, 2, 3]),
    offsite=st.booleans(),
    filing_type=st.sampled_from([None, "long_term", "referral", "emergency", "temporary"]),
    personal_account_allowed=st.booleans(),
    items=st.lists(items, min_size=1, max_size=8).map(tuple),
)
standings = st.builds(
    Standing,
    balance_fen=st.integers(0, 5_000_000),
    medical_assistance_eligible=st.booleans(),
    deductible_used_ytd_fen=st.integers(0, 300_000),
    fund_paid_ytd_fen=st.integers(0, 3_000_000),
    burden_ytd_fen=st.integers(0, 3_000_000),
)
policies = st.builds(
    Policy,
    class_b_pre_self_pay_bp=st.integers(0, 10_000),
    critical_illness_ratio_bp=st.integers(0, 10_000),
    medical_assistance_ratio_bp=st.integers(0, 10_000),
    temporary_reduction_bp=st.integers(0, 10_000),
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, claim_=claims, standing=standings)
def test_splits_always_sum_and_nothing_is_negative(policy, claim_, standing):
    result = calculate(policy, claim_, standing)
    assert result.fund_total_fen + result.personal_account_fen + result.cash_fen == (
        result.medfee_total_fen
    )
    assert (
        result.full_own_pay_fen
        + result.over_limit_self_pay_fen
        + result.pre_self_pay_fen
        + result.in_scope_fen
        == result.medfee_total_fen
    )
    assert all(value >= 0 for value in (getattr(result, f) for f in result.__struct_fields__))
    assert result.medfee_total_fen == sum(i.quantity * i.unit_price_fen for i in claim_.items)


@settings(max_examples=300, deadline=None)
@given(policy=policies, claim_=claims, standing=standings)
def test_account_never_pays_more_than_the_balance_or_the_non_medical_fees(policy, claim_, standing):
    result = calculate(policy, claim_, standing)
    assert result.personal_account_fen <= standing.balance_fen
    assert result.balance_after_fen == standing.balance_fen - result.personal_account_fen
    assert result.cash_fen >= result.non_medical_fen
    if claim_.scheme == "resident" or not claim_.personal_account_allowed:
        assert result.personal_account_fen == 0


@settings(max_examples=200, deadline=None)
@given(claim_=claims, standing=standings)
def test_fund_never_pays_out_of_scope_amounts(claim_, standing):
    result = calculate(REFERENCE, claim_, standing)
    assert result.fund_total_fen <= result.in_scope_fen
    assert result.basic_fund_fen <= max(
        0, REFERENCE.annual_cap_fen(claim_.scheme) - standing.fund_paid_ytd_fen
    )
