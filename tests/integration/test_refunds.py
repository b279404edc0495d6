"""Returns (issue 11, item 5): a partial refund is a reversal and a new settlement.

Over real HTTP against the gateway and the 31-province simulator: the refund object,
its split, both journals, the prescription passed on, refusals that write nothing,
and refunds interrupted at each step, finished (or ended) by the resolver.
"""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest

from medpay.demo import DEMO_ORDER
from medpay.ledger.check import check_ledger
from medpay.plugin import resources_of

from .conftest import ZHEJIANG_EMPLOYEE, problem
from .test_settlement_rules import _prescription, _purchase

#: DEMO_ORDER's lines: 1 revisit 2500, 2 atorvastatin 2 x 3800, 3 delivery 1000 = 11100 fen.
RETURN_ONE_BOX = {"items": [{"line_no": 2, "quantity": 1}], "reason": "returned"}


async def _pay(client, signed, order=DEMO_ORDER, key: str | None = None) -> dict:
    response = await client.post(
        "/v1/payments",
        json=order,
        headers={"Idempotency-Key": key or f"pay-{uuid.uuid4().hex}"},
        auth=signed,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _refund(client, signed, payment_id: str, body=RETURN_ONE_BOX, key: str | None = None):
    return await client.post(
        f"/v1/payments/{payment_id}/refunds",
        json=body,
        headers={"Idempotency-Key": key or f"refund-{uuid.uuid4().hex}"},
        auth=signed,
    )


async def _set_faults(simulator, province: str = "330000", **faults) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        (await http.put(f"/admin/provinces/{province}/faults", json=faults)).raise_for_status()


async def _balance(simulator, psn_no: str = ZHEJIANG_EMPLOYEE) -> int:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        return (await http.get(f"/admin/persons/{psn_no}")).json()["acct_balance_fen"]


async def _journals(db_pool, payment_id: str) -> list[str]:
    rows = await db_pool.fetch(
        "SELECT kind FROM ledger_journals WHERE payment_id = $1 ORDER BY journal_id",
        uuid.UUID(payment_id),
    )
    return [row["kind"] for row in rows]


async def _state(db_pool, payment_id: str | uuid.UUID) -> str:
    key = payment_id if isinstance(payment_id, uuid.UUID) else uuid.UUID(payment_id)
    return await db_pool.fetchval("SELECT state FROM payments WHERE payment_id = $1", key)


async def _ledger_is_clean(db_pool) -> None:
    check = await check_ledger(db_pool)
    assert check.failures == [], check.failures


async def _make_due(db_pool) -> None:
    await db_pool.execute("UPDATE payments SET next_check_at = now() - interval '1 second'")


# --- the refund and its split ------------------------------------------------------------


async def test_returning_one_box_reverses_and_settles_the_rest_anew(
    client, signed, simulator, db_pool
) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)

    response = await _refund(client, signed, paid["payment_id"])

    assert response.status_code == 201, response.text
    refund = response.json()
    assert response.headers["location"] == (
        f"/v1/payments/{paid['payment_id']}/refunds/{refund['refund_id']}"
    )
    assert (refund["kind"], refund["state"], refund["reason"]) == (
        "partial",
        "refunded",
        "returned",
    )
    assert refund["items"] == [
        {
            "line_no": 2,
            "item_code": "XC10AAA096A001010178938",
            "quantity": 1,
            "unit_price_fen": 3800,
            "total_fen": 3800,
        }
    ]
    assert refund["returned_total_fen"] == 3800
    # The replacement: the lines kept, settled anew, naming the payment it replaces.
    kept = (
        await client.get(f"/v1/payments/{refund['replacement_payment_id']}", auth=signed)
    ).json()
    assert kept["state"] == "settled"
    assert kept["replaces_payment_id"] == paid["payment_id"]
    assert [(i["line_no"], i["quantity"]) for i in kept["items"]] == [(1, 1), (2, 1), (3, 1)]
    assert kept["medical_fee_total_fen"] == 11100 - 3800
    assert kept["service_date"] == paid["service_date"]
    # The split given back is the original's less the replacement's, field by field.
    first, second, back = paid["settlement"], kept["settlement"], refund["refunded"]
    for field in ("medical_fee_total_fen", "fund_total_fen", "personal_account_fen", "cash_fen"):
        assert back[field] == first[field] - second[field], field
    assert back["medical_fee_total_fen"] == 3800
    assert back["fund_total_fen"] + back["personal_account_fen"] + back["cash_fen"] == 3800
    # The original is reversed; the personal account is charged only for what was kept.
    original = (await client.get(f"/v1/payments/{paid['payment_id']}", auth=signed)).json()
    assert original["state"] == "reversed"
    assert await _balance(simulator) == before - second["personal_account_fen"]
    assert await _journals(db_pool, paid["payment_id"]) == ["settlement", "reversal"]
    assert await _journals(db_pool, kept["payment_id"]) == ["settlement"]
    await _ledger_is_clean(db_pool)
    # The replacement went under its own msgid: one 2207 and one 2208 for the original, one 2207 for it.
    infnos = await db_pool.fetch(
        "SELECT payment_id, infno FROM province_messages ORDER BY created_at"
    )
    assert [(str(r["payment_id"]), r["infno"]) for r in infnos] == [
        (paid["payment_id"], "2207"),
        (paid["payment_id"], "2208"),
        (kept["payment_id"], "2207"),
    ]


