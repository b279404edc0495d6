"""Insurance agencies and medpay operators: who they are and the keys they sign with.

Each signs its requests with the same header scheme as patient apps, under its own
id header (``X-Agency-Id``, ``X-Operator-Id``) and against its own registry, so a
patient app's key can never open an agency or operator endpoint.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.db.pool import transaction
from medpay.parties import queries
from medpay.security.signatures import (
    KeyAlgorithm,
    PublicKey,
    parsed_keys,
    registered_key_pair,
)

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PartyKind",
    "RegisteredParty",
    "SigningParty",
    "find_agency",
    "find_operator",
    "register_agency",
    "register_operator",
]

PartyKind = Literal["agency", "operator"]


class SigningParty(msgspec.Struct, frozen=True, kw_only=True):
    """An agency or operator with its active public keys."""

    kind: PartyKind
    party_id: str
    name: str
    status: Literal["active", "suspended"]
    keys: tuple[PublicKey, ...]
    area: str | None = None  # an agency's coordination area (admdvs)

    @property
    def scope(self) -> str:
        """Whose Idempotency-Keys and nonces these are: ``agency:<id>`` or ``operator:<id>``."""
        return f"{self.kind}:{self.party_id}"

    @property
    def area_seen(self) -> str | None:
        """The area whose records this party reads: an agency its own, an operator all (None)."""
        if self.kind == "operator":
            return None
        assert self.area is not None, "every agency runs one coordination area"
        return self.area


class RegisteredParty(msgspec.Struct, frozen=True, kw_only=True):
    """A newly registered party and its development key pair (private key empty if given a key)."""

    kind: PartyKind
    party_id: str
    name: str
    algorithm: KeyAlgorithm
    private_key_pem: str
    public_key_pem: str
    area: str | None = None


def _party(kind: PartyKind, row: asyncpg.Record | None) -> SigningParty | None:
    if row is None:
        return None
    return SigningParty(
        kind=kind,
        party_id=row["party_id"],
        name=row["name"],
        status=row["status"],
        area=row["area"],
        keys=parsed_keys(row["algorithms"], row["public_keys"]),
    )


async def find_agency(
    conn: asyncpg.Connection | asyncpg.Pool, agency_id: str
) -> SigningParty | None:
    """The agency and its active keys, or None."""
    return _party("agency", await conn.fetchrow(queries.AGENCY_WITH_ACTIVE_KEYS, agency_id))


async def find_operator(
    conn: asyncpg.Connection | asyncpg.Pool, operator_id: str
) -> SigningParty | None:
    """The operator and its active keys, or None."""
    return _party("operator", await conn.fetchrow(queries.OPERATOR_WITH_ACTIVE_KEYS, operator_id))


async def register_agency(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    area: str,
    algorithm: KeyAlgorithm = "ed25519",
    *,
    agency_id: str | None = None,
    public_key_pem: str | None = None,
) -> RegisteredParty:
    """Register the insurance agency of coordination area ``area``."""
    agency_id = agency_id or f"agency_{area}_{secrets.token_hex(4)}"
    return await _register(conn, "agency", agency_id, name, area, algorithm, public_key_pem)


async def register_operator(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    algorithm: KeyAlgorithm = "ed25519",
    *,
    operator_id: str | None = None,
    public_key_pem: str | None = None,
) -> RegisteredParty:
    """Register a medpay operator."""
    operator_id = operator_id or f"op_{secrets.token_hex(6)}"
    return await _register(conn, "operator", operator_id, name, None, algorithm, public_key_pem)


#: Each kind's own table and key table.
_REGISTER: dict[PartyKind, tuple[str, str]] = {
    "agency": (queries.INSERT_AGENCY, queries.ADD_AGENCY_KEY),
    "operator": (queries.INSERT_OPERATOR, queries.ADD_OPERATOR_KEY),
}


async def _register(
    conn: asyncpg.Connection | asyncpg.Pool,
    kind: PartyKind,
    party_id: str,
    name: str,
    area: str | None,
    algorithm: KeyAlgorithm,
    public_key_pem: str | None,
) -> RegisteredParty:
    """The party and its first key, in one transaction."""
    private_pem, public_pem = registered_key_pair(algorithm, public_key_pem)
    insert, add_key = _REGISTER[kind]
    async with transaction(conn) as tx:
        await tx.execute(insert, party_id, name, *([] if area is None else [area]))
        await tx.execute(add_key, party_id, algorithm, public_pem)
    return RegisteredParty(
        kind=kind,
        party_id=party_id,
        name=name,
        area=area,
        algorithm=algorithm,
        private_key_pem=private_pem,
        public_key_pem=public_pem,
    )
