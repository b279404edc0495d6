"""SQL for replay protection and idempotency."""

from __future__ import annotations

__all__ = [
    "CLAIM_IDEMPOTENCY_KEY",
    "COMPLETE_IDEMPOTENCY_KEY",
    "LOCK_IDEMPOTENCY_KEY",
    "PURGE_EXPIRED_IDEMPOTENCY_KEYS",
    "PURGE_OLD_NONCES",
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
