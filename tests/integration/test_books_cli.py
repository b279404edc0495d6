"""``medpay ledger``, ``medpay reconcile`` and ``medpay clearing`` as an operator runs them.

The command runs as its own process against the test's database and simulator (which
keep serving in this test's event loop meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

from medpay.clearing.service import period_of
from medpay.clock import china_today

from .books_helpers import pay

MEDPAY = str(Path(sys.executable).with_name("medpay"))


@pytest.fixture
def run_medpay(database_url, clearing, tmp_path):
    config = tmp_path / "clearing.json"
    config.write_bytes(msgspec.json.encode(clearing))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDPAY_CLEARING_CONFIG_FILE": str(config),
        "MEDPAY_DATA_DIR": str(tmp_path / "data"),
    }

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            MEDPAY,
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    return run


async def test_ledger_check_passes_on_clean_books(client, signed, run_medpay) -> None:
    await pay(client, signed)

    status, out, _ = await run_medpay("ledger", "check")
    status_json, out_json, _ = await run_medpay("ledger", "check", "--json")

    assert status == 0 and out.startswith("ledger check: OK")
    assert "settlement_matches_breakdown: 1 checked" in out
    assert status_json == 0 and json.loads(out_json)["failures"] == []


async def test_ledger_check_fails_naming_the_first_failures(
    client, signed, run_medpay, db_pool
) -> None:
    paid = await pay(client, signed)
    await db_pool.execute(
        "INSERT INTO ledger_journals (payment_id, kind) VALUES ($1, 'reversal')",
        uuid.UUID(paid["payment_id"]),
    )

    status, out, _ = await run_medpay("ledger", "check")

    assert status == 1
    assert "FAIL journal_balanced: journal" in out
    assert "reversal journal has no postings" in out


async def test_ledger_balances_by_prefix(client, signed, run_medpay) -> None:
    paid = await pay(client, signed)

    status, out, _ = await run_medpay(
        "ledger", "balances", "--prefix", "institution_payable:", "--json"
    )

    assert status == 0
    answer = json.loads(out)
    assert answer["total_fen"] == -paid["medical_fee_total_fen"]
    assert [a["account"] for a in answer["accounts"]] == ["institution_payable:H11010800124"]


async def test_reconcile_lists_and_resolves_a_planted_difference(
    client, signed, simulator, run_medpay
) -> None:
    paid = await pay(client, signed)
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        await http.delete(f"/admin/settlements/{paid['settlement']['settlement_id']}")
    day = china_today().isoformat()

    status, out, err = await run_medpay("reconcile", "--province", "330000", "--date", day)
    again, out_json, _ = await run_medpay(
        "reconcile", "--province", "330000", "--date", day, "--json"
    )

    assert status == 0, err
    assert f"Reconciliation of 330000 (Zhejiang) for {day}: explained" in out
    assert "missing_there" in out and "annulled" in out
    report = json.loads(out_json)
    assert again == 0
    assert (report["outcome"], report["new_differences"], report["resolved_now"]) == (
        "explained",
        0,
        0,
    )
    (difference,) = report["differences"]
    assert (difference["kind"], difference["resolution"]) == ("missing_there", "annulled")


async def test_reconcile_all_exits_non_zero_while_a_difference_is_unexplained(
    client, signed, simulator, run_medpay
) -> None:
    paid = await pay(client, signed)
    day = china_today().isoformat()
    clean, out, err = await run_medpay("reconcile", "--all", "--date", day)
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        planted = await http.put(
            f"/admin/settlements/{paid['settlement']['settlement_id']}/basic-fund",
            json={"hifp_pay": paid["settlement"]["basic_fund_fen"] + 1},
        )
        planted.raise_for_status()

    status, out_json, _ = await run_medpay("reconcile", "--all", "--date", day, "--json")

    assert clean == 0, err
    assert "unexplained differences: 0; statements unavailable: 0" in out
    assert status == 1
    answer = json.loads(out_json)
    assert answer["unexplained"] == 1
    (zhejiang,) = [r for r in answer["provinces"] if r["province"] == "330000"]
    assert zhejiang["differences"][0]["kind"] == "figures_differ"
    assert zhejiang["differences"][0]["awaiting"] == "person"


async def test_reconcile_refuses_what_is_not_a_province(run_medpay) -> None:
    status, _, err = await run_medpay("reconcile", "--province", "330106", "--date", "2026-01-01")
    assert status == 2 and "reconciliation_province_invalid" in err


async def test_clearing_of_a_month_nets_to_zero(client, signed, run_medpay) -> None:
    await pay(client, signed)
    period = period_of(china_today())

    status, out, _ = await run_medpay("clearing", "--period", period)
    status_json, out_json, _ = await run_medpay("clearing", "--period", period, "--json")
    early, _, err = await run_medpay("clearing", "--period", period, "--close")

    assert status == 0 and f"Clearing of {period} (open)" in out
    assert "sum of nets: 0.00" in out
    matrix = json.loads(out_json)
    assert status_json == 0 and matrix["net_sum_fen"] == 0
    assert [(c["insured_province"], c["treatment_province"]) for c in matrix["cells"]] == [
        ("330000", "110000")
    ]
    assert early == 2 and "clearing_period_not_over" in err


async def test_a_malformed_period_is_a_clear_refusal(run_medpay) -> None:
    status, _, err = await run_medpay("clearing", "--period", "2026-13")
    assert status == 2 and "clearing_period_invalid" in err
