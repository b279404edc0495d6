"""The national mobile-payment front door over real HTTP: 6201, 6202, 6203, 6301, 6401.

An app signs with SM2 and encrypts with SM4 (medpay.client.NationalMobileClient); the
gateway settles through the same payment flow with Zhejiang on the national profile
(SM2 cainfo, yuan), so the whole way is the national algorithms and units.
"""

from __future__ import annotations

import base64
import secrets
import time
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from medpay.app import create_app
from medpay.channels.mobile import RegisteredMobileApp, register_mobile_app
from medpay.channels.service import register_app, set_app_status
from medpay.client import NationalMobileClient
from medpay.plugin import resources_of
from medpay.security.secrets import SecretSealer
from medpay.settlement.adapters.national_sm2 import NationalSm2Adapter
from medpay.simulator.config import SimulatorConfig, default_config
from medpay.wire import gm, mobile
from medpay.wire.signing import load_private_key, public_key_pem

from .conftest import ZHEJIANG_EMPLOYEE, running_gateway

PAY_AUDIENCE = "medpay-mobile-pay"
GUANGDONG_RESIDENT = "44000000000000000002"


@pytest.fixture(scope="module")
def simulator_config(gateway_signing_key: str, gateway_sm2_signing_key: str) -> SimulatorConfig:
    """Zhejiang, the patient's home province, on the national profile."""
    return default_config(
        gateway_public_keys=[public_key_pem(load_private_key(gateway_signing_key))],
        gateway_sm2_public_keys=[gm.public_key_pem(gm.load_private_key(gateway_sm2_signing_key))],
        national=["330000"],
        seed=7,
    )


@pytest.fixture
async def mobile_app(db_pool, app_secret_key: str) -> RegisteredMobileApp:
    return await register_mobile_app(db_pool, "National hospital app", SecretSealer(app_secret_key))


@pytest.fixture
def app_client(client, mobile_app: RegisteredMobileApp, mobile_signing_key) -> NationalMobileClient:
    return NationalMobileClient(
        client,
        app_id=mobile_app.app_id,
        app_secret=mobile_app.app_secret,
        private_key=gm.load_private_key(mobile_app.private_key_pem),
        gateway_public_key=mobile_signing_key.public_key(),
    )


@pytest.fixture
def pay_auth(identity_issuer):
    def issue(psn_no: str = ZHEJIANG_EMPLOYEE, **kwargs: Any) -> str:
        return identity_issuer.issue(psn_no, audience=PAY_AUDIENCE, **kwargs)

    return issue


def upload(pay_auth_no: str, **overrides: Any) -> dict[str, Any]:
    """An online revisit at a Beijing internet hospital, in yuan: 25.00 + 60 x 38.00 + 10.00."""
    data: dict[str, Any] = {
        "payAuthNo": pay_auth_no,
        "psnNo": ZHEJIANG_EMPLOYEE,
        "medOrgOrd": "HIS20250301-0001",
        "orgCodg": "H11010800124",
        "mdtrtareaAdmvs": "110108",
        "visitType": "online_revisit",
        "acctUsedFlag": "1",
        "medfeeSumamt": Decimal("2315.00"),
        "feedetail": [
            {
                "feedetlSn": "1",
                "medListCodg": "001101000010000-IR01",
                "cnt": 1,
                "pric": Decimal("25.00"),
                "detItemFeeSumamt": Decimal("25.00"),
            },
            {
                "feedetlSn": "2",
                "medListCodg": "XC10AAA096A001010178938",
                "cnt": 60,
                "pric": Decimal("38.00"),
                "detItemFeeSumamt": Decimal("2280.00"),
            },
            {
                "feedetlSn": "3",
                "medListCodg": "FEE-DRUG-DELIVERY",
                "cnt": 1,
                "pric": "10.00",  # amounts may come as strings too
                "detItemFeeSumamt": Decimal("10.00"),
            },
        ],
        "idNo": "330106199001011234",  # national fields medpay does not use are ignored
        "userName": "王建国",
    }
    data.update(overrides)
    return data


