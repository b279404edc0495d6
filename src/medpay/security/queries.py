"""SQL for replay protection and idempotency."""

from __future__ import annotations

__all__ = [
    "CLAIM_IDEMPOTENCY_KEY",
    "COMPLETE_IDEMPOTENCY_KEY",
    "COUNT_RATE_LIMIT_HITS",
    "LOCK_IDEMPOTENCY_KEY",
    "PURGE_EXPIRED_IDEMPOTENCY_KEYS",
    "PURGE_OLD_NONCES",
    "PURGE_OLD_RATE_LIMIT_WINDOWS",
    "RECLAIM_IDEMPOTENCY_KEY",
    "RELEASE_IDEMPOTENCY_KEY",
    "SPEND_NONCE",
    "WITH_ACTIVE_KEYS",
]

#: A registry's caller with its active keys as two parallel arrays (``signatures.parsed_keys``):
#: ``WITH_ACTIVE_KEYS.format(columns=..., table=..., keys=..., id=...)``, names ours only.
WITH_ACTIVE_KEYS = """
SELECT {columns},
       coalesce(array_agg(k.algorithm ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{{}}') AS algorithms,
       coalesce(array_agg(k.public_key_pem ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{{}}') AS public_keys
  FROM {table} t
  LEFT JOIN {keys} k ON k.{id} = t.{id} AND k.status = 'active'
 WHERE t.{id} = $1
 GROUP BY t.{id}
"""

# One round trip: a row comes back only when the nonce is new.
SPEND_NONCE = """
INSERT INTO request_nonces (app_id, nonce) VALUES ($1, $2)
ON CONFLICT DO NOTHING
RETURNING 1
"""

PURGE_OLD_NONCES = "DELETE FROM request_nonces WHERE seen_at < now() - make_interval(secs => $1)"

CLAIM_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_keys (app_id, idempotency_key, request_digest, expires_at)
VALUES ($1, $2, $3, now() + make_interval(hours => $4))
ON CONFLICT DO NOTHING
RETURNING 1
"""

LOCK_IDEMPOTENCY_KEY = """
SELECT request_digest, state, response_status, response_body, response_type, response_location,
       locked_at < now() - make_interval(secs => $3) AS lock_is_stale,
       expires_at < now() AS expired
  FROM idempotency_keys
 WHERE app_id = $1 AND idempotency_key = $2
   FOR UPDATE
"""

# Take over a key whose first request crashed, or start afresh on an expired one.
RECLAIM_IDEMPOTENCY_KEY = """
UPDATE idempotency_keys
   SET request_digest = $3, state = 'in_progress', response_status = NULL, response_body = NULL,
       response_type = NULL, response_location = NULL, locked_at = now(), created_at = now(),
       expires_at = now() + make_interval(hours => $4)
 WHERE app_id = $1 AND idempotency_key = $2
"""

COMPLETE_IDEMPOTENCY_KEY = """
UPDATE idempotency_keys
   SET state = 'completed', response_status = $3, response_body = $4, response_type = $5,
       response_location = $6
 WHERE app_id = $1 AND idempotency_key = $2 AND state = 'in_progress'
"""

RELEASE_IDEMPOTENCY_KEY = """
DELETE FROM idempotency_keys WHERE app_id = $1 AND idempotency_key = $2 AND state = 'in_progress'
"""

PURGE_EXPIRED_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys WHERE expires_at < now()"

# One round trip per request: add each bucket's cost in the current fixed window (numbered
# by the database's clock, so every process agrees on it) and return the new counts with
# the seconds left in the window. $1 buckets (distinct, sorted by the caller so concurrent
# statements lock rows in one order), $2 their costs, $3 the window length in seconds.
COUNT_RATE_LIMIT_HITS = """
WITH clock AS (SELECT extract(epoch FROM statement_timestamp())::float8 AS t),
counted AS (
    INSERT INTO rate_limit_counters AS c (bucket, window_start, hits)
    SELECT b.bucket, floor(clock.t / $3)::bigint, b.cost
      FROM clock, unnest($1::text[], $2::int[]) AS b(bucket, cost)
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = least(c.hits + excluded.hits, 1000000000)
    RETURNING c.bucket, c.hits, c.window_start
)
SELECT counted.bucket, counted.hits, (counted.window_start + 1) * $3 - clock.t AS reset_s
  FROM counted, clock
"""

PURGE_OLD_RATE_LIMIT_WINDOWS = """
DELETE FROM rate_limit_counters
 WHERE window_start < floor(extract(epoch FROM statement_timestamp()) / $1)::bigint
"""
