"""Two gateway processes on one database (issue 12, item 5): what must hold across them does.

Real OS processes (``medpay serve``), each with its own pool, memory, resolver and
notification dispatcher, on one PostgreSQL and one simulator. Started once for the
module (a process takes a second or two to start) and stopped by pid, pass or fail;
each test uses persons and keys of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar, Request, post

from medpay.channels.service import RegisteredApp, register_app, set_webhook
from medpay.client import AppSignatureAuth, InstitutionSignatureAuth
from medpay.db.pool import create_pool
from medpay.demo import DEMO_ORDER
from medpay.institutions.keys import register_institution_key
from medpay.security.identity import DevelopmentIssuer
from medpay.serving import RunningServer, start_server
from medpay.settlement.adapters.config import ClearingConfig
from medpay.simulator.app import create_simulator_app
from medpay.simulator.config import SimulatorConfig, clearing_provinces
from tests.conftest import DatabaseFactory

from .conftest import _remember, clear_of_a_rate_window_edge, problem
from .processes import GatewayProcess, gateway_environment, gateway_processes

ZHEJIANG_EMPLOYEE = "33000000000000000001"
BEIJING_RESIDENT = "11000000000000000003"  # the rate-limit burst's person, used by no other test
PER_PERSON = 10
METFORMIN = "XA10BAA075A001010101445"
MISSING = f"/v1/payments/{uuid.UUID(int=0)}"

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Webhooks:
    """The patient app's webhook endpoint on loopback: every delivery, by event id."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []

        @post("/webhook", status_code=200)
        async def webhook(request: Request) -> None:
            self.deliveries.append(request.headers["x-medpay-event-id"])

        self.app = Litestar(route_handlers=[webhook])


class Shared(msgspec.Struct, kw_only=True):
    """What the module's tests share: the database, the simulator, the two gateways."""

    pool: asyncpg.Pool
    simulator: RunningServer
    gateways: list[GatewayProcess]
    app: RegisteredApp
    issuer: DevelopmentIssuer
    webhooks: Webhooks
    institution: InstitutionSignatureAuth

    def auth(self, psn_no: str = ZHEJIANG_EMPLOYEE, **kwargs) -> AppSignatureAuth:
        return AppSignatureAuth(
            self.app.app_id, self.app.private_key_pem, self.issuer.issue(psn_no), **kwargs
        )

    def client(self, n: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.gateways[n].url, timeout=30, event_hooks={"response": [_remember]}
        )


@pytest.fixture(scope="module")
async def shared(
    database_factory: DatabaseFactory,
    simulator_config: SimulatorConfig,
    gateway_signing_key: str,
    gateway_sm2_signing_key: str,
    identity_issuer: DevelopmentIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Shared]:
    database_url = await database_factory.take()
    pool = await create_pool(database_url, min_size=1, max_size=6)
    webhooks = Webhooks()
    try:
        async with (
            await start_server(create_simulator_app(simulator_config, pool)) as simulator,
            await start_server(webhooks.app) as receiver,
        ):
            app = await register_app(pool, "Two-process app", "ed25519")
            await set_webhook(pool, app.app_id, f"{receiver.url}/webhook")
            private_pem, _ = await register_institution_key(pool, "H11010800124")
            clearing = msgspec.convert(
                {
                    "signing_key_pem": gateway_signing_key,
                    "sm2_signing_key_pem": gateway_sm2_signing_key,
                    "provinces": clearing_provinces(
                        simulator_config, simulator.url, read_timeout_s=2.0
                    ),
                },
                ClearingConfig,
            )
            folder = tmp_path_factory.mktemp("two-gateways")
            env = gateway_environment(
                folder,
                database_url,
                clearing,
                identity_issuer,
                {
                    "MEDPAY_RATE_LIMIT_PER_PERSON": str(PER_PERSON),
                    "MEDPAY_SETTLE_GRACE_SECONDS": "1",
                },
            )
            async with gateway_processes(2, env, folder) as gateways:
                yield Shared(
                    pool=pool,
                    simulator=simulator,
                    gateways=gateways,
                    app=app,
                    issuer=identity_issuer,
                    webhooks=webhooks,
                    institution=InstitutionSignatureAuth("H11010800124", private_pem),
                )
    finally:
        await pool.close()
        database_factory.release(database_url)


async def _pay(client: httpx.AsyncClient, auth, key: str, order=DEMO_ORDER) -> httpx.Response:
    return await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": key}, auth=auth
    )


