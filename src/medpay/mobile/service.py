"""The national mobile-payment front door: 6201, 6202, 6203, 6301, 6401 onto the payment flow.

An app built against the national interface (DOMAIN.md section 8) sends the national
envelope (:mod:`medpay.wire.mobile`); each request is checked in a fixed order, the
order of our own channel's guard (caller, clock, signature, replay):

1. the envelope parses (else ``envelope_malformed``);
2. ``appId`` is a registered national-interface app, active (``app_unknown``,
   ``app_suspended``);
3. ``timestamp`` (ms) lies within the signature window of our clock, 300 s either
   way (``timestamp_out_of_window``);
4. ``encData`` decrypts under the app's SM4 key and ``signData`` verifies under one
   of its SM2 keys (``decryption_failed``, ``signature_invalid``);
5. the signed message is new: its :func:`~medpay.wire.mobile.replay_digest` (appId,
   timestamp, version and business data, the secret left out) is spent in
   ``request_nonces`` under the scope ``mobile:<appId>``, in PostgreSQL like our
   channel's nonces, kept as long; only a verified request spends one, so a forger
   cannot burn a genuine app's messages (``request_replayed``). The national envelope
   has no nonce or message id: the millisecond timestamp and the content are what
   tell two messages apart, and a retry by an app is a new envelope (a new timestamp);
6. the business data is the transaction's (:mod:`.schemas`), amounts exact yuan.

**payAuthNo** stands in for the identity token: a JWT from a trusted identity issuer
(the same ``identity_issuers`` as our channel's tokens, checked by the same code:
EdDSA or ES256, ``iss``, ``exp``, ``nbf`` enforced) whose ``aud`` is the payment
audience (``pay_auth_audience``, so an ordinary session token is not a payment
authorisation), whose ``sub`` is the person (``psn_no``), with ``face`` among its
``amr`` and a ``jti``. One payAuthNo authorises one order: its ``jti`` is bound to the
first upload that uses it, and a payAuthNo of another person than the order's is
refused.

**The same payment flow**: 6201 records the upload (``mobile_orders``; nothing is sent
anywhere, and it may be cancelled by 6401); 6202 hands it to
:meth:`~medpay.payments.flow.PaymentFlow.pay` under the Idempotency-Key
``mobile:<payOrdId>`` and the upload's digest, so a repeated 6202 continues or finds
the same payment (the payments table keeps the key unique), with the same msgid,
ledger journal and outbox as ``/v1/payments``; 6203 is
:meth:`~medpay.payments.flow.PaymentFlow.reverse`, a full reversal; 6301 reads.

**Idempotency**, as the national interface keys it: 6201 by ``medOrgOrd`` (the same
upload again answers the same ``payOrdId``; other content under it is refused),
6202 by ``payOrdId``, 6203 by ``appRefdSn`` (one refund per order), 6401 by
``payOrdId`` (cancelling twice answers the same). ``payToken`` is
HMAC-SHA256(payOrdId) under a key derived from the gateway's sealing key: answered
again on a repeated 6201, never stored, and required with every later transaction.

Every failure is answered in the national envelope with a stable ``errCode``
(:mod:`.codes`); none is a 500 or leaves a half-written row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import msgspec

from medpay.channels.mobile import MobileApp, find_mobile_app
from medpay.clock import CHINA
from medpay.errors import Conflict, DomainError, Forbidden, InvalidRequest, NotFound, Refused
from medpay.mobile import codes
from medpay.mobile.queries import (
    CANCEL_UPLOAD,
    CLAIM_REFUND,
    INSERT_UPLOAD,
    SUBMIT_UPLOAD,
    UPLOAD_BY_ID,
    UPLOAD_BY_ORDER_NUMBER,
)
from medpay.mobile.schemas import (
    ORD_STAS,
    CancelUpload,
    CancelUploadAnswer,
    FeeUpload,
    FeeUploadAnswer,
    OrderAnswer,
    OrderQuery,
    PayOrder,
    RefundAnswer,
    RefundOrder,
)
from medpay.payments import queries as payment_queries
from medpay.payments.preparing import check_order
from medpay.payments.schemas import PaymentOrder, PaymentView
from medpay.payments.views import payment_view
from medpay.privacy import masked_text
from medpay.security import queries as security_queries
from medpay.security.persons import person_ref, psn_no_of, seal_person
from medpay.security.secrets import SealedSecretInvalid
from medpay.wire import mobile
from medpay.wire.yuan import YuanError, YuanFen, dec_hook

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from medpay.payments.flow import PaymentFlow
    from medpay.security.identity import IdentityVerifier
    from medpay.security.secrets import SecretSealer
    from medpay.wire import gm

__all__ = ["TRANSACTIONS", "MobileFrontDoor", "PayAuthorisation", "payment_key"]

_log = logging.getLogger("medpay.mobile")

#: The transactions of the front door and the business data each takes.
TRANSACTIONS: Final[dict[str, type[msgspec.Struct]]] = {
    "6201": FeeUpload,
    "6202": PayOrder,
    "6203": RefundOrder,
    "6301": OrderQuery,
    "6401": CancelUpload,
}
_KEY_PREFIX: Final = "mobile:"
_PAY_TOKEN_PURPOSE: Final = "medpay mobile payToken v1"  # noqa: S105 - an HKDF label, not a secret
_encoder = msgspec.json.Encoder(order="sorted")


def payment_key(pay_ord_id: str) -> str:
    """The payment's Idempotency-Key in the payment flow: one payment per uploaded order."""
    return f"{_KEY_PREFIX}{pay_ord_id}"


