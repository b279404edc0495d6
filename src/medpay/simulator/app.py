"""The provincial platform simulator as an HTTP service: one national endpoint per province.

``POST /provinces/{admdvs}/api`` receives the national request envelope (DOMAIN.md
section 8), checks its ``cainfo`` against the gateway's keys and that the insured
area belongs to this province (the insured place settles only its own insured,
section 2), dispatches on ``infno`` and answers a signed envelope. Every answer the
protocol can express is HTTP 200 with an ``infcode``, negative for an error, so a
malformed request gets a clear error envelope, never a 500. Only two other statuses:
404 (with an unsigned envelope) for a province not simulated here, and 504 from the
``drop`` fault.

Late, twice, or never (our profile of section 8): an asynchronous province answers a
2207 "processing" and settles it ``async_delay_ms`` later in a background task; with a
``callback_base_url``, every settlement, reversal and asynchronous outcome is also
reported by a signed callback, sent after the commit by :mod:`.callbacks`. Background
tasks belong to the app's lifespan: cancelled at shutdown, and asynchronous work
still "processing" in the database is picked up again at the next start.

The ``/admin`` endpoints exist for tests and chaos runs: **loopback only, no
authentication**. Never expose the simulator beyond the loopback interface.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import itertools
import logging
import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, PermissionDeniedException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from medpay.clock import backoff_seconds
from medpay.db.pool import connection, create_pool
from medpay.simulator import store
from medpay.simulator.callbacks import CallbackDelivery, CallbackSender, TaskGroup
from medpay.simulator.codes import ANSWER_MESSAGES, AnswerCode, SimulatorCode
from medpay.simulator.config import FaultKnobs, SimulatorConfig, check_loopback_url
from medpay.simulator.profiles import MalformedInput, ProvinceWire, province_wire
from medpay.simulator.service import (
    Call,
    ProvinceError,
    complete_async,
    encode_response,
    process,
)
from medpay.wire.national import (
    InfCode,
    decode_input,
    encode,
    province_of,
    request_decoder,
)
from medpay.wire.signing import SignatureError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = [
    "BasicFundChange",
    "CallbackDeliveriesView",
    "CallbackTarget",
    "EnrolmentChange",
    "PersonView",
    "ProvinceSettings",
    "ReceivedRequest",
    "ReceivedRequestsView",
    "SettlementsSummary",
    "SettlementsView",
    "SimulatorState",
    "YearTotalsView",
    "create_simulator_app",
    "serve_next",
]

logger = logging.getLogger("medpay.simulator")

_JSON = "application/json"


class YearTotalsView(msgspec.Struct, frozen=True, kw_only=True):
    """One year's totals of a person (admin view)."""

    year: int
    deductible_used_ytd_fen: int
    fund_paid_ytd_fen: int
    burden_ytd_fen: int


class PersonView(msgspec.Struct, frozen=True, kw_only=True):
    """A person's balance and year-to-date totals (admin view)."""

    psn_no: str
    name: str
    insuplc_admdvs: str
    insutype: str
    acct_balance_fen: int
    maf_eligible: bool
    totals: list[YearTotalsView]


class EnrolmentChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A person's new insured area, scheme and personal account balance (admin)."""

    insuplc_admdvs: Annotated[str, msgspec.Meta(pattern=r"^[1-6][0-9]{5}$")]
    insutype: Literal["310", "390"]
    acct_balance_fen: Annotated[int, msgspec.Meta(ge=0)]


class ProvinceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A province's runtime settings (admin): synchronous or asynchronous 2207."""

    async_mode: bool


class CallbackTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where callbacks go (admin): a loopback base URL, or None for no callbacks."""

    callback_base_url: str | None = None

    def __post_init__(self) -> None:
        if self.callback_base_url is not None:
            check_loopback_url(self.callback_base_url)


class BasicFundChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A basic-fund figure (hifp_pay) to plant in a province's statement (admin)."""

    hifp_pay: Annotated[int, msgspec.Meta(ge=0, le=10**13)]


class CallbackDeliveriesView(msgspec.Struct, frozen=True, kw_only=True):
    """The callback deliveries, oldest first (admin; the newest 10000 are kept)."""

    deliveries: list[CallbackDelivery]


class ReceivedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A national request as it arrived (admin): which message, and its trace header."""

    province: str
    infno: str
    msgid: str
    traceparent: str | None


class ReceivedRequestsView(msgspec.Struct, frozen=True, kw_only=True):
    """The newest requests received, oldest first (admin; the newest 1000 are kept)."""

    requests: list[ReceivedRequest]


class SettlementsSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and sums by state, and asynchronous 2207s by state (province filter only)."""

    settled: store.StateTotals
    reversed: store.StateTotals
    async_processing: int
    async_settled: int
    async_failed: int


class SettlementsView(msgspec.Struct, frozen=True, kw_only=True):
    """A page of settlements for a reconciliation, and the summary of the whole filter."""

    settlements: list[store.ReconciliationRow]
    next_after: str | None  # pass as ``after`` for the next page; None: last page
    summary: SettlementsSummary


#: How often an asynchronous settlement is tried when the database fails (then: at restart).
_ASYNC_ATTEMPTS = 5


class SimulatorState:
    """Runtime state: keys, knobs and settings (changeable at runtime), pool, tasks, callbacks."""

    def __init__(self, config: SimulatorConfig, pool: asyncpg.Pool | None = None) -> None:
        self.config = config
        self.provinces = {p.admdvs: p for p in config.provinces}
        #: How each province signs and writes amounts: our profile or the national one.
        self.wires: dict[str, ProvinceWire] = {}
        for province in config.provinces:
            if province.private_key_pem is None:
                raise ValueError(f"province {province.admdvs} has no key; load the config first")
            self.wires[province.admdvs] = province_wire(
                province.profile,
                province.private_key_pem,
                gateway_keys=config.gateway_public_keys,
                gateway_sm2_keys=config.gateway_sm2_public_keys,
                required=config.require_signature,
            )
        self.faults: dict[str, FaultKnobs] = {p.admdvs: p.faults for p in config.provinces}
        self.async_modes: dict[str, bool] = {p.admdvs: p.async_mode for p in config.provinces}
        self.policies = {p.admdvs: p.policy for p in config.provinces}
        self.tasks = TaskGroup()
        self.callbacks = CallbackSender(
            config, self.wires, self.tasks, lambda admdvs: self.faults[admdvs]
        )
        self.randoms = {
            p.admdvs: random.Random(None if config.seed is None else f"{config.seed}:{p.admdvs}")  # noqa: S311 - fault draws, not secrets
            for p in config.provinces
        }
        self.pool = pool
        #: The DSN of a pool the app opens and closes itself (None: ``pool`` is lent to it).
        self.owned_dsn: str | None = None
        #: Whether a lifespan is open (``serve_next`` waits for it to end).
        self.running = False
        #: What arrived lately (trace propagation is checked against it).
        self.received: collections.deque[ReceivedRequest] = collections.deque(maxlen=1000)
        self._serials = itertools.count(random.randrange(10**9))  # noqa: S311 - an id, not a secret

    def serial(self) -> int:
        """A serial for answers made without the database (refusals before any work)."""
        return next(self._serials)

    def complete_later(self, admdvs: str, msgid: str, delay_s: float) -> None:
        """Settle the asynchronous 2207 ``msgid`` in ``delay_s``, then send its callback."""
        self.tasks.spawn(self._complete(admdvs, msgid, delay_s), name=f"async 2207 {msgid}")

    async def _complete(self, admdvs: str, msgid: str, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)  # no transaction is open while waiting
        for attempt in range(_ASYNC_ATTEMPTS):
            assert self.pool is not None, "the pool is opened by the lifespan"
            try:
                callback = await complete_async(self.pool, msgid, self.policies)
            except Exception:
                logger.exception("asynchronous 2207 %s failed (attempt %d)", msgid, attempt + 1)
                await asyncio.sleep(backoff_seconds(attempt + 1, first=0.2))
                continue
            if callback is not None:
                self.callbacks.send(admdvs, callback)
            return
        logger.error("asynchronous 2207 %s left processing until the next start", msgid)

    async def resume_async(self) -> int:
        """Schedule the asynchronous 2207s still processing (after a restart); return how many."""
        assert self.pool is not None
        async with connection(self.pool) as conn:
            pending = await store.list_processing_async(conn)
        now = dt.datetime.now(dt.UTC)
        resumed = 0
        for row in pending:
            if row.province in self.provinces:
                self.complete_later(
                    row.province, row.msgid, max(0.0, (row.due_at - now).total_seconds())
                )
                resumed += 1
        return resumed

    def answer(
        self, admdvs: str, received_at: dt.datetime, infcode: AnswerCode, message: str | None = None
    ) -> Response[bytes]:
        """A signed error envelope."""
        body = encode_response(
            admdvs,
            received_at,
            self.serial(),
            infcode=int(infcode),
            err_msg=message or ANSWER_MESSAGES[infcode],
        )
        return self.signed(admdvs, body)

    def signed(self, admdvs: str, body: bytes) -> Response[bytes]:
        """An answer made in fen, as the province sends it on its profile, HTTP 200."""
        sent, headers = self.wires[admdvs].answer(body)
        return Response(sent, status_code=200, media_type=_JSON, headers=headers)