async def _uploaded(app_client, pay_auth, **overrides: Any) -> dict[str, Any]:
    answer = await app_client.call("6201", upload(pay_auth(), **overrides))
    assert (answer.code, answer.err_code) == (0, None), answer
    assert answer.data is not None
    return answer.data


async def _paid(app_client, pay_auth) -> dict[str, Any]:
    order = await _uploaded(app_client, pay_auth)
    answer = await app_client.call(
        "6202",
        {"payAuthNo": pay_auth(), "payOrdId": order["payOrdId"], "payToken": order["payToken"]},
    )
    assert answer.code == 0, answer
    assert answer.data is not None
    return {**order, **answer.data}


async def _balance(simulator, psn_no: str = ZHEJIANG_EMPLOYEE) -> int:
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        return (await http.get(f"/admin/persons/{psn_no}")).json()["acct_balance_fen"]


def _failed(answer: mobile.OpenedAnswer, code: int, err_code: str) -> None:
    assert (answer.code, answer.err_code) == (code, err_code), answer
    assert answer.data is None


# --- the payment, end to end ------------------------------------------------------------------


async def test_6201_then_6202_settles_with_a_national_province_to_the_fen(
    app_client, pay_auth, gateway, simulator, db_pool
) -> None:
    """A Zhejiang employee (balance 5234.00 yuan) at a Beijing internet hospital, by hand:

    revisit 1 x 2500 (in scope); atorvastatin 60 x 3800, limit 3650: over the limit
    60 x 150 = 9000, allowed 219000, class B pre-self-pay 10 % = 21900, in scope
    197100; delivery 1000 (own pay). Total 231500, in scope 199600; deductible 180000
    unused, so 19600 is paid at 5000 bp (level 3 employee 7000, off-site without a
    filing -2000): fund 9800. Personal share 221700; the account pays it except the
    delivery fee: 220700; cash 1000.
    """
    assert isinstance(resources_of(gateway).provinces.adapter_for("330106"), NationalSm2Adapter)

    order = await _uploaded(app_client, pay_auth)
    assert order["ordStas"] == "0"
    assert order["feeSumamt"] == Decimal("2315.00")
    assert order["medOrgOrd"] == "HIS20250301-0001"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 0  # nothing sent yet

    paid = await app_client.call(
        "6202",
        {"payAuthNo": pay_auth(), "payOrdId": order["payOrdId"], "payToken": order["payToken"]},
    )

    assert paid.code == 0, paid
    assert paid.data is not None
    split = {
        k: paid.data[k] for k in ("ordStas", "feeSumamt", "fundPay", "psnAcctPay", "ownPayAmt")
    }
    assert split == {
        "ordStas": "6",
        "feeSumamt": Decimal("2315.00"),
        "fundPay": Decimal("98.00"),
        "psnAcctPay": Decimal("2207.00"),
        "ownPayAmt": Decimal("10.00"),
    }
    assert split["fundPay"] + split["psnAcctPay"] + split["ownPayAmt"] == split["feeSumamt"]
    payment = await db_pool.fetchrow(
        "SELECT payment_id, state, idempotency_key FROM payments WHERE app_id = $1",
        app_client.app_id,
    )
    assert (payment["state"], payment["idempotency_key"]) == (
        "settled",
        f"mobile:{order['payOrdId']}",
    )
    settlement = await db_pool.fetchrow(
        "SELECT * FROM settlements WHERE payment_id = $1", payment["payment_id"]
    )
    assert (settlement["in_scope_fen"], settlement["deductible_fen"]) == (199600, 180000)
    assert (settlement["pre_self_pay_fen"], settlement["over_limit_self_pay_fen"]) == (21900, 9000)
    assert (settlement["basic_fund_fen"], settlement["reimbursement_ratio_bp"]) == (9800, 5000)
    assert settlement["account_balance_after_fen"] == 523400 - 220700
    journal = await db_pool.fetch(
        "SELECT p.account, p.amount_fen FROM ledger_journals j JOIN ledger_postings p USING (journal_id)"
        " WHERE j.payment_id = $1 AND j.kind = 'settlement' ORDER BY p.line_no",
        payment["payment_id"],
    )
    assert [(r["account"], r["amount_fen"]) for r in journal] == [
        ("fund_receivable:330000", 9800),
        ("personal_account_receivable:330000", 220700),
        ("patient_cash_receivable", 1000),
        ("institution_payable:H11010800124", -231500),
    ]
    assert sum(r["amount_fen"] for r in journal) == 0
    assert await _balance(simulator) == 523400 - 220700  # the province charged it once