async def test_the_refund_is_read_back_as_one_object(client, signed, db_pool) -> None:
    paid = await _pay(client, signed)
    refund = (await _refund(client, signed, paid["payment_id"])).json()

    shown = await client.get(
        f"/v1/payments/{paid['payment_id']}/refunds/{refund['refund_id']}", auth=signed
    )

    assert shown.status_code == 200
    assert shown.json() == refund


async def test_returning_every_line_is_a_full_refund_a_reversal(client, signed, simulator) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)
    everything = {
        "items": [
            {"line_no": 1, "quantity": 1},
            {"line_no": 2, "quantity": 2},
            {"line_no": 3, "quantity": 1},
        ],
        "reason": "bill_corrected",
    }

    refund = (await _refund(client, signed, paid["payment_id"], everything)).json()

    assert (refund["kind"], refund["state"]) == ("full", "refunded")
    assert "replacement_payment_id" not in refund
    split = paid["settlement"]
    assert refund["refunded"]["fund_total_fen"] == split["fund_total_fen"]
    assert refund["refunded"]["personal_account_fen"] == split["personal_account_fen"]
    assert refund["refunded"]["cash_fen"] == split["cash_fen"]
    assert await _balance(simulator) == before


async def test_a_replacement_can_be_refunded_in_turn(client, signed, simulator, db_pool) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)
    first = (await _refund(client, signed, paid["payment_id"])).json()

    again = await _refund(client, signed, paid["payment_id"])
    second = await _refund(
        client, signed, first["replacement_payment_id"], {"items": [{"line_no": 2, "quantity": 1}]}
    )

    assert again.status_code == 409
    assert problem(again)["code"] == "payment_already_reversed"
    assert first["replacement_payment_id"] in problem(again)["detail"]
    assert second.status_code == 201, second.text
    last = (
        await client.get(f"/v1/payments/{second.json()['replacement_payment_id']}", auth=signed)
    ).json()
    assert [(i["line_no"], i["quantity"]) for i in last["items"]] == [(1, 1), (3, 1)]
    assert await _balance(simulator) == before - last["settlement"]["personal_account_fen"]
    await _ledger_is_clean(db_pool)


async def test_a_pharmacy_return_passes_the_prescription_to_the_lines_kept(
    client, signed, db_pool
) -> None:
    rx = await _prescription(db_pool)
    paid = await _pay(client, signed, _purchase(rx, quantity=2))

    refund = (
        await _refund(
            client, signed, paid["payment_id"], {"items": [{"line_no": 1, "quantity": 1}]}
        )
    ).json()

    assert refund["state"] == "refunded", refund
    attempts = await db_pool.fetch(
        "SELECT attempt, payment_id, state FROM prescription_redemption_states"
        " WHERE prescription_id = $1 ORDER BY attempt",
        rx,
    )
    assert [(r["attempt"], str(r["payment_id"]), r["state"]) for r in attempts] == [
        (1, paid["payment_id"], "released"),
        (2, refund["replacement_payment_id"], "redeemed"),
    ]
    # Still redeemed once: another purchase on it is refused.
    other = await client.post(
        "/v1/payments",
        json=_purchase(rx, quantity=1),
        headers={"Idempotency-Key": "rx-after-return"},
        auth=signed,
    )
    assert other.status_code == 409
    assert problem(other)["code"] == "prescription_already_redeemed"