#: The state, injected by name into every handler.
Sim = NamedDependency[SimulatorState]


def _state(state: State) -> SimulatorState:
    return state.simulator


def _loopback_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admin endpoints answer loopback clients only (they have no authentication)."""
    host = connection.client.host if connection.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise PermissionDeniedException("admin endpoints are for loopback clients only")


def _simulated(admdvs: str, sim: SimulatorState) -> None:
    """Admin asks of a province: 404 for one not simulated here."""
    if admdvs not in sim.faults:
        raise NotFoundException(f"province {admdvs} is not simulated here")


@post(
    "/provinces/{admdvs:str}/api",
    status_code=200,
    operation_id="provinceNationalApi",
    tags=["province"],
    summary="National transaction endpoint of one simulated province",
)
async def province_api(
    admdvs: FromPath[str], request: Request[Any, Any, Any], sim: Sim
) -> Response[bytes]:
    """Verify, dispatch and answer one national request (module docstring)."""
    received_at = dt.datetime.now(dt.UTC)
    if admdvs not in sim.provinces:
        body = encode_response(
            "000000",
            received_at,
            sim.serial(),
            infcode=int(SimulatorCode.WRONG_PROVINCE),
            err_msg=f"province {admdvs} is not simulated here",
        )
        return Response(body, status_code=404, media_type=_JSON)
    faults = sim.faults[admdvs]
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)

    body = await request.body()
    wire = sim.wires[admdvs]
    try:
        envelope = request_decoder().decode(body)
        input_builtins = wire.read_input(envelope.input)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return sim.answer(admdvs, received_at, SimulatorCode.MALFORMED, f"malformed request: {exc}")
    sim.received.append(
        ReceivedRequest(
            province=admdvs,
            infno=envelope.infno,
            msgid=envelope.msgid,
            traceparent=request.headers.get("traceparent"),
        )
    )
    try:  # the signature covers the envelope as sent (on the national profile: yuan)
        wire.check_signature({**msgspec.structs.asdict(envelope), "input": input_builtins})
    except SignatureError as exc:
        return sim.answer(admdvs, received_at, InfCode.BAD_SIGNATURE, str(exc))
    try:
        input_builtins = wire.input_in_fen(input_builtins)
    except MalformedInput as exc:
        return sim.answer(admdvs, received_at, SimulatorCode.MALFORMED, str(exc))
    if province_of(envelope.insuplc_admdvs) != admdvs:
        return sim.answer(
            admdvs,
            received_at,
            SimulatorCode.WRONG_PROVINCE,
            f"insured area {envelope.insuplc_admdvs} is not in province {admdvs}",
        )
    try:
        typed_input = decode_input(envelope.infno, encode(input_builtins))
    except KeyError:
        return sim.answer(
            admdvs,
            received_at,
            SimulatorCode.UNSUPPORTED_INFNO,
            f"infno {envelope.infno} not served",
        )
    except msgspec.ValidationError as exc:
        return sim.answer(admdvs, received_at, SimulatorCode.MALFORMED, f"malformed input: {exc}")

    rng = sim.randoms[admdvs]
    inject_error = rng.random() < faults.error_rate  # every draw every time: reproducible
    drop = rng.random() < faults.drop_rate
    slow = rng.random() < faults.slow_rate
    if inject_error:
        return sim.answer(admdvs, received_at, InfCode.GENERIC, "injected fault: province error")

    call = Call.of(
        envelope,
        province=admdvs,
        policy=sim.provinces[admdvs].policy,
        input=typed_input,
        input_builtins=input_builtins,
        received_at=received_at,
        async_mode=sim.async_modes[admdvs],
        async_delay_ms=faults.async_delay_ms,
    )
    assert sim.pool is not None, "the pool is opened by the lifespan"
    try:
        processed = await process(sim.pool, call)
    except ProvinceError as exc:  # raised outside a savepoint: nothing was done
        return sim.answer(admdvs, received_at, exc.infcode, exc.message)
    except Exception:
        logger.exception("province %s failed on %s %s", admdvs, envelope.infno, envelope.msgid)
        return sim.answer(admdvs, received_at, InfCode.GENERIC, "province internal error")
    # Committed: from here on, the callback may well overtake the answer.
    if processed.callback is not None:
        sim.callbacks.send(admdvs, processed.callback)
    if processed.accepted_async:
        sim.complete_later(admdvs, envelope.msgid, faults.async_delay_ms / 1000)
    if drop:
        # The work is committed; the answer is lost, as when a network drops it.
        logger.info("dropping the answer to %s (fault)", envelope.msgid)
        await asyncio.sleep(faults.drop_hold_s)
        return Response(b"", status_code=504)
    if slow:
        # The work is committed; the answer comes, but later than the gateway waits.
        logger.info("answering %s after %d ms (fault)", envelope.msgid, faults.slow_ms)
        await asyncio.sleep(faults.slow_ms / 1000)
    return sim.signed(admdvs, processed.body)


@put("/provinces/{admdvs:str}/faults", operation_id="adminSetProvinceFaults")
async def set_faults(admdvs: FromPath[str], data: JSONBody[FaultKnobs], sim: Sim) -> FaultKnobs:
    """Replace a province's fault knobs at runtime (tests, chaos)."""
    _simulated(admdvs, sim)
    sim.faults[admdvs] = data
    return data