async def test_a_repeated_6202_is_the_same_payment_settled_once(
    app_client, pay_auth, simulator, db_pool
) -> None:
    paid = await _paid(app_client, pay_auth)
    again = await app_client.call(
        "6202",
        {"payAuthNo": pay_auth(), "payOrdId": paid["payOrdId"], "payToken": paid["payToken"]},
    )
    assert again.code == 0 and again.data is not None
    assert again.data["setlId"] == paid["setlId"]
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 1
    assert await _balance(simulator) == 523400 - 220700


async def test_a_repeated_6201_answers_the_same_order_and_other_content_is_refused(
    app_client, pay_auth
) -> None:
    first = await _uploaded(app_client, pay_auth)
    again = await _uploaded(app_client, pay_auth)  # a new payAuthNo, the same upload
    assert (again["payOrdId"], again["payToken"]) == (first["payOrdId"], first["payToken"])

    other = await app_client.call("6201", upload(pay_auth(), acctUsedFlag="0"))

    _failed(other, 409, "order_number_reused")


async def test_6301_tells_the_order_state_before_and_after_payment(app_client, pay_auth) -> None:
    order = await _uploaded(app_client, pay_auth)
    query = {"payOrdId": order["payOrdId"], "payToken": order["payToken"]}
    before = await app_client.call("6301", query)
    assert before.data is not None
    assert (before.data["ordStas"], before.data["feeSumamt"]) == ("0", Decimal("2315.00"))
    assert "fundPay" not in before.data

    await app_client.call("6202", {"payAuthNo": pay_auth(), **query})
    after = await app_client.call("6301", query)

    assert after.code == 0 and after.data is not None
    assert after.data["ordStas"] == "6"
    assert (after.data["fundPay"], after.data["psnAcctPay"], after.data["ownPayAmt"]) == (
        Decimal("98.00"),
        Decimal("2207.00"),
        Decimal("10.00"),
    )


async def test_an_order_of_another_app_or_with_a_wrong_token_is_not_found(
    app_client, pay_auth, db_pool, app_secret_key, client, mobile_signing_key
) -> None:
    order = await _uploaded(app_client, pay_auth)
    wrong_token = await app_client.call(
        "6301", {"payOrdId": order["payOrdId"], "payToken": "0" * 64}
    )
    _failed(wrong_token, 404, "order_not_found")
    other = await register_mobile_app(db_pool, "Another app", SecretSealer(app_secret_key))
    other_client = NationalMobileClient(
        client,
        app_id=other.app_id,
        app_secret=other.app_secret,
        private_key=gm.load_private_key(other.private_key_pem),
        gateway_public_key=mobile_signing_key.public_key(),
    )
    _failed(
        await other_client.call("6301", {k: order[k] for k in ("payOrdId", "payToken")}),
        404,
        "order_not_found",
    )


# --- 6401 cancel, 6203 refund ---------------------------------------------------------------


async def test_6401_cancels_an_upload_and_6202_is_then_refused(
    app_client, pay_auth, db_pool
) -> None:
    order = await _uploaded(app_client, pay_auth)
    ids = {"payOrdId": order["payOrdId"], "payToken": order["payToken"]}

    cancelled = await app_client.call("6401", ids)
    again = await app_client.call("6401", ids)
    pay = await app_client.call("6202", {"payAuthNo": pay_auth(), **ids})
    query = await app_client.call("6301", ids)

    assert cancelled.data == again.data == {"payOrdId": order["payOrdId"], "ordStas": "12"}
    _failed(pay, 409, "order_cancelled")
    assert query.data is not None and query.data["ordStas"] == "12"
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_6401_after_6202_is_refused(app_client, pay_auth) -> None:
    paid = await _paid(app_client, pay_auth)
    cancel = await app_client.call("6401", {k: paid[k] for k in ("payOrdId", "payToken")})
    _failed(cancel, 409, "order_already_paid")