# --- idempotency -----------------------------------------------------------------------------


async def test_a_repeat_under_the_same_key_is_the_same_refund(client, signed, db_pool) -> None:
    paid = await _pay(client, signed)
    first = await _refund(client, signed, paid["payment_id"], key="refund-key-0001")

    again = await _refund(client, signed, paid["payment_id"], key="refund-key-0001")
    other = await _refund(
        client,
        signed,
        paid["payment_id"],
        {"items": [{"line_no": 1, "quantity": 1}]},
        key="refund-key-0001",
    )

    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert other.status_code == 409
    assert problem(other)["code"] == "idempotency_key_reused"
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 2


async def test_a_refund_needs_an_idempotency_key(client, signed) -> None:
    paid = await _pay(client, signed)
    response = await client.post(
        f"/v1/payments/{paid['payment_id']}/refunds", json=RETURN_ONE_BOX, auth=signed
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "idempotency_key_missing"


# --- refusals write nothing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ([{"line_no": 4, "quantity": 1}], "refund_line_unknown"),
        ([{"line_no": 2, "quantity": 3}], "refund_quantity_exceeds_line"),
        ([{"line_no": 2, "quantity": 1}, {"line_no": 2, "quantity": 1}], "refund_line_repeated"),
    ],
)
async def test_a_refund_the_payment_cannot_give_is_refused(
    client, signed, db_pool, items, code
) -> None:
    paid = await _pay(client, signed)

    response = await _refund(client, signed, paid["payment_id"], {"items": items})

    assert response.status_code == 422
    assert problem(response)["code"] == code
    assert await _state(db_pool, paid["payment_id"]) == "settled"
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": [{"line_no": 0, "quantity": 1}]},
        {"items": [{"line_no": 1, "quantity": 0}]},
        {"items": [{"line_no": 1, "quantity": 1}], "reason": "changed_my_mind"},
        {"items": [{"line_no": 1, "quantity": 1, "unit_price_fen": 1}]},
        {"reason": "returned"},
    ],
)
async def test_a_malformed_refund_is_a_400(client, signed, db_pool, body) -> None:
    paid = await _pay(client, signed)
    response = await _refund(client, signed, paid["payment_id"], body)
    assert response.status_code == 400, response.text
    assert problem(response)["code"] == "request_invalid"
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 0


async def test_only_a_settled_payment_is_refunded(client, signed, simulator, db_pool) -> None:
    await _set_faults(simulator, error_rate=1.0)  # the province refuses: the payment failed
    failed = await client.post(
        "/v1/payments",
        json=DEMO_ORDER,
        headers={"Idempotency-Key": "refused-payment"},
        auth=signed,
    )
    await _set_faults(simulator, error_rate=0.0)
    payment_id = problem(failed)["payment_id"]

    response = await _refund(client, signed, payment_id, {"items": [{"line_no": 1, "quantity": 1}]})

    assert response.status_code == 409
    assert problem(response)["code"] == "payment_not_refundable"


async def test_another_apps_or_persons_payment_is_not_found(
    client, signed, identity_issuer, db_pool
) -> None:
    from medpay.client import AppSignatureAuth

    paid = await _pay(client, signed)
    someone_else = AppSignatureAuth(
        signed.app_id, signed.private_key_pem, identity_issuer.issue("44000000000000000002")
    )

    response = await _refund(client, someone_else, paid["payment_id"])
    refund = (await _refund(client, signed, paid["payment_id"])).json()
    shown = await client.get(
        f"/v1/payments/{paid['payment_id']}/refunds/{refund['refund_id']}", auth=someone_else
    )
    elsewhere = await client.get(
        f"/v1/payments/{refund['replacement_payment_id']}/refunds/{refund['refund_id']}",
        auth=signed,
    )
    malformed = await client.get(f"/v1/payments/{paid['payment_id']}/refunds/x", auth=signed)

    assert response.status_code == 404
    assert problem(response)["code"] == "payment_not_found"
    assert [r.status_code for r in (shown, elsewhere, malformed)] == [404, 404, 404]
    assert {problem(r)["code"] for r in (shown, elsewhere, malformed)} == {"refund_not_found"}


