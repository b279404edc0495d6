"""Exactly once under faults: unknown outcomes resolved, crashes recovered, apps notified.

The resolver and the dispatcher are driven by hand here (``run_once``); the gateway
and the simulator are real servers on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, post

from medpay.channels.service import set_webhook
from medpay.clock import CHINA
from medpay.demo import DEMO_ORDER
from medpay.notifications.dispatcher import NotificationDispatcher
from medpay.payments.schemas import PaymentOrder
from medpay.plugin import resources_of
from medpay.security.persons import person_ref, seal_person
from medpay.serving import start_server
from medpay.wire.signing import load_private_key, public_key_pem

from .conftest import ZHEJIANG_EMPLOYEE


async def _pay(client, signed, key: str = "exactly-once-0001"):
    return await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": key}, auth=signed
    )


async def _set_faults(simulator, province: str = "330000", **faults) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        (await http.put(f"/admin/provinces/{province}/faults", json=faults)).raise_for_status()


async def _balance(simulator, psn_no: str = ZHEJIANG_EMPLOYEE) -> int:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        return (await http.get(f"/admin/persons/{psn_no}")).json()["acct_balance_fen"]


async def _make_due(db_pool) -> None:
    await db_pool.execute("UPDATE payments SET next_check_at = now() - interval '1 second'")


async def _state(db_pool) -> str:
    return await db_pool.fetchval("SELECT state FROM payments")


async def test_dropped_answer_is_resolved_by_query_and_settled_once(
    client, signed, simulator, gateway, db_pool
):
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    response = await _pay(client, signed)
    assert response.json()["state"] == "processing"
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)

    finished = await resources_of(gateway).resolver.run_once()

    assert finished == 1
    assert await _state(db_pool) == "settled"
    assert await _balance(simulator) == 523400 - 10100  # charged once, not twice
    shown = await client.get(f"/v1/payments/{response.json()['payment_id']}", auth=signed)
    assert shown.json()["state"] == "settled"
    assert shown.json()["settlement"]["personal_account_fen"] == 10100
    # One 2207 message only: the resolver asked (6301), it never sent a new msgid.
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == 1


async def test_unknown_payment_is_not_resolved_early_and_waits_with_backoff(
    client, signed, simulator, gateway, db_pool
):
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    await _pay(client, signed)
    await _set_faults(
        simulator, error_rate=1.0, drop_rate=0.0
    )  # the province cannot answer queries now
    await _make_due(db_pool)

    assert await resources_of(gateway).resolver.run_once() == 0

    row = await db_pool.fetchrow(
        "SELECT state, check_attempts, next_check_at > now() AS later FROM payments"
    )
    assert (row["state"], row["check_attempts"], row["later"]) == ("unknown", 1, True)


async def test_a_restarted_resolver_picks_up_where_it_was(
    settings, clearing, client, signed, simulator, db_pool
):
    from medpay.app import create_app

    from .conftest import running_gateway

    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    await _pay(client, signed)
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)
    restarted = create_app(settings, clearing=clearing)  # a new process, as after a crash

    async with running_gateway(restarted):
        await resources_of(restarted).resolver.run_once()

    assert await _state(db_pool) == "settled"


async def test_payment_received_but_never_sent_is_continued(
    client, signed, simulator, gateway, db_pool
):
    """The process died after recording the order, before settling: nothing accepted is lost.

    The flow now records a payment and starts settling it in one transaction; a payment
    left "received" (as earlier versions committed it first) is still continued.
    """
    import datetime as dt

    from medpay.payments import queries

    order = msgspec.convert(DEMO_ORDER, PaymentOrder)
    await db_pool.fetchval(
        queries.RECORD_PAYMENT,
        uuid.uuid4(),
        signed.app_id,
        "crashed-before-send",
        "digest",
        person_ref(ZHEJIANG_EMPLOYEE),
        order.institution_code,
        order.treatment_area,
        order.visit_type,
        None,
        order.personal_account_allowed,
        order.medical_fee_total_fen,
        dt.datetime.now(CHINA).date(),
        dt.datetime.now(dt.UTC),
        "received",
        None,
        None,
        None,
        None,
        list(range(1, len(order.items) + 1)),
        [i.item_code for i in order.items],
        [i.quantity for i in order.items],
        [i.unit_price_fen for i in order.items],
        seal_person(ZHEJIANG_EMPLOYEE, ""),
    )
    assert await _state(db_pool) == "received"
    await _make_due(db_pool)

    await resources_of(gateway).resolver.run_once()

    assert await _state(db_pool) == "settled"
    assert await _balance(simulator) == 523400 - 10100


async def test_payment_settling_whose_request_never_left_is_sent_under_the_same_msgid(
    client, signed, simulator, gateway, db_pool
):
    """The process died after committing 'settling' and before sending."""
    flow = resources_of(gateway).payment_flow
    order = msgspec.convert(DEMO_ORDER, PaymentOrder)
    # The flow's one transaction before sending, committed; then nothing was sent.
    _, request, _ = await flow._record(
        signed.app_id, ZHEJIANG_EMPLOYEE, order, "crashed-after-commit", "digest", None
    )
    await _make_due(db_pool)

    await resources_of(gateway).resolver.run_once()

    assert await _state(db_pool) == "settled"
    msgids = await db_pool.fetch("SELECT msgid, outcome FROM province_messages")
    assert [(m["msgid"], m["outcome"]) for m in msgids] == [(request.msgid, "accepted")]
    assert await _balance(simulator) == 523400 - 10100


async def test_a_late_answer_after_the_resolver_settled_changes_nothing(
    client, signed, simulator, gateway, db_pool
):
    from medpay.settlement.adapters.base import SettlementRequest

    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    await _pay(client, signed)
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)
    await resources_of(gateway).resolver.run_once()
    stored = await db_pool.fetchval("SELECT request FROM province_messages")
    # Kept with the person by reference; the province is sent the number.
    request = msgspec.convert(stored | {"psn_no": ZHEJIANG_EMPLOYEE}, SettlementRequest)
    payment_id = await db_pool.fetchval("SELECT payment_id FROM payments")

    # The same request answered again (the province answers a repeated msgid from its log).
    result = (
        await resources_of(gateway).payment_flow.provinces.adapter_for("330106").settle(request)
    )
    recorded_again = await resources_of(gateway).payment_flow.record_settled(
        payment_id, request.msgid, result.breakdown
    )

    assert recorded_again is False
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1
    assert await _balance(simulator) == 523400 - 10100


# --- notifications ------------------------------------------------------------------------------


class _Receiver:
    """A patient app's webhook endpoint on loopback, recording what it is sent."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []

        @post("/webhook", status_code=200)
        async def webhook(request: Request) -> dict[str, str]:
            body = await request.body()
            self.received.append((dict(request.headers), body))
            if self.failures > 0:
                self.failures -= 1
                from litestar.exceptions import HTTPException

                raise HTTPException(status_code=503)
            return {"ok": "yes"}

        self.app = Litestar(route_handlers=[webhook])


