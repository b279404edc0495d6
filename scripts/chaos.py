"""Chaos run: steady signed load while provinces misbehave and the gateway is killed.

Everything runs on loopback (see ``harness.py``): an embedded PostgreSQL, the
provincial platform simulator and the gateway as separate processes, so that the
gateway can be SIGKILLed and restarted. The simulator drops 10 % of its answers,
delays 5 % past the gateway's read timeout and delivers 10 % of its callbacks twice.
Patient apps retry with the same Idempotency-Key, as a real app would; of what settles,
some is reversed and some refunded (part of the drugs returned: the settlement
reversed and the rest settled anew). By default every
third province speaks the national profile (SM2 cainfo, amounts in yuan) and the rest
ours (Ed25519, fen), so both adapters settle side by side under the same faults
(``--national none`` for ours only). At the end the gateway's records are reconciled
against the simulator's and the run prints: accepted, settled, failed, reversed,
unknown left, lost, settled twice.

Exit status 0 only when lost = 0, settled twice = 0 and unknown left = 0.
Bounded: every phase has a deadline; every process is stopped by its pid, always.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).parent))
from harness import PERSONS, System, limit_environment, wait_healthy

from medpay.client import AppSignatureAuth
from medpay.simulator.config import every_third_province
from medpay.simulator.store import SIMULATOR_SCHEMA

GATEWAY_READ_TIMEOUT_S = 2.0
START = time.monotonic()


@dataclass
class Tally:
    """What the patient apps saw."""

    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> payment id
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # "status code" -> how many
    unanswered: int = 0
    reversals_requested: int = 0
    refunds_requested: int = 0
    latencies: list[float] = field(default_factory=list)
    retries: int = 0


def order_for(rng: random.Random) -> dict[str, object]:
    """An online revisit at a Beijing internet hospital with a class A drug and delivery."""
    return {
        "institution_code": "H11010800124",
        "treatment_area": "110108",
        "visit_type": "online_revisit",
        "items": [
            {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
            {
                "item_code": "XA10BAA075A001010101445",
                "quantity": rng.randint(1, 30),
                "unit_price_fen": 1200,
            },
            {"item_code": "FEE-DRUG-DELIVERY", "quantity": 1, "unit_price_fen": 1000},
        ],
        "personal_account_allowed": rng.random() < 0.7,
    }


async def post_until_answered(
    http: httpx.AsyncClient,
    path: str,
    body: object | None,
    key: str,
    auth: AppSignatureAuth,
    tally: Tally,
    deadline: float,
) -> httpx.Response | None:
    """What an app does: retry the same request under the same key until it has an answer."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = await http.post(path, json=body, headers={"Idempotency-Key": key}, auth=auth)
        except httpx.HTTPError:
            tally.retries += 1
            await asyncio.sleep(0.5)
            continue
        in_progress = response.status_code == 409 and "retry-after" in response.headers
        if in_progress or response.status_code >= 500:
            tally.retries += 1
            await asyncio.sleep(0.5)
            continue
        tally.latencies.append(time.monotonic() - started)
        return response
    return None


def returned_lines(rng: random.Random, payment: dict[str, object]) -> dict[str, object]:
    """What a patient gives back: some boxes of the drug line, or now and then everything."""
    items = payment["items"]
    assert isinstance(items, list)
    if rng.random() < 0.25:
        return {"items": [{"line_no": i["line_no"], "quantity": i["quantity"]} for i in items]}
    drug = max(items, key=lambda i: i["quantity"])
    return {"items": [{"line_no": drug["line_no"], "quantity": rng.randint(1, drug["quantity"])}]}


async def give_back(
    http: httpx.AsyncClient,
    rng: random.Random,
    payment: dict[str, object],
    key: str,
    auth: AppSignatureAuth,
    tally: Tally,
    deadline: float,
    *,
    reversal_rate: float,
    refund_rate: float,
) -> None:
    """Of a settled payment: reverse it (``reversal_rate``), or refund some of it (``refund_rate``)."""
    draw = rng.random()
    if draw < reversal_rate:
        tally.reversals_requested += 1
        await post_until_answered(
            http,
            f"/v1/payments/{payment['payment_id']}/reversal",
            None,
            f"{key}-rev",
            auth,
            tally,
            deadline,
        )
    elif draw < reversal_rate + refund_rate:
        tally.refunds_requested += 1
        await post_until_answered(
            http,
            f"/v1/payments/{payment['payment_id']}/refunds",
            returned_lines(rng, payment),
            f"{key}-refund",
            auth,
            tally,
            deadline,
        )


def _problem_code(response: httpx.Response) -> str:
    """The problem document's ``code``, or what the body is when it is not one."""
    try:
        return str(response.json().get("code"))
    except ValueError:
        return "(not a problem document)"