# --- interrupted, refused, failed --------------------------------------------------------


async def test_a_reversal_the_province_refuses_leaves_the_payment_as_it_was(
    client, signed, simulator, db_pool
) -> None:
    paid = await _pay(client, signed)
    balance = await _balance(simulator)
    await _set_faults(simulator, error_rate=1.0)

    refused = await _refund(client, signed, paid["payment_id"])
    await _set_faults(simulator, error_rate=0.0)

    assert refused.status_code == 502, refused.text
    body = problem(refused)
    shown = await client.get(body["instance"], auth=signed)  # the refund, recorded refused
    assert shown.json()["state"] == "refused"
    assert shown.json()["refund_id"] == body["refund_id"]
    assert "refunded" not in shown.json()
    assert await _balance(simulator) == balance  # nothing was given back
    assert await _state(db_pool, paid["payment_id"]) == "settled"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1  # no replacement
    # A refused refund leaves the payment to be refunded again, under a new key.
    retried = await _refund(client, signed, paid["payment_id"])
    assert retried.status_code == 201, retried.text
    assert retried.json()["state"] == "refunded"
    await _ledger_is_clean(db_pool)


async def test_a_dropped_reversal_answer_is_finished_by_the_resolver(
    client, signed, simulator, gateway, db_pool
) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)

    pending = await _refund(client, signed, paid["payment_id"])

    assert pending.status_code == 202, pending.text
    assert pending.json()["state"] == "reversing"
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)
    resolver = resources_of(gateway).resolver
    await resolver.run_once()  # 6301: reversed; the lines kept recorded, not yet sent
    shown = (await client.get(pending.headers["location"], auth=signed)).json()
    assert shown["state"] == "resettling"
    assert await _state(db_pool, shown["replacement_payment_id"]) == "received"

    await resolver.run_once()  # the lines kept settled anew

    done = (await client.get(pending.headers["location"], auth=signed)).json()
    assert done["state"] == "refunded"
    kept = (await client.get(f"/v1/payments/{done['replacement_payment_id']}", auth=signed)).json()
    assert await _balance(simulator) == before - kept["settlement"]["personal_account_fen"]
    assert await db_pool.fetchval("SELECT count(*) FROM settlements") == 2
    await _ledger_is_clean(db_pool)


async def test_a_dropped_answer_to_the_new_settlement_is_resolved_once(
    client, signed, simulator, gateway, db_pool
) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    # The reversal's answer is dropped too, so the resolver does both; the 2207 of the
    # lines kept is then dropped as well, and resolved by a 6301 without a second 2207.
    pending = await _refund(client, signed, paid["payment_id"])
    await _make_due(db_pool)
    resolver = resources_of(gateway).resolver
    await _set_faults(simulator, drop_rate=0.0)
    await resolver.run_once()
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    await resolver.run_once()  # the 2207 of the lines kept: its answer dropped
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)

    await resolver.run_once()

    done = (await client.get(pending.headers["location"], auth=signed)).json()
    assert done["state"] == "refunded", done
    kept = (await client.get(f"/v1/payments/{done['replacement_payment_id']}", auth=signed)).json()
    assert await _balance(simulator) == before - kept["settlement"]["personal_account_fen"]
    sent = await db_pool.fetchval(
        "SELECT count(*) FROM province_messages WHERE payment_id = $1 AND infno = '2207'",
        uuid.UUID(done["replacement_payment_id"]),
    )
    assert sent == 1
    await _ledger_is_clean(db_pool)


async def test_lines_kept_that_cannot_settle_give_the_whole_payment_back(
    client, signed, simulator, db_pool
) -> None:
    before = await _balance(simulator)
    paid = await _pay(client, signed)
    # The internet hospital is suspended from today: the lines kept cannot be settled again.
    await db_pool.execute(
        """INSERT INTO agreement_suspensions (agreement_id, suspended_from)
           SELECT agreement_id, $2 FROM institution_agreements WHERE institution_code = $1""",
        DEMO_ORDER["institution_code"],
        dt.date.fromisoformat(paid["service_date"]),
    )

    response = await _refund(client, signed, paid["payment_id"])

    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["state"] == "resettlement_failed"
    assert refund["failure_code"] == "institution_suspended"
    assert refund["refunded"]["medical_fee_total_fen"] == 11100  # the whole payment
    assert refund["refunded"]["personal_account_fen"] == paid["settlement"]["personal_account_fen"]
    assert await _state(db_pool, refund["replacement_payment_id"]) == "failed"
    assert await _balance(simulator) == before
    await _ledger_is_clean(db_pool)