@get("/provinces/{admdvs:str}/faults", operation_id="adminGetProvinceFaults")
async def get_faults(admdvs: FromPath[str], sim: Sim) -> FaultKnobs:
    """A province's current fault knobs."""
    _simulated(admdvs, sim)
    return sim.faults[admdvs]


async def _person_view(
    conn: asyncpg.Connection, psn_no: str, person: store.PersonRow | None
) -> PersonView:
    """A person as the admin API shows them (the stored province is left out); 404 if none."""
    if person is None:
        raise NotFoundException(f"person {psn_no} unknown")
    totals = await store.list_year_totals(conn, psn_no)
    fields = msgspec.structs.asdict(person) | {
        "totals": [msgspec.structs.asdict(t) for t in totals]
    }
    return msgspec.convert(fields, PersonView)


@get("/persons/{psn_no:str}", operation_id="adminGetPerson")
async def get_person(psn_no: FromPath[str], sim: Sim) -> PersonView:
    """A person's balance and year-to-date totals, to check effects to the fen."""
    assert sim.pool is not None
    async with connection(sim.pool) as conn:
        return await _person_view(conn, psn_no, await store.get_person(conn, psn_no))


@put("/persons/{psn_no:str}/enrolment", operation_id="adminMoveEnrolment")
async def move_enrolment(
    psn_no: FromPath[str], data: JSONBody[EnrolmentChange], sim: Sim
) -> PersonView:
    """Enrol a person in another insured area, with the balance that moved there.

    This stands for the provinces' own systems, outside medpay: once a relationship
    transfer is accepted (DOMAIN.md section 6), the new province holds the person's
    record and the old one no longer settles for them.
    """
    if data.insutype == "390" and data.acct_balance_fen:
        raise ValidationException("residents (390) hold no personal account balance")
    assert sim.pool is not None
    async with connection(sim.pool) as conn, conn.transaction():
        person = await store.move_enrolment(
            conn,
            psn_no,
            insuplc_admdvs=data.insuplc_admdvs,
            insutype=data.insutype,
            acct_balance_fen=data.acct_balance_fen,
        )
        return await _person_view(conn, psn_no, person)


