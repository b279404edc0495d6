"""The ``medpay`` command: run, serve, migrate, openapi, apps, tokens, and the books.

argparse (standard library) is enough here; every subcommand is a thin call into
the same services the HTTP layer uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from medpay.config import Settings, load_settings
from medpay.serving import serve_forever

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    import asyncpg

    from medpay.reconciliation.service import Reconciler
    from medpay.settlement.adapters.config import ClearingConfig
    from medpay.simulator.config import SimulatorConfig

__all__ = ["main"]

DEV_APP_FILE = "dev-app.json"
#: Where ``medpay operators`` takes a new console password from, before standard input.
OPERATOR_PASSWORD_VARIABLE = "MEDPAY_OPERATOR_PASSWORD"  # noqa: S105 - its name, not a password
#: Where ``medpay run`` leaves the clearing configuration it made, for ``medpay reconcile``.
CLEARING_FILE = "clearing.json"


def _with_dev_identity(settings: Settings) -> Settings:
    """Trust the development identity issuer when no issuer is configured."""
    if not settings.identity_issuers:
        from medpay.security.identity import DevelopmentIssuer

        issuer = DevelopmentIssuer.load_or_create(settings.data_path)
        settings = msgspec.structs.replace(settings, identity_issuers=(issuer.trusted(),))
    return _with_dev_mobile_keys(settings)


def _data_file(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A development secret of the data folder (never committed), made on first use."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text()


def _dev_key(data_dir: Path, name: str = "app-secret.key") -> str:
    """A development key of 32 random bytes (base64) in the data folder, made on first use."""
    from medpay.security.secrets import generate_key

    return _data_file(data_dir, name, generate_key).strip()


def _with_person_key(settings: Settings) -> Settings:
    """Install the person key; the embedded development database's from the data folder.

    A configured key always wins. Without one, only a database of the data folder (no
    ``DATABASE_URL``) gets a development key; elsewhere a command that needs the key
    stops with PersonKeyMissing.
    """
    from medpay.security.persons import use_person_key

    if settings.person_key_text() is None and settings.database_url is None:
        settings = msgspec.structs.replace(
            settings, person_key=_dev_key(settings.data_path, "person.key")
        )
    if (key := settings.person_key_text()) is not None:
        use_person_key(key)
    return settings


def _dev_sm2_key(data_dir: Path, name: str) -> str:
    from medpay.wire import gm

    return _data_file(data_dir, name, lambda: gm.private_key_pem(gm.generate_private_key()))


def _with_dev_mobile_keys(settings: Settings) -> Settings:
    """The national front door's keys from the data folder, when none are configured."""
    return msgspec.structs.replace(
        settings,
        app_secret_key=settings.app_secret_key or _dev_key(settings.data_path),
        mobile_signing_key_pem=settings.mobile_signing_key_pem
        or _dev_sm2_key(settings.data_path, "mobile-signing-key.pem"),
    )


# --- migrate -------------------------------------------------------------------------------------


async def _migrate(settings: Settings) -> None:
    from medpay.db.runtime import database, migrate

    async with database(settings.database_url, settings.data_path) as dsn:
        applied = await migrate(dsn)
    for schema, versions in applied.items():
        print(f"{schema}: applied {versions}" if versions else f"{schema}: up to date")


# --- openapi -------------------------------------------------------------------------------------