@pytest.fixture
async def dispatcher(db_pool, clearing) -> AsyncIterator[NotificationDispatcher]:
    async with httpx.AsyncClient() as http:
        yield NotificationDispatcher(db_pool, http, load_private_key(clearing.signing_key_pem))


async def test_final_state_is_delivered_signed_to_the_apps_webhook(
    client, signed, clearing, patient_app, db_pool, dispatcher
):
    receiver = _Receiver()
    async with await start_server(receiver.app) as server:
        await set_webhook(db_pool, patient_app.app_id, f"{server.url}/webhook")
        payment = (await _pay(client, signed)).json()
        delivered = await dispatcher.run_once()
    assert delivered == 1
    headers, body = receiver.received[0]
    event = json.loads(body)
    assert event["event_type"] == "payment.settled"
    assert event["payment"]["payment_id"] == payment["payment_id"]
    assert event["sequence"] == 1
    assert headers["x-medpay-event-id"] == event["event_id"]
    message = f"{headers['x-medpay-timestamp']}\n{hashlib.sha256(body).hexdigest()}".encode()
    gateway_key = load_private_key(clearing.signing_key_pem).public_key()
    gateway_key.verify(base64.b64decode(headers["x-medpay-signature"]), message)  # raises if forged
    assert public_key_pem(gateway_key)


async def test_failed_delivery_is_retried_with_the_same_event_id(
    client, signed, clearing, patient_app, db_pool, dispatcher
):
    receiver = _Receiver(failures=1)
    async with await start_server(receiver.app) as server:
        await set_webhook(db_pool, patient_app.app_id, f"{server.url}/webhook")
        await _pay(client, signed)
        assert await dispatcher.run_once() == 0
        row = await db_pool.fetchrow(
            "SELECT attempts, delivered_at, last_error FROM notification_outbox"
        )
        assert (row["attempts"], row["delivered_at"], row["last_error"]) == (1, None, "HTTP 503")
        await db_pool.execute("UPDATE notification_outbox SET next_attempt_at = now()")
        assert await dispatcher.run_once() == 1
    ids = [headers["x-medpay-event-id"] for headers, _ in receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1]


async def test_events_of_one_payment_are_delivered_in_order(
    client, signed, clearing, patient_app, db_pool, dispatcher
):
    receiver = _Receiver(failures=1)  # the first delivery of 'settled' fails
    async with await start_server(receiver.app) as server:
        await set_webhook(db_pool, patient_app.app_id, f"{server.url}/webhook")
        payment = (await _pay(client, signed)).json()
        await client.post(
            f"/v1/payments/{payment['payment_id']}/reversal",
            headers={"Idempotency-Key": "reverse-ordered"},
            auth=signed,
        )
        await dispatcher.run_once()  # settled fails; reversed must wait for it
        assert [json.loads(b)["event_type"] for _, b in receiver.received] == ["payment.settled"]
        await db_pool.execute("UPDATE notification_outbox SET next_attempt_at = now()")
        await dispatcher.run_once()
        await dispatcher.run_once()
    types = [json.loads(b)["event_type"] for _, b in receiver.received]
    assert types == ["payment.settled", "payment.settled", "payment.reversed"]


async def test_no_event_is_written_for_an_app_without_a_webhook(client, signed, db_pool) -> None:
    await _pay(client, signed)
    assert await db_pool.fetchval("SELECT count(*) FROM notification_outbox") == 0


async def test_event_and_state_commit_together(client, signed, patient_app, db_pool) -> None:
    await set_webhook(db_pool, patient_app.app_id, "http://127.0.0.1:9/webhook")
    payment = (await _pay(client, signed)).json()
    row = await db_pool.fetchrow(
        "SELECT o.event_type, o.payload->>'state' AS state FROM notification_outbox o WHERE o.payment_id = $1",
        uuid.UUID(payment["payment_id"]),
    )
    assert (row["event_type"], row["state"]) == ("payment.settled", "settled")