@put("/provinces/{admdvs:str}/settings", operation_id="adminSetProvinceSettings")
async def set_settings(
    admdvs: FromPath[str], data: JSONBody[ProvinceSettings], sim: Sim
) -> ProvinceSettings:
    """Switch a province between synchronous and asynchronous 2207 at runtime."""
    _simulated(admdvs, sim)
    sim.async_modes[admdvs] = data.async_mode
    return data


@get("/provinces/{admdvs:str}/settings", operation_id="adminGetProvinceSettings")
async def get_settings(admdvs: FromPath[str], sim: Sim) -> ProvinceSettings:
    """A province's current runtime settings."""
    _simulated(admdvs, sim)
    return ProvinceSettings(async_mode=sim.async_modes[admdvs])


@put("/callbacks/target", operation_id="adminSetCallbackTarget")
async def set_callback_target(data: JSONBody[CallbackTarget], sim: Sim) -> CallbackTarget:
    """Send later callbacks to another loopback base URL, or none (null)."""
    sim.callbacks.set_base_url(data.callback_base_url)
    return data


@get("/callbacks/target", operation_id="adminGetCallbackTarget")
async def get_callback_target(sim: Sim) -> CallbackTarget:
    """Where callbacks go now."""
    return CallbackTarget(callback_base_url=sim.callbacks.base_url)


@get("/callbacks", operation_id="adminListCallbackDeliveries")
async def list_callback_deliveries(
    sim: Sim,
    province: FromQuery[str | None] = None,
    ref_msgid: FromQuery[str | None] = None,
    callback_id: FromQuery[str | None] = None,
) -> CallbackDeliveriesView:
    """Every callback delivery, dropped and duplicated ones included, oldest first."""
    return CallbackDeliveriesView(
        deliveries=[
            delivery
            for delivery in sim.callbacks.log
            if (province is None or delivery.province == province)
            and (ref_msgid is None or delivery.ref_msgid == ref_msgid)
            and (callback_id is None or delivery.callback_id == callback_id)
        ]
    )


@get("/settlements", operation_id="adminListSettlements")
async def list_settlements(
    sim: Sim,
    province: FromQuery[str | None] = None,
    mdtrt_id: FromQuery[str | None] = None,
    psn_no: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
) -> SettlementsView:
    """Every settlement the simulator made and whether it was reversed, for reconciliation.

    One row per 2207 settled (``msgid``), with its 2208 (``reversal_msgid``) once
    reversed: what the chaos run compares with the gateway's records (DOMAIN.md
    section 7). Pages in ``setl_id`` order: pass ``next_after`` as ``after``.
    """
    assert sim.pool is not None
    filters = {"province": province, "mdtrt_id": mdtrt_id, "psn_no": psn_no}
    async with (
        connection(sim.pool) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):  # one snapshot: the page and the summary agree
        rows = await store.list_settlements(conn, **filters, after=after, limit=limit)
        totals = await store.settlement_totals(conn, **filters)
        counts = await store.async_counts(conn, province=province)
    return SettlementsView(
        settlements=rows,
        next_after=rows[-1].setl_id if len(rows) == limit else None,
        summary=SettlementsSummary(
            settled=totals["settled"],
            reversed=totals["reversed"],
            async_processing=counts["processing"],
            async_settled=counts["settled"],
            async_failed=counts["failed"],
        ),
    )


async def _reconciliation_row(conn: asyncpg.Connection, setl_id: str) -> store.ReconciliationRow:
    rows = await store.list_settlements(conn, after=None, limit=1, setl_id=setl_id)
    if not rows:
        raise NotFoundException(f"settlement {setl_id} unknown")
    return rows[0]


@delete("/settlements/{setl_id:str}", status_code=200, operation_id="adminForgetSettlement")
async def forget_settlement(setl_id: FromPath[str], sim: Sim) -> store.ReconciliationRow:
    """Plant a difference: the province's books lose a settlement, as if never made.

    Its balance and year-to-date effects are undone, 6301 no longer finds it and its
    statements no longer list it; the msgid log keeps the answer once given. For
    reconciliation tests and demonstrations (DOMAIN.md section 7).
    """
    assert sim.pool is not None
    async with connection(sim.pool) as conn, conn.transaction():
        row = await _reconciliation_row(conn, setl_id)
        await store.forget_settlement(conn, setl_id)
    return row


