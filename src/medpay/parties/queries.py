"""SQL for the registries of agencies and operators."""

from __future__ import annotations

__all__ = [
    "ADD_AGENCY_KEY",
    "ADD_OPERATOR_KEY",
    "AGENCY_WITH_ACTIVE_KEYS",
    "INSERT_AGENCY",
    "INSERT_OPERATOR",
    "OPERATOR_WITH_ACTIVE_KEYS",
    "SET_AGENCY_STATUS",
]

INSERT_AGENCY = "INSERT INTO agencies (agency_id, name, area) VALUES ($1, $2, $3)"
ADD_AGENCY_KEY = (
    "INSERT INTO agency_keys (agency_id, algorithm, public_key_pem) VALUES ($1, $2, $3)"
)
SET_AGENCY_STATUS = "UPDATE agencies SET status = $2 WHERE agency_id = $1 RETURNING agency_id"

AGENCY_WITH_ACTIVE_KEYS = """
SELECT a.agency_id AS party_id, a.name, a.status, a.area,
       coalesce(array_agg(k.algorithm ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS algorithms,
       coalesce(array_agg(k.public_key_pem ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS public_keys
  FROM agencies a
  LEFT JOIN agency_keys k ON k.agency_id = a.agency_id AND k.status = 'active'
 WHERE a.agency_id = $1
 GROUP BY a.agency_id
"""

INSERT_OPERATOR = "INSERT INTO operators (operator_id, name) VALUES ($1, $2)"
ADD_OPERATOR_KEY = (
    "INSERT INTO operator_keys (operator_id, algorithm, public_key_pem) VALUES ($1, $2, $3)"
)

OPERATOR_WITH_ACTIVE_KEYS = """
SELECT o.operator_id AS party_id, o.name, o.status, NULL::text AS area,
       coalesce(array_agg(k.algorithm ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS algorithms,
       coalesce(array_agg(k.public_key_pem ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS public_keys
  FROM operators o
  LEFT JOIN operator_keys k ON k.operator_id = o.operator_id AND k.status = 'active'
 WHERE o.operator_id = $1
 GROUP BY o.operator_id
"""
