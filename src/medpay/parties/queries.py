"""SQL for the registries of agencies and operators."""

from __future__ import annotations

from medpay.security.queries import WITH_ACTIVE_KEYS

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

AGENCY_WITH_ACTIVE_KEYS = WITH_ACTIVE_KEYS.format(
    columns="t.agency_id AS party_id, t.name, t.status, t.area",
    table="agencies",
    keys="agency_keys",
    id="agency_id",
)

INSERT_OPERATOR = "INSERT INTO operators (operator_id, name) VALUES ($1, $2)"
ADD_OPERATOR_KEY = (
    "INSERT INTO operator_keys (operator_id, algorithm, public_key_pem) VALUES ($1, $2, $3)"
)

OPERATOR_WITH_ACTIVE_KEYS = WITH_ACTIVE_KEYS.format(
    columns="t.operator_id AS party_id, t.name, t.status, NULL::text AS area",
    table="operators",
    keys="operator_keys",
    id="operator_id",
)
