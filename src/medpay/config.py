"""Settings, read once from the environment into a frozen Struct."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ["IdentityIssuer", "Settings", "load_settings"]


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
    #: Identity tokens must carry this ``aud``.
    identity_audience: str = "medpay"
    identity_issuers: tuple[IdentityIssuer, ...] = ()
    #: Clock skew tolerated on ``exp`` and ``nbf``.
    identity_leeway_seconds: int = 30
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

    @property
    def data_path(self) -> Path:
        """The project's own data folder (embedded database, development keys)."""
        return Path(self.data_dir)


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read ``MEDPAY_*`` variables (and ``DATABASE_URL``) once; ``overrides`` win.

    ``MEDPAY_IDENTITY_ISSUERS`` is a JSON list of ``{"issuer", "public_key_pem"}``;
    without it the development issuer in the data folder is trusted (see
    ``medpay tokens issue``).
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    for field, cast in (
        ("data_dir", str),
        ("host", str),
        ("port", int),
        ("signature_window_seconds", int),
        ("max_request_bytes", int),
        ("identity_audience", str),
        ("idempotency_retention_hours", int),
        ("pool_max_size", int),
        ("clearing_config_file", str),
        ("worker_interval_seconds", float),
        ("settle_grace_seconds", float),
    ):
        raw = env.get(f"MEDPAY_{field.upper()}")
        if raw:
            values[field] = cast(raw)
    if env.get("MEDPAY_BACKGROUND_WORKERS"):
        values["background_workers"] = env["MEDPAY_BACKGROUND_WORKERS"].lower() in (
            "1",
            "true",
            "yes",
        )
    if env.get("MEDPAY_IDENTITY_ISSUERS"):
        values["identity_issuers"] = msgspec.json.decode(
            env["MEDPAY_IDENTITY_ISSUERS"], type=tuple[IdentityIssuer, ...]
        )
    values.update(overrides)
    return msgspec.convert(values, Settings)
