"""SQL for the patient-app registry (the ``apps`` and ``app_keys`` tables)."""

from __future__ import annotations

from medpay.security.queries import WITH_ACTIVE_KEYS

__all__ = [
    "APP_WITH_ACTIVE_KEYS",
    "INSERT_MOBILE_CREDENTIALS",
    "MOBILE_APP",
    "REGISTER_APP",
    "SET_STATUS",
    "SET_WEBHOOK",
]

# An app and its first key, in one statement.
REGISTER_APP = """
WITH app AS (INSERT INTO apps (app_id, name) VALUES ($1, $2) RETURNING app_id)
INSERT INTO app_keys (app_id, algorithm, public_key_pem)
SELECT app_id, $3, $4 FROM app
"""

APP_WITH_ACTIVE_KEYS = WITH_ACTIVE_KEYS.format(
    columns="t.app_id, t.name, t.status, t.webhook_url", table="apps", keys="app_keys", id="app_id"
)

SET_STATUS = "UPDATE apps SET status = $2, updated_at = now() WHERE app_id = $1 RETURNING app_id"
SET_WEBHOOK = (
    "UPDATE apps SET webhook_url = $2, updated_at = now() WHERE app_id = $1 RETURNING app_id"
)

# --- the national mobile-payment interface (channels.mobile) ------------------------------

INSERT_MOBILE_CREDENTIALS = """
INSERT INTO app_mobile_credentials (app_id, app_secret_sealed) VALUES ($1, $2)
"""

MOBILE_APP = """
SELECT a.app_id, a.name, a.status, c.app_secret_sealed,
       coalesce(array_agg(k.public_key_pem ORDER BY k.key_id)
                FILTER (WHERE k.key_id IS NOT NULL), '{}') AS public_keys
  FROM apps a
  JOIN app_mobile_credentials c ON c.app_id = a.app_id
  LEFT JOIN app_keys k ON k.app_id = a.app_id AND k.status = 'active' AND k.algorithm = 'sm2'
 WHERE a.app_id = $1
 GROUP BY a.app_id, c.app_secret_sealed
"""
