"""Payments: receive the order, settle it with the home province, reverse it, resolve it.

The flow (DOMAIN.md sections 2 and 3):

1. record the order as ``received`` (once per app and Idempotency-Key);
2. find who insures the person on the service date, the institution, and classify
   every item by the treatment place's catalogue; a failure here is ``failed`` with
   its own code, and nothing was sent anywhere;
3. allocate the msgid, store the exact request under it and move to ``settling`` in
   one transaction, *before* sending, so the payment is only ever sent as that one
   request under that one msgid;
4. send to the insured province's adapter and record what came back: ``settled``
   with the breakdown and its ledger journal in one transaction; ``failed`` when the
   province refused or could not be reached; ``unknown`` when it may have settled.

Whoever learns the outcome first (the synchronous answer, a provincial callback, or
the resolver's query) records it; the others find the payment already final and do
nothing. Every final state writes its notification to the outbox in the same
transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from medpay.clock import CHINA
from medpay.db.pool import transaction
from medpay.errors import (
    Conflict,
    DomainError,
    NotFound,
    Refused,
    UpstreamFailed,
    UpstreamUnavailable,
)
from medpay.filings.service import filing_type_on
from medpay.institutions.service import check_may_settle, find_institution
from medpay.ledger.service import post_journal, reversal_postings, settlement_postings
from medpay.payments import queries
from medpay.payments.events import enqueue_notification
from medpay.payments.schemas import (
    EstimateView,
    PaymentOrder,
    PaymentView,
)
from medpay.payments.states import can_move, check_correction, check_transition
from medpay.payments.views import estimate_view, order_of, payment_view
from medpay.prescriptions.service import (
    confirm_redemption,
    release_redemption,
    reserve_prescription,
)
from medpay.relationships.service import insurer_on, require_fund_payable
from medpay.security.idempotency import IdempotencyKeyReused
from medpay.settlement import queries as settlement_queries
from medpay.settlement.adapters.base import (
    ClearingAdapter,
    ClearingError,
    OutcomeUnknown,
    ProvinceRejected,
    ProvinceUnavailable,
    QueryRequest,
    ReversalRequest,
    SettlementBreakdown,
    SettlementRequest,
)
from medpay.settlement.catalogue import classify_items
from medpay.settlement.routing import ProvinceDirectory
from medpay.wire.national import INFNO_REVERSE, INFNO_SETTLE, new_msgid, province_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from medpay.institutions.service import Institution
    from medpay.relationships.service import InsuranceRelationship
    from medpay.settlement.adapters.base import ClassifiedItem, FilingType

__all__ = [
    "PaymentFlow",
    "PaymentNotFound",
    "PaymentOutcome",
    "check_order",
    "get_payment",
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


def check_order(order: PaymentOrder) -> None:
    """Rules a schema cannot say (DOMAIN.md section 4)."""
    if order.visit_type == "pharmacy_purchase" and order.prescription_id is None:
        raise Refused(
            "prescription_required",
            "A pharmacy purchase needs an electronic prescription",
            "Send prescription_id.",
        )


async def get_payment(
    pool: asyncpg.Pool, payment_id: str, *, app_id: str, psn_no: str
) -> PaymentView:
    """The payment, if this app made it for this person; otherwise not found."""
    return payment_view(await _owned_row(pool, payment_id, app_id=app_id, psn_no=psn_no))


async def _owned_row(
    conn: asyncpg.Pool | asyncpg.Connection,
    payment_id: str | uuid.UUID,
    *,
    app_id: str,
    psn_no: str,
) -> asyncpg.Record:
    try:
        key = payment_id if isinstance(payment_id, uuid.UUID) else uuid.UUID(payment_id)
    except ValueError:
        raise PaymentNotFound() from None
    row = await conn.fetchrow(queries.PAYMENT_BY_ID, key)
    if row is None or row["app_id"] != app_id or row["psn_no"] != psn_no:
        raise PaymentNotFound()
    return row


def _problem_for(exc: ClearingError) -> DomainError:
    """Map an adapter failure to what the app is told."""
    if isinstance(exc, ProvinceRejected):
        refusal = Refused if exc.code in _CLIENT_SIDE_REFUSALS else UpstreamFailed
        return refusal(exc.code, "The home province refused the settlement", exc.message)
    if isinstance(exc, ProvinceUnavailable):
        return UpstreamUnavailable(
            exc.code,
            "The home province could not be reached",
            exc.message,
            retry_after_s=30,
        )
    return UpstreamFailed(exc.code, "The home province's answer is not known yet", exc.message)


class _Prepared(msgspec.Struct, frozen=True, kw_only=True):
    relationship: InsuranceRelationship
    institution: Institution
    items: list[ClassifiedItem]
    adapter: ClearingAdapter
    filing: FilingType | None = None


class PaymentFlow:
    """Settles payments with the insured person's home province, exactly once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        provinces: ProvinceDirectory,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(CHINA),
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

    # --- settle -----------------------------------------------------------------------------

    async def pay(
        self,
        *,
        app_id: str,
        idempotency_key: str,
        request_digest: str,
        psn_no: str,
        order: PaymentOrder,
    ) -> PaymentOutcome:
        """Receive and settle ``order``; a repeat under the same key continues the same payment."""
        check_order(order)
        row = await self._receive(app_id, idempotency_key, request_digest, psn_no, order)
        return await self._continue(row)

    async def _continue(self, row: asyncpg.Record) -> PaymentOutcome:
        """Take a recorded payment as far as it can go now."""
        payment_id: uuid.UUID = row["payment_id"]
        if row["state"] == "received":
            try:
                prepared = await self._prepare(
                    row["psn_no"],
                    row["institution_code"],
                    row["treatment_area"],
                    row["service_date"],
                    order_of(row),
                )
            except DomainError as refusal:
                await self._fail(payment_id, refusal.code, refusal.detail)
                return PaymentOutcome(payment=await self._reload(payment_id), problem=refusal)
            try:
                request = await self._start_settling(row, prepared)
            except DomainError as refusal:  # the prescription could not be redeemed
                await self._fail(payment_id, refusal.code, refusal.detail)
                return PaymentOutcome(payment=await self._reload(payment_id), problem=refusal)
            if request is None:  # someone else started it meanwhile
                return PaymentOutcome(payment=await self._reload(payment_id))
            return await self._send_settlement(payment_id, request, prepared.adapter)
        # Settling or unknown: never re-sent on the app's say-so (the resolver asks the
        # province first); otherwise it is final.
        return PaymentOutcome(payment=payment_view(row))

    async def estimate(self, *, psn_no: str, order: PaymentOrder) -> EstimateView:
        """Pre-settle (2206): the split it would be today; no effect anywhere."""
        check_order(order)
        today = self._clock().date()
        prepared = await self._prepare(
            psn_no, order.institution_code, order.treatment_area, today, order
        )
        serial = await self._pool.fetchval(settlement_queries.ALLOCATE_MSGID_SERIAL)
        request = self._settlement_request(
            new_msgid(order.institution_code, self._clock(), int(serial) % 10000),
            psn_no=psn_no,
            payment_key=uuid.uuid4(),
            treatment_area=order.treatment_area,
            personal_account_allowed=order.personal_account_allowed,
            service_date=today,
            prepared=prepared,
        )
        try:
            result = await prepared.adapter.pre_settle(request)
        except ClearingError as exc:
            raise _problem_for(exc) from exc
        return estimate_view(result.breakdown, prepared.relationship.insured_area)

    async def get(self, payment_id: str, *, app_id: str, psn_no: str) -> PaymentView:
        """The payment, if this app made it for this person; otherwise not found."""
        return await get_payment(self._pool, payment_id, app_id=app_id, psn_no=psn_no)

    async def _receive(
        self, app_id: str, key: str, digest: str, psn_no: str, order: PaymentOrder
    ) -> asyncpg.Record:
        payment_id = uuid.uuid4()
        async with transaction(self._pool) as conn:
            inserted = await conn.fetchval(
                queries.INSERT_PAYMENT,
                payment_id,
                app_id,
                key,
                digest,
                psn_no,
                order.institution_code,
                order.treatment_area,
                order.visit_type,
                order.prescription_id,
                order.personal_account_allowed,
                order.medical_fee_total_fen,
                self._clock().date(),
                self._check_after_grace(),
            )
            if inserted is not None:
                await conn.execute(
                    queries.INSERT_ITEMS,
                    payment_id,
                    list(range(1, len(order.items) + 1)),
                    [item.item_code for item in order.items],
                    [item.quantity for item in order.items],
                    [item.unit_price_fen for item in order.items],
                )
            row = await conn.fetchrow(queries.PAYMENT_BY_IDEMPOTENCY_KEY, app_id, key)
        assert row is not None
        if row["request_digest"] != digest:
            raise IdempotencyKeyReused()
        return row

    async def _prepare(
        self,
        psn_no: str,
        institution_code: str,
        treatment_area: str,
        service_date: dt.date,
        order: PaymentOrder,
    ) -> _Prepared:
        relationship = await insurer_on(self._pool, psn_no, service_date)
        if relationship is None:
            raise Refused(
                "person_not_insured",
                "The person has no insurance relationship on the service date",
                f"No basic medical insurance is recorded for {psn_no} on {service_date}.",
            )
        require_fund_payable(relationship, service_date)
        institution = await find_institution(self._pool, institution_code)
        if institution is None:
            raise Refused(
                "institution_unknown",
                "The institution is not a designated institution",
                f"{institution_code} is not in the institution registry.",
            )
        # Designated on the service date, and, for an internet hospital, its physical one too.
        await check_may_settle(self._pool, institution_code, service_date)
        if institution.area != treatment_area:
            raise Refused(
                "treatment_area_mismatch",
                "The treatment area is not the institution's area",
                f"{institution_code} is in {institution.area}, not {treatment_area}.",
            )
        items = await classify_items(self._pool, treatment_area, order.items)
        adapter = self._provinces.adapter_for(relationship.insured_area)
        # The insured place's policy adjusts the ratio by the filing valid on the day (DOMAIN.md 5).
        filing = await filing_type_on(self._pool, psn_no, treatment_area, service_date)
        return _Prepared(
            relationship=relationship,
            institution=institution,
            items=items,
            adapter=adapter,
            filing=filing,
        )

    def _settlement_request(
        self,
        msgid: str,
        *,
        psn_no: str,
        payment_key: uuid.UUID,
        treatment_area: str,
        personal_account_allowed: bool,
        service_date: dt.date,
        prepared: _Prepared,
    ) -> SettlementRequest:
        return SettlementRequest(
            msgid=msgid,
            psn_no=psn_no,
            insured_area=prepared.relationship.insured_area,
            treatment_area=treatment_area,
            institution_code=prepared.institution.institution_code,
            institution_name=prepared.institution.name,
            institution_level=prepared.institution.settlement_level,
            insurance_scheme=prepared.relationship.scheme,
            personal_account_allowed=personal_account_allowed,
            service_date=service_date,
            offsite_filing_type=prepared.filing,
            visit_id=payment_key.hex,  # mdtrt_id: one visit per payment
            charge_batch_no=payment_key.hex[:20],  # chrg_bchno
            items=prepared.items,
        )

    async def _new_message(
        self,
        conn: asyncpg.Connection,
        payment_id: uuid.UUID,
        institution_code: str,
        infno: str,
        province: str,
        build: Callable[[str], SettlementRequest | ReversalRequest],
    ) -> SettlementRequest | ReversalRequest:
        """Allocate a msgid and store the exact request under it (inside the caller's transaction)."""
        for _ in range(5):
            serial = await conn.fetchval(settlement_queries.ALLOCATE_MSGID_SERIAL)
            request = build(new_msgid(institution_code, self._clock(), int(serial) % 10000))
            try:
                async with (
                    conn.transaction()
                ):  # a savepoint: a clash must not undo the caller's work
                    await conn.execute(
                        settlement_queries.INSERT_PROVINCE_MESSAGE,
                        request.msgid,
                        payment_id,
                        infno,
                        province,
                        msgspec.json.decode(_request_encoder.encode(request)),
                    )
            except asyncpg.UniqueViolationError as clash:
                if clash.constraint_name == "province_messages_pkey":
                    continue  # the same msgid within the same second: draw another
                raise
            return request
        raise RuntimeError("could not allocate a unique msgid")

    async def _start_settling(
        self, row: asyncpg.Record, prepared: _Prepared
    ) -> SettlementRequest | None:
        payment_id: uuid.UUID = row["payment_id"]
        async with transaction(self._pool) as conn:
            state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
            if state != "received":
                return None
            check_transition(state, "settling")
            if row["prescription_id"] is not None:
                # Redeemed once, in this transaction: two pharmacies racing, one wins (DOMAIN.md 4).
                await reserve_prescription(
                    conn,
                    prescription_id=row["prescription_id"],
                    psn_no=row["psn_no"],
                    pharmacy_code=row["institution_code"],
                    items=[
                        (item.code, item.quantity)
                        for item in prepared.items
                        if not item.non_medical
                    ],
                    payment_id=payment_id,
                    on=row["service_date"],
                )
            request = await self._new_message(
                conn,
                payment_id,
                row["institution_code"],
                INFNO_SETTLE,
                prepared.relationship.insured_province,
                lambda msgid: self._settlement_request(
                    msgid,
                    psn_no=row["psn_no"],
                    payment_key=payment_id,
                    treatment_area=row["treatment_area"],
                    personal_account_allowed=row["personal_account_allowed"],
                    service_date=row["service_date"],
                    prepared=prepared,
                ),
            )
            await conn.execute(
                queries.START_SETTLING,
                payment_id,
                prepared.relationship.insured_area,
                prepared.relationship.scheme,
                self._check_after_grace(),
            )
        assert isinstance(request, SettlementRequest)
        return request

    async def _send_settlement(
        self,
        payment_id: uuid.UUID,
        request: SettlementRequest,
        adapter: ClearingAdapter,
        *,
        resend: bool = False,
    ) -> PaymentOutcome:
        """Send (or, with ``resend``, send again under the same msgid) and record what came back."""
        try:
            result = await adapter.settle(request)
        except OutcomeUnknown as exc:
            await self._mark_unknown(payment_id, request.msgid, exc)
            return PaymentOutcome(payment=await self._reload(payment_id))
        except ProvinceUnavailable as exc:
            if resend:  # the first sending may still arrive: only the province's word ends it
                raise
            await self._fail(
                payment_id, exc.code, exc.message, msgid=request.msgid, outcome="unavailable"
            )
            return PaymentOutcome(payment=await self._reload(payment_id), problem=_problem_for(exc))
        except ProvinceRejected as exc:
            # The province did nothing: the payment fails cleanly and the app may pay anew.
            await self._fail(
                payment_id, exc.code, exc.message, msgid=request.msgid, outcome="rejected"
            )
            return PaymentOutcome(payment=await self._reload(payment_id), problem=_problem_for(exc))
        await self.record_settled(payment_id, request.msgid, result.breakdown)
        return PaymentOutcome(payment=await self._reload(payment_id))

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
        """The settlement, its journal, the message outcome and the notification, in ``conn``'s transaction."""
        row = await conn.fetchrow(queries.LOCK_PAYMENT_FOR_SETTLEMENT, payment_id)
        assert row is not None
        if row["state"] not in ("settling", "unknown"):
            return False
        check_transition(row["state"], "settled")
        if breakdown.medfee_total_fen != row["medical_fee_total_fen"]:
            raise AssertionError(
                f"province settled {breakdown.medfee_total_fen} fen, payment is {row['medical_fee_total_fen']}"
            )
        insured_province = province_of(row["insured_area"])
        await conn.execute(
            queries.INSERT_SETTLEMENT,
            payment_id,
            breakdown.settlement_id,
            insured_province,
            province_of(row["treatment_area"]),
            breakdown.medfee_total_fen,
            breakdown.full_own_pay_fen,
            breakdown.over_limit_self_pay_fen,
            breakdown.pre_self_pay_fen,
            breakdown.in_scope_fen,
            breakdown.deductible_applied_fen,
            breakdown.basic_fund_fen,
            breakdown.ratio_bp,
            breakdown.critical_illness_fen,
            breakdown.medical_assistance_fen,
            breakdown.fund_total_fen,
            breakdown.personal_part_fen,
            breakdown.personal_account_fen,
            breakdown.cash_fen,
            breakdown.balance_after_fen,
        )
        await post_journal(
            conn,
            payment_id,
            "settlement",
            settlement_postings(
                insured_province=insured_province,
                institution_code=row["institution_code"],
                fund_total_fen=breakdown.fund_total_fen,
                personal_account_fen=breakdown.personal_account_fen,
                cash_fen=breakdown.cash_fen,
                medical_fee_total_fen=breakdown.medfee_total_fen,
            ),
        )
        await conn.execute(queries.SET_STATE, payment_id, "settled", None, None, None)
        await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "accepted")
        await confirm_redemption(conn, payment_id)
        await enqueue_notification(conn, payment_id, "payment.settled")
        return True

    async def _mark_unknown(self, payment_id: uuid.UUID, msgid: str, exc: ClearingError) -> None:
        async with transaction(self._pool) as conn:
            state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
            if state != "settling":  # already unknown, or already final by a callback
                return
            check_transition(state, "unknown")
            await conn.execute(
                queries.SET_STATE,
                payment_id,
                "unknown",
                exc.code,
                exc.message,
                dt.datetime.now(dt.UTC),
            )
            await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "unknown")

    async def _fail(
        self,
        payment_id: uuid.UUID,
        code: str,
        detail: str | None,
        *,
        msgid: str | None = None,
        outcome: str | None = None,
    ) -> bool:
        async with transaction(self._pool) as conn:
            return await self.record_failed_in(
                conn, payment_id, code, detail, msgid=msgid, outcome=outcome
            )

    async def record_failed_in(
        self,
        conn: asyncpg.Connection,
        payment_id: uuid.UUID,
        code: str,
        detail: str | None,
        *,
        msgid: str | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Record that the payment did not settle; False when it was already final."""
        state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
        if not can_move(state, "failed"):  # already final, or settled after all
            return False
        check_transition(state, "failed")
        await conn.execute(queries.SET_STATE, payment_id, "failed", code, detail, None)
        if msgid is not None:
            await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, outcome)
        await release_redemption(conn, payment_id)
        await enqueue_notification(conn, payment_id, "payment.failed")
        return True

    async def _reload(self, payment_id: uuid.UUID) -> PaymentView:
        row = await self._pool.fetchrow(queries.PAYMENT_BY_ID, payment_id)
        assert row is not None
        return payment_view(row)

    # --- reverse ----------------------------------------------------------------------------

    async def reverse(self, payment_id: str, *, app_id: str, psn_no: str) -> PaymentOutcome:
        """Reverse a settled payment (2208); balance and year-to-date totals return exactly."""
        row = await _owned_row(self._pool, payment_id, app_id=app_id, psn_no=psn_no)
        key: uuid.UUID = row["payment_id"]
        if row["state"] in ("reversed", "reversing"):
            return PaymentOutcome(payment=payment_view(row))
        if row["state"] != "settled":
            raise Conflict(
                "payment_not_reversible",
                "Only a settled payment can be reversed",
                f"The payment is {payment_view(row).state}.",
            )
        adapter = self._provinces.adapter_for(row["insured_area"])
        institution = await find_institution(self._pool, row["institution_code"])
        assert institution is not None
        async with transaction(self._pool) as conn:
            state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, key)
            if state != "settled":
                return PaymentOutcome(payment=await self._reload(key))
            # Earlier attempts, if any, were refused or never arrived: a new msgid is safe.
            check_transition(state, "reversing")
            request = await self._new_message(
                conn,
                key,
                row["institution_code"],
                INFNO_REVERSE,
                province_of(row["insured_area"]),
                lambda msgid: ReversalRequest(
                    msgid=msgid,
                    psn_no=row["psn_no"],
                    insured_area=row["insured_area"],
                    treatment_area=row["treatment_area"],
                    institution_code=row["institution_code"],
                    institution_name=institution.name,
                    settlement_id=row["setl_id"],
                    visit_id=key.hex,
                ),
            )
            await conn.execute(
                queries.SET_STATE, key, "reversing", None, None, self._check_after_grace()
            )
        assert isinstance(request, ReversalRequest)
        return await self._send_reversal(key, request, adapter)

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
            return PaymentOutcome(payment=await self._reload(payment_id))
        except ClearingError as exc:
            if resend and isinstance(exc, ProvinceUnavailable):
                raise  # the first sending may still arrive
            await self._back_to_settled(payment_id, request.msgid, exc)
            return PaymentOutcome(payment=await self._reload(payment_id), problem=_problem_for(exc))
        await self.record_reversed(payment_id, request.msgid)
        return PaymentOutcome(payment=await self._reload(payment_id))

    async def record_reversed(self, payment_id: uuid.UUID, msgid: str) -> bool:
        """Record a confirmed reversal; False when it was already recorded."""
        async with transaction(self._pool) as conn:
            return await self.record_reversed_in(conn, payment_id, msgid)

    async def record_reversed_in(
        self, conn: asyncpg.Connection, payment_id: uuid.UUID, msgid: str
    ) -> bool:
        """The reversal, its mirror journal, the message outcome and the notification."""
        state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
        if state != "reversing":
            return False
        check_transition(state, "reversed")
        settlement = await conn.fetch(queries.SETTLEMENT_POSTINGS, payment_id)
        await post_journal(
            conn,
            payment_id,
            "reversal",
            reversal_postings([(p["account"], p["amount_fen"]) for p in settlement]),
        )
        await conn.execute(queries.INSERT_REVERSAL, payment_id)
        await conn.execute(queries.SET_STATE, payment_id, "reversed", None, None, None)
        await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, "accepted")
        # The fund paid nothing in the end: the prescription may be redeemed again.
        await release_redemption(conn, payment_id)
        await enqueue_notification(conn, payment_id, "payment.reversed")
        return True

    async def record_annulled_in(
        self, conn: asyncpg.Connection, payment_id: uuid.UUID, code: str, reason: str
    ) -> int | None:
        """A settlement the province never made (reconciliation, DOMAIN.md section 7).

        The payment fails and its settlement journal is mirrored by a ``correction``
        journal, in ``conn``'s transaction, with the notification. Returns the journal's
        id; None when the payment is no longer ``settled``.
        """
        state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
        if state != "settled":
            return None
        check_correction(state, "failed")
        settlement = await conn.fetch(queries.SETTLEMENT_POSTINGS, payment_id)
        journal_id = await post_journal(
            conn,
            payment_id,
            "correction",
            reversal_postings([(p["account"], p["amount_fen"]) for p in settlement]),
        )
        await conn.execute(queries.INSERT_CORRECTION, payment_id, reason)
        await conn.execute(queries.SET_STATE, payment_id, "failed", code, reason, None)
        await release_redemption(conn, payment_id)
        await enqueue_notification(conn, payment_id, "payment.failed")
        return journal_id

    async def _back_to_settled(self, payment_id: uuid.UUID, msgid: str, exc: ClearingError) -> None:
        async with transaction(self._pool) as conn:
            state = await conn.fetchval(queries.LOCK_PAYMENT_STATE, payment_id)
            if state != "reversing":
                return
            check_transition(state, "settled")
            await conn.execute(queries.SET_STATE, payment_id, "settled", None, None, None)
            outcome = "unavailable" if isinstance(exc, ProvinceUnavailable) else "rejected"
            await conn.execute(settlement_queries.SET_MESSAGE_OUTCOME, msgid, outcome)

    # --- resolve (used by the resolver) ------------------------------------------------------

    async def resolve(self, payment_id: uuid.UUID) -> str:
        """Take one unfinished payment a step towards a final state; return its state after.

        ``received`` (the process died before sending): continue it. ``settling`` or
        ``unknown``: ask the province what the msgid did (6301); if it never arrived,
        re-send the very same request under the same msgid. ``reversing``: likewise
        for the reversal.
        """
        row = await self._pool.fetchrow(queries.PAYMENT_BY_ID, payment_id)
        assert row is not None
        state = row["state"]
        if state == "received":
            return (await self._continue(row)).payment.state
        if state in ("settling", "unknown"):
            await self._resolve_message(row, INFNO_SETTLE)
        elif state == "reversing":
            await self._resolve_message(row, INFNO_REVERSE)
        return str(await self._pool.fetchval(queries.PAYMENT_STATE, payment_id))

    async def _resolve_message(self, row: asyncpg.Record, infno: str) -> None:
        payment_id: uuid.UUID = row["payment_id"]
        message = await self._pool.fetchrow(
            settlement_queries.MESSAGE_OF_PAYMENT, payment_id, infno
        )
        assert message is not None, (
            f"payment {payment_id} is unfinished without a live {infno} message"
        )
        adapter = self._provinces.adapter_for(row["insured_area"])
        serial = await self._pool.fetchval(settlement_queries.ALLOCATE_MSGID_SERIAL)
        stored = message["request"]
        query = QueryRequest(
            msgid=new_msgid(row["institution_code"], self._clock(), int(serial) % 10000),
            ref_msgid=message["msgid"],
            insured_area=row["insured_area"],
            treatment_area=row["treatment_area"],
            institution_code=row["institution_code"],
            institution_name=stored["institution_name"],
        )
        result = await adapter.query(query)  # a ClearingError here: try again later
        if result.status == "failed" and infno == INFNO_SETTLE:
            # An asynchronous province refused it (its failure callback may have been lost).
            await self._fail(
                payment_id,
                result.error_code or "province_error",
                result.message,
                msgid=message["msgid"],
                outcome="rejected",
            )
        elif result.status == "settled" and infno == INFNO_SETTLE:
            assert result.breakdown is not None
            await self.record_settled(payment_id, message["msgid"], result.breakdown)
        elif result.status == "reversed":
            if infno == INFNO_REVERSE:
                await self.record_reversed(payment_id, message["msgid"])
        elif result.status == "not_found" and infno == INFNO_SETTLE:
            settlement = _settlement_request_decoder.decode(_request_encoder.encode(stored))
            await self._send_settlement(payment_id, settlement, adapter, resend=True)
        elif result.status == "not_found" or (
            result.status == "settled" and infno == INFNO_REVERSE
        ):
            reversal = _reversal_request_decoder.decode(_request_encoder.encode(stored))
            await self._send_reversal(payment_id, reversal, adapter, resend=True)
        # "processing": the province has it; wait for its callback or the next look.