async def _eventually(probe, timeout_s: float = 20.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if value := await probe():
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s")


async def test_a_nonce_spent_on_one_process_is_refused_on_the_other(shared: Shared) -> None:
    once = shared.auth(nonce=lambda: "two-process-nonce-0001")
    async with shared.client(0) as one, shared.client(1) as two:
        first = await one.get(MISSING, auth=once)
        replayed = await two.get(MISSING, auth=once)

    assert first.status_code == 404
    assert replayed.status_code == 401
    assert problem(replayed)["code"] == "nonce_replayed"


async def test_one_idempotency_key_sent_to_both_processes_makes_one_payment(
    shared: Shared,
) -> None:
    auth = shared.auth()
    async with shared.client(0) as one, shared.client(1) as two:
        answers = await asyncio.gather(
            _pay(one, auth, "two-process-key-0001"), _pay(two, auth, "two-process-key-0001")
        )
        again = await _pay(two, auth, "two-process-key-0001")

    statuses = sorted(r.status_code for r in answers)
    assert statuses in ([201, 201], [201, 409]), [r.text for r in answers]
    if statuses == [201, 409]:
        assert problem(next(r for r in answers if r.status_code == 409))["code"] == (
            "idempotency_request_in_progress"
        )
    ids = {r.json()["payment_id"] for r in [*answers, again] if r.status_code == 201}
    assert len(ids) == 1
    assert again.headers["Idempotent-Replayed"] == "true"
    rows = await shared.pool.fetch(
        "SELECT state FROM payments WHERE idempotency_key = 'two-process-key-0001'"
    )
    assert [row["state"] for row in rows] == ["settled"]


async def test_two_pharmacies_on_two_processes_redeem_a_prescription_once(
    shared: Shared,
) -> None:
    async with shared.client(0) as one, shared.client(1) as two:
        issued = await one.post(
            "/v1/prescriptions",
            json={
                "psn_no": ZHEJIANG_EMPLOYEE,
                "kind": "standard",
                "items": [{"item_code": METFORMIN, "max_quantity": 2}],
            },
            headers={"Idempotency-Key": "two-process-rx-0001"},
            auth=shared.institution,
        )
        assert issued.status_code == 201, issued.text
        rx = issued.json()["prescription_id"]
        auth = shared.auth()
        answers = await asyncio.gather(
            _pay(one, auth, "two-process-rx-hz", _purchase(rx, "P33010600012", "330106")),
            _pay(two, auth, "two-process-rx-sz", _purchase(rx, "P44030500007", "440305")),
        )
        shown = await two.get(f"/v1/prescriptions/{rx}", auth=shared.institution)

    statuses = sorted(r.status_code for r in answers)
    assert statuses[0] == 201 and statuses[1] in (409, 422), [r.text for r in answers]
    loser = next(r for r in answers if r.status_code != 201)
    assert problem(loser)["code"].startswith("prescription_")
    assert shown.json()["status"] == "redeemed"
    assert [r["state"] for r in shown.json()["redemptions"]] == ["redeemed"]
    settled = await shared.pool.fetchval(
        "SELECT count(*) FROM payments WHERE prescription_id = $1 AND state = 'settled'", rx
    )
    assert settled == 1


def _purchase(prescription_id: str, pharmacy: str, area: str) -> dict:
    return {
        "institution_code": pharmacy,
        "treatment_area": area,
        "visit_type": "pharmacy_purchase",
        "prescription_id": prescription_id,
        "items": [{"item_code": METFORMIN, "quantity": 2, "unit_price_fen": 1200}],
        "personal_account_allowed": True,
    }


async def test_a_burst_split_over_both_processes_is_refused_at_the_shared_limit(
    shared: Shared,
) -> None:
    auth = shared.auth(BEIJING_RESIDENT)
    await clear_of_a_rate_window_edge()  # the burst in one window
    async with shared.client(0) as one, shared.client(1) as two:
        answers = [await (one, two)[n % 2].get(MISSING, auth=auth) for n in range(PER_PERSON + 6)]

    statuses = [r.status_code for r in answers]
    assert statuses == [404] * PER_PERSON + [429] * 6
    # Both processes refuse, each having counted only part of the burst itself.
    refused_by = {n % 2 for n, r in enumerate(answers) if r.status_code == 429}
    assert refused_by == {0, 1}
    for refused in answers[PER_PERSON:]:
        assert problem(refused)["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Limit"] == str(PER_PERSON)


async def test_an_unknown_outcome_is_resolved_once_and_notified_once(shared: Shared) -> None:
    # The province settles but its answer is lost: the payment is unknown to both processes.
    await _faults(shared, drop_rate=1.0, drop_hold_s=3.0)
    try:
        async with shared.client(0) as one:
            pending = await _pay(one, shared.auth(), "two-process-unknown-0001")
    finally:
        await _faults(shared, drop_rate=0.0)
    assert pending.status_code == 202, pending.text
    payment_id = uuid.UUID(pending.json()["payment_id"])

    async def final() -> str | None:
        state = await shared.pool.fetchval(
            "SELECT state FROM payments WHERE payment_id = $1", payment_id
        )
        return state if state in ("settled", "failed") else None

    # Both resolvers run (every 0.2 s, after 1 s of grace); one of them resolves it.
    assert await _eventually(final) == "settled"
    event = await _eventually(
        lambda: shared.pool.fetchval(
            "SELECT event_id FROM notification_outbox"
            " WHERE payment_id = $1 AND delivered_at IS NOT NULL",
            payment_id,
        )
    )
    await asyncio.sleep(1.5)  # several rounds of both dispatchers: none delivers it again

    messages = await shared.pool.fetch(
        "SELECT infno FROM province_messages WHERE payment_id = $1 ORDER BY msgid", payment_id
    )
    assert [m["infno"] for m in messages] == ["2207"]  # asked by 6301, never sent again
    journals = await shared.pool.fetchval(
        "SELECT count(*) FROM ledger_journals WHERE payment_id = $1", payment_id
    )
    assert journals == 1
    events = await shared.pool.fetch(
        "SELECT event_type FROM notification_outbox WHERE payment_id = $1", payment_id
    )
    assert [e["event_type"] for e in events] == ["payment.settled"]
    assert shared.webhooks.deliveries.count(str(event)) == 1


async def _faults(shared: Shared, **faults) -> None:
    async with httpx.AsyncClient(base_url=shared.simulator.url) as http:
        response = await http.put("/admin/provinces/330000/faults", json=faults)
        response.raise_for_status()