async def test_6203_refunds_in_full_through_the_reversal(
    app_client, pay_auth, simulator, db_pool
) -> None:
    paid = await _paid(app_client, pay_auth)
    ids = {"payOrdId": paid["payOrdId"], "payToken": paid["payToken"]}
    refund = {**ids, "appRefdSn": "REFUND-0001", "totlRefdAmt": Decimal("2315.00")}

    refunded = await app_client.call("6203", refund)

    assert refunded.code == 0, refunded
    assert refunded.data == {
        "payOrdId": paid["payOrdId"],
        "appRefdSn": "REFUND-0001",
        "ordStas": "7",
        "totlRefdAmt": Decimal("2315.00"),
        "fundRefdAmt": Decimal("98.00"),
        "psnAcctRefdAmt": Decimal("2207.00"),
        "cashRefdAmt": Decimal("10.00"),
    }
    assert await _balance(simulator) == 523400
    assert (
        await db_pool.fetchval(
            "SELECT sum(amount_fen) FROM ledger_postings WHERE account = 'fund_receivable:330000'"
        )
        == 0
    )
    repeat = await app_client.call("6203", refund)
    assert repeat.code == 0 and repeat.data is not None and repeat.data["ordStas"] == "7"
    other_serial = await app_client.call("6203", {**refund, "appRefdSn": "REFUND-0002"})
    _failed(other_serial, 409, "refund_already_requested")
    query = await app_client.call("6301", ids)
    assert query.data is not None and query.data["ordStas"] == "7"
    assert (
        await db_pool.fetchval("SELECT count(*) FROM ledger_journals") == 2
    )  # settlement, reversal


async def test_6203_refuses_a_partial_refund_and_an_unpaid_order(app_client, pay_auth) -> None:
    order = await _uploaded(app_client, pay_auth)
    ids = {"payOrdId": order["payOrdId"], "payToken": order["payToken"]}
    unpaid = await app_client.call(
        "6203", {**ids, "appRefdSn": "R1", "totlRefdAmt": Decimal("2315.00")}
    )
    _failed(unpaid, 409, "order_not_paid")
    partial = await app_client.call("6203", {**ids, "appRefdSn": "R1", "totlRefdAmt": "100.00"})
    _failed(partial, 422, "refund_amount_mismatch")


# --- the envelope -----------------------------------------------------------------------------


async def test_a_tampered_signdata_is_refused(app_client, pay_auth, db_pool) -> None:
    body = msgspec.json.decode(app_client.seal(upload(pay_auth())))
    signature = bytearray(base64.b64decode(body["signData"]))
    signature[40] ^= 0x01
    body["signData"] = base64.b64encode(bytes(signature)).decode()

    answer = await app_client.send("6201", msgspec.json.encode(body))

    _failed(answer, 401, "signature_invalid")
    assert answer.app_id == app_client.app_id  # an answer signed for the app
    assert await db_pool.fetchval("SELECT count(*) FROM mobile_orders") == 0


async def test_encdata_under_another_sm4_key_is_refused(app_client, pay_auth, mobile_app) -> None:
    data = upload(pay_auth())
    right = mobile.derive_sm4_key(mobile_app.app_id, mobile_app.app_secret)
    sealed = msgspec.json.decode(app_client.seal(data))
    plaintext = gm.sm4_ecb_decrypt(right, bytes.fromhex(sealed["encData"]))
    while True:  # a wrong key whose ciphertext the right key cannot even unpad
        wrong = mobile.derive_sm4_key(mobile_app.app_id, secrets.token_hex(16))
        ciphertext = gm.sm4_ecb_encrypt(wrong, plaintext)
        try:
            gm.sm4_ecb_decrypt(right, ciphertext)
        except gm.GmError:
            break
    sealed["encData"] = ciphertext.hex().upper()

    answer = await app_client.send("6201", msgspec.json.encode(sealed))

    _failed(answer, 401, "decryption_failed")