async def load(
    system: System,
    payments: int,
    duration_s: float,
    concurrency: int,
    rng: random.Random,
    tally: Tally,
    deadline: float,
    *,
    order: Callable[[random.Random, str], dict[str, Any]] = lambda rng, _psn: order_for(rng),
    key_prefix: str = "chaos",
    reversal_rate: float = 0.05,
    refund_rate: float = 0.10,
) -> None:
    """``payments`` payments of ``order`` arriving steadily over ``duration_s``; of the settled
    ones ``reversal_rate`` reversed and ``refund_rate`` refunded (part of the drugs returned, or
    now and then everything). ``scripts/books`` sends its own orders through the same loop."""
    tokens = {psn: system.issuer.issue(psn, ttl_seconds=3600) for psn in PERSONS}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=10.0) as http:

        async def one(index: int) -> None:
            await asyncio.sleep(duration_s * index / payments)
            psn = rng.choice(PERSONS)
            auth = AppSignatureAuth(system.app.app_id, system.app.private_key_pem, tokens[psn])
            key = f"{key_prefix}-{index:05d}-{secrets.token_hex(4)}"
            async with gate:
                response = await post_until_answered(
                    http, "/v1/payments", order(rng, psn), key, auth, tally, deadline
                )
            if response is None:
                tally.unanswered += 1
                return
            if response.status_code not in (201, 202):
                tally.refused += 1
                why = f"{response.status_code} {_problem_code(response)}"
                tally.refusals[why] = tally.refusals.get(why, 0) + 1
                return
            payment = response.json()
            tally.accepted[key] = payment["payment_id"]
            if response.status_code == 201:
                async with gate:
                    await give_back(
                        http,
                        rng,
                        payment,
                        key,
                        auth,
                        tally,
                        deadline,
                        reversal_rate=reversal_rate,
                        refund_rate=refund_rate,
                    )

        await asyncio.gather(*(one(i) for i in range(payments)))


async def killer(
    system: System, kills: int, duration_s: float, rng: random.Random, log: list[str]
) -> None:
    """SIGKILL the gateway ``kills`` times during the load, restarting it each time."""
    for n in range(kills):
        await asyncio.sleep(duration_s / (kills + 1) * (0.8 + 0.4 * rng.random()))
        system.gateway.kill()
        log.append(f"killed the gateway (SIGKILL) at +{time.monotonic() - START:.1f} s")
        await asyncio.sleep(1.0 + rng.random())
        system.gateway.start()
        await wait_healthy(system.gateway_url)
        log.append(f"restarted it (kill {n + 1} of {kills}) at +{time.monotonic() - START:.1f} s")


async def reconcile(pool: asyncpg.Pool, tally: Tally) -> dict[str, int]:
    """Compare what the apps were told, what the gateway recorded and what the province did."""
    gateway = {
        r["payment_id"].hex: r["state"]
        for r in await pool.fetch("SELECT payment_id, state FROM payments")
    }
    double_journals = await pool.fetchval(
        "SELECT count(*) FROM (SELECT payment_id FROM ledger_journals WHERE kind = 'settlement'"
        " GROUP BY payment_id HAVING count(*) > 1) twice"
    )
    rows = await pool.fetch(
        "SELECT mdtrt_id, count(*) AS n, bool_or(state = 'settled') AS live, bool_or(state = 'reversed') AS rev"
        f" FROM {SIMULATOR_SCHEMA}.settlements GROUP BY mdtrt_id"
    )
    province = {r["mdtrt_id"]: r for r in rows}
    settled_twice = sum(1 for r in rows if r["n"] > 1) + double_journals
    lost = sum(
        1 for payment_id in tally.accepted.values() if payment_id.replace("-", "") not in gateway
    )
    lost += sum(1 for mdtrt_id in province if mdtrt_id not in gateway)  # charged, unknown to us
    for payment_id, state in gateway.items():
        at_province = province.get(payment_id)
        if state == "settled" and not (at_province and at_province["live"]):
            lost += 1  # we say settled, the province does not
        if state == "reversed" and not (
            at_province and at_province["rev"] and not at_province["live"]
        ):
            lost += 1
        if state == "failed" and at_province is not None:
            lost += 1  # the province charged a payment we call failed
    states = list(gateway.values())
    refunds = await pool.fetch("SELECT state, count(*) AS n FROM refunds GROUP BY state")
    refund_states = {r["state"]: r["n"] for r in refunds}
    return {
        "accepted": len(tally.accepted),
        "settled": states.count("settled"),
        "failed": states.count("failed"),
        "reversed": states.count("reversed"),
        "refunded": refund_states.get("refunded", 0),
        "refunds refused": refund_states.get("refused", 0),
        "refunds whose lines kept failed": refund_states.get("resettlement_failed", 0),
        "unknown left": sum(
            1 for s in states if s in ("received", "settling", "unknown", "reversing")
        )
        + refund_states.get("reversing", 0)
        + refund_states.get("resettling", 0),
        "lost": lost,
        "settled twice": settled_twice,
    }


