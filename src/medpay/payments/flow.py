"""Payments: receive the order, settle it with the home province, reverse it, resolve it.

The flow (DOMAIN.md sections 2 and 3), in as few transactions as exactly-once allows:

1. **One transaction before sending** (:meth:`PaymentFlow.pay`): the Idempotency-Key is
   claimed, everything settlement needs is read (:mod:`.preparing`), and the payment
   is recorded with its lines as what it is: ``failed`` with its refusal (nothing is
   sent anywhere), or ``settling`` with its prescription reserved and the exact
   request stored under a new msgid. The payment is only ever sent as that request
   under that msgid.
2. The request goes to the insured province's adapter; **no connection is held while
   it answers**.
3. **One transaction after** (:mod:`.recording`): ``settled`` with its settlement,
   ledger journal and outbox event, ``failed`` when the province refused or could not
   be reached, ``unknown`` when it may have settled; and the Idempotency-Key's answer.

Whoever learns the outcome first (the answer, a provincial callback, the resolver's
query) records it; the others find the payment moved and change nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from medpay.clock import china_now
from medpay.db.pool import transaction
from medpay.errors import (
    Conflict,
    DomainError,
    NotFound,
    Refused,
    UpstreamFailed,
    UpstreamUnavailable,
)
from medpay.institutions.service import find_institution
from medpay.payments import queries, recording, refunds
from medpay.payments.preparing import (
    check_order,
    new_message,
    next_msgid,
    prepare,
    settlement_request,
)
from medpay.payments.recording import ReportMismatch
from medpay.payments.views import estimate_view, order_of, payment_view
from medpay.prescriptions.service import reserve_prescription
from medpay.security.idempotency import IdempotencyKeyReused
from medpay.security.persons import person_ref, psn_no_of, seal_person
from medpay.settlement import queries as settlement_queries
from medpay.settlement.adapters.base import (
    ClearingError,
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceResponseInvalid,
    ProvinceUnavailable,
    QueryRequest,
    ReversalRequest,
    SettlementRequest,
)
from medpay.wire.national import INFNO_REVERSE, INFNO_SETTLE, province_of

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg

    from medpay.payments.preparing import Prepared
    from medpay.payments.schemas import (
        EstimateView,
        PaymentOrder,
        PaymentView,
        RefundRequest,
        RefundView,
    )
    from medpay.security.idempotency import Once
    from medpay.settlement.adapters.base import ClearingAdapter, SettlementBreakdown
    from medpay.settlement.routing import ProvinceDirectory

__all__ = [
    "PaymentFlow",
    "PaymentNotFound",
    "PaymentOutcome",
    "RefundOutcome",
    "ReportMismatch",
    "check_order",
]

#: Province refusals that are about the request or the person (422), not the province (502).
_CLIENT_SIDE_REFUSALS = frozenset(
    {
        "person_unknown_to_province",
        "filing_required",
        "wrong_province",
        "person_record_mismatch",
    }
)
_request_encoder = msgspec.json.Encoder()
_settlement_request_decoder = msgspec.json.Decoder(SettlementRequest)
_reversal_request_decoder = msgspec.json.Decoder(ReversalRequest)


class PaymentNotFound(NotFound):
    """No payment of this app and person has that id (others' payments look the same)."""

    def __init__(self) -> None:
        super().__init__("payment_not_found", "No such payment")


class PaymentOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP layer answers: the payment, and the problem if it did not settle."""

    payment: PaymentView
    problem: DomainError | None = None


class RefundOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP layer answers about a refund: it, and the problem if it was refused."""

    refund: RefundView
    problem: DomainError | None = None


def problem_for(exc: ClearingError) -> DomainError:
    """What the app is told about an adapter failure."""
    if isinstance(exc, ProvinceRejected):
        refusal = Refused if exc.code in _CLIENT_SIDE_REFUSALS else UpstreamFailed
        return refusal(exc.code, "The home province refused the settlement", exc.message)
    if isinstance(exc, ProvinceUnavailable):
        return UpstreamUnavailable(
            exc.code, "The home province could not be reached", exc.message, retry_after_s=30
        )
    return UpstreamFailed(exc.code, "The home province's answer is not known yet", exc.message)


class _Answered(msgspec.Struct, frozen=True):
    """The first outcome of an Idempotency-Key, replayed."""

    answer: Any


class PaymentFlow:
    """Settles payments with the insured person's home province, exactly once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        provinces: ProvinceDirectory,
        *,
        clock: Callable[[], dt.datetime] = china_now,
        settle_grace_seconds: float = 15.0,
    ) -> None:
        self._pool = pool
        self._provinces = provinces
        self._clock = clock
        #: How long an answer may take before the resolver looks at a payment itself.
        self._grace = dt.timedelta(seconds=settle_grace_seconds)

    @property
    def provinces(self) -> ProvinceDirectory:
        """The province directory the flow settles through."""
        return self._provinces

    def _check_after_grace(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._grace

    # --- pay ------------------------------------------------------------------------------------

    async def pay(
        self,
        *,
        app_id: str,
        psn_no: str,
        order: PaymentOrder,
        idempotency_key: str,
        request_digest: str,
        once: Once[PaymentOutcome] | None = None,
    ) -> Any:
        """Receive and settle ``order``; a repeat under the same key continues the same payment.

        With ``once`` (the request's Idempotency-Key, kept in these transactions) the
        answer ``once`` makes of the outcome is returned (the first one, for a repeat);
        without, the :class:`PaymentOutcome`.
        """
        first = await self._record(app_id, psn_no, order, idempotency_key, request_digest, once)
        if isinstance(first, _Answered):  # a replay, a refusal, or an earlier attempt's payment
            return first.answer
        payment_id, request, adapter = first
        return await self._send_settlement(payment_id, request, adapter, once=once)

    async def _record(
        self,
        app_id: str,
        psn_no: str,
        order: PaymentOrder,
        key: str,
        digest: str,
        once: Once[PaymentOutcome] | None,
    ) -> _Answered | tuple[uuid.UUID, SettlementRequest, ClearingAdapter]:
        """The one transaction before sending: claim, prepare, record (see the module's 1).

        Either the request to send, or what is answered already (a replay of the key,
        a refusal, an earlier attempt's payment), its answer stored under the key.
        """
        today = self._clock().date()
        async with transaction(self._pool) as tx:
            if once is not None and (replay := await once.claim(tx)) is not None:
                return _Answered(replay)
            try:
                check_order(order)
            except DomainError as invalid:  # refused before anything is recorded
                if once is None:
                    raise
                return _Answered(await once.refuse(tx, invalid))
            refusal: DomainError | None = None
            prepared: Prepared | None = None
            try:
                prepared = await prepare(
                    tx, self._provinces, psn_no=psn_no, order=order, service_date=today
                )
            except DomainError as refused:
                refusal = refused
            payment_id = uuid.uuid4()
            recorded = await tx.fetchval(
                queries.RECORD_PAYMENT,
                payment_id,
                app_id,
                key,
                digest,
                person_ref(psn_no),
                order.institution_code,
                order.treatment_area,
                order.visit_type,
                order.prescription_id,
                order.personal_account_allowed,
                order.medical_fee_total_fen,
                today,
                None if prepared is None else self._check_after_grace(),
                "failed" if prepared is None else "settling",
                None if prepared is None else prepared.relationship.insured_area,
                None if prepared is None else prepared.relationship.scheme,
                None if refusal is None else refusal.code,
                None if refusal is None else refusal.detail,
                list(range(1, len(order.items) + 1)),
                [item.item_code for item in order.items],
                [item.quantity for item in order.items],
                [item.unit_price_fen for item in order.items],
                seal_person(psn_no, ""),
            )
            if recorded is None:  # an earlier attempt under this key recorded the payment
                earlier = await self._earlier(tx, app_id, key, digest)
                if isinstance(earlier, PaymentOutcome):
                    return _Answered(await self._answer(tx, earlier, once))
                return earlier
            if prepared is None:
                assert refusal is not None
                view = await recording.view_in(tx, payment_id)
                outcome = PaymentOutcome(payment=view, problem=refusal)
                return _Answered(await self._answer(tx, outcome, once))
            request = await self._start_settling(tx, payment_id, psn_no, order, today, prepared)
            if isinstance(request, PaymentOutcome):
                return _Answered(await self._answer(tx, request, once))
            return payment_id, request, prepared.adapter

    async def _start_settling(
        self,
        tx: asyncpg.Connection,
        payment_id: uuid.UUID,
        psn_no: str,
        order: PaymentOrder,
        today: dt.date,
        prepared: Prepared,
    ) -> SettlementRequest | PaymentOutcome:
        """Reserve the prescription and store the request under its msgid, in ``tx``."""
        if order.prescription_id is not None:
            try:
                # Redeemed once, in this transaction: two pharmacies racing, one wins (DOMAIN.md 4).
                await reserve_prescription(
                    tx,
                    prescription_id=order.prescription_id,
                    psn_no=psn_no,
                    pharmacy_code=order.institution_code,
                    items=[(i.code, i.quantity) for i in prepared.items if not i.non_medical],
                    payment_id=payment_id,
                    on=today,
                )
            except DomainError as refusal:  # nothing was written by the refusal
                await recording.record_failed_in(tx, payment_id, refusal.code, refusal.detail)
                return PaymentOutcome(
                    payment=await recording.view_in(tx, payment_id), problem=refusal
                )
        request = await new_message(
            tx,
            self._clock,
            payment_id=payment_id,
            institution_code=order.institution_code,
            infno=INFNO_SETTLE,
            province=prepared.relationship.insured_province,
            build=lambda msgid: settlement_request(
                msgid,
                psn_no=psn_no,
                payment_id=payment_id,
                order=order,
                service_date=today,
                prepared=prepared,
            ),
        )
        assert isinstance(request, SettlementRequest)
        return request

    async def _earlier(
        self, tx: asyncpg.Connection, app_id: str, key: str, digest: str
    ) -> PaymentOutcome | tuple[uuid.UUID, SettlementRequest, ClearingAdapter]:
        """The payment an earlier attempt under ``key`` recorded, taken as far as it can go."""
        row = await tx.fetchrow(queries.PAYMENT_BY_IDEMPOTENCY_KEY, app_id, key)
        assert row is not None
        if row["request_digest"] != digest:
            raise IdempotencyKeyReused()
        if row["state"] != "received":
            # Settling or unknown: never re-sent on the app's say-so (the resolver asks
            # the province first); otherwise it is final.
            return PaymentOutcome(payment=payment_view(row))
        return await self._continue_received(tx, row)

    async def _continue_received(
        self, tx: asyncpg.Connection, row: asyncpg.Record
    ) -> PaymentOutcome | tuple[uuid.UUID, SettlementRequest, ClearingAdapter]:
        """A payment left ``received`` (recorded by an earlier version): prepare it now, in ``tx``."""
        payment_id: uuid.UUID = row["payment_id"]
        payment = await recording.lock(tx, payment_id)
        if payment["state"] != "received":
            return PaymentOutcome(payment=await recording.view_in(tx, payment_id))
        order = order_of(row)
        try:
            prepared = await prepare(
                tx,
                self._provinces,
                psn_no=psn_no_of(row),
                order=order,
                service_date=row["service_date"],
            )
        except DomainError as refusal:
            await recording.record_failed_in(tx, payment_id, refusal.code, refusal.detail)
            return PaymentOutcome(payment=await recording.view_in(tx, payment_id), problem=refusal)
        await recording.move(tx, payment, "settling", check_at=self._check_after_grace())
        await tx.execute(
            queries.SET_INSURED,
            payment_id,
            prepared.relationship.insured_area,
            prepared.relationship.scheme,
        )
        request = await self._start_settling(
            tx, payment_id, psn_no_of(row), order, row["service_date"], prepared
        )
        if isinstance(request, PaymentOutcome):
            return request
        return payment_id, request, prepared.adapter

    @staticmethod
    async def _answer(
        tx: asyncpg.Connection, outcome: PaymentOutcome, once: Once[PaymentOutcome] | None
    ) -> Any:
        """What ``outcome`` is answered with, stored under the Idempotency-Key in ``tx``."""
        return outcome if once is None else await once.complete(tx, outcome)

    async def _send_settlement(
        self,
        payment_id: uuid.UUID,
        request: SettlementRequest,
        adapter: ClearingAdapter,
        *,
        resend: bool = False,
        once: Once[PaymentOutcome] | None = None,
    ) -> Any:
        """Send (or, with ``resend``, send again under the same msgid) and record what came back."""
        try:
            result: SettlementBreakdown | ClearingError = (await adapter.settle(request)).breakdown
        except ProvinceUnavailable as exc:
            if resend:  # the first sending may still arrive: only the province's word ends it
                raise
            result = exc
        except ClearingError as exc:
            result = exc
        async with transaction(self._pool) as tx:
            outcome = await self._record_answer(tx, payment_id, request.msgid, result)
            return await self._answer(tx, outcome, once)

    async def _record_answer(
        self,
        tx: asyncpg.Connection,
        payment_id: uuid.UUID,
        msgid: str,
        result: SettlementBreakdown | ClearingError,
    ) -> PaymentOutcome:
        """The one transaction after sending (see the module's 3), without the key's answer."""
        if isinstance(result, OutcomeUnknown):
            return PaymentOutcome(
                payment=await recording.mark_unknown_in(tx, payment_id, msgid, result)
            )
        if isinstance(result, ClearingError):
            # Refused, or never arrived: the province did nothing; the app may pay anew.
            outcome = "unavailable" if isinstance(result, ProvinceUnavailable) else "rejected"
            await recording.record_failed_in(
                tx, payment_id, result.code, result.message, msgid=msgid, outcome=outcome
            )
            return PaymentOutcome(
                payment=await recording.view_in(tx, payment_id), problem=problem_for(result)
            )
        try:  # a mismatch is found before anything is written: nothing to roll back
            view = await recording.record_settled_in(tx, payment_id, msgid, result)
        except ReportMismatch as mismatch:  # believe nothing; the resolver asks again
            invalid = ProvinceResponseInvalid(mismatch.reason, msgid=msgid)
            return PaymentOutcome(
                payment=await recording.mark_unknown_in(tx, payment_id, msgid, invalid)
            )
        return PaymentOutcome(payment=view or await recording.view_in(tx, payment_id))

    # --- estimate and read ---------------------------------------------------------------------

    async def estimate(self, *, psn_no: str, order: PaymentOrder) -> EstimateView:
        """Pre-settle (2206): the split it would be today; no effect anywhere."""
        check_order(order)
        today = self._clock().date()
        async with transaction(self._pool) as tx:  # every read, and the msgid, in one
            prepared = await prepare(
                tx, self._provinces, psn_no=psn_no, order=order, service_date=today
            )
            msgid = await next_msgid(tx, order.institution_code, self._clock())
        request = settlement_request(
            msgid,
            psn_no=psn_no,
            payment_id=uuid.uuid4(),
            order=order,
            service_date=today,
            prepared=prepared,
        )
        try:
            result = await prepared.adapter.pre_settle(request)
        except ClearingError as exc:
            raise problem_for(exc) from exc
        return estimate_view(result.breakdown, prepared.relationship.insured_area)

    async def get(self, payment_id: str, *, app_id: str, psn_no: str) -> PaymentView:
        """The payment, if this app made it for this person; otherwise not found."""
        return payment_view(await self._owned_row(payment_id, app_id=app_id, psn_no=psn_no))

    async def _owned_row(
        self, payment_id: str | uuid.UUID, *, app_id: str, psn_no: str
    ) -> asyncpg.Record:
        try:
            key = payment_id if isinstance(payment_id, uuid.UUID) else uuid.UUID(payment_id)
        except ValueError:
            raise PaymentNotFound() from None
        row = await self._pool.fetchrow(queries.PAYMENT_BY_ID, key)
        if row is None or row["app_id"] != app_id or row["psn_no"] != person_ref(psn_no):
            raise PaymentNotFound()
        return row

    # --- recording outcomes (each in one transaction; the *_in forms run in the caller's) -----

    async def record_settled(
        self, payment_id: uuid.UUID, msgid: str, breakdown: SettlementBreakdown
    ) -> bool:
        """Record a confirmed settlement; False when the payment was already final."""
        async with transaction(self._pool) as conn:
            return await self.record_settled_in(conn, payment_id, msgid, breakdown)

    async def record_settled_in(
        self,
        conn: asyncpg.Connection,
        payment_id: uuid.UUID,
        msgid: str,
        breakdown: SettlementBreakdown,
    ) -> bool:
        """See :func:`.recording.record_settled_in`; False when it changed nothing."""
        return await recording.record_settled_in(conn, payment_id, msgid, breakdown) is not None

    async def record_reversed(self, payment_id: uuid.UUID, msgid: str) -> bool:
        """Record a confirmed reversal; False when it was already recorded."""
        async with transaction(self._pool) as conn:
            return await self.record_reversed_in(conn, payment_id, msgid)

    async def record_reversed_in(
        self,
        conn: asyncpg.Connection,
        payment_id: uuid.UUID,
        msgid: str,
        reported: SettlementBreakdown | None = None,
    ) -> bool:
        """See :func:`.recording.record_reversed_in`; False when it changed nothing."""
        reversed_ = await recording.record_reversed_in(conn, payment_id, msgid, reported)
        return reversed_ is not None

    async def record_annulled_in(
        self, conn: asyncpg.Connection, payment_id: uuid.UUID, code: str, reason: str
    ) -> int | None:
        """See :func:`.recording.record_annulled_in`."""
        return await recording.record_annulled_in(conn, payment_id, code, reason)

    # --- reverse ------------------------------------------------------------------------------

    async def reverse(self, payment_id: str, *, app_id: str, psn_no: str) -> PaymentOutcome:
        """Reverse a settled payment (2208); balance and year-to-date totals return exactly."""
        row = await self._owned_row(payment_id, app_id=app_id, psn_no=psn_no)
        key: uuid.UUID = row["payment_id"]
        if row["state"] == "reversing":  # under way (another request): 202 until it ends
            return PaymentOutcome(payment=payment_view(row))
        if row["state"] == "reversed":
            raise Conflict(
                "payment_already_reversed",
                "The payment is already reversed",
                f"Reversed at {row['reversed_at'].isoformat()}; nothing more to give back.",
            )
        if row["state"] != "settled":
            raise Conflict(
                "payment_not_reversible",
                "Only a settled payment can be reversed",
                f"The payment is {payment_view(row).state}.",
            )
        async with transaction(self._pool) as tx:
            payment = await recording.lock(tx, key)
            if payment["state"] != "settled":
                return PaymentOutcome(payment=await recording.view_in(tx, key))
            request = await self._start_reversal(tx, payment, row)
        return await self._send_reversal(
            key, request, self._provinces.adapter_for(row["insured_area"])
        )

    async def _start_reversal(
        self, tx: asyncpg.Connection, payment: asyncpg.Record, row: asyncpg.Record
    ) -> ReversalRequest:
        """Move the locked, settled ``payment`` to ``reversing`` and store its 2208, in ``tx``."""
        key: uuid.UUID = payment["payment_id"]
        institution = await find_institution(tx, row["institution_code"])
        assert institution is not None
        # Earlier attempts, if any, were refused or never arrived: a new msgid is safe.
        await recording.move(tx, payment, "reversing", check_at=self._check_after_grace())
        request = await new_message(
            tx,
            self._clock,
            payment_id=key,
            institution_code=row["institution_code"],
            infno=INFNO_REVERSE,
            province=province_of(row["insured_area"]),
            build=lambda msgid: ReversalRequest(
                msgid=msgid,
                psn_no=psn_no_of(row),
                insured_area=row["insured_area"],
                treatment_area=row["treatment_area"],
                institution_code=row["institution_code"],
                institution_name=institution.name,
                settlement_id=row["setl_id"],
                visit_id=key.hex,
            ),
        )
        assert isinstance(request, ReversalRequest)
        return request

    # --- refund (medpay.payments.refunds) -----------------------------------------------------

    async def refund(
        self,
        payment_id: str,
        *,
        app_id: str,
        psn_no: str,
        request: RefundRequest,
        idempotency_key: str,
        request_digest: str,
    ) -> RefundOutcome:
        """Give back part (or all) of a settled payment: 2208, then the lines kept anew.

        The refund and the reversal's start are one transaction; the reversal is sent,
        and once it is recorded the lines kept (recorded then as a payment of their own)
        are settled. A repeat under the same key (after a crash before the answer)
        takes the same refund as far as it can go, never sending anything twice.
        """
        row = await self._owned_row(payment_id, app_id=app_id, psn_no=psn_no)
        key: uuid.UUID = row["payment_id"]
        lines = refunds.returned_lines(row["items"], request)
        reversal: ReversalRequest | None = None
        async with transaction(self._pool) as tx:
            earlier = await tx.fetchrow(queries.REFUND_BY_IDEMPOTENCY_KEY, app_id, idempotency_key)
            if earlier is not None:  # this request's refund, from an attempt that crashed
                if earlier["request_digest"] != request_digest:
                    raise IdempotencyKeyReused()
                refund_id: uuid.UUID = earlier["refund_id"]
            else:
                payment = await recording.lock(tx, key)
                await refunds.check_refundable(tx, payment)
                refund_id = uuid.uuid4()
                await refunds.start_in(
                    tx,
                    refund_id,
                    key,
                    app_id=app_id,
                    idempotency_key=idempotency_key,
                    request_digest=request_digest,
                    reason=request.reason,
                    lines=lines,
                )
                reversal = await self._start_reversal(tx, payment, row)
        problem: DomainError | None = None
        if reversal is not None:
            adapter = self._provinces.adapter_for(row["insured_area"])
            problem = (await self._send_reversal(key, reversal, adapter)).problem
        replacement = await self._pool.fetchrow(queries.REPLACEMENT_OF_PAYMENT, key)
        if replacement is not None and replacement["state"] == "received":
            await self._continue_if_received(replacement["payment_id"])
        view = await refunds.refund_view_in(self._pool, refund_id)
        return RefundOutcome(refund=view, problem=problem)

    async def get_refund(
        self, payment_id: str, refund_id: str, *, app_id: str, psn_no: str
    ) -> RefundView:
        """A refund of this app and person's payment; otherwise not found."""
        try:
            payment_key, refund_key = uuid.UUID(payment_id), uuid.UUID(refund_id)
        except ValueError:
            raise refunds.RefundNotFound() from None
        return await refunds.refund_view_in(
            self._pool, refund_key, app_id=app_id, psn_no=psn_no, payment_id=payment_key
        )

    async def _send_reversal(
        self,
        payment_id: uuid.UUID,
        request: ReversalRequest,
        adapter: ClearingAdapter,
        *,
        resend: bool = False,
    ) -> PaymentOutcome:
        try:
            await adapter.reverse(request)
        except OutcomeUnknown:  # reversing until resolved
            async with transaction(self._pool) as tx:
                return PaymentOutcome(payment=await recording.view_in(tx, payment_id))
        except ClearingError as exc:
            if resend and isinstance(exc, ProvinceUnavailable):
                raise  # the first sending may still arrive
            async with transaction(self._pool) as tx:
                view = await recording.back_to_settled_in(tx, payment_id, request.msgid, exc)
            return PaymentOutcome(payment=view, problem=problem_for(exc))
        async with transaction(self._pool) as tx:
            await recording.record_reversed_in(tx, payment_id, request.msgid)
            return PaymentOutcome(payment=await recording.view_in(tx, payment_id))

    # --- resolve (used by the resolver) ------------------------------------------------------

    async def resolve(self, payment_id: uuid.UUID) -> str:
        """Take one unfinished payment a step towards a final state; return its state after.

        ``received`` (recorded by an earlier version, which committed it before
        preparing): continue it. ``settling`` or ``unknown``: ask the province what the
        msgid did (6301); if it never arrived, re-send the very same request under the
        same msgid. ``reversing``: likewise for the reversal.
        """
        row = await self._pool.fetchrow(queries.PAYMENT_BY_ID, payment_id)
        assert row is not None
        state = row["state"]
        if state == "received":
            await self._continue_if_received(payment_id)
        elif state in ("settling", "unknown"):
            await self._resolve_message(row, INFNO_SETTLE)
        elif state == "reversing":
            await self._resolve_message(row, INFNO_REVERSE)
        return str(await self._pool.fetchval(queries.PAYMENT_STATE, payment_id))

    async def _continue_if_received(self, payment_id: uuid.UUID) -> None:
        """Prepare and send a payment left ``received`` (unless someone else took it on)."""
        async with transaction(self._pool) as tx:
            row = await tx.fetchrow(queries.PAYMENT_BY_ID, payment_id)
            assert row is not None
            if row["state"] != "received":
                return
            continued = await self._continue_received(tx, row)
        if not isinstance(continued, PaymentOutcome):
            await self._send_settlement(*continued)

    async def _resolve_message(self, row: asyncpg.Record, infno: str) -> None:
        payment_id: uuid.UUID = row["payment_id"]
        async with transaction(self._pool) as tx:
            message = await tx.fetchrow(settlement_queries.MESSAGE_OF_PAYMENT, payment_id, infno)
            assert message is not None, (
                f"payment {payment_id} is unfinished without a live {infno} message"
            )
            msgid = await next_msgid(tx, row["institution_code"], self._clock())
        adapter = self._provinces.adapter_for(row["insured_area"])
        stored = message["request"]
        query = QueryRequest(
            msgid=msgid,
            ref_msgid=message["msgid"],
            insured_area=row["insured_area"],
            treatment_area=row["treatment_area"],
            institution_code=row["institution_code"],
            institution_name=stored["institution_name"],
        )
        result = await adapter.query(query)  # a ClearingError here: try again later
        if result.status == "failed" and infno == INFNO_SETTLE:
            # An asynchronous province refused it (its failure callback may have been lost).
            async with transaction(self._pool) as tx:
                await recording.record_failed_in(
                    tx,
                    payment_id,
                    result.error_code or "province_error",
                    result.message,
                    msgid=message["msgid"],
                    outcome="rejected",
                )
        elif result.status == "settled" and infno == INFNO_SETTLE:
            assert result.breakdown is not None
            try:
                await self.record_settled(payment_id, message["msgid"], result.breakdown)
            except ReportMismatch as mismatch:  # the query's answer proves nothing either
                raise ProvinceResponseInvalid(mismatch.reason, msgid=message["msgid"]) from None
        elif result.status == "reversed":
            if infno == INFNO_REVERSE:
                await self.record_reversed(payment_id, message["msgid"])
        elif result.status == "not_found" and infno == INFNO_SETTLE:
            settlement = _settlement_request_decoder.decode(
                _request_encoder.encode(_as_sent(stored, row))
            )
            await self._send_settlement(payment_id, settlement, adapter, resend=True)
        elif result.status == "not_found" or (
            result.status == "settled" and infno == INFNO_REVERSE
        ):
            reversal = _reversal_request_decoder.decode(
                _request_encoder.encode(_as_sent(stored, row))
            )
            await self._send_reversal(payment_id, reversal, adapter, resend=True)
        # "processing": the province has it; wait for its callback or the next look.


def _as_sent(stored: dict[str, Any], payment: asyncpg.Record) -> dict[str, Any]:
    """A stored request as it is sent again: the person's number for its reference."""
    return stored | {"psn_no": psn_no_of(payment)}
