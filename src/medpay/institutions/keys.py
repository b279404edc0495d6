"""The keys designated institutions sign their requests with (DOMAIN.md sections 1 and 4).

A hospital or internet hospital signs each prescription it issues with its own key,
under ``X-Institution-Id`` and the same header scheme as patient apps, checked by
``medpay.security.guards.signed_by("institution")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.institutions import queries
from medpay.security.signatures import (
    KeyAlgorithm,
    PublicKey,
    parsed_keys,
    registered_key_pair,
)

if TYPE_CHECKING:
    import asyncpg

    from medpay.institutions.schemas import InstitutionKind

__all__ = ["InstitutionSigner", "find_institution_signer", "register_institution_key"]


class InstitutionSigner(msgspec.Struct, frozen=True, kw_only=True):
    """A registered institution with its active public keys, as the signature check needs it."""

    institution_code: str  # fixmedins_code
    name: str  # fixmedins_name
    area: str
    kind: InstitutionKind
    #: Every registered institution is "active" here; agreement status (dissolution,
    #: DOMAIN.md section 4) belongs to the institution registry's agreements.
    status: Literal["active", "suspended"]
    keys: tuple[PublicKey, ...]

    @property
    def scope(self) -> str:
        """Whose Idempotency-Keys these are: ``institution:<fixmedins_code>``."""
        return f"institution:{self.institution_code}"

    @property
    def may_prescribe(self) -> bool:
        """Only hospitals and internet hospitals issue prescriptions; pharmacies dispense."""
        return self.kind in ("hospital", "internet_hospital")


async def find_institution_signer(
    conn: asyncpg.Connection | asyncpg.Pool, institution_code: str
) -> InstitutionSigner | None:
    """The institution and its active keys, or None when it is not registered."""
    row = await conn.fetchrow(queries.INSTITUTION_WITH_ACTIVE_KEYS, institution_code)
    if row is None:
        return None
    return InstitutionSigner(
        institution_code=row["institution_code"],
        name=row["name"],
        area=row["area"],
        kind=row["kind"],
        status="active",
        keys=parsed_keys(row["algorithms"], row["public_keys"]),
    )


async def register_institution_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    code: str,
    algorithm: KeyAlgorithm = "ed25519",
    public_key_pem: str | None = None,
) -> tuple[str, str]:
    """Add a signing key for institution ``code``; returns ``(private_pem, public_pem)``.

    Without ``public_key_pem`` a development key pair is made (for dev and tests); with
    one, the private half is not ours and comes back empty.
    """
    private_pem, public_key_pem = registered_key_pair(algorithm, public_key_pem)
    if await conn.fetchval(queries.INSTITUTION_EXISTS, code) is None:
        raise LookupError(f"{code} is not a registered institution")
    await conn.execute(queries.ADD_INSTITUTION_KEY, code, algorithm, public_key_pem)
    return private_pem, public_key_pem
