"""``medpay demo``: one cross-provincial online revisit, end to end, printed as a table.

A Zhejiang employee (insured in 330106) has an online revisit at a Beijing internet
hospital (110108) with a class B drug and a drug delivery fee, paying the personal
share from the personal account. The gateway classifies the items by Beijing's
catalogue and settles with Zhejiang (DOMAIN.md sections 2 and 3).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx

from medpay.client import AppSignatureAuth
from medpay.security.identity import DevelopmentIssuer

__all__ = ["DEMO_ORDER", "DEMO_PERSON", "format_split", "run_demo"]

DEMO_PERSON = "33000000000000000001"
DEMO_ORDER = {
    "institution_code": "H11010800124",  # Beijing Haidian Hospital's internet hospital
    "treatment_area": "110108",
    "visit_type": "online_revisit",
    "items": [
        {
            "item_code": "001101000010000-IR01",
            "quantity": 1,
            "unit_price_fen": 2500,
        },  # revisit, class A
        {
            "item_code": "XC10AAA096A001010178938",
            "quantity": 2,
            "unit_price_fen": 3800,
        },  # atorvastatin, class B
        {
            "item_code": "FEE-DRUG-DELIVERY",
            "quantity": 1,
            "unit_price_fen": 1000,
        },  # delivery, never insured
    ],
    "personal_account_allowed": True,
}

_ROWS = (
    ("medical_fee_total_fen", "medfee_sumamt", "total of the bill"),
    ("full_own_pay_fen", "fulamt_ownpay_amt", "class C and non-medical (delivery fee)"),
    ("over_limit_self_pay_fen", "overlmt_selfpay", "above the price limit"),
    ("pre_self_pay_fen", "preselfpay_amt", "class B pre-self-pay"),
    ("in_scope_fen", "inscp_scp_amt", "in scope"),
    ("deductible_fen", "act_pay_dedc", "deductible applied"),
    ("reimbursement_ratio_bp", "pool_prop_selfpay", "ratio applied (bp)"),
    ("basic_fund_fen", "hifp_pay", "basic fund pays"),
    ("critical_illness_fen", "hifmi_pay", "critical-illness insurance pays"),
    ("medical_assistance_fen", "maf_pay", "medical assistance pays"),
    ("fund_total_fen", "fund_pay_sumamt", "all funds pay"),
    ("personal_share_fen", "psn_part_amt", "personal share"),
    ("personal_account_fen", "acct_pay", "personal account pays"),
    ("cash_fen", "psn_cash_pay", "cash (card or wallet) pays"),
    ("account_balance_after_fen", "balc", "account balance after"),
)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def format_split(settlement: dict[str, int]) -> str:
    """The split as a table: our name, the national name, fen and yuan."""
    lines = [f"{'figure':<28}{'national':<20}{'fen':>10}{'yuan':>12}  meaning", "-" * 100]
    for field, national, meaning in _ROWS:
        value = settlement[field]
        shown = "" if field.endswith("_bp") else _yuan(value)
        lines.append(f"{field:<28}{national:<20}{value:>10}{shown:>12}  {meaning}")
    return "\n".join(lines)


def run_demo(data_dir: Path) -> int:
    """Send the demo payment to the gateway that ``medpay run`` started; print the outcome."""
    run_file, app_file = data_dir / "run.json", data_dir / "dev-app.json"
    if not run_file.exists() or not app_file.exists():
        print(
            "Start the system first: ./scripts/run (or medpay run), then medpay demo in another terminal."
        )
        return 2
    run = json.loads(run_file.read_text())
    app = json.loads(app_file.read_text())
    token = DevelopmentIssuer.load_or_create(data_dir).issue(DEMO_PERSON)
    auth = AppSignatureAuth(app["app_id"], app["private_key_pem"], token)
    with httpx.Client(base_url=run["gateway_url"], auth=auth, timeout=30) as client:
        response = client.post(
            "/v1/payments",
            json=DEMO_ORDER,
            headers={"Idempotency-Key": f"demo-{secrets.token_hex(8)}"},
        )
    body = response.json()
    print(f"POST /v1/payments -> {response.status_code}")
    if response.status_code != 201:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 1
    print(
        f"payment {body['payment_id']}: {body['state']}; person {body['psn_no']} insured in "
        f"{body['insured_area']} ({body['scheme']}), treated in {body['treatment_area']} at "
        f"{body['institution_code']}; settlement {body['settlement']['settlement_id']}"
    )
    print(format_split(body["settlement"]))
    return 0
