"""Settings, read once from the environment into a frozen Struct: one variable per field.

Foundation module: imports nothing of medpay.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["IdentityIssuer", "Settings", "environment_variable", "load_settings"]

_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


class IdentityIssuer(msgspec.Struct, frozen=True, kw_only=True):
    """An identity service whose tokens we trust: its ``iss`` and its public key."""

    issuer: str
    public_key_pem: str


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gateway is configured with.

    ``database_url`` of None means: run an embedded PostgreSQL in ``data_dir``.
    """

    database_url: str | None = None
    data_dir: str = ".medpay"
    host: str = "127.0.0.1"
    port: int = 8080
    #: How far X-Timestamp may be from our clock, either way (foundation issue: 300 s).
    signature_window_seconds: int = 300
    #: Largest request body accepted; larger is a 413 problem.
    max_request_bytes: int = 64 * 1024
    #: How long a request's body may take to arrive; later is a 408 problem.
    request_body_seconds: float = 10.0
    #: Identity tokens must carry this ``aud``.
    identity_audience: str = "medpay"
    identity_issuers: tuple[IdentityIssuer, ...] = ()
    #: How long a caller's registry entry (status, keys) is remembered per process.
    signer_cache_seconds: float = 5.0
    #: Clock skew tolerated on ``exp`` and ``nbf``.
    identity_leeway_seconds: int = 30
    #: The longest life (``exp - nbf``) of an identity token the gateway accepts.
    identity_max_lifetime_seconds: int = 4 * 3600
    #: Idempotency keys are kept at least this long (foundation issue: 24 h).
    idempotency_retention_hours: int = 24
    #: An ``in_progress`` key older than this is taken to belong to a crashed request.
    idempotency_lock_seconds: int = 60
    #: JSON file of the clearing configuration (gateway signing key, each province's adapter).
    clearing_config_file: str | None = None
    #: Run the resolver and the notification dispatcher in this process.
    background_workers: bool = True
    #: How often the resolver and the dispatcher look for due work.
    worker_interval_seconds: float = 1.0
    #: How long a payment may wait for the province's answer before the resolver asks.
    settle_grace_seconds: float = 15.0
    #: Pool sizes per gateway process.
    pool_min_size: int = 2
    pool_max_size: int = 20
    #: The national mobile-payment front door (/v1/mobile): the key sealing the apps'
    #: appSecrets at rest (base64 of 32 bytes), and the gateway's SM2 key (PEM) that signs
    #: its answers. Without both, it answers front_door_not_configured.
    app_secret_key: str | None = None
    mobile_signing_key_pem: str | None = None
    #: A payAuthNo is an identity token with this ``aud`` (a session token is not one).
    pay_auth_audience: str = "medpay-mobile-pay"
    #: Reconcile the previous China day with every province, once a day (one process does it).
    reconciliation_daily: bool = True
    #: From when, each day, China time (HH:MM): statements of the day before are complete.
    reconciliation_at: str = "03:00"
    #: The operator console (/console): a session ends after this long without a request,
    #: and this long after its login whatever happens.
    console_session_idle_seconds: int = 30 * 60
    console_session_absolute_seconds: int = 12 * 3600
    #: Login attempts allowed per username in a window of ``console_lockout_seconds`` from
    #: the first; past that the username is refused until the window ends.
    console_login_attempts_max: int = 5
    console_lockout_seconds: int = 15 * 60
    #: Mark the console's cookie Secure (and name it ``__Host-...``): true, false, or unset
    #: for "when the request came over HTTPS" (as the server saw it, proxy headers included).
    console_cookie_secure: bool | None = None
    #: argon2id's cost for new operator passwords (RFC 9106's second recommendation).
    console_password_time_cost: int = 3
    console_password_memory_kib: int = 64 * 1024
    console_password_parallelism: int = 4

    def __post_init__(self) -> None:
        if not _TIME_OF_DAY.fullmatch(self.reconciliation_at):
            raise ValueError(f"reconciliation_at must be HH:MM, not {self.reconciliation_at!r}")
        for name in (
            "console_session_idle_seconds",
            "console_session_absolute_seconds",
            "console_login_attempts_max",
            "console_lockout_seconds",
            "console_password_time_cost",
            "console_password_parallelism",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.console_password_memory_kib < 8 * self.console_password_parallelism:
            raise ValueError("console_password_memory_kib must be at least 8 per lane (argon2)")

    @property
    def data_path(self) -> Path:
        """The project's own data folder (embedded database, development keys)."""
        return Path(self.data_dir)


def environment_variable(field: str) -> str:
    """The variable that sets ``field``: ``MEDPAY_<FIELD>`` (``DATABASE_URL`` for the database)."""
    return "DATABASE_URL" if field == "database_url" else f"MEDPAY_{field.upper()}"


def _is_scalar(annotation: object) -> bool:
    """Whether a field is text, a number or a flag (else its variable holds JSON)."""
    scalars = (str, int, float, bool, type(None))
    return annotation in scalars or all(arg in scalars for arg in typing.get_args(annotation))


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read every field of :class:`Settings` from its environment variable once; ``overrides`` win.

    Text, numbers and flags convert laxly (``"8080"``, ``"2.5"``, ``"true"``/``"0"``);
    structured fields hold JSON, e.g. ``MEDPAY_IDENTITY_ISSUERS`` is a list of
    ``{"issuer", "public_key_pem"}``. An empty variable counts as unset. Without
    issuers the development issuer in the data folder is trusted (``medpay tokens``).

    Raises:
        ValueError: a variable that does not convert to its field, naming both.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(environment_variable(field.name))
        if not raw:
            continue
        try:
            values[field.name] = raw if _is_scalar(field.type) else msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{environment_variable(field.name)} is not JSON: {exc}") from exc
    values.update(overrides)
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad setting: {exc}") from exc
