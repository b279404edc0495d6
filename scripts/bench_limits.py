"""What a rate-limit check costs in PostgreSQL, by design (issue 12): run before choosing one.

Bounded, loopback only: an embedded PostgreSQL (durable commits, as in production) in a
temporary folder, stopped by its pid at the end. For each design, ``--checks`` checks of
three buckets (source, caller, person) by ``--concurrency`` tasks on one pool:

* ``upsert, UNLOGGED``: medpay's: one statement adds to all three counters and returns them
  (``security.queries.COUNT_RATE_LIMIT_HITS``) in a table the WAL does not carry;
* ``upsert, logged``: the same statement on an ordinary table (every check waits for a
  WAL flush at commit);
* ``Store get + set``: what Litestar's ``RateLimitMiddleware`` does with a shared Store,
  per bucket: read the history, then write it back (two round trips a bucket, and no
  atomicity between processes: two can both read "one left").

Prints checks per second and p50/p99 latency of a whole check.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from medpay.db.embedded import EmbeddedPostgres
from medpay.security.queries import COUNT_RATE_LIMIT_HITS

TABLES = """
CREATE UNLOGGED TABLE rate_limit_counters (
    bucket text NOT NULL, window_start bigint NOT NULL, hits integer NOT NULL,
    PRIMARY KEY (bucket, window_start));
CREATE TABLE logged_counters (
    bucket text NOT NULL, window_start bigint NOT NULL, hits integer NOT NULL,
    PRIMARY KEY (bucket, window_start));
CREATE UNLOGGED TABLE store (key text PRIMARY KEY, value bytea NOT NULL, expires_at timestamptz);
"""
LOGGED = COUNT_RATE_LIMIT_HITS.replace("rate_limit_counters", "logged_counters")
STORE_GET = "SELECT value FROM store WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())"
STORE_SET = """
INSERT INTO store (key, value, expires_at) VALUES ($1, $2, now() + interval '60 seconds')
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""


async def upsert(pool: asyncpg.Pool, statement: str, n: int) -> None:
    buckets = sorted([f"source:10.0.{n % 50}.1", f"caller:app:a{n % 20}", f"person:p{n % 5000}"])
    await pool.fetch(statement, buckets, [1, 1, 1], 60)


async def store(pool: asyncpg.Pool, n: int) -> None:
    for key in (f"source:10.0.{n % 50}.1", f"caller:app:a{n % 20}", f"person:p{n % 5000}"):
        history = await pool.fetchval(STORE_GET, key)
        await pool.execute(STORE_SET, key, (history or b"")[-200:] + b"1")


async def measure(name: str, pool: asyncpg.Pool, check, checks: int, concurrency: int) -> None:
    latencies: list[float] = []
    counter = iter(range(checks))

    async def worker() -> None:
        for n in counter:
            started = time.perf_counter()
            await check(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"{name:<22} {checks / elapsed:>9.0f} checks/s   p50 {statistics.median(latencies) * 1000:6.2f} ms"
        f"   p99 {p99 * 1000:6.2f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="medpay-limits-"))
    server = EmbeddedPostgres(folder / "pgdata", durable=True)
    try:
        server.start()
        pool = await asyncpg.create_pool(
            server.dsn(), min_size=args.concurrency, max_size=args.concurrency
        )
        try:
            await pool.execute(TABLES)
            print(f"{args.checks} checks of 3 buckets, {args.concurrency} at a time")
            for _ in range(2):  # the second round is the one to read (caches warm)
                await measure(
                    "upsert, UNLOGGED",
                    pool,
                    lambda n: upsert(pool, COUNT_RATE_LIMIT_HITS, n),
                    args.checks,
                    args.concurrency,
                )
                await measure(
                    "upsert, logged",
                    pool,
                    lambda n: upsert(pool, LOGGED, n),
                    args.checks,
                    args.concurrency,
                )
                await measure(
                    "Store get + set", pool, lambda n: store(pool, n), args.checks, args.concurrency
                )
        finally:
            await pool.close()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(asyncio.wait_for(main(parser.parse_args()), timeout=600))
    sys.exit(0)