async def test_a_replayed_envelope_is_refused_and_a_stale_timestamp_too(
    app_client, pay_auth
) -> None:
    body = app_client.seal(upload(pay_auth()))
    first = await app_client.send("6201", body)
    replayed = await app_client.send("6201", body)
    assert first.code == 0
    _failed(replayed, 401, "request_replayed")

    now_ms = int(time.time() * 1000)
    for skew_ms in (-301_000, 301_000):
        stale = app_client.seal(upload(pay_auth()), timestamp_ms=now_ms + skew_ms)
        _failed(await app_client.send("6201", stale), 401, "timestamp_out_of_window")


async def test_an_unknown_appid_is_refused_with_an_answer_naming_no_app(
    client, pay_auth, mobile_signing_key, db_pool
) -> None:
    ordinary = await register_app(db_pool, "Our channel only", "sm2", app_id="ABCDEF0123456789ABCD")
    for app_id in ("0123456789ABCDEF0123", ordinary.app_id):
        stranger = NationalMobileClient(
            client,
            app_id=app_id,
            app_secret="S" * 32,
            private_key=gm.generate_private_key(),
            gateway_public_key=mobile_signing_key.public_key(),
        )
        answer = await stranger.call("6201", upload(pay_auth()))  # verifies with an empty key
        _failed(answer, 401, "app_unknown")
        assert answer.app_id is None


async def test_a_suspended_app_is_refused(app_client, pay_auth, db_pool) -> None:
    await set_app_status(db_pool, app_client.app_id, "suspended")
    _failed(await app_client.call("6201", upload(pay_auth())), 401, "app_suspended")


# --- payAuthNo --------------------------------------------------------------------------------


async def test_a_payauthno_of_another_person_is_refused(app_client, pay_auth) -> None:
    _failed(
        await app_client.call("6201", upload(pay_auth(GUANGDONG_RESIDENT))),
        403,
        "pay_auth_person_mismatch",
    )
    order = await _uploaded(app_client, pay_auth)
    pay = await app_client.call(
        "6202",
        {
            "payAuthNo": pay_auth(GUANGDONG_RESIDENT),
            "payOrdId": order["payOrdId"],
            "payToken": order["payToken"],
        },
    )
    _failed(pay, 403, "pay_auth_person_mismatch")


async def test_a_payauthno_must_be_a_fresh_face_verified_payment_authorisation(
    app_client, pay_auth, identity_issuer
) -> None:
    session_token = identity_issuer.issue(ZHEJIANG_EMPLOYEE)  # aud "medpay": not for paying
    cases = [
        (session_token, 401, "pay_auth_invalid"),
        (pay_auth(amr=("pwd",)), 403, "pay_auth_face_required"),
        (pay_auth(now=int(time.time()) - 7200), 401, "pay_auth_expired"),
        ("not-a-token", 401, "pay_auth_invalid"),
    ]
    for number, (token, code, err_code) in enumerate(cases):
        answer = await app_client.call("6201", upload(token, medOrgOrd=f"HIS-AUTH-{number}"))
        _failed(answer, code, err_code)


async def test_one_payauthno_authorises_one_order(app_client, pay_auth) -> None:
    token = pay_auth()
    first = await app_client.call("6201", upload(token))
    second = await app_client.call("6201", upload(token, medOrgOrd="HIS20250301-0002"))
    assert first.code == 0
    _failed(second, 409, "pay_auth_reused")


# --- amounts and business data -----------------------------------------------------------------


