"""The registry of patient apps (channels) and the keys they sign with.

An app is a hospital or pharmacy app or a super-app mini-program (DOMAIN.md
section 1); it proves itself by signing every request with a registered key.
A suspended app is refused at the door, whatever its signature.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.channels import queries
from medpay.security.signatures import (
    KeyAlgorithm,
    PublicKey,
    parsed_keys,
    registered_key_pair,
)

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PatientApp",
    "RegisteredApp",
    "find_app",
    "register_app",
    "set_app_status",
    "set_webhook",
]

AppStatus = Literal["active", "suspended"]


class PatientApp(msgspec.Struct, frozen=True, kw_only=True):
    """A registered app with its active public keys, as the signature check needs it."""

    app_id: str
    name: str
    status: AppStatus
    webhook_url: str | None
    keys: tuple[PublicKey, ...]


class RegisteredApp(msgspec.Struct, frozen=True, kw_only=True):
    """A newly registered app and the development key pair made for it."""

    app_id: str
    name: str
    algorithm: KeyAlgorithm
    private_key_pem: str
    public_key_pem: str


async def register_app(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    algorithm: KeyAlgorithm = "ed25519",
    *,
    app_id: str | None = None,
    public_key_pem: str | None = None,
) -> RegisteredApp:
    """Register an app; without ``public_key_pem`` a development key pair is made for it."""
    private_pem, public_key_pem = registered_key_pair(algorithm, public_key_pem)
    app_id = app_id or f"app_{secrets.token_hex(8)}"
    await conn.execute(queries.REGISTER_APP, app_id, name, algorithm, public_key_pem)
    return RegisteredApp(
        app_id=app_id,
        name=name,
        algorithm=algorithm,
        private_key_pem=private_pem,
        public_key_pem=public_key_pem,
    )


async def find_app(conn: asyncpg.Connection | asyncpg.Pool, app_id: str) -> PatientApp | None:
    """The app and its active keys, or None when no such app is registered."""
    row = await conn.fetchrow(queries.APP_WITH_ACTIVE_KEYS, app_id)
    if row is None:
        return None
    keys = parsed_keys(row["algorithms"], row["public_keys"])
    return PatientApp(
        app_id=row["app_id"],
        name=row["name"],
        status=row["status"],
        webhook_url=row["webhook_url"],
        keys=keys,
    )


async def set_webhook(
    conn: asyncpg.Connection | asyncpg.Pool, app_id: str, url: str | None
) -> bool:
    """Where the app wants final payment states delivered; False when there is no such app."""
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError("a webhook URL is http(s)")
    return await conn.fetchval(queries.SET_WEBHOOK, app_id, url) is not None


async def set_app_status(
    conn: asyncpg.Connection | asyncpg.Pool, app_id: str, status: AppStatus
) -> bool:
    """Suspend or reactivate an app; False when there is no such app."""
    return await conn.fetchval(queries.SET_STATUS, app_id, status) is not None
