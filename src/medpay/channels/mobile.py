"""Apps on the national mobile-payment interface: their appId, appSecret and SM2 keys.

An app built against the national interface (DOMAIN.md section 8) is a patient app
like any other (one row in ``apps``), with:

* an ``appId`` of 16 to 64 letters and digits: its ``app_id`` here (the interface
  keys the SM4 derivation with the first 16 characters, so ours with ``_`` will not do);
* an SM2 public key, in ``app_keys`` with algorithm ``sm2`` (it may sign our own
  channel's requests with it too);
* an ``appSecret``, which both ends need in the clear: the signed string ends with
  ``&key=<appSecret>`` and the app's SM4 key is derived from it
  (:func:`medpay.wire.mobile.derive_sm4_key`). It is stored sealed with the gateway's
  key (:class:`medpay.security.secrets.SecretSealer`), opened only to check a request;
  storing only the derived SM4 key would not do, as the signature needs the secret.

Generated appSecrets are 32 random letters and digits (about 190 bits): each signed
message lets its holder recompute SM3 over text ending with the secret, so a short
secret could be guessed offline; a long random one cannot.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.channels import queries
from medpay.channels.service import register_app
from medpay.db.pool import transaction
from medpay.security.signatures import parsed_keys
from medpay.wire import gm

if TYPE_CHECKING:
    import asyncpg

    from medpay.security.secrets import SecretSealer

__all__ = [
    "APP_ID_PATTERN",
    "MobileApp",
    "RegisteredMobileApp",
    "find_mobile_app",
    "new_app_secret",
    "register_mobile_app",
]

APP_ID_PATTERN = re.compile(r"^[0-9A-Za-z]{16,64}$")
_SECRET_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 32


class MobileApp(msgspec.Struct, frozen=True, kw_only=True):
    """An app as the national front door needs it: its secret opened, its SM2 keys parsed."""

    app_id: str  # appId
    name: str
    status: Literal["active", "suspended"]
    app_secret: str  # appSecret: signs with the SM2 key and derives the SM4 key
    keys: tuple[gm.Sm2PublicKey, ...]


class RegisteredMobileApp(msgspec.Struct, frozen=True, kw_only=True):
    """A newly registered national-interface app and what to hand to its developers."""

    app_id: str
    name: str
    app_secret: str
    public_key_pem: str
    public_key_hex: str  # 04 || x || y, as national platforms exchange keys
    private_key_pem: str  # empty when the app brought its own public key
    private_key_hex: str


def new_app_secret() -> str:
    """A fresh appSecret: 32 random letters and digits."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))


def _public_key(text: str) -> gm.Sm2PublicKey:
    if text.lstrip().startswith("-----BEGIN"):
        return gm.load_public_key(text)
    return gm.load_public_key_hex(text)


async def register_mobile_app(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    sealer: SecretSealer,
    *,
    app_id: str | None = None,
    app_secret: str | None = None,
    public_key: str | None = None,
) -> RegisteredMobileApp:
    """Register an app for the national interface; without ``public_key``, make an SM2 pair.

    ``public_key`` is the app's SM2 key as PEM or hex (``04 || x || y``).

    Raises:
        ValueError: an appId not of 16 to 64 letters and digits, an empty secret, or a
            key that is not SM2.
    """
    app_id = app_id or secrets.token_hex(16).upper()
    if not APP_ID_PATTERN.match(app_id):
        raise ValueError("an appId is 16 to 64 letters and digits")
    app_secret = app_secret or new_app_secret()
    if not app_secret.isascii() or not app_secret.isprintable() or len(app_secret) < 16:
        raise ValueError("an appSecret is at least 16 printable ASCII characters")
    private: gm.Sm2PrivateKey | None = None
    if public_key is None:
        private = gm.generate_private_key()
        key = private.public_key()
    else:
        key = _public_key(public_key)
    async with transaction(conn) as tx:
        await register_app(tx, name, "sm2", app_id=app_id, public_key_pem=gm.public_key_pem(key))
        await tx.execute(
            queries.INSERT_MOBILE_CREDENTIALS, app_id, sealer.seal(app_secret, context=app_id)
        )
    return RegisteredMobileApp(
        app_id=app_id,
        name=name,
        app_secret=app_secret,
        public_key_pem=gm.public_key_pem(key),
        public_key_hex=gm.public_key_hex(key),
        private_key_pem=gm.private_key_pem(private) if private else "",
        private_key_hex=gm.private_key_hex(private) if private else "",
    )


async def find_mobile_app(
    conn: asyncpg.Connection | asyncpg.Pool, app_id: str, sealer: SecretSealer
) -> MobileApp | None:
    """The app with its secret opened, or None when no national-interface app has that id.

    Raises:
        SealedSecretInvalid: the secret was sealed under another key (a configuration error).
    """
    if not APP_ID_PATTERN.match(app_id):
        return None
    row = await conn.fetchrow(queries.MOBILE_APP, app_id)
    if row is None:
        return None
    keys = parsed_keys(["sm2"] * len(row["public_keys"]), row["public_keys"])
    return MobileApp(
        app_id=row["app_id"],
        name=row["name"],
        status=row["status"],
        app_secret=sealer.open(bytes(row["app_secret_sealed"]), context=row["app_id"]),
        keys=tuple(k for k in keys if isinstance(k, gm.Sm2PublicKey)),
    )
