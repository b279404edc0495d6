"""Books that close, shown end to end: a mixed load with faults, then the ledger, reconciliation
and clearing, then differences planted on purpose on both sides and resolved.

Everything runs on loopback (see ``harness.py``): an embedded PostgreSQL, the simulator
(31 provinces) and the gateway as child processes. The load pays online revisits at
internet hospitals in Beijing, Hangzhou and Shenzhen for insured persons of ten
provinces, reverses about 10 % of what settles and refunds another 10 % (part of the
drugs returned: reversed and the rest settled anew), while the simulator drops 10 % of its
answers, answers 5 % late and sends 10 % of its callbacks twice, and the gateway is
SIGKILLed once. Then, with the operator's commands (``medpay ...`` as processes):

1. ``medpay ledger check`` passes;
2. ``medpay reconcile --all --date <today>`` shows no unexplained difference;
3. ``medpay clearing --period <month>`` nets to zero;
4. planted: the simulator loses one settlement (admin endpoint) and our side loses
   one answer (the simulator drops it while no resolver runs): reconcile lists both
   and resolves them (annulled with a correction journal; recorded from the
   province); a second run changes nothing; the books still check;
5. planted: the province's statement reports another figure: reconcile exits non-zero
   with the difference awaiting a person, until an operator explains it.

Exit status 0 only when every step above holds. Bounded: every phase has a deadline;
every process is stopped by its pid, always.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from chaos import Tally, killer, load
from harness import MEDPAY, System, limit_environment, wait_healthy

from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.reconciliation.service import explain_difference

READ_TIMEOUT_S = 2.0
HOSPITALS = [("H11010800124", "110108"), ("H33010600002", "330106"), ("H44030500002", "440305")]
RESIDENTS = {"44000000000000000002", "51000000000000000004", "41000000000000000007"}
RESIDENTS |= {"54000000000000000009", "33000000000000000011"}


def order_for(rng: random.Random, psn_no: str) -> dict[str, Any]:
    """An online revisit with a month of drugs or less; residents' funds pay past 100 yuan."""
    institution, area = rng.choice(HOSPITALS)
    quantity = rng.randint(5, 40) if psn_no in RESIDENTS else rng.randint(1, 6)
    return {
        "institution_code": institution,
        "treatment_area": area,
        "visit_type": "online_revisit",
        "items": [
            {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
            {"item_code": "XC10AAA096A001010178938", "quantity": quantity, "unit_price_fen": 3800},
            {"item_code": "FEE-DRUG-DELIVERY", "quantity": 1, "unit_price_fen": 1000},
        ],
        "personal_account_allowed": rng.random() < 0.7,
    }


class Commands:
    """The operator's ``medpay`` commands, run as processes against this system."""

    def __init__(self, system: System, log: list[str]) -> None:
        self.env = system.gateway.env
        self.log = log

    async def run(self, *args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            MEDPAY,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 300)
        assert process.returncode is not None
        self.log.append(f"$ medpay {' '.join(args)}   (exit {process.returncode})")
        if process.returncode not in (0, 1):
            print(f"books: medpay {' '.join(args)} failed:\n{err.decode()}", file=sys.stderr)
        return process.returncode, out.decode()

    async def json(self, *args: str) -> tuple[int, Any]:
        status, out = await self.run(*args, "--json")
        return status, json.loads(out)


async def settle_down(system: System, deadline_s: float) -> float:
    started = time.monotonic()
    # Polling another process's progress through the database; no event to wait on.
    while time.monotonic() - started < deadline_s:
        if not await system.unfinished():
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def admin(system: System, method: str, path: str, body: object | None = None) -> Any:
    async with httpx.AsyncClient(base_url=system.simulator_url, timeout=10.0) as http:
        response = await http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()


def check(condition: bool, what: str, failures: list[str]) -> None:
    print(f"books: {'ok  ' if condition else 'FAIL'} {what}", flush=True)
    if not condition:
        failures.append(what)


def summary(day_report: dict[str, Any]) -> str:
    outcomes: dict[str, int] = {}
    for report in day_report["provinces"]:
        outcomes[report["outcome"]] = outcomes.get(report["outcome"], 0) + 1
    lines = sum(r["statement_lines"] for r in day_report["provinces"])
    differences = sum(len(r["differences"]) for r in day_report["provinces"])
    return (
        f"{len(day_report['provinces'])} provinces {outcomes}, {lines} statement lines, "
        f"{differences} differences, {day_report['unexplained']} unexplained, "
        f"{day_report['unavailable']} unavailable"
    )


async def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    faults = {
        "drop_rate": 0.10,
        "drop_hold_s": READ_TIMEOUT_S + 1.0,
        "slow_rate": 0.05,
        "slow_ms": int((READ_TIMEOUT_S + 1.0) * 1000),
        "callback_duplicate_rate": 0.10,
    }
    system = await System.start(
        faults=faults,
        callbacks=True,
        read_timeout_s=READ_TIMEOUT_S,
        seed=args.seed,
        keep=args.keep,
        gateway_env={
            **limit_environment(True),
            "MEDPAY_SETTLE_GRACE_SECONDS": "4",
            "MEDPAY_WORKER_INTERVAL_SECONDS": "0.5",
            "MEDPAY_RECONCILIATION_DAILY": "false",  # this script reconciles itself
        },
    )
    failures: list[str] = []
    log: list[str] = []
    medpay = Commands(system, log)
    try:
        # --- the mixed load ----------------------------------------------------------------
        first_day = china_today()
        print(
            f"books: {args.payments} payments over {args.duration:.0f} s, 1 gateway kill, faults {faults}",
            flush=True,
        )
        tally, events = Tally(), []
        await asyncio.gather(
            load(
                system,
                args.payments,
                args.duration,
                8,
                rng,
                tally,
                time.monotonic() + args.duration + 90,
                order=order_for,
                key_prefix="books",
                reversal_rate=0.10,
            ),
            killer(system, 1, args.duration, rng, events),
        )
        for line in events:
            print(f"books: {line}")
        waited = await settle_down(system, 90)
        await asyncio.sleep(2.0)  # late duplicate callbacks arrive now
        states = {
            r["state"]: r["n"]
            for r in await system.pool.fetch(
                "SELECT state, count(*) AS n FROM payments GROUP BY state"
            )
        }
        print(
            f"books: accepted {len(tally.accepted)}, refused {tally.refused}, app retries "
            f"{tally.retries}, reversals asked {tally.reversals_requested}; states {states}; "
            f"unfinished reached 0 {waited:.1f} s after the load",
            flush=True,
        )
        check(not await system.unfinished(), "every payment settled, failed or reversed", failures)
        days = sorted({first_day, china_today()})

        # --- 1-3: the books after the load ---------------------------------------------------
        status, ledger = await medpay.json("ledger", "check")
        print(f"books: ledger check {ledger['checked']}")
        check(status == 0 and not ledger["failures"], "medpay ledger check passes", failures)
        for day in days:
            status, report = await medpay.json("reconcile", "--all", "--date", day.isoformat())
            print(f"books: reconcile {day}: {summary(report)}")
            check(
                status == 0 and report["unexplained"] == 0,
                f"reconcile --all {day}: nothing unexplained",
                failures,
            )
        for period in sorted({f"{d.year:04d}-{d.month:02d}" for d in days}):
            status, matrix = await medpay.json("clearing", "--period", period)
            movers = [p for p in matrix["positions"] if p["net_fen"]]
            print(
                f"books: clearing {period}: {len(matrix['cells'])} pairs, "
                f"{matrix['cross_provincial_fen']} fen between provinces, nets "
                + ", ".join(f"{p['province']} {p['net_fen']:+d}" for p in movers)
                + f"; sum {matrix['net_sum_fen']}"
            )
            check(
                status == 0 and matrix["net_sum_fen"] == 0,
                f"clearing {period} nets to zero",
                failures,
            )

        # --- 4: differences planted on both sides ----------------------------------------------
        system.gateway.stop()  # now no resolver runs: a lost answer stays lost on our side
        system.gateway.env = {**system.gateway.env, "MEDPAY_BACKGROUND_WORKERS": "false"}
        system.gateway.start()
        await wait_healthy(system.gateway_url)
        for province in ("330000", "440000"):
            await admin(system, "PUT", f"/admin/provinces/{province}/faults", {})
        victim = await system.pool.fetchrow(
            "SELECT s.setl_id, s.payment_id FROM settlements s JOIN payments p USING (payment_id)"
            " WHERE p.state = 'settled' AND s.insured_province = '330000'"
            " ORDER BY s.settled_at DESC LIMIT 1"
        )
        await admin(system, "DELETE", f"/admin/settlements/{victim['setl_id']}")
        print(f"books: planted: the Zhejiang platform lost settlement {victim['setl_id']}")
        await admin(  # the answer and the callback both lost: only 6301 can tell
            system,
            "PUT",
            "/admin/provinces/440000/faults",
            {"drop_rate": 1.0, "drop_hold_s": 3.0, "callback_drop_rate": 1.0},
        )
        guangdong = "44000000000000000002"
        token = system.issuer.issue(guangdong, ttl_seconds=600)
        auth = AppSignatureAuth(system.app.app_id, system.app.private_key_pem, token)
        async with httpx.AsyncClient(base_url=system.gateway_url, timeout=15.0) as http:
            lost = await http.post(
                "/v1/payments",
                json=order_for(rng, guangdong)
                | {"treatment_area": "110108", "institution_code": "H11010800124"},
                headers={"Idempotency-Key": f"books-lost-{uuid.uuid4().hex}"},
                auth=auth,
            )
        await admin(system, "PUT", "/admin/provinces/440000/faults", {})
        lost_id = lost.json()["payment_id"]
        print(
            f"books: planted: our side lost the answer to payment {lost_id} ({lost.json()['state']})"
        )
        today = china_today().isoformat()
        status, text = await medpay.run("reconcile", "--all", "--date", today)
        print(
            "\n".join(
                f"books: | {line}"
                for line in text.splitlines()
                if "missing" in line or "unexplained differences" in line
            )
        )
        status_json, report = await medpay.json("reconcile", "--all", "--date", today)
        found = {
            (d["kind"], d["resolution"])
            for r in report["provinces"]
            for d in r["differences"]
            if d["found_in_run"] == max(x["found_in_run"] for x in r["differences"])
        }
        check(status == 0, "both planted differences resolved: reconcile exits 0", failures)
        check(
            ("missing_there", "annulled") in found,
            "the settlement the province lost: listed, annulled with a correction journal",
            failures,
        )
        check(
            ("missing_here", "recorded_from_province") in found,
            "the answer we lost: listed, recorded from the province (6301)",
            failures,
        )
        again = sum(r["new_differences"] + r["resolved_now"] for r in report["provinces"])
        check(status_json == 0 and again == 0, "reconciling again changes nothing", failures)
        victim_state = await system.pool.fetchval(
            "SELECT state FROM payments WHERE payment_id = $1", victim["payment_id"]
        )
        lost_state = await system.pool.fetchval(
            "SELECT state FROM payments WHERE payment_id = $1", uuid.UUID(lost_id)
        )
        print(
            f"books: the lost settlement's payment is now {victim_state}; the lost answer's {lost_state}"
        )
        status, ledger = await medpay.json("ledger", "check")
        check(
            status == 0 and not ledger["failures"],
            "medpay ledger check passes after the corrections",
            failures,
        )
        status, matrix = await medpay.json("clearing", "--period", today[:7])
        check(status == 0 and matrix["net_sum_fen"] == 0, "clearing still nets to zero", failures)

        # --- 5: a figure only a person can explain --------------------------------------------
        changed = await system.pool.fetchrow(
            "SELECT s.setl_id, s.basic_fund_fen FROM settlements s JOIN payments p USING (payment_id)"
            " WHERE p.state = 'settled' AND s.insured_province = '440000' AND s.cash_fen > 0"
            " ORDER BY s.settled_at DESC LIMIT 1"
        )
        await admin(
            system,
            "PUT",
            f"/admin/settlements/{changed['setl_id']}/basic-fund",
            {"hifp_pay": changed["basic_fund_fen"] + 1},
        )
        status, report = await medpay.json("reconcile", "--province", "440000", "--date", today)
        open_ = [d for d in report["differences"] if d["status"] == "open"]
        check(
            status == 1
            and [(d["kind"], d["awaiting"]) for d in open_] == [("figures_differ", "person")],
            "a changed figure: reconcile exits 1, the difference awaits a person",
            failures,
        )
        if open_:
            print(f"books: | {open_[0]['note']}")
            await explain_difference(
                system.pool,
                open_[0]["difference_id"],
                operator_id="books-script",
                note="The province confirms a keying error in its statement.",
            )
        status, report = await medpay.json("reconcile", "--province", "440000", "--date", today)
        check(
            status == 0 and report["outcome"] == "explained",
            "explained by an operator: reconcile exits 0",
            failures,
        )
        print("books: commands run:")
        for line in log:
            print(f"books:   {line}")
        print("books: PASS" if not failures else f"books: FAIL ({len(failures)})")
        return 0 if not failures else 1
    finally:
        await system.close()


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of steady load")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and logs")
    args = parser.parse_args()
    return asyncio.run(asyncio.wait_for(main(args), timeout=args.duration + 600))


if __name__ == "__main__":
    sys.exit(cli())