@dataclass(frozen=True, slots=True)
class PayAuthorisation:
    """Who a payAuthNo authorises to pay, and its fingerprint (bound to one order)."""

    psn_no: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class _Upload:
    pay_ord_id: str
    med_org_ord: str
    upload_digest: str
    psn_no: str
    order: PaymentOrder
    medical_fee_total_fen: int
    state: str
    refund_sn: str | None


class MobileFrontDoor:
    """Answers the national envelope's transactions (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        payment_flow: PaymentFlow,
        *,
        sealer: SecretSealer | None,
        signing_key: gm.Sm2PrivateKey | None,
        pay_auth: IdentityVerifier,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._flow = payment_flow
        self._sealer = sealer
        self._signing_key = signing_key
        self._pay_auth = pay_auth
        self._window_ms = window_seconds * 1000
        self._clock = clock
        self._token_key = sealer.subkey(_PAY_TOKEN_PURPOSE) if sealer else b""
        self._handlers: dict[str, Callable[[MobileApp, Any], Awaitable[msgspec.Struct]]] = {
            "6201": self._upload,
            "6202": self._pay,
            "6203": self._refund,
            "6301": self._query,
            "6401": self._cancel,
        }

    # --- the envelope ------------------------------------------------------------------------

    async def answer(self, infno: str, body: bytes | None) -> bytes:
        """The encoded answer envelope to one request (``body`` None: it was too large)."""
        app: MobileApp | None = None
        try:
            if self._sealer is None or self._signing_key is None:
                return self._unsigned_failure(
                    503, "front_door_not_configured", "The national interface is not configured"
                )
            if body is None:
                too_large = InvalidRequest("request_too_large", "The request body is too large")
                return self._failure(too_large, None, code=413)
            envelope = mobile.decode_envelope(body)
            app = await self._app(envelope.appId)
            data = await self._open(app, envelope, TRANSACTIONS[infno])
            result = await self._handlers[infno](app, data)
        except DomainError as exc:
            return self._failure(exc, app)
        except mobile.EnvelopeError as exc:
            return self._failure(codes.envelope_refusal(exc), app)
        except Exception:
            _log.exception("national front door: %s failed unexpectedly", infno)
            return self._failure(
                DomainError("internal_error", "Internal error", "Nothing was left half-done."),
                app,
                code=codes.INTERNAL_ERROR,
            )
        return self._success(result, app)

    async def _app(self, app_id: str) -> MobileApp:
        assert self._sealer is not None
        try:
            app = await find_mobile_app(self._pool, app_id, self._sealer)
        except SealedSecretInvalid:
            _log.error("the appSecret of %s does not open: is MEDPAY_APP_SECRET_KEY right?", app_id)
            raise
        if app is None:
            raise codes.refusal(
                "app_unknown", "No such app is registered for the national interface"
            )
        if app.status != "active":
            raise codes.refusal("app_suspended", "The app is suspended")
        return app

    async def _open(
        self, app: MobileApp, envelope: mobile.Envelope, data_type: type[msgspec.Struct]
    ) -> Any:
        skew_ms = abs(int(self._clock() * 1000) - envelope.timestamp)
        if skew_ms > self._window_ms:
            raise codes.refusal(
                "timestamp_out_of_window",
                "timestamp is too far from the gateway's clock",
                f"Allowed: {self._window_ms} ms either way; this one is {skew_ms} ms away.",
            )
        if not app.keys:
            raise codes.refusal("signature_invalid", "The app has no active SM2 key")
        opened = _open_with_any_key(envelope, app)
        scope = f"{_KEY_PREFIX}{app.app_id}"
        digest = mobile.replay_digest(opened)
        if await self._pool.fetchval(security_queries.SPEND_NONCE, scope, digest) is None:
            raise codes.refusal(
                "request_replayed",
                "This signed message was already received",
                "Send each request as a new envelope (a new timestamp).",
            )
        return _business_data(opened.data, data_type)

    def _success(self, result: msgspec.Struct, app: MobileApp | None) -> bytes:
        assert app is not None and self._signing_key is not None
        return mobile.encode_answer(
            mobile.seal_answer(
                result,
                code=codes.SUCCESS,
                message="success",
                app_id=app.app_id,
                app_secret=app.app_secret,
                private_key=self._signing_key,
            )
        )

    def _failure(
        self, exc: DomainError, app: MobileApp | None, *, code: int | None = None
    ) -> bytes:
        assert self._signing_key is not None
        message = exc.title if not exc.detail else f"{exc.title}: {masked_text(exc.detail)}"
        return mobile.encode_answer(
            mobile.seal_answer(
                None,
                code=code or codes.answer_code(exc),
                message=message[:1000],
                err_code=exc.code,
                app_id=app.app_id if app else None,
                app_secret=app.app_secret if app else None,
                private_key=self._signing_key,
            )
        )

    def _unsigned_failure(self, code: int, err_code: str, message: str) -> bytes:
        """Without a signing key there is nothing to sign with: the one unsigned answer."""
        return mobile.encode_answer(
            mobile.AnswerEnvelope(
                code=code,
                message=message,
                errCode=err_code,
                timestamp=int(self._clock() * 1000),
                signData="",
            )
        )

    # --- payAuthNo and orders ---------------------------------------------------------------

    def _authorised(self, pay_auth_no: str) -> PayAuthorisation:
        try:
            identity = self._pay_auth.verify_token(pay_auth_no)
        except DomainError as exc:
            code = (
                "pay_auth_expired" if exc.code == "identity_token_expired" else "pay_auth_invalid"
            )
            raise codes.refusal(
                code, "The payAuthNo is not a valid payment authorisation", exc.detail
            ) from exc
        if "face" not in identity.authentication_methods:
            raise Forbidden(
                "pay_auth_face_required",
                "The payment authorisation was not face-verified",
                "The payAuthNo's amr does not include face.",
            )
        if not identity.token_id:
            raise codes.refusal(
                "pay_auth_invalid",
                "The payAuthNo has no jti",
                "A payAuthNo is used once; it needs an id.",
            )
        fingerprint = hashlib.sha256(f"{identity.issuer}\n{identity.token_id}".encode()).hexdigest()
        return PayAuthorisation(psn_no=identity.psn_no, fingerprint=fingerprint)

    def _pay_token(self, app_id: str, pay_ord_id: str) -> str:
        return hmac.new(
            self._token_key, f"{app_id}\n{pay_ord_id}".encode(), hashlib.sha256
        ).hexdigest()

    async def _load(self, app: MobileApp, pay_ord_id: str, pay_token: str) -> _Upload:
        row = await self._pool.fetchrow(UPLOAD_BY_ID, pay_ord_id)
        expected = self._pay_token(app.app_id, pay_ord_id)
        if (
            row is None
            or row["app_id"] != app.app_id
            or not hmac.compare_digest(expected, pay_token)
        ):
            raise NotFound(
                "order_not_found",
                "No such order",
                "No order of this app has that payOrdId and payToken.",
            )
        return _upload(row)

    async def _payment(self, app: MobileApp, upload: _Upload) -> PaymentView | None:
        row = await self._pool.fetchrow(
            payment_queries.PAYMENT_BY_IDEMPOTENCY_KEY, app.app_id, payment_key(upload.pay_ord_id)
        )
        return None if row is None else payment_view(row)

    # --- 6201 fee upload --------------------------------------------------------------------

    async def _upload(self, app: MobileApp, data: FeeUpload) -> FeeUploadAnswer:
        authorised = self._authorised(data.payAuthNo)
        if authorised.psn_no != data.psnNo:
            raise Forbidden(
                "pay_auth_person_mismatch",
                "The payAuthNo authorises another person",
                "psnNo is not the person of the payAuthNo.",
            )
        order = _payment_order(data)
        check_order(order)
        order_json = msgspec.to_builtins(order)
        person = person_ref(data.psnNo)
        digest = hashlib.sha256(
            _encoder.encode({"app": app.app_id, "psn_no": person, "order": order_json})
        ).hexdigest()
        pay_ord_id = _new_pay_ord_id()
        try:
            inserted = await self._pool.fetchval(
                INSERT_UPLOAD,
                pay_ord_id,
                app.app_id,
                data.medOrgOrd,
                digest,
                person,
                authorised.fingerprint,
                order_json,
                order.medical_fee_total_fen,
                seal_person(data.psnNo, ""),
            )
        except asyncpg.UniqueViolationError as clash:
            if clash.constraint_name != "mobile_orders_pay_auth_id_key":
                raise
            raise Conflict(
                "pay_auth_reused",
                "The payAuthNo was used for another order",
                "Ask the patient for a new payment authorisation.",
            ) from clash
        if inserted is None:  # the app uploaded this order number before
            row = await self._pool.fetchrow(UPLOAD_BY_ORDER_NUMBER, app.app_id, data.medOrgOrd)
            assert row is not None
            if row["upload_digest"] != digest:
                raise Conflict(
                    "order_number_reused",
                    "medOrgOrd was uploaded before with other content",
                    "Use a new medOrgOrd for a new order.",
                )
            pay_ord_id = row["pay_ord_id"]
            upload = _upload(row)
            status = await self._status(app, upload)
        else:
            status = ORD_STAS["uploaded"]
        return FeeUploadAnswer(
            payOrdId=pay_ord_id,
            payToken=self._pay_token(app.app_id, pay_ord_id),
            medOrgOrd=data.medOrgOrd,
            ordStas=status,
            feeSumamt=YuanFen(order.medical_fee_total_fen),
        )

    async def _status(self, app: MobileApp, upload: _Upload) -> Any:
        if upload.state != "submitted":
            return ORD_STAS[upload.state]
        payment = await self._payment(app, upload)
        return ORD_STAS["processing" if payment is None else payment.state]

    # --- 6202 pay ---------------------------------------------------------------------------

    async def _pay(self, app: MobileApp, data: PayOrder) -> OrderAnswer:
        authorised = self._authorised(data.payAuthNo)
        upload = await self._load(app, data.payOrdId, data.payToken)
        if authorised.psn_no != upload.psn_no:
            raise Forbidden(
                "pay_auth_person_mismatch",
                "The payAuthNo authorises another person",
                "The order was uploaded for someone else.",
            )
        if await self._pool.fetchval(SUBMIT_UPLOAD, upload.pay_ord_id) is None:
            raise Conflict("order_cancelled", "The order was cancelled", "Upload it again (6201).")
        outcome = await self._flow.pay(
            app_id=app.app_id,
            idempotency_key=payment_key(upload.pay_ord_id),
            request_digest=upload.upload_digest,
            psn_no=upload.psn_no,
            order=upload.order,
        )
        if outcome.problem is not None:
            raise outcome.problem
        return _order_answer(upload, outcome.payment)

    # --- 6301 query -------------------------------------------------------------------------

    async def _query(self, app: MobileApp, data: OrderQuery) -> OrderAnswer:
        upload = await self._load(app, data.payOrdId, data.payToken)
        payment = await self._payment(app, upload)
        if payment is None:
            state = "processing" if upload.state == "submitted" else upload.state
            return OrderAnswer(
                payOrdId=upload.pay_ord_id,
                medOrgOrd=upload.med_org_ord,
                ordStas=ORD_STAS[state],
                feeSumamt=YuanFen(upload.medical_fee_total_fen),
            )
        return _order_answer(upload, payment)

    # --- 6203 refund ------------------------------------------------------------------------

    async def _refund(self, app: MobileApp, data: RefundOrder) -> RefundAnswer:
        upload = await self._load(app, data.payOrdId, data.payToken)
        if data.totlRefdAmt != upload.medical_fee_total_fen:
            raise Refused(
                "refund_amount_mismatch",
                "Only a full refund is possible",
                f"totlRefdAmt must be the order's total, {YuanFen(upload.medical_fee_total_fen)} fen.",
            )
        payment = await self._payment(app, upload)
        if payment is None:
            raise Conflict(
                "order_not_paid", "The order was not paid", "There is nothing to refund."
            )
        if await self._pool.fetchval(CLAIM_REFUND, upload.pay_ord_id, data.appRefdSn) is None:
            raise Conflict(
                "refund_already_requested",
                "The order is refunded under another appRefdSn",
                "Query the order (6301) for its state.",
            )
        refunded = payment
        if payment.state != "reversed":  # a repeat of this refund answers as the first did
            outcome = await self._flow.reverse(
                str(payment.payment_id), app_id=app.app_id, psn_no=upload.psn_no
            )
            if outcome.problem is not None:
                raise outcome.problem
            refunded = outcome.payment
        settlement = refunded.settlement
        return RefundAnswer(
            payOrdId=upload.pay_ord_id,
            appRefdSn=data.appRefdSn,
            ordStas=ORD_STAS[refunded.state],
            totlRefdAmt=YuanFen(upload.medical_fee_total_fen),
            fundRefdAmt=_fen(settlement.fund_total_fen) if settlement else None,
            psnAcctRefdAmt=_fen(settlement.personal_account_fen) if settlement else None,
            cashRefdAmt=_fen(settlement.cash_fen) if settlement else None,
        )

    # --- 6401 upload cancel -----------------------------------------------------------------

    async def _cancel(self, app: MobileApp, data: CancelUpload) -> CancelUploadAnswer:
        upload = await self._load(app, data.payOrdId, data.payToken)
        # Once 6202 has handed the order to the payment flow it is never cancelled, even if
        # that 6202 did not finish: only the flow may say whether a payment exists.
        if await self._pool.fetchval(CANCEL_UPLOAD, upload.pay_ord_id) is None:
            raise Conflict(
                "order_already_paid",
                "The order was handed to payment and cannot be cancelled",
                "Refund it instead (6203) once it is settled.",
            )
        return CancelUploadAnswer(payOrdId=upload.pay_ord_id, ordStas=ORD_STAS["cancelled"])


# --- helpers ----------------------------------------------------------------------------------


def _open_with_any_key(envelope: mobile.Envelope, app: MobileApp) -> mobile.OpenedEnvelope:
    """Open with the app's SM2 keys in turn (several while a key is rotated)."""
    refusal: mobile.SignatureInvalid | None = None
    for key in app.keys:
        try:
            return mobile.open_envelope(envelope, app_secret=app.app_secret, public_key=key)
        except mobile.SignatureInvalid as exc:
            refusal = exc
    assert refusal is not None
    raise refusal


