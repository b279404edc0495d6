"""Provinces that answer late, twice, or never: asynchronous settlement and callbacks.

The simulator and a tiny callback receiver run on loopback sockets in the test's
event loop; the gateway's national adapter speaks to the simulator and reads the
callbacks the receiver caught. Delays are small so that the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from medpay.serving import RunningServer, start_server
from medpay.settlement.adapters.base import (
    CallbackRejected,
    ClassifiedItem,
    OutcomeUnknown,
    ProvinceCallback,
    ProvinceRejected,
    QueryRequest,
    ReversalRequest,
    SettlementPending,
    SettlementRequest,
)
from medpay.settlement.adapters.national_http import NationalHttpAdapter, new_http_client
from medpay.simulator.app import create_simulator_app
from medpay.simulator.config import SimulatorConfig, parse_config, simulator_public_keys
from medpay.wire.national import CHINA_TZ, new_msgid
from medpay.wire.signing import (
    body_signature_headers,
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
)

GATEWAY_KEY = generate_private_key()
ZJ_EMPLOYEE = "33000000000000000001"  # 330106, balance 523400
BJ_EMPLOYEE = "11000000000000000003"  # 110105, balance 1280050
INSTITUTION = "H33010600001"
_seq = itertools.count(1)


def next_msgid() -> str:
    return new_msgid(INSTITUTION, dt.datetime.now(CHINA_TZ), next(_seq) % 10_000)


# --- the callback receiver --------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return msgspec.json.decode(self.body)


@dataclass
class Receiver:
    """A raw ASGI app that records every POST and answers the statuses it is told to."""

    calls: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.calls.append(Received(scope["path"], headers, body, status))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    async def wait_for(self, count: int, within_s: float = 5.0) -> list[Received]:
        async with asyncio.timeout(within_s):
            while len(self.calls) < count:  # noqa: ASYNC110 - a test helper polling a list
                await asyncio.sleep(0.01)
        return self.calls


# --- the rig ------------------------------------------------------------------------------------


def make_config(callback_base_url: str | None, **overrides: Any) -> SimulatorConfig:
    """Zhejiang synchronous, Beijing asynchronous (100 ms); quick callback retries."""
    data: dict[str, Any] = {
        "seed": 5,
        "gateway_public_keys": [public_key_pem(GATEWAY_KEY)],
        "callback_base_url": callback_base_url,
        "callback_max_attempts": 4,
        "callback_retry_ms": 20,
        "callback_timeout_s": 2.0,
        "provinces": [
            {"admdvs": "330000"},
            {"admdvs": "110000", "async_mode": True, "faults": {"async_delay_ms": 100}},
        ],
    }
    data.update(overrides)
    return parse_config(msgspec.json.encode(data))


@dataclass
class Rig:
    receiver: Receiver
    receiver_server: RunningServer
    server: RunningServer
    config: SimulatorConfig
    client: httpx.AsyncClient

    def adapter(self, admdvs: str = "330000", **overrides: Any) -> NationalHttpAdapter:
        fields: dict[str, Any] = {
            "url": f"{self.server.url}/provinces/{admdvs}/api",
            "province_code": admdvs,
            "signing_key": GATEWAY_KEY,
            "province_public_key": load_public_key(simulator_public_keys(self.config)[admdvs]),
            "client": self.client,
            "timeout": httpx.Timeout(3.0),
        }
        fields.update(overrides)
        return NationalHttpAdapter(**fields)

    def province_key(self, admdvs: str) -> Any:
        province = self.config.province(admdvs)
        assert province is not None and province.private_key_pem is not None
        return load_private_key(province.private_key_pem)

    def parse(self, received: Received, admdvs: str = "330000") -> ProvinceCallback:
        return self.adapter(admdvs).parse_callback(
            received.body,
            received.headers.get("x-province-timestamp"),
            received.headers.get("x-province-signature"),
        )

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, f"{self.server.url}{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def set_faults(self, admdvs: str, **knobs: Any) -> None:
        await self.admin("PUT", f"/admin/provinces/{admdvs}/faults", json=knobs)

    async def balance(self, psn_no: str) -> int:
        return (await self.admin("GET", f"/admin/persons/{psn_no}"))["acct_balance_fen"]

    async def deliveries(self, **params: str) -> list[dict[str, Any]]:
        return (await self.admin("GET", "/admin/callbacks", params=params))["deliveries"]

    async def finished_deliveries(self, **params: str) -> list[dict[str, Any]]:
        """The deliveries once none is pending (the sender notes an answer after the receiver)."""
        async with asyncio.timeout(5):
            while True:
                found = await self.deliveries(**params)
                if all(d["status"] != "pending" for d in found):
                    return found
                await asyncio.sleep(0.01)


@pytest.fixture
async def rig(db_pool):
    receiver = Receiver()
    receiver_server = await start_server(receiver)
    config = make_config(receiver_server.url)
    server = await start_server(create_simulator_app(config, db_pool))
    client = new_http_client()
    try:
        yield Rig(receiver, receiver_server, server, config, client)
    finally:
        await client.aclose()
        await server.stop()
        await receiver_server.stop()


def settlement(**overrides: Any) -> SettlementRequest:
    """Zhejiang employee, level 3, local: A 250000, B 2 x 1500, delivery 800."""
    fields: dict[str, Any] = {
        "msgid": next_msgid(),
        "psn_no": ZJ_EMPLOYEE,
        "insured_area": "330106",
        "treatment_area": "330106",
        "institution_code": INSTITUTION,
        "institution_name": "杭州互联网医院",
        "institution_level": 3,
        "insurance_scheme": "employee",
        "personal_account_allowed": True,
        "service_date": dt.date(2025, 3, 1),
        "visit_id": "V-1",
        "charge_batch_no": "C-1",
        "items": [
            ClassifiedItem(
                line_no="1", code="A1", name="consultation", quantity=1, unit_price_fen=250_000,
                item_class="A",
            ),
            ClassifiedItem(
                line_no="2", code="B1", name="ointment", quantity=2, unit_price_fen=1_500,
                item_class="B",
            ),
            ClassifiedItem(
                line_no="3", code="DLV", name="delivery", quantity=1, unit_price_fen=800,
                item_class="C", non_medical=True,
            ),
        ],
    }  # fmt: skip
    fields.update(overrides)
    return SettlementRequest(**fields)


def beijing(**overrides: Any) -> SettlementRequest:
    """The Beijing employee at a level 1 institution in Beijing (asynchronous province)."""
    fields: dict[str, Any] = {
        "psn_no": BJ_EMPLOYEE,
        "insured_area": "110105",
        "treatment_area": "110105",
        "institution_level": 1,
    }
    return settlement(**{**fields, **overrides})


def query(ref_msgid: str, insured_area: str = "330106") -> QueryRequest:
    return QueryRequest(
        msgid=next_msgid(),
        ref_msgid=ref_msgid,
        insured_area=insured_area,
        treatment_area=insured_area,
        institution_code=INSTITUTION,
        institution_name="杭州互联网医院",
    )


def reversal(setl_id: str, visit_id: str = "V-1") -> ReversalRequest:
    return ReversalRequest(
        msgid=next_msgid(),
        psn_no=ZJ_EMPLOYEE,
        insured_area="330106",
        treatment_area="330106",
        institution_code=INSTITUTION,
        institution_name="杭州互联网医院",
        settlement_id=setl_id,
        visit_id=visit_id,
    )


# --- asynchronous provinces ---------------------------------------------------------------------


async def test_async_settlement_is_pending_then_called_back_once_with_the_figures(rig):
    await rig.set_faults("110000", async_delay_ms=500)
    beijing_adapter = rig.adapter("110000")
    request = beijing()

    with pytest.raises(SettlementPending) as caught:
        await beijing_adapter.settle(request)
    assert not caught.value.outcome_known
    assert (await beijing_adapter.query(query(request.msgid, "110105"))).status == "processing"

    [received] = await rig.receiver.wait_for(1)
    assert received.path == "/v1/callbacks/110000"
    assert received.headers["content-type"] == "application/json"
    callback = rig.parse(received, "110000")
    assert (callback.kind, callback.result, callback.ref_msgid) == (
        "settlement",
        "settled",
        request.msgid,
    )
    # level 1 employee: in scope 252700, deductible 180000, 90 % of 72700 = 65430;
    # personal part 188370, the account pays all but the 800 delivery fee.
    breakdown = callback.breakdown
    assert breakdown is not None
    assert (breakdown.basic_fund_fen, breakdown.personal_account_fen, breakdown.cash_fen) == (
        65_430,
        187_570,
        800,
    )
    assert breakdown.balance_after_fen == 1_280_050 - 187_570
    assert await rig.balance(BJ_EMPLOYEE) == 1_280_050 - 187_570
    found = await beijing_adapter.query(query(request.msgid, "110105"))
    assert found.status == "settled"
    assert found.breakdown == breakdown
    await asyncio.sleep(0.1)
    assert len(rig.receiver.calls) == 1


async def test_async_repeat_while_processing_gets_the_acceptance_and_no_second_effect(rig):
    await rig.set_faults("110000", async_delay_ms=300)
    beijing_adapter = rig.adapter("110000")
    request = beijing()

    for _ in range(2):
        with pytest.raises(SettlementPending):
            await beijing_adapter.settle(request)

    await rig.receiver.wait_for(1)
    # once done, a re-send under the same msgid learns the outcome
    resent = await beijing_adapter.settle(request)
    assert resent.breakdown == rig.parse(rig.receiver.calls[0], "110000").breakdown
    assert await rig.balance(BJ_EMPLOYEE) == 1_280_050 - 187_570
    [row] = (await rig.admin("GET", "/admin/settlements", params={"province": "110000"}))[
        "settlements"
    ]
    assert row["msgid"] == request.msgid


async def test_async_failure_is_called_back_as_failed_and_nothing_happens(rig):
    beijing_adapter = rig.adapter("110000")
    request = beijing(psn_no="11000000000000009999")

    with pytest.raises(SettlementPending):
        await beijing_adapter.settle(request)

    [received] = await rig.receiver.wait_for(1)
    assert received.json["err_code"] == -2
    callback = rig.parse(received, "110000")
    assert (callback.result, callback.error_code) == ("failed", "person_unknown_to_province")
    assert callback.breakdown is None
    found = await beijing_adapter.query(query(request.msgid, "110105"))
    assert (found.status, found.error_code) == ("failed", "person_unknown_to_province")
    with pytest.raises(ProvinceRejected) as rejected:  # the same msgid now answers the refusal
        await beijing_adapter.settle(request)
    assert rejected.value.code == "person_unknown_to_province"


async def test_province_switched_to_async_at_runtime(rig):
    settings = await rig.admin("PUT", "/admin/provinces/330000/settings", json={"async_mode": True})
    assert settings == {"async_mode": True}
    with pytest.raises(SettlementPending):
        await rig.adapter().settle(settlement())
    assert rig.parse((await rig.receiver.wait_for(1))[0]).result == "settled"


async def test_processing_settlement_is_finished_after_a_restart(rig, db_pool):
    await rig.set_faults("110000", async_delay_ms=400)
    request = beijing()
    with pytest.raises(SettlementPending):
        await rig.adapter("110000").settle(request)
    await rig.server.stop()  # the background task is cancelled; the row stays "processing"
    assert rig.receiver.calls == []

    restarted = await start_server(create_simulator_app(rig.config, db_pool))
    try:
        [received] = await rig.receiver.wait_for(1)
        assert rig.parse(received, "110000").ref_msgid == request.msgid
    finally:
        await restarted.stop()


# --- callbacks of a synchronous province --------------------------------------------------------


async def test_sync_settlement_and_reversal_are_called_back_too(rig):
    zhejiang = rig.adapter()
    settled = await zhejiang.settle(settlement())
    setl_id = settled.breakdown.settlement_id
    assert setl_id is not None
    await zhejiang.reverse(reversal(setl_id))

    callbacks = {c.kind: c for c in map(rig.parse, await rig.receiver.wait_for(2))}
    on_settle, on_reverse = callbacks["settlement"], callbacks["reversal"]
    assert (on_settle.kind, on_settle.result) == ("settlement", "settled")
    assert on_settle.breakdown == settled.breakdown
    assert (on_reverse.kind, on_reverse.result) == ("reversal", "reversed")
    assert on_reverse.breakdown is not None
    assert on_reverse.breakdown.settlement_id == setl_id
    assert on_settle.callback_id != on_reverse.callback_id


async def test_refusal_and_replay_are_not_called_back(rig):
    zhejiang = rig.adapter()
    request = settlement()
    await zhejiang.settle(request)
    await zhejiang.settle(request)  # same msgid: the logged answer, no new work
    with pytest.raises(ProvinceRejected):
        await zhejiang.settle(settlement(psn_no="33000000000000009999"))
    await rig.receiver.wait_for(1)
    await asyncio.sleep(0.1)
    assert len(rig.receiver.calls) == 1


async def test_without_a_callback_url_nothing_is_sent(rig, db_pool):
    quiet_config = make_config(None)
    quiet = await start_server(create_simulator_app(quiet_config, db_pool))
    try:
        adapter = rig.adapter(
            url=f"{quiet.url}/provinces/330000/api",
            province_public_key=load_public_key(simulator_public_keys(quiet_config)["330000"]),
        )
        await adapter.settle(settlement())
        await asyncio.sleep(0.1)
    finally:
        await quiet.stop()
    assert rig.receiver.calls == []


# --- parse_callback against the real thing -----------------------------------------------------


async def test_parse_callback_checks_key_body_time_and_shape(rig):
    await rig.adapter().settle(settlement())
    [received] = await rig.receiver.wait_for(1)
    timestamp = received.headers["x-province-timestamp"]
    signature = received.headers["x-province-signature"]

    assert rig.adapter().parse_callback(received.body, timestamp, signature).result == "settled"

    def refused(adapter: NationalHttpAdapter, body: bytes, *headers: Any, **kw: Any) -> str:
        with pytest.raises(CallbackRejected) as caught:
            adapter.parse_callback(body, *headers, **kw)
        return caught.value.code

    tampered = received.body.replace(b'"acct_pay":202110', b'"acct_pay":202111')
    assert tampered != received.body
    assert refused(rig.adapter(), tampered, timestamp, signature) == "callback_signature_invalid"
    # signed by Zhejiang, read as if from Beijing
    assert refused(rig.adapter("110000"), received.body, timestamp, signature) == (
        "callback_signature_invalid"
    )
    late = int(timestamp) + 301
    assert refused(rig.adapter(), received.body, timestamp, signature, now=late) == (
        "callback_timestamp_out_of_window"
    )
    garbage = b'{"callback_id": '
    headers = body_signature_headers(garbage, rig.province_key("330000"))
    assert refused(rig.adapter(), garbage, *headers.values()) == "callback_malformed"


# --- callback faults -------------------------------------------------------------------------------


async def test_duplicate_fault_delivers_the_same_callback_twice(rig):
    await rig.set_faults("330000", callback_duplicate_rate=1.0)

    await rig.adapter().settle(settlement())

    first, second = await rig.receiver.wait_for(2)
    assert first.body == second.body
    assert rig.parse(first).callback_id == rig.parse(second).callback_id
    deliveries = await rig.finished_deliveries(province="330000")
    assert [(d["copy"], d["status"]) for d in deliveries] == [(1, "delivered"), (2, "delivered")]


async def test_dropped_callback_is_never_sent_but_the_query_knows(rig):
    await rig.set_faults("330000", callback_drop_rate=1.0)
    zhejiang = rig.adapter()
    request = settlement()

    await zhejiang.settle(request)
    await asyncio.sleep(0.2)

    assert rig.receiver.calls == []
    assert (await zhejiang.query(query(request.msgid))).status == "settled"
    [delivery] = await rig.finished_deliveries(ref_msgid=request.msgid)
    assert (delivery["status"], delivery["attempts"]) == ("dropped", 0)


async def test_delayed_callback_arrives_late(rig):
    await rig.set_faults("330000", callback_delay_ms=300)
    await rig.adapter().settle(settlement())
    await asyncio.sleep(0.1)
    assert rig.receiver.calls == []
    await rig.receiver.wait_for(1)


async def test_callback_is_retried_until_the_receiver_takes_it(rig):
    rig.receiver.statuses = [503, 500]

    await rig.adapter().settle(settlement())

    calls = await rig.receiver.wait_for(3)
    assert [call.status for call in calls] == [503, 500, 200]
    assert len({call.body for call in calls}) == 1  # the same callback each time
    [delivery] = await rig.finished_deliveries()
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered",
        3,
        200,
    )


async def test_callback_delivery_gives_up_after_the_last_attempt(rig):
    rig.receiver.statuses = [500] * 10

    await rig.adapter().settle(settlement())

    await rig.receiver.wait_for(4)
    await asyncio.sleep(0.1)
    assert len(rig.receiver.calls) == 4  # callback_max_attempts
    [delivery] = await rig.finished_deliveries()
    assert (delivery["status"], delivery["attempts"]) == ("gave_up", 4)


# --- answers that come late ---------------------------------------------------------------------------


async def test_slow_answer_is_an_unknown_outcome_although_it_settled(rig):
    await rig.set_faults("330000", slow_rate=1.0, slow_ms=1_000)
    impatient = rig.adapter(timeout=httpx.Timeout(3.0, read=0.2))
    request = settlement()

    with pytest.raises(OutcomeUnknown) as caught:
        await impatient.settle(request)
    assert type(caught.value) is OutcomeUnknown

    # the callback overtakes the answer that is still on its way
    [received] = await rig.receiver.wait_for(1, within_s=0.7)
    assert rig.parse(received).ref_msgid == request.msgid
    await rig.set_faults("330000")
    found = await rig.adapter().query(query(request.msgid))
    assert found.status == "settled"
    assert await rig.balance(ZJ_EMPLOYEE) == 321_290


async def test_slow_answer_still_arrives_for_a_patient_client(rig):
    await rig.set_faults("330000", slow_rate=1.0, slow_ms=200)
    started = asyncio.get_running_loop().time()
    result = await rig.adapter().settle(settlement())
    assert asyncio.get_running_loop().time() - started >= 0.2
    assert result.breakdown.balance_after_fen == 321_290


# --- reconciliation ---------------------------------------------------------------------------------


async def test_settlements_endpoint_lists_what_a_reconciliation_needs(rig):
    zhejiang = rig.adapter()
    first = settlement(visit_id="V-1", charge_batch_no="C-1")
    second = settlement(visit_id="V-2", charge_batch_no="C-2")
    one = await zhejiang.settle(first)
    two = await zhejiang.settle(second)
    assert one.breakdown.settlement_id is not None
    undo = reversal(one.breakdown.settlement_id, "V-1")
    await zhejiang.reverse(undo)

    page = await rig.admin("GET", "/admin/settlements", params={"province": "330000"})

    rows = {row["mdtrt_id"]: row for row in page["settlements"]}
    assert rows["V-1"]["state"] == "reversed"
    assert rows["V-1"]["msgid"] == first.msgid
    assert rows["V-1"]["reversal_msgid"] == undo.msgid
    assert rows["V-1"]["reversed_at"] is not None
    assert rows["V-2"]["state"] == "settled"
    assert rows["V-2"]["setl_id"] == two.breakdown.settlement_id
    assert {k: rows["V-2"][k] for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")} == {
        "medfee_sumamt": 253_800,
        "fund_pay_sumamt": two.breakdown.fund_total_fen,
        "acct_pay": two.breakdown.personal_account_fen,
    }
    assert rows["V-2"]["hifp_pay"] == two.breakdown.basic_fund_fen
    assert rows["V-2"]["psn_cash_pay"] == two.breakdown.cash_fen
    summary = page["summary"]
    assert summary["settled"] == {
        "count": 1,
        "medfee_sumamt": 253_800,
        "fund_pay_sumamt": two.breakdown.fund_total_fen,
        "acct_pay": two.breakdown.personal_account_fen,
        "psn_cash_pay": two.breakdown.cash_fen,
    }
    assert summary["reversed"]["count"] == 1
    assert page["next_after"] is None


async def test_settlements_endpoint_pages_and_filters(rig):
    zhejiang = rig.adapter()
    for n in (1, 2, 3):
        await zhejiang.settle(settlement(visit_id=f"V-{n}", charge_batch_no=f"C-{n}"))

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = await rig.admin("GET", "/admin/settlements", params=params)
        seen += [row["mdtrt_id"] for row in page["settlements"]]
        if page["next_after"] is None:
            break
        params["after"] = page["next_after"]
    assert sorted(seen) == ["V-1", "V-2", "V-3"]

    only = await rig.admin("GET", "/admin/settlements", params={"mdtrt_id": "V-2"})
    assert [row["mdtrt_id"] for row in only["settlements"]] == ["V-2"]
    assert only["summary"]["settled"]["count"] == 1
    response = await rig.client.get(f"{rig.server.url}/admin/settlements", params={"limit": 0})
    assert response.status_code == 400


async def test_settlements_summary_counts_async_work(rig):
    await rig.set_faults("110000", async_delay_ms=5_000)
    with pytest.raises(SettlementPending):
        await rig.adapter("110000").settle(beijing())
    page = await rig.admin("GET", "/admin/settlements", params={"province": "110000"})
    assert page["settlements"] == []
    assert (page["summary"]["async_processing"], page["summary"]["async_failed"]) == (1, 0)


# --- configuration and admin -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.8:8000",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
        "127.0.0.1:8000",
    ],
)
def test_callback_url_must_be_loopback(url):
    with pytest.raises(msgspec.ValidationError, match="callback_base_url"):
        make_config(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://[::1]:9/base", "http://localhost"]
)
def test_loopback_callback_urls_are_accepted(url):
    assert make_config(url).callback_base_url == url


async def test_callback_target_can_change_at_runtime_but_stays_on_loopback(rig):
    path = "/admin/callbacks/target"
    refused = await rig.client.put(
        f"{rig.server.url}{path}", json={"callback_base_url": "http://192.0.2.1"}
    )
    assert refused.status_code == 400
    assert await rig.admin("PUT", path, json={"callback_base_url": None}) == {
        "callback_base_url": None
    }
    await rig.adapter().settle(settlement())
    await asyncio.sleep(0.1)
    assert rig.receiver.calls == []

    await rig.admin("PUT", path, json={"callback_base_url": rig.receiver_server.url})
    assert await rig.admin("GET", path) == {"callback_base_url": rig.receiver_server.url}
    await rig.adapter().settle(settlement(visit_id="V-2", charge_batch_no="C-2"))
    await rig.receiver.wait_for(1)


@pytest.mark.parametrize(
    "knobs",
    [
        {"slow_rate": 1.5},
        {"callback_drop_rate": -0.1},
        {"callback_duplicate_rate": 2},
        {"callback_delay_ms": -1},
        {"async_delay_ms": 10**9},
    ],
)
async def test_new_fault_knobs_are_validated(rig, knobs):
    response = await rig.client.put(f"{rig.server.url}/admin/provinces/330000/faults", json=knobs)
    assert response.status_code == 400


async def test_settings_of_an_unknown_province_are_not_found(rig):
    response = await rig.client.put(
        f"{rig.server.url}/admin/provinces/620000/settings", json={"async_mode": True}
    )
    assert response.status_code == 404