def openapi_document() -> bytes:
    """The OpenAPI document the app serves, as committed: sorted keys, two-space indent."""
    from medpay.app import create_app

    app = create_app(Settings(database_url="postgresql://unused/unused"))
    schema = app.openapi_schema.to_schema()
    return (json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _openapi(output: Path, check: bool) -> int:
    document = openapi_document()
    if check:
        if not output.exists() or output.read_bytes() != document:
            print(
                f"{output} differs from what the app serves; run `medpay openapi`", file=sys.stderr
            )
            return 1
        print(f"{output} is up to date")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(document)
    print(f"wrote {output}")
    return 0


# --- apps ----------------------------------------------------------------------------------------


async def _apps_add_national(settings: Settings, name: str) -> None:
    """An app for the national interface: appId, appSecret, SM2 keys, the gateway's key."""
    from medpay.channels.mobile import register_mobile_app
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate
    from medpay.security.secrets import SecretSealer
    from medpay.wire import gm

    settings = _with_dev_mobile_keys(settings)
    assert settings.app_secret_key and settings.mobile_signing_key_pem
    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            app = await register_mobile_app(pool, name, SecretSealer(settings.app_secret_key))
        finally:
            await pool.close()
    gateway = gm.load_private_key(settings.mobile_signing_key_pem).public_key()
    print(f"appId: {app.app_id}")
    print(f"appSecret (development only; keep it in the app): {app.app_secret}")
    print(f"SM2 public key (hex): {app.public_key_hex}")
    print(f"SM2 private key (hex; development only, never in the gateway): {app.private_key_hex}")
    print(f"gateway SM2 public key (verifies answers, hex): {gm.public_key_hex(gateway)}")
    print("endpoints: POST /v1/mobile/6201, 6202, 6203, 6301, 6401")


async def _apps_add(settings: Settings, name: str, algorithm: str) -> None:
    from medpay.channels.service import register_app
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate

    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            app = await register_app(pool, name, algorithm)  # type: ignore[arg-type]
        finally:
            await pool.close()
    print(f"app_id: {app.app_id}")
    print(f"algorithm: {app.algorithm}")
    print("public key:")
    print(app.public_key_pem.rstrip())
    print("private key (development only; keep it in the app, never in the gateway):")
    print(app.private_key_pem.rstrip())


async def _apps_set_status(settings: Settings, app_id: str, status: str) -> int:
    from medpay.channels.service import set_app_status
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database

    async with database(settings.database_url, settings.data_path) as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            found = await set_app_status(pool, app_id, status)  # type: ignore[arg-type]
        finally:
            await pool.close()
    if not found:
        print(f"no app {app_id}", file=sys.stderr)
        return 1
    print(f"{app_id}: {status}")
    return 0


async def _agencies_add(settings: Settings, name: str, area: str, algorithm: str) -> None:
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate
    from medpay.parties.service import register_agency

    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            party = await register_agency(pool, name, area, algorithm)  # type: ignore[arg-type]
        finally:
            await pool.close()
    print(f"agency_id: {party.party_id}")
    print("private key (development only):")
    print(party.private_key_pem.rstrip())


def _new_password() -> str:
    """A new console password: from the environment, from standard input, or asked twice.

    Never an argument: a command line is seen by every user of the machine (ps) and kept
    in shell histories.
    """
    import getpass
    import os

    from medpay.errors import InvalidRequest

    given = os.environ.get(OPERATOR_PASSWORD_VARIABLE)
    if given:
        return given
    if sys.stdin is None:
        raise InvalidRequest(
            "password_missing", "No password", f"Set {OPERATOR_PASSWORD_VARIABLE}."
        )
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New console password: ")
    if getpass.getpass("The same again: ") != first:
        raise InvalidRequest("passwords_differ", "The two passwords differ")
    return first


async def _operators_add(
    settings: Settings, name: str, algorithm: str, username: str | None
) -> None:
    """An operator (its signing key printed) and, with ``username``, its console login."""
    from medpay.console.logins import prepare_login, store_login
    from medpay.console.sessions import password_hashing
    from medpay.db.pool import create_pool, transaction
    from medpay.db.runtime import database, migrate
    from medpay.parties.service import register_operator

    # The password is checked and hashed before anything is written.
    login = (
        prepare_login(username, _new_password(), password_hashing(settings)) if username else None
    )
    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            async with transaction(pool) as tx:
                party = await register_operator(tx, name, algorithm)  # type: ignore[arg-type]
                if login is not None:
                    await store_login(tx, party.party_id, login)
        finally:
            await pool.close()
    print(f"operator_id: {party.party_id}")
    if login is not None:
        print(f"console login: {login.username}  (/console/ on the gateway)")
    print("private key (development only; it signs the operator API):")
    print(party.private_key_pem.rstrip())


async def _operators_login(settings: Settings, operator_id: str, username: str) -> None:
    """Give an operator a console login, or a new one (its sessions end)."""
    from medpay.console.logins import prepare_login, store_login
    from medpay.console.sessions import password_hashing
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate

    login = prepare_login(username, _new_password(), password_hashing(settings))
    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            await store_login(pool, operator_id, login)
        finally:
            await pool.close()
    print(f"{operator_id}: console login {login.username}; its other sessions have ended")


# --- tokens --------------------------------------------------------------------------------------


def _tokens_issue(settings: Settings, psn_no: str, face: bool, ttl: int, pay_auth: bool) -> None:
    from medpay.security.identity import DevelopmentIssuer

    issuer = DevelopmentIssuer.load_or_create(settings.data_path)
    amr = ("face",) if face else ("pwd",)
    audience = settings.pay_auth_audience if pay_auth else settings.identity_audience
    print(issuer.issue(psn_no, audience=audience, amr=amr, ttl_seconds=ttl))


# --- run / serve ---------------------------------------------------------------------------------


def load_or_create_dev_app(data_dir: Path) -> dict[str, str]:
    """The development app's id and key pair, kept in the data folder (never committed)."""
    from medpay.security.signatures import generate_key_pair

    path = data_dir / DEV_APP_FILE
    if path.exists():
        record: dict[str, str] = json.loads(path.read_text())
        return record
    private_pem, public_pem = generate_key_pair("ed25519")
    record = {
        "app_id": "app_dev_local",
        "name": "Development patient app",
        "private_key_pem": private_pem,
        "public_key_pem": public_pem,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    path.chmod(0o600)
    return record


async def ensure_dev_app(pool: object, data_dir: Path) -> dict[str, str]:
    """The development app of this data folder, registered in the database if it is new there."""
    from medpay.channels.service import find_app, register_app

    record = load_or_create_dev_app(data_dir)
    if await find_app(pool, record["app_id"]) is None:  # type: ignore[arg-type]
        await register_app(
            pool,  # type: ignore[arg-type]
            record["name"],
            "ed25519",
            app_id=record["app_id"],
            public_key_pem=record["public_key_pem"],
        )
    return record


def _gateway_signing_key(data_dir: Path) -> str:
    """The gateway's development key for signing messages to provinces (cainfo)."""
    from medpay.wire.signing import generate_private_key, private_key_pem

    path = data_dir / "gateway-signing-key.pem"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(private_key_pem(generate_private_key()))
        path.chmod(0o600)
    return path.read_text()


def _simulator_config(data_dir: Path, gateway_key_pem: str) -> SimulatorConfig:
    """The simulator's configuration in the data folder: all 31 provinces, keys kept across runs.

    A province is put on the national profile (SM2, yuan) by editing ``"profile"`` in the
    file (and removing its ``private_key_pem``, which is then made of the right kind).
    """
    from medpay.simulator.config import default_config, load_config, save_config
    from medpay.wire import gm
    from medpay.wire.signing import load_private_key, public_key_pem

    path = data_dir / "simulator.json"
    gateway_public = public_key_pem(load_private_key(gateway_key_pem))
    gateway_sm2 = gm.public_key_pem(gm.load_private_key(_gateway_sm2_signing_key(data_dir)))
    config = load_config(path) if path.exists() else default_config()
    if gateway_public not in config.gateway_public_keys:
        config = msgspec.structs.replace(config, gateway_public_keys=[gateway_public])
    if gateway_sm2 not in config.gateway_sm2_public_keys:
        config = msgspec.structs.replace(config, gateway_sm2_public_keys=[gateway_sm2])
    save_config(config, path)
    return config


def _gateway_sm2_signing_key(data_dir: Path) -> str:
    """The gateway's development SM2 key for cainfo towards national-profile provinces."""
    return _dev_sm2_key(data_dir, "gateway-sm2-signing-key.pem")


async def _run(settings: Settings, *, simulator_port: int) -> None:
    """Everything, for development: database, simulator (31 provinces), gateway."""
    import asyncpg

    from medpay.app import create_app
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate
    from medpay.security.identity import DevelopmentIssuer
    from medpay.seed import seed_sample_data
    from medpay.serving import start_server, wait_for_stop_signal
    from medpay.settlement.adapters.config import ClearingConfig
    from medpay.simulator.app import create_simulator_app
    from medpay.simulator.config import clearing_provinces
    from medpay.simulator.seed import seed_sample_persons
    from medpay.simulator.store import SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA

    settings = _with_dev_identity(settings)
    data_dir = settings.data_path
    gateway_key = _gateway_signing_key(data_dir)
    simulator_config = _simulator_config(data_dir, gateway_key)
    async with database(settings.database_url, data_dir, announce=True) as dsn:
        try:
            await migrate(dsn, extra=((SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA),))
        except asyncpg.ObjectNotInPrerequisiteStateError as refused:
            raise SystemExit(
                f"{refused}\nThe development database in {data_dir / 'pgdata'} holds persons "
                "from before they were kept by reference: remove that folder and run again."
            ) from None
        settings = msgspec.structs.replace(settings, database_url=dsn)
        pool = await create_pool(dsn, min_size=1, max_size=10)
        try:
            await seed_sample_data(pool)
            await seed_sample_persons(pool)
            record = await ensure_dev_app(pool, data_dir)
            # The simulator reports results by callback too, to the gateway's port.
            simulator_config = msgspec.structs.replace(
                simulator_config, callback_base_url=f"http://{settings.host}:{settings.port}"
            )
            simulator = await start_server(
                create_simulator_app(simulator_config, pool), settings.host, simulator_port
            )
            try:
                clearing = msgspec.convert(
                    {
                        "signing_key_pem": gateway_key,
                        "sm2_signing_key_pem": _gateway_sm2_signing_key(data_dir),
                        "provinces": clearing_provinces(simulator_config, simulator.url),
                    },
                    ClearingConfig,
                )
                _save_clearing(data_dir, clearing)
                gateway = await start_server(
                    create_app(settings, clearing=clearing), settings.host, settings.port
                )
                try:
                    _save_run_info(data_dir, gateway.url, simulator.url, record["app_id"])
                    token = DevelopmentIssuer.load_or_create(data_dir).issue(
                        "33000000000000000001",
                        audience=settings.identity_audience,
                        ttl_seconds=4 * 3600,  # the longest life the gateway accepts
                    )
                    print(f"Simulator (31 provinces) {simulator.url}  (GET /health)")
                    print(
                        f"Gateway                  {gateway.url}  (OpenAPI: {gateway.url}/schema/openapi.json)"
                    )
                    print(
                        f"Development app          {record['app_id']}  key: {data_dir / DEV_APP_FILE}"
                    )
                    print(f"Patient token (8 h)      {token}")
                    print(
                        f"Operator console         {gateway.url}/console/  (a login: medpay operators add NAME --login USERNAME)"
                    )
                    print(
                        "Try it:                  medpay demo      (Ctrl-C here stops everything)",
                        flush=True,
                    )
                    await wait_for_stop_signal()
                finally:
                    await gateway.stop()
            finally:
                await simulator.stop()
        finally:
            await pool.close()


def _save_clearing(data_dir: Path, clearing: ClearingConfig) -> None:
    """The clearing configuration of this run (it holds the gateway's key: owner only)."""
    import os

    fd = os.open(data_dir / CLEARING_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(msgspec.json.format(msgspec.json.encode(clearing), indent=2))


def _save_run_info(data_dir: Path, gateway_url: str, simulator_url: str, app_id: str) -> None:
    """Where ``medpay run`` listens, for ``medpay demo`` and the scripts."""
    (data_dir / "run.json").write_text(
        json.dumps(
            {"gateway_url": gateway_url, "simulator_url": simulator_url, "app_id": app_id}, indent=2
        )
    )


async def _serve_simulator(
    config: SimulatorConfig, dsn: str, host: str = "127.0.0.1", port: int = 8700
) -> None:
    """Migrate, seed the sample persons and serve the simulator until cancelled.

    For the ``medpay simulator`` command: cancel the awaiting task (or deliver
    SIGINT to a loop that does so) to stop it; the server and pool are closed here.
    """
    from medpay.db.pool import connection, create_pool
    from medpay.serving import start_server
    from medpay.simulator.app import create_simulator_app
    from medpay.simulator.seed import seed_sample_persons
    from medpay.simulator.store import migrate

    pool = await create_pool(dsn, min_size=1, max_size=10)
    try:
        async with connection(pool) as conn:
            await migrate(conn)
        await seed_sample_persons(pool)
        server = await start_server(create_simulator_app(config, pool), host, port)
        try:
            await server.wait()
        finally:
            await server.stop()
    finally:
        await pool.close()


async def _simulator(settings: Settings, config_path: Path | None, port: int) -> None:
    """The provincial platform simulator alone, with its own database schema."""
    from medpay.db.runtime import database
    from medpay.serving import wait_for_stop_signal
    from medpay.simulator.config import load_config

    if config_path is not None:
        config = load_config(config_path)
    else:
        config = _simulator_config(settings.data_path, _gateway_signing_key(settings.data_path))
    async with database(settings.database_url, settings.data_path, announce=True) as dsn:
        serving = asyncio.create_task(_serve_simulator(config, dsn, settings.host, port))
        stop = asyncio.create_task(wait_for_stop_signal())
        print(
            f"Simulator ({len(config.provinces)} provinces) http://{settings.host}:{port}",
            flush=True,
        )
        done, _ = await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (serving, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


async def _serve(settings: Settings) -> None:
    """The gateway alone (production-like; provinces from MEDPAY_CLEARING_CONFIG_FILE)."""
    from medpay.app import create_app
    from medpay.db.runtime import database, migrate
    from medpay.serving import start_server, wait_for_stop_signal

    settings = _with_dev_identity(settings)
    async with database(settings.database_url, settings.data_path, announce=True) as dsn:
        await migrate(dsn)
        settings = msgspec.structs.replace(settings, database_url=dsn)
        gateway = await start_server(
            create_app(settings),
            settings.host,
            settings.port,
            graceful_shutdown_s=settings.shutdown_grace_seconds,
            keep_alive_s=settings.keep_alive_seconds,
            header_read_s=settings.header_read_seconds,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        )
        try:
            print(f"Gateway {gateway.url}", flush=True)
            await wait_for_stop_signal()
        finally:
            await gateway.stop()


# --- the books: ledger, reconcile, clearing ------------------------------------------------------


@contextlib.asynccontextmanager
async def _books_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database

    async with database(settings.database_url, settings.data_path) as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=6, application_name="medpay-books")
        try:
            yield pool
        finally:
            await pool.close()


def _print(value: object, as_json: bool, text: str) -> None:
    if as_json:
        print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())
    else:
        print(text)


async def _ledger(settings: Settings, args: argparse.Namespace) -> int:
    from medpay.books.service import check_books
    from medpay.books.text import balances_text, check_text
    from medpay.ledger.service import balances

    async with _books_pool(settings) as pool:
        if args.ledger_command == "check":
            check = await check_books(pool, limit=args.limit)
            _print(check, args.json, check_text(check))
            return 0 if check.ok else 1
        found = await balances(pool, account=args.account, prefix=args.prefix, as_of=args.as_of)
        _print(found, args.json, balances_text(found))
        return 0


def _clearing_config(settings: Settings) -> ClearingConfig:
    """The provinces to ask: MEDPAY_CLEARING_CONFIG_FILE, or what ``medpay run`` left."""
    from medpay.settlement.adapters.registry import load_clearing_config

    path = settings.clearing_config_file or settings.data_path / CLEARING_FILE
    if not Path(path).exists():
        raise SystemExit(
            "no clearing configuration: set MEDPAY_CLEARING_CONFIG_FILE, or start `medpay run`"
            f" (it writes {settings.data_path / CLEARING_FILE})"
        )
    return load_clearing_config(path)


@contextlib.asynccontextmanager
async def _reconciler(settings: Settings) -> AsyncIterator[Reconciler]:
    from medpay.payments.flow import PaymentFlow
    from medpay.reconciliation.service import Reconciler
    from medpay.settlement.adapters.national_http import new_http_client
    from medpay.settlement.adapters.registry import build_adapters
    from medpay.settlement.routing import ProvinceDirectory

    clearing = _clearing_config(settings)
    async with _books_pool(settings) as pool, new_http_client() as http:
        provinces = ProvinceDirectory(build_adapters(clearing, http))
        flow = PaymentFlow(pool, provinces, settle_grace_seconds=settings.settle_grace_seconds)
        yield Reconciler(pool, flow)


async def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from medpay.books.text import day_text, reconciliation_text

    async with _reconciler(settings) as reconciler:
        if args.all:
            day = await reconciler.reconcile_day(args.date, triggered_by="command")
            _print(day, args.json, day_text(day))
            return 0 if day.ok else 1
        report = await reconciler.reconcile(args.province, args.date, triggered_by="command")
        _print(report, args.json, reconciliation_text(report))
        return 0 if report.outcome in ("balanced", "explained") else 1


async def _clearing(settings: Settings, args: argparse.Namespace) -> int:
    from medpay.books.text import clearing_text
    from medpay.clearing.service import clearing_matrix, close_period

    async with _books_pool(settings) as pool:
        if args.close:
            matrix = await close_period(pool, args.period, closed_by="command")
        else:
            matrix = await clearing_matrix(pool, args.period)
    _print(matrix, args.json, clearing_text(matrix))
    return 0 if matrix.net_sum_fen == 0 else 1


def _books(settings: Settings, args: argparse.Namespace) -> int:
    """Run one books command; a refusal (bad period, unknown province) is exit status 2."""
    from medpay.errors import DomainError

    commands = {"ledger": _ledger, "reconcile": _reconcile, "clearing": _clearing}
    try:
        return asyncio.run(commands[args.command](settings, args))
    except DomainError as refusal:
        print(f"{args.command}: {refusal.code}: {refusal.detail or refusal.title}", file=sys.stderr)
        return 2


def _operators(settings: Settings, args: argparse.Namespace) -> int:
    """``medpay operators add|login``; a refusal (a weak password, a taken username) is status 2."""
    from medpay.errors import DomainError

    try:
        if args.operators_command == "add":
            asyncio.run(_operators_add(settings, args.name, args.algorithm, args.login))
        else:
            asyncio.run(_operators_login(settings, args.operator_id, args.username))
    except DomainError as refusal:
        print(f"operators: {refusal.code}: {refusal.detail or refusal.title}", file=sys.stderr)
        return 2
    return 0


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if moment.tzinfo is None:
        from medpay.clock import CHINA

        moment = moment.replace(tzinfo=CHINA)  # a time without a zone is China time
    return moment


def _books_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser("ledger", help="question the ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    show = ledger.add_parser("balances", help="account balances from the journals")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--account", help="one account, e.g. fund_receivable:330000")
    which.add_argument("--prefix", help="every account it begins, e.g. fund_receivable:")
    show.add_argument("--as-of", type=_moment, help="as of this time (ISO; China time if no zone)")
    show.add_argument("--json", action="store_true")
    check = ledger.add_parser("check", help="verify every invariant; non-zero exit naming failures")
    check.add_argument("--limit", type=int, default=20, help="failures listed per invariant")
    check.add_argument("--json", action="store_true")

    reconcile = commands.add_parser(
        "reconcile", help="compare a China day with the provinces' statements, resolve, report"
    )
    target = reconcile.add_mutually_exclusive_group(required=True)
    target.add_argument("--province", help="a provincial code, e.g. 330000")
    target.add_argument("--all", action="store_true", help="every connected province")
    reconcile.add_argument("--date", type=_day, required=True, help="the China day, YYYY-MM-DD")
    reconcile.add_argument("--json", action="store_true")

    clearing = commands.add_parser("clearing", help="a month's clearing between provinces")
    clearing.add_argument("--period", required=True, help="YYYY-MM")
    clearing.add_argument("--close", action="store_true", help="close (freeze) the period")
    clearing.add_argument("--json", action="store_true")


# --- main ----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medpay", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the whole system locally: database, simulator, gateway"
    )
    run.add_argument("--simulator-port", type=int, default=8700)
    simulator = commands.add_parser("simulator", help="run the provincial platform simulator alone")
    simulator.add_argument(
        "--config", type=Path, help="a simulator configuration (JSON); default: all 31"
    )
    simulator.add_argument("--port", type=int, default=8700)
    serve = commands.add_parser("serve", help="run the gateway only")
    serve.add_argument("--port", type=int)
    commands.add_parser("migrate", help="apply database migrations (idempotent)")
    seed = commands.add_parser(
        "seed", help="a synthetic insured population (benchmark, load tests)"
    )
    seed.add_argument("--persons", type=int, required=True, help="how many insured persons")
    seed.add_argument("--seed", type=int, default=1, help="0 to 999: which population")
    seed.add_argument("--out", type=Path, help="population file (default .medpay/population.json)")
    seed.add_argument("--no-simulator", action="store_true", help="the gateway's registry only")
    seed.add_argument("--prescriber-keys", type=Path, help="write new keys of the prescribers here")
    commands.add_parser(
        "demo", help="send one cross-provincial online revisit to `medpay run` and print the split"
    )

    openapi = commands.add_parser("openapi", help="write the OpenAPI document the app serves")
    openapi.add_argument("--output", type=Path, default=Path("openapi/openapi.json"))
    openapi.add_argument("--check", action="store_true", help="fail if the file differs")

    apps = commands.add_parser("apps", help="the registry of patient apps").add_subparsers(
        dest="apps_command", required=True
    )
    add = apps.add_parser("add", help="register an app and print a new development key pair")
    add.add_argument("name")
    add.add_argument(
        "--algorithm",
        choices=["ed25519", "ecdsa-p256", "sm2"],
        default="ed25519",
        help="the key type the app signs with (sm2: SM3withSM2, the national algorithm)",
    )
    add.add_argument(
        "--national",
        action="store_true",
        help="an app on the national mobile-payment interface (/v1/mobile): appId, appSecret, SM2",
    )
    for verb in ("suspend", "activate"):
        apps.add_parser(verb, help=f"{verb} an app").add_argument("app_id")

    agencies = commands.add_parser("agencies", help="insurance agencies").add_subparsers(
        dest="agencies_command", required=True
    )
    agency_add = agencies.add_parser(
        "add", help="register an agency and print a development key pair"
    )
    agency_add.add_argument("name")
    agency_add.add_argument("area", help="the coordination area it runs (6-digit admdvs)")
    agency_add.add_argument("--algorithm", choices=["ed25519", "ecdsa-p256"], default="ed25519")
    operators = commands.add_parser("operators", help="medpay operators").add_subparsers(
        dest="operators_command", required=True
    )
    operator_add = operators.add_parser(
        "add", help="register an operator and print a development key pair"
    )
    operator_add.add_argument("name")
    operator_add.add_argument("--algorithm", choices=["ed25519", "ecdsa-p256"], default="ed25519")
    password_help = (
        f"the password comes from {OPERATOR_PASSWORD_VARIABLE}, else standard input (one line),"
        " else it is asked twice; never from the command line"
    )
    operator_add.add_argument(
        "--login", metavar="USERNAME", help=f"also a login for the console; {password_help}"
    )
    operator_login = operators.add_parser(
        "login",
        help="give an operator a console login, or a new username or password (its sessions end)",
    )
    operator_login.add_argument("operator_id")
    operator_login.add_argument("username", help=password_help)

    tokens = commands.add_parser("tokens", help="the development identity issuer").add_subparsers(
        dest="tokens_command", required=True
    )
    issue = tokens.add_parser("issue", help="mint an identity token for a person number")
    issue.add_argument("psn_no")
    issue.add_argument("--no-face", action="store_true", help="a token without face verification")
    issue.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    issue.add_argument(
        "--pay-auth",
        action="store_true",
        help="a payAuthNo for the national interface (the payment audience) instead",
    )
    _books_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medpay`` console script."""
    args = _parser().parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per province call is noise here
    settings = load_settings()
    if args.command != "openapi":
        settings = _with_person_key(settings)
    if args.command in ("run", "serve", "simulator"):
        from medpay.observability.logs import configure_logging

        configure_logging(log_format=settings.log_format, level=settings.log_level)
    try:
        if args.command == "run":
            serve_forever(_run(settings, simulator_port=args.simulator_port))
        elif args.command == "serve":
            if args.port:
                settings = msgspec.structs.replace(settings, port=args.port)
            serve_forever(_serve(settings))
        elif args.command == "simulator":
            serve_forever(_simulator(settings, args.config, args.port))
        elif args.command == "demo":
            from medpay.demo import run_demo

            return run_demo(settings.data_path)
        elif args.command == "seed":
            from medpay.population import seed_command

            return asyncio.run(
                seed_command(
                    settings,
                    persons=args.persons,
                    seed=args.seed,
                    out=args.out,
                    simulator=not args.no_simulator,
                    prescriber_keys=args.prescriber_keys,
                )
            )
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "openapi":
            return _openapi(args.output, args.check)
        elif args.command == "apps":
            if args.apps_command == "add" and args.national:
                asyncio.run(_apps_add_national(settings, args.name))
            elif args.apps_command == "add":
                asyncio.run(_apps_add(settings, args.name, args.algorithm))
            else:
                status = "suspended" if args.apps_command == "suspend" else "active"
                return asyncio.run(_apps_set_status(settings, args.app_id, status))
        elif args.command == "agencies":
            asyncio.run(_agencies_add(settings, args.name, args.area, args.algorithm))
        elif args.command == "operators":
            return _operators(settings, args)
        elif args.command == "tokens":
            _tokens_issue(settings, args.psn_no, not args.no_face, args.ttl, args.pay_auth)
        elif args.command in ("ledger", "reconcile", "clearing"):
            return _books(settings, args)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