@put("/settlements/{setl_id:str}/basic-fund", operation_id="adminPlantBasicFund")
async def plant_basic_fund(
    setl_id: FromPath[str], data: JSONBody[BasicFundChange], sim: Sim
) -> store.ReconciliationRow:
    """Plant a difference of figures: the statement reports another hifp_pay.

    The cash share absorbs the change so the settlement still adds up; 6301 keeps the
    figures once answered. 400 when the cash share is too small to absorb it.
    """
    assert sim.pool is not None
    async with connection(sim.pool) as conn, conn.transaction():
        await _reconciliation_row(conn, setl_id)
        try:
            await store.set_basic_fund(conn, setl_id, data.hifp_pay)
        except asyncpg.CheckViolationError as exc:
            raise ValidationException("the cash share cannot absorb that figure") from exc
        return await _reconciliation_row(conn, setl_id)


@get("/requests", operation_id="adminListReceivedRequests")
async def list_received_requests(
    sim: Sim, msgid: FromQuery[str | None] = None
) -> ReceivedRequestsView:
    """The national requests received lately, with their ``traceparent`` header."""
    return ReceivedRequestsView(
        requests=[r for r in sim.received if msgid is None or r.msgid == msgid]
    )


@get("/health", operation_id="health", tags=["health"])
async def health(sim: Sim) -> dict[str, Any]:
    """Liveness, and the number of provinces served."""
    return {"status": "ok", "provinces": len(sim.provinces)}


#: The admin endpoints: loopback only, for tests and chaos runs (module docstring).
_ADMIN = Router(
    "/admin",
    guards=[_loopback_only],
    tags=["admin (loopback only)"],
    route_handlers=[
        set_faults,
        get_faults,
        set_settings,
        get_settings,
        set_callback_target,
        get_callback_target,
        list_callback_deliveries,
        list_settlements,
        forget_settlement,
        plant_basic_fund,
        list_received_requests,
        get_person,
        move_enrolment,
    ],
)


def create_simulator_app(config: SimulatorConfig, database: str | asyncpg.Pool) -> Litestar:
    """The simulator app for ``config`` on ``database`` (a DSN, owned by the app, or a pool).

    The schema must already be migrated (``store.migrate``); the runner does it.
    """
    return Litestar(
        route_handlers=[province_api, _ADMIN, health],
        dependencies={"sim": Provide(_state, sync_to_thread=False)},
        state=State({"simulator": _new_state(config, database)}),
        lifespan=[_lifespan],
        logging_config=None,
        openapi_config=OpenAPIConfig(title="medpay provincial platform simulator", version="1"),
    )


def serve_next(app: Litestar, database: str | asyncpg.Pool) -> None:
    """Make ``app``'s next lifespan a new simulator on ``database``, as a new app would be.

    For the test suite: building the app costs 20 to 40 ms (Litestar inspects every
    handler), so tests reuse one and give each its own database. Knobs, settings, the
    callback target and what was received start again from the config; refused while
    the app is running.
    """
    sim: SimulatorState = app.state.simulator
    if sim.running:
        raise RuntimeError("the simulator is running; stop it first")
    app.state.simulator = _new_state(sim.config, database)


def _new_state(config: SimulatorConfig, database: str | asyncpg.Pool) -> SimulatorState:
    sim = SimulatorState(config, None if isinstance(database, str) else database)
    sim.owned_dsn = database if isinstance(database, str) else None
    return sim


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    sim: SimulatorState = app.state.simulator
    sim.running = True
    try:
        if sim.owned_dsn is not None:
            sim.pool = await create_pool(sim.owned_dsn, min_size=1, max_size=10)
        sim.tasks.open()
        await sim.callbacks.start()
        try:
            await sim.resume_async()
            yield
        finally:
            await sim.tasks.close()  # before the pool and the client they use
            await sim.callbacks.stop()
            if sim.owned_dsn is not None:
                pool, sim.pool = sim.pool, None
                assert pool is not None
                await pool.close()
    finally:
        sim.running = False
