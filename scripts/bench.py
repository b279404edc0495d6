"""Benchmark the gateway: throughput and latency percentiles, as ratios to a baseline.

These machines are noisy, so absolute figures drift; each run therefore measures a
baseline in the same run, on the same server: ``GET /health`` (the HTTP stack and one
database round trip). Then:

* ``signed read``: ``GET /v1/payments/{id}``, i.e. app signature, nonce spent in
  PostgreSQL, identity token, lookup: the price of our security on every request;
* ``payment``: ``POST /v1/payments``, a full cross-provincial settlement through the
  simulator over HTTP (classification, msgid, province round trip, ledger).

Everything on loopback; every phase is bounded by a request count and a time limit.
``--server granian`` serves the gateway with granian instead of uvicorn, to compare.
``--app-algorithm sm2`` makes the load app sign with SM2 (SM3withSM2) instead of
Ed25519; ``both`` runs the signed-read and payment phases once per algorithm, in the
same run, and prints the SM2 app's figures as a ratio to the Ed25519 app's.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from harness import PERSONS, System

from medpay.channels.service import register_app
from medpay.client import AppSignatureAuth

ORDER = {
    "institution_code": "H11010800124",
    "treatment_area": "110108",
    "visit_type": "online_revisit",
    "items": [
        {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
        {"item_code": "XA10BAA075A001010101445", "quantity": 3, "unit_price_fen": 1200},
    ],
    "personal_account_allowed": True,
}


async def phase(
    name: str, requests: int, concurrency: int, time_limit: float, send
) -> dict[str, float]:
    """Run ``send(i)`` ``requests`` times with ``concurrency`` in flight; time each."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    deadline = time.monotonic() + time_limit

    async def worker() -> None:
        nonlocal errors
        while not queue.empty() and time.monotonic() < deadline:
            i = queue.get_nowait()
            started = time.perf_counter()
            ok = await send(i)
            latencies.append(time.perf_counter() - started)
            errors += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "name": name,  # type: ignore[dict-item]
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) * 1000,
    }