async def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    faults = {
        "drop_rate": 0.10,
        "drop_hold_s": GATEWAY_READ_TIMEOUT_S + 1.0,
        "slow_rate": 0.05,
        "slow_ms": int((GATEWAY_READ_TIMEOUT_S + 1.0) * 1000),
        "callback_duplicate_rate": 0.10,
    }
    national = every_third_province() if args.national == "third" else []
    system = await System.start(
        faults=faults,
        callbacks=True,
        read_timeout_s=GATEWAY_READ_TIMEOUT_S,
        seed=args.seed,
        keep=args.keep,
        gateway_env={
            "MEDPAY_SETTLE_GRACE_SECONDS": "4",
            "MEDPAY_WORKER_INTERVAL_SECONDS": "0.5",
            **limit_environment(True),
        },
        national=national,
    )
    try:
        print(
            f"chaos: {args.payments} payments over {args.duration:.0f} s, {args.kills} gateway kills, "
            f"faults {faults}",
            flush=True,
        )
        on_national = sorted({p[:2] + "0000" for p in PERSONS} & set(national))
        print(
            f"chaos: {len(national)} of 31 provinces on the national profile (SM2, yuan): "
            f"{', '.join(national) or 'none'}; home provinces of the load on it: "
            f"{', '.join(on_national) or 'none'}",
            flush=True,
        )
        tally, events = Tally(), []
        deadline = time.monotonic() + args.duration + 60
        load_started = time.monotonic()
        await asyncio.gather(
            load(system, args.payments, args.duration, args.concurrency, rng, tally, deadline),
            killer(system, args.kills, args.duration, rng, events),
        )
        load_seconds = time.monotonic() - load_started
        for line in events:
            print(f"chaos: {line}")
        settle_started = time.monotonic()
        # Polling another process's progress through the database; no event to wait on.
        while time.monotonic() - settle_started < args.settle_deadline:
            if not await system.unfinished():
                break
            await asyncio.sleep(0.5)
        to_zero = time.monotonic() - settle_started
        await asyncio.sleep(2.0)  # late duplicate callbacks arrive now: they must change nothing
        figures = await reconcile(system.pool, tally)
        by_profile = await system.pool.fetch(
            "SELECT left(insured_area, 2) || '0000' = any($1::text[]) AS national, count(*) AS n"
            " FROM payments WHERE state IN ('settled', 'reversed') GROUP BY 1",
            national,
        )
        profiles = {
            ("national (SM2, yuan)" if r["national"] else "ours (Ed25519, fen)"): r["n"]
            for r in by_profile
        }

        latencies = sorted(tally.latencies) or [0.0]

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

        print(
            f"chaos: load {load_seconds:.1f} s, {len(tally.latencies) / load_seconds:.1f} answered req/s, "
            f"latency p50 {pct(0.5):.0f} ms p95 {pct(0.95):.0f} ms p99 {pct(0.99):.0f} ms; app retries "
            f"{tally.retries}, reversals requested {tally.reversals_requested}, refunds requested "
            f"{tally.refunds_requested}, refused {tally.refused}{f' {tally.refusals}' if tally.refusals else ''}, "
            f"never answered {tally.unanswered}"
        )
        print(
            f"chaos: unknown left {figures['unknown left']}, {to_zero:.1f} s after the load ended "
            f"(stated bound {args.settle_deadline:.0f} s)"
        )
        print(
            "chaos: settled or reversed, by the home province's profile: "
            + ", ".join(f"{name} {count}" for name, count in sorted(profiles.items()))
        )
        for name, value in figures.items():
            print(f"{name:>14}: {value}")
        ok = figures["lost"] == 0 and figures["settled twice"] == 0 and figures["unknown left"] == 0
        print("chaos: PASS" if ok else "chaos: FAIL")
        return 0 if ok else 1
    finally:
        await system.close()


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument(
        "--settle-deadline", type=float, default=90.0, help="seconds for unknown to reach 0"
    )
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--national",
        choices=["third", "none"],
        default="third",
        help="every third province on the national profile (SM2, yuan), or none",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder and its logs"
    )
    args = parser.parse_args()
    return asyncio.run(
        asyncio.wait_for(main(args), timeout=args.duration + args.settle_deadline + 240)
    )


if __name__ == "__main__":
    sys.exit(cli())
