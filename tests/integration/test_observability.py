"""Issue 12, item 4: metrics, logs, trace context and health, over real HTTP.

One payment per test where one is needed; what is checked is what an operator (or a
province) would read from outside: ``/metrics``, the JSON log lines, the headers the
simulated province received, and the health routes' statuses.
"""

from __future__ import annotations

import io
import json
import logging
import re

import asyncpg
import httpx
import msgspec

from medpay.app import create_app
from medpay.db.embedded import free_port
from medpay.demo import DEMO_ORDER
from medpay.observability.logs import configure_logging
from medpay.settlement.adapters.config import ClearingConfig

from .conftest import ZHEJIANG_EMPLOYEE, running_gateway

APP_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
APP_TRACEPARENT = f"00-{APP_TRACE_ID}-00f067aa0ba902b7-01"


async def _pay(client, signed, key: str, headers: dict[str, str] | None = None):
    response = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": key, **(headers or {})},
        auth=signed,
    )
    assert response.status_code == 201, response.text
    return response


def _series(text: str, name: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    ]


async def test_metrics_after_a_payment_show_the_named_series(client, signed) -> None:
    payment = (await _pay(client, signed, "metrics-pay-0001")).json()

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = _series(text, "medpay_requests_total")
    assert any('path="/v1/payments"' in s and 'status_code="201"' in s for s in requests), requests
    assert _series(text, "medpay_request_duration_seconds_count")
    calls = _series(text, "medpay_province_calls_total")
    assert any(
        'province="330000"' in s and 'infno="2207"' in s and 'outcome="ok"' in s for s in calls
    ), calls
    assert _series(text, "medpay_province_call_duration_seconds_count")
    for name in (
        "medpay_unresolved_payments",
        "medpay_unresolved_payment_oldest_age_seconds",
        "medpay_outbox_pending_events",
        "medpay_outbox_oldest_pending_age_seconds",
        "medpay_db_pool_connections",
        "medpay_db_pool_max_connections",
        "medpay_province_reachable",
    ):
        assert _series(text, name), name
    assert 'medpay_unresolved_payments{state="unknown"} 0.0' in text
    # No person, payment or message id in any label or value.
    assert ZHEJIANG_EMPLOYEE not in text
    assert payment["payment_id"] not in text
    assert payment["payment_id"].replace("-", "") not in text


async def test_a_payment_by_path_is_one_series_by_route_template(client, signed) -> None:
    payment = (await _pay(client, signed, "metrics-pay-0002")).json()
    assert (
        await client.get(f"/v1/payments/{payment['payment_id']}", auth=signed)
    ).status_code == 200

    text = (await client.get("/metrics")).text

    assert any(
        'path="/v1/payments/{payment_id}"' in s for s in _series(text, "medpay_requests_total")
    )
    assert payment["payment_id"] not in text


async def test_an_apps_traceparent_reaches_the_province(client, signed, simulator) -> None:
    """The app's trace id, with the gateway's hop as parent; without one, a trace of ours."""
    await _pay(client, signed, "trace-pay-0001", {"traceparent": APP_TRACEPARENT})
    await _pay(client, signed, "trace-pay-0002")

    async with httpx.AsyncClient(base_url=simulator.url) as http:
        received = (await http.get("/admin/requests")).json()["requests"]
    first, second = [r["traceparent"] for r in received if r["infno"] == "2207"]
    version, trace_id, parent_id, flags = first.split("-")
    assert (version, trace_id, flags) == ("00", APP_TRACE_ID, "01")
    assert re.fullmatch("[0-9a-f]{16}", parent_id) and parent_id != "00f067aa0ba902b7"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", second)
    assert APP_TRACE_ID not in second


async def test_json_log_lines_carry_the_request_id_and_payment_id(client, signed) -> None:
    stream = io.StringIO()
    handler = configure_logging(log_format="json", level="INFO", stream=stream)
    try:
        response = await _pay(client, signed, "log-pay-0001", {"X-Request-Id": "app-req-0001"})
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)

    assert response.headers["x-request-id"] == "app-req-0001"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line.get("logger") == "medpay.access"]
    assert access, lines
    line = access[-1]
    assert line["request_id"] == "app-req-0001"
    assert line["payment_id"] == response.json()["payment_id"]
    assert (line["route"], line["status"], line["level"]) == ("/v1/payments", 201, "info")
    assert re.fullmatch("[0-9a-f]{32}", line["trace_id"])
    assert ZHEJIANG_EMPLOYEE not in stream.getvalue()


async def test_health_routes_answer_get_and_head(client) -> None:
    bad_id = await client.get("/health/live", headers={"X-Request-Id": "no spaces <allowed>"})
    assert re.fullmatch("[0-9a-f]{32}", bad_id.headers["x-request-id"])
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.head("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["database"] == "ok"
    assert len(ready.json()["provinces"]) == 31
    assert (await client.head("/health/ready")).status_code == 200
    assert (await client.head("/health")).status_code == 200


async def test_ready_is_unready_while_a_province_is_unreachable(
    settings, clearing: ClearingConfig
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/provinces/110000/api"
    provinces = [
        msgspec.structs.replace(p, url=closed) if p.admdvs == "110000" else p
        for p in clearing.provinces
    ]
    app = create_app(
        msgspec.structs.replace(settings, readiness_probe_seconds=0.0),
        clearing=msgspec.structs.replace(clearing, provinces=provinces),
    )
    async with running_gateway(app) as client:
        ready = await client.get("/health/ready")
        head = await client.head("/health/ready")

    assert ready.status_code == 503 and head.status_code == 503
    body = ready.json()
    assert body["status"] == "unready" and body["database"] == "ok"
    assert body["provinces"]["110000"] == "unreachable"
    assert body["provinces"]["330000"] == "reachable"


async def test_ready_is_unready_while_the_database_is_down(
    settings, clearing: ClearingConfig, database_url, pg_server_dsn
) -> None:
    app = create_app(
        msgspec.structs.replace(settings, readiness_requires_provinces=False), clearing=clearing
    )
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_server_dsn)
    async with running_gateway(app) as client:
        before = await client.get("/health/ready")
        try:
            await admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'medpay-gateway'"
            )
            ready = await client.get("/health/ready")
            live = await client.get("/health/live")
        finally:
            await admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
            await admin.close()

    assert before.json()["database"] == "ok", before.text
    assert ready.status_code == 503, ready.text
    assert ready.json()["database"] == "unreachable"
    assert live.status_code == 200