async def main(args: argparse.Namespace) -> int:
    gateway_args = None
    if args.server == "granian":
        granian = str(Path(sys.executable).with_name("granian"))
        gateway_args = [
            granian,
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            "PORT",
            "--workers",
            str(args.workers),
            "medpay.asgi:create_app_from_environment",
        ]
    system = await System.start(
        read_timeout_s=10.0,
        gateway_env={"MEDPAY_POOL_MAX_SIZE": "20"},
        gateway_args=gateway_args,
        keep=args.keep,
        app_algorithm="sm2" if args.app_algorithm == "sm2" else "ed25519",
    )
    try:
        tokens = {psn: system.issuer.issue(psn, ttl_seconds=3600) for psn in PERSONS}
        auth = {
            psn: AppSignatureAuth(system.app.app_id, system.app.private_key_pem, t)
            for psn, t in tokens.items()
        }
        sm2_auth = {}
        if args.app_algorithm == "both":
            sm2_app = await register_app(system.pool, "SM2 load app", "sm2")
            sm2_auth = {
                psn: AppSignatureAuth(sm2_app.app_id, sm2_app.private_key_pem, t)
                for psn, t in tokens.items()
            }
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        async with httpx.AsyncClient(
            base_url=system.gateway_url, timeout=30.0, limits=limits
        ) as http:
            warm = await http.post(
                "/v1/payments",
                json=ORDER,
                headers={"Idempotency-Key": "bench-warm-up"},
                auth=auth[PERSONS[0]],
            )
            payment_id = warm.json()["payment_id"]

            async def health(_: int) -> bool:
                return (await http.get("/health")).status_code == 200

            async def signed_read(i: int) -> bool:
                response = await http.get(f"/v1/payments/{payment_id}", auth=auth[PERSONS[0]])
                return response.status_code == 200

            async def payment(i: int, signers: dict[str, AppSignatureAuth] = auth) -> bool:
                psn = PERSONS[i % len(PERSONS)]
                response = await http.post(
                    "/v1/payments",
                    json=ORDER,
                    auth=signers[psn],
                    headers={"Idempotency-Key": f"bench-{i}-{secrets.token_hex(4)}"},
                )
                return response.status_code == 201

            sm2_payment_id = ""
            if sm2_auth:
                warm_sm2 = await http.post(
                    "/v1/payments",
                    json=ORDER,
                    headers={"Idempotency-Key": "bench-warm-up-sm2"},
                    auth=sm2_auth[PERSONS[0]],
                )
                sm2_payment_id = warm_sm2.json()["payment_id"]

            async def sm2_signed_read(i: int) -> bool:
                response = await http.get(
                    f"/v1/payments/{sm2_payment_id}", auth=sm2_auth[PERSONS[0]]
                )
                return response.status_code == 200

            async def sm2_payment(i: int) -> bool:
                return await payment(i, sm2_auth)

            # With both algorithms the SM2 phase runs between two Ed25519 runs (A B A) and is
            # compared with their mean, so drift (a growing database, a pool still opening
            # connections, a warming machine) weighs on both alike.
            plan = [
                ("baseline: GET /health", args.requests, health),
                ("signed read", args.requests, signed_read),
                *(
                    [
                        ("signed read, SM2 app", args.requests, sm2_signed_read),
                        ("signed read (again)", args.requests, signed_read),
                    ]
                    if sm2_auth
                    else []
                ),
                ("payment (settled)", args.payments, payment),
                *(
                    [
                        ("payment, SM2 app", args.payments, sm2_payment),
                        ("payment (again)", args.payments, payment),
                    ]
                    if sm2_auth
                    else []
                ),
            ]
            results = [
                await phase(name, count, args.concurrency, args.time_limit, send)
                for name, count, send in plan
            ]
        base = results[0]["throughput"]
        print(
            f"medpay bench: server {args.server}, concurrency {args.concurrency}, loopback, one machine, "
            f"app key {args.app_algorithm}"
        )
        print(
            f"{'phase':<24}{'requests':>9}{'errors':>7}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
            f"{'vs baseline':>13}"
        )
        for r in results:
            print(
                f"{r['name']:<24}{r['requests']:>9.0f}{r['errors']:>7.0f}{r['throughput']:>9.1f}{r['p50']:>9.1f}"
                f"{r['p95']:>9.1f}{r['p99']:>9.1f}{r['throughput'] / base:>12.2f}x"
            )
        if sm2_auth:
            by_name = {r["name"]: r for r in results}
            for before, sm2, after in (
                ("signed read", "signed read, SM2 app", "signed read (again)"),
                ("payment (settled)", "payment, SM2 app", "payment (again)"),
            ):
                ed_throughput = (by_name[before]["throughput"] + by_name[after]["throughput"]) / 2
                ed_p50 = (by_name[before]["p50"] + by_name[after]["p50"]) / 2
                ratio = by_name[sm2]["throughput"] / ed_throughput
                print(
                    f"SM2 app / Ed25519 app (mean of the runs around it), {before}: throughput "
                    f"{ratio:.2f}x, p50 {by_name[sm2]['p50']:.1f} ms vs {ed_p50:.1f} ms"
                )
        return 0 if all(r["errors"] == 0 for r in results) else 1
    finally:
        await system.close()


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests in the baseline and signed-read phases"
    )
    parser.add_argument(
        "--payments", type=int, default=500, help="payments in the settlement phase"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds at most per phase")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=1, help="granian workers")
    parser.add_argument(
        "--app-algorithm",
        choices=["ed25519", "sm2", "both"],
        default="ed25519",
        help="the key the load app signs with; both: each, in one run, as a ratio",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    return asyncio.run(asyncio.wait_for(main(args), timeout=4 * args.time_limit + 180))


if __name__ == "__main__":
    sys.exit(cli())