async def test_the_prescription_is_never_free_between_the_reversal_and_the_new_settlement(
    client, signed, simulator, gateway, db_pool
) -> None:
    rx = await _prescription(db_pool)
    paid = await _pay(client, signed, _purchase(rx, quantity=2))
    await _set_faults(simulator, drop_rate=1.0, drop_hold_s=3.0)
    pending = await _refund(
        client, signed, paid["payment_id"], {"items": [{"line_no": 1, "quantity": 1}]}
    )
    await _set_faults(simulator, drop_rate=0.0)
    await _make_due(db_pool)
    resolver = resources_of(gateway).resolver
    await resolver.run_once()  # reversed; the lines kept recorded, not yet settled
    assert (await client.get(pending.headers["location"], auth=signed)).json()["state"] == (
        "resettling"
    )

    meanwhile = await client.post(
        "/v1/payments",
        json=_purchase(rx, quantity=1),
        headers={"Idempotency-Key": "rx-in-between"},
        auth=signed,
    )
    await resolver.run_once()

    assert meanwhile.status_code == 409
    assert problem(meanwhile)["code"] == "prescription_already_redeemed"
    done = (await client.get(pending.headers["location"], auth=signed)).json()
    assert done["state"] == "refunded"


async def test_ledger_check_names_a_refund_out_of_step_with_its_payments(
    client, signed, db_pool
) -> None:
    paid = await _pay(client, signed)
    refund = (await _refund(client, signed, paid["payment_id"])).json()
    assert (await check_ledger(db_pool)).checked["refund_matches_payments"] == 1
    # Written around the application: the lines kept "failed" while the refund says refunded.
    await db_pool.execute(
        "UPDATE payments SET state = 'failed' WHERE payment_id = $1",
        uuid.UUID(refund["replacement_payment_id"]),
    )

    check = await check_ledger(db_pool)

    named = [f for f in check.failures if f.invariant == "refund_matches_payments"]
    assert [f.subject for f in named] == [f"refund {refund['refund_id']}"]
    assert "partial refund refunded" in named[0].detail


# --- the books close with refunds in them ------------------------------------------------


async def test_a_days_refunds_reconcile_and_clear_to_zero(
    client, signed, simulator, gateway, db_pool, operator
) -> None:
    from medpay.clearing.service import clearing_matrix, period_of
    from medpay.clock import china_today
    from medpay.reconciliation.service import Reconciler

    from .conftest import operator_auth

    kept_paid = await _pay(client, signed)
    full_paid = await _pay(client, signed)
    partial = (await _refund(client, signed, kept_paid["payment_id"])).json()
    everything = {
        "items": [
            {"line_no": 1, "quantity": 1},
            {"line_no": 2, "quantity": 2},
            {"line_no": 3, "quantity": 1},
        ]
    }
    full = (await _refund(client, signed, full_paid["payment_id"], everything)).json()
    assert (partial["state"], full["state"]) == ("refunded", "refunded")

    reconciler = Reconciler(db_pool, resources_of(gateway).payment_flow, retry_seconds=0.01)
    report = await reconciler.reconcile("330000", china_today(), triggered_by="test")
    matrix = await clearing_matrix(db_pool, period_of(china_today()))
    story = await client.get(
        f"/v1/books/payments/{partial['replacement_payment_id']}", auth=operator_auth(operator)
    )

    # Two settlements and their reversals, and the lines kept settled anew: all the province's too.
    assert (report.statement_lines, report.our_lines, report.unexplained) == (3, 3, 0), report
    assert matrix.net_sum_fen == 0
    assert story.status_code == 200, story.text
    assert story.json()["replaces_payment_id"] == kept_paid["payment_id"]
    assert [(r["refund_id"], r["state"]) for r in story.json()["refunds"]] == [
        (partial["refund_id"], "refunded")
    ]
    await _ledger_is_clean(db_pool)