async def test_amounts_that_are_not_exact_yuan_are_refused(app_client, pay_auth) -> None:
    cases = [
        {"medfeeSumamt": Decimal("2315.001")},
        {"medfeeSumamt": "-2315.00"},
        {"medfeeSumamt": "2315.005"},
    ]
    for number, overrides in enumerate(cases):
        answer = await app_client.call(
            "6201", upload(pay_auth(), medOrgOrd=f"HIS-AMT-{number}", **overrides)
        )
        _failed(answer, 400, "amount_invalid")
    line = upload(pay_auth())["feedetail"]
    line[0] = {**line[0], "pric": Decimal("25.001"), "detItemFeeSumamt": Decimal("25.001")}
    answer = await app_client.call(
        "6201", upload(pay_auth(), medOrgOrd="HIS-AMT-9", feedetail=line)
    )
    _failed(answer, 400, "amount_invalid")


async def test_totals_must_add_up_to_the_fen(app_client, pay_auth) -> None:
    answer = await app_client.call("6201", upload(pay_auth(), medfeeSumamt=Decimal("2315.01")))
    _failed(answer, 400, "fee_total_mismatch")
    line = upload(pay_auth())["feedetail"]
    line[1] = {**line[1], "detItemFeeSumamt": Decimal("2279.99")}
    answer = await app_client.call(
        "6201", upload(pay_auth(), medOrgOrd="HIS-SUM-2", feedetail=line)
    )
    _failed(answer, 400, "fee_total_mismatch")


async def test_a_pharmacy_purchase_without_a_prescription_is_refused_at_upload(
    app_client, pay_auth
) -> None:
    answer = await app_client.call("6201", upload(pay_auth(), visitType="pharmacy_purchase"))
    _failed(answer, 422, "prescription_required")


async def test_a_refusal_of_the_payment_flow_is_answered_and_queried_as_failed(
    app_client, pay_auth, identity_issuer
) -> None:
    """The order names an institution outside the treatment area: the flow refuses it."""
    order = await _uploaded(app_client, pay_auth, mdtrtareaAdmvs="110105")
    ids = {"payOrdId": order["payOrdId"], "payToken": order["payToken"]}
    pay = await app_client.call("6202", {"payAuthNo": pay_auth(), **ids})
    _failed(pay, 422, "treatment_area_mismatch")
    query = await app_client.call("6301", ids)
    assert query.data is not None
    assert (query.data["ordStas"], query.data["failCode"]) == ("15", "treatment_area_mismatch")


async def test_malformed_requests_are_answered_in_the_envelope_never_a_500(
    client, mobile_signing_key, app_client, pay_auth
) -> None:
    bodies = [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"appId": "x"}',
        b'{"appId": "0123456789ABCDEF", "timestamp": 1, "encType": "SM4", "signType": "SM2",'
        b' "encData": "zz", "signData": "", "extra": 1}',
        b"\xff\xfe\x00garbage",
        b"x" * 20_000,  # over the body limit
    ]
    for transaction in ("6201", "6202", "6203", "6301", "6401"):
        for body in bodies:
            response = await client.post(f"/v1/mobile/{transaction}", content=body)
            assert response.status_code == 200, (transaction, body, response.text)
            answer = mobile.open_answer(
                response.content,
                app_id="unused",
                app_secret="",
                public_key=mobile_signing_key.public_key(),
            )
            assert answer.code in (400, 413), (transaction, body, answer)
    wrong_type = await app_client.call("6202", upload(pay_auth()))  # 6201's data sent to 6202
    _failed(wrong_type, 400, "business_data_invalid")
    not_sm4 = msgspec.json.decode(app_client.seal(upload(pay_auth())))
    not_sm4["encType"] = "AES"
    _failed(
        await app_client.send("6201", msgspec.json.encode(not_sm4)), 400, "algorithm_unsupported"
    )


async def test_without_its_keys_the_front_door_says_so(
    settings, clearing, app_client, pay_auth
) -> None:
    bare = create_app(
        msgspec.structs.replace(settings, app_secret_key=None, mobile_signing_key_pem=None),
        clearing=clearing,
    )
    async with running_gateway(bare) as http:
        response = await http.post("/v1/mobile/6201", content=app_client.seal(upload(pay_auth())))
    answer = mobile.decode_answer(response.content)
    assert (response.status_code, answer.code, answer.errCode) == (
        200,
        503,
        "front_door_not_configured",
    )
