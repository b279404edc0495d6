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
    #: Person identifiers at rest (medpay.security.persons): the key (base64 of 32 random
    #: bytes), or a file holding it; never the repository. Without either, the embedded
    #: development database uses one made in the data folder (``person.key``).
    person_key: str | None = None
    person_key_file: str | None = None
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

    #: Logs (issue 12, item 4): ``json`` (one object a line) or ``text``; the root level;
    #: one ``medpay.access`` line per request answered.
    log_format: str = "json"
    log_level: str = "INFO"
    log_requests: bool = True
    #: Spans: ``none`` (a traceparent is still carried to the provinces), ``console`` or
    #: ``otlp`` (the exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables).
    otel_exporter: str = "none"
    otel_service_name: str = "medpay-gateway"
    #: ``/health/ready``: a province not seen answering within this long is probed (one
    #: TCP connect); and whether an unreachable province makes the gateway unready.
    readiness_probe_seconds: float = 30.0
    readiness_requires_provinces: bool = True
    #: Rate limits (issue 12): requests per window of ``rate_limit_window_seconds``, counted
    #: in PostgreSQL so that they hold across every gateway process on the database. A
    #: limit of 0 is no limit. A source is an address (IPv6: its /64); the app, agency,
    #: operator or institution and the person are counted once verified. Estimates call a
    #: province and have limits of their own besides. A refused signature or identity
    #: token costs ``rate_limit_failure_cost`` requests of the source (and of the app, when
    #: its signature verified and the token did not): a source sending garbage is locked
    #: out for the rest of the window.
    rate_limits: bool = True
    rate_limit_window_seconds: int = 60
    rate_limit_per_source: int = 1200
    rate_limit_per_caller: int = 12000
    rate_limit_per_person: int = 120
    rate_limit_estimates_per_caller: int = 1200
    rate_limit_estimates_per_person: int = 20
    rate_limit_failure_cost: int = 20
    #: Addresses (CIDR) of the load balancers in front: a request from one of them is
    #: counted against the last address of X-Forwarded-For that is not one of them.
    trusted_proxies: tuple[str, ...] = ()
    #: Slow and greedy clients (``medpay serve``; granian's own flags in the Dockerfile):
    #: an idle keep-alive connection is closed after ``keep_alive_seconds``; a request's
    #: headers must arrive within ``header_read_seconds`` and fit in ``max_header_bytes``;
    #: at most ``max_connections`` connections and requests at once (503 beyond).
    keep_alive_seconds: int = 5
    header_read_seconds: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 2000
    #: On SIGTERM, requests in flight get this long to finish (longer than a province's
    #: read timeout, so a payment under way gets its answer) before they are cancelled.
    shutdown_grace_seconds: int = 30

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

    def person_key_text(self) -> str | None:
        """The configured person key, read from its file if one is named; None if neither."""
        if self.person_key:
            return self.person_key
        if self.person_key_file:
            return Path(self.person_key_file).read_text(encoding="utf-8").strip()
        return None

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