def _business_data(data: dict[str, Any], data_type: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.convert(data, data_type, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__cause__, YuanError):
            raise InvalidRequest("amount_invalid", "An amount is not exact yuan", str(exc)) from exc
        raise InvalidRequest(
            "business_data_invalid", "encData is not this transaction's data", str(exc)
        ) from exc


def _payment_order(data: FeeUpload) -> PaymentOrder:
    serials = [line.feedetlSn for line in data.feedetail]
    if len(set(serials)) != len(serials):
        raise InvalidRequest(
            "business_data_invalid", "feedetlSn repeats", "Each line needs its own serial."
        )
    for line in data.feedetail:
        if line.detItemFeeSumamt != line.cnt * line.pric:
            raise InvalidRequest(
                "fee_total_mismatch",
                "A line's detItemFeeSumamt is not cnt * pric",
                f"Line {line.feedetlSn}: {line.cnt} x {line.pric} fen is not {line.detItemFeeSumamt} fen.",
            )
    total = sum(line.detItemFeeSumamt for line in data.feedetail)
    if total != data.medfeeSumamt:
        raise InvalidRequest(
            "fee_total_mismatch",
            "medfeeSumamt is not the sum of the lines",
            f"The lines add up to {total} fen, not {int(data.medfeeSumamt)} fen.",
        )
    try:
        return msgspec.convert(
            {
                "institution_code": data.orgCodg,
                "treatment_area": data.mdtrtareaAdmvs,
                "visit_type": data.visitType,
                "items": [
                    {
                        "item_code": line.medListCodg,
                        "quantity": line.cnt,
                        "unit_price_fen": int(line.pric),
                    }
                    for line in data.feedetail
                ],
                "prescription_id": data.hiRxno,
                "personal_account_allowed": data.acctUsedFlag == "1",
            },
            PaymentOrder,
        )
    except msgspec.ValidationError as exc:  # e.g. a unit price above what we settle
        raise InvalidRequest(
            "business_data_invalid", "The order is not one medpay settles", str(exc)
        ) from exc


def _upload(row: asyncpg.Record) -> _Upload:
    return _Upload(
        pay_ord_id=row["pay_ord_id"],
        med_org_ord=row["med_org_ord"],
        upload_digest=row["upload_digest"],
        psn_no=psn_no_of(row),
        order=msgspec.convert(row["payment_order"], PaymentOrder),
        medical_fee_total_fen=row["medical_fee_total_fen"],
        state=row["state"],
        refund_sn=row["refund_sn"],
    )


def _new_pay_ord_id() -> str:
    return f"ORD{dt.datetime.now(CHINA):%Y%m%d%H%M%S}{secrets.token_hex(8).upper()}"


def _fen(value: int) -> YuanFen:
    return YuanFen(value)


def _order_answer(upload: _Upload, payment: PaymentView) -> OrderAnswer:
    settlement = payment.settlement
    return OrderAnswer(
        payOrdId=upload.pay_ord_id,
        medOrgOrd=upload.med_org_ord,
        ordStas=ORD_STAS[payment.state],
        feeSumamt=YuanFen(payment.medical_fee_total_fen),
        fundPay=_fen(settlement.fund_total_fen) if settlement else None,
        psnAcctPay=_fen(settlement.personal_account_fen) if settlement else None,
        ownPayAmt=_fen(settlement.cash_fen) if settlement else None,
        setlId=settlement.settlement_id if settlement else None,
        setlTime=settlement.settled_at.isoformat() if settlement else None,
        failCode=payment.failure_code,
    )
