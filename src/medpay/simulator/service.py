"""What a provincial platform does with one verified national request.

The insured place settles its own insured under its own policy (DOMAIN.md section 2)
and is the idempotency authority for ``msgid`` (section 8): each request runs in one
transaction that takes an advisory lock on its msgid, answers a repeat from the
msgid log, and otherwise does the work and logs the answer before committing. A
refusal (negative infcode) is logged too, but any work it started is rolled back
to a savepoint first, so a negative answer always means "nothing was done".

An asynchronous province (our profile of DOMAIN.md section 8) logs a 2207's
acceptance ("processing") and records the request; :func:`complete_async` later
settles it with the same code, in a transaction of its own, replaces the logged
acceptance by the outcome, and returns the callback that reports it. Every fresh
settlement and reversal also yields its callback, for the caller to send after the
commit (never from inside a transaction).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from medpay.clock import china_day_bounds
from medpay.db.pool import connection
from medpay.simulator import store
from medpay.simulator.codes import ANSWER_MESSAGES, AnswerCode, SimulatorCode
from medpay.simulator.policy import (
    Calculation,
    Claim,
    FilingRequired,
    Item,
    Standing,
    calculate,
)
from medpay.wire.national import (
    CLASS_OF_CHRGITM_LV,
    FUND_BASIC_EMPLOYEE,
    FUND_BASIC_RESIDENT,
    FUND_CRITICAL_ILLNESS,
    FUND_MEDICAL_ASSISTANCE,
    INFNO_ORDER_QUERY,
    INFNO_PRE_SETTLE,
    INFNO_REVERSE,
    INFNO_SETTLE,
    INFNO_STATEMENT_DETAILS,
    INFNO_STATEMENT_TOTALS,
    SCHEME_OF_INSUTYPE,
    InfCode,
    OrderQueryInput,
    OrderQueryOutput,
    ResponseEnvelope,
    ReversalInput,
    ReversalOutput,
    SetlDetail,
    SetlInfo,
    SettlementCallback,
    SettlementInput,
    SettlementOrderOutput,
    SettlementOutput,
    StatementDetail,
    StatementDetailsInput,
    StatementDetailsOutput,
    StatementTotal,
    StatementTotalResult,
    StatementTotalsInput,
    StatementTotalsOutput,
    decode_input,
    encode,
    format_inf_time,
    format_ref_time,
    national_fields,
    new_refmsgid,
    readable_fields,
)
from medpay.wire.signing import canonical_string

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import asyncpg

    from medpay.simulator.policy import Policy

__all__ = [
    "Call",
    "Processed",
    "ProvinceError",
    "complete_async",
    "encode_response",
    "process",
    "request_digest",
]


class ProvinceError(Exception):
    """A refusal: answered with a negative infcode, after undoing any work."""

    def __init__(self, infcode: AnswerCode, message: str | None = None) -> None:
        self.infcode = infcode
        self.message = message or ANSWER_MESSAGES[infcode]
        super().__init__(f"{int(infcode)} {self.message}")


#: What a call keeps of its request's envelope; a pending 2207 keeps them under the same names.
_ENVELOPE_FIELDS = ("infno", "msgid", "insuplc_admdvs", "mdtrtarea_admvs", "fixmedins_code")


@dataclass(frozen=True, slots=True)
class Call:
    """One request that passed the HTTP checks (parsed, signed, for this province)."""

    province: str  # admdvs of the province answering
    policy: Policy
    infno: str
    msgid: str
    insuplc_admdvs: str
    mdtrtarea_admvs: str
    fixmedins_code: str
    input: Any  # the typed input Struct of ``infno``
    input_builtins: Any  # the input as received, for the record and the digest
    received_at: dt.datetime
    async_mode: bool = False  # answer a 2207 "processing" and settle it later
    async_delay_ms: int = 0  # how much later

    @classmethod
    def of(cls, envelope: Any, **rest: Any) -> Call:
        """A call on the envelope fields of ``envelope`` (a request's, or a pending 2207's)."""
        return cls(**{name: getattr(envelope, name) for name in _ENVELOPE_FIELDS}, **rest)

    def envelope_fields(self) -> dict[str, Any]:
        """The envelope fields, as :meth:`of` reads them back from a pending 2207."""
        return {name: getattr(self, name) for name in _ENVELOPE_FIELDS}

    @property
    def digest(self) -> str:
        """Identity of the request's content, for the msgid check."""
        return request_digest(
            self.infno,
            self.insuplc_admdvs,
            self.mdtrtarea_admvs,
            self.fixmedins_code,
            self.input_builtins,
        )


def request_digest(
    infno: str, insuplc_admdvs: str, mdtrtarea_admvs: str, fixmedins_code: str, input_builtins: Any
) -> str:
    """SHA-256 of what a request asks, excluding what a retry may change (time, signature)."""
    canonical = canonical_string(
        {
            "infno": infno,
            "insuplc_admdvs": insuplc_admdvs,
            "mdtrtarea_admvs": mdtrtarea_admvs,
            "fixmedins_code": fixmedins_code,
            "input": input_builtins,
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def encode_response(
    province: str,
    received_at: dt.datetime,
    serial: int,
    *,
    infcode: int = 0,
    err_msg: str | None = None,
    output: Any = None,
) -> bytes:
    """The response envelope's bytes, exactly as sent and as signed."""
    now = dt.datetime.now(dt.UTC)
    return encode(
        ResponseEnvelope[Any](
            infcode=infcode,
            inf_refmsgid=new_refmsgid(province, now, serial),
            refmsg_time=format_ref_time(received_at),
            respond_time=format_ref_time(now),
            err_msg=err_msg,
            output=output,
        )
    )


@dataclass(frozen=True, slots=True)
class Processed:
    """What :func:`process` did: the answer, and what the caller does after the commit.

    ``callback`` reports a settlement or reversal done just now (None for a replay,
    a refusal or anything else); ``accepted_async`` says a 2207 was accepted to be
    settled later by :func:`complete_async`.
    """

    infcode: int
    body: bytes
    callback: SettlementCallback | None = None
    accepted_async: bool = False


async def process(pool: asyncpg.Pool, call: Call) -> Processed:
    """Answer ``call``: replay a logged answer, accept it for later, or do the work."""
    handler = _HANDLERS[call.infno]
    digest = call.digest
    async with connection(pool) as conn, conn.transaction():
        await store.lock_msgid(conn, call.msgid)
        logged = await store.find_logged(conn, call.msgid)
        if logged is not None and logged.request_digest == digest:
            return Processed(logged.infcode, logged.response_body.encode())
        serial = await store.next_serial(conn)
        if logged is not None:
            conflict = ProvinceError(InfCode.MSGID_CONFLICT)
            body = encode_response(
                call.province,
                call.received_at,
                serial,
                infcode=conflict.infcode,
                err_msg=conflict.message,
            )
            return Processed(conflict.infcode, body)  # not logged: the msgid keeps its answer
        if call.infno == INFNO_SETTLE and call.async_mode:
            return await _accept(conn, call, serial, digest)
        callback = None
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves nothing behind
                output = await handler(conn, call, serial)
                callback = await _callback_for(conn, call, output, serial)
        except ProvinceError as refusal:
            infcode = int(refusal.infcode)
            body = encode_response(
                call.province, call.received_at, serial, infcode=infcode, err_msg=refusal.message
            )
        else:
            infcode = 0
            body = encode_response(call.province, call.received_at, serial, output=output)
        await _log_answer(conn, call, digest, infcode, body)
        return Processed(infcode, body, callback)


async def _log_answer(
    conn: asyncpg.Connection, call: Call, digest: str, infcode: int, body: bytes
) -> None:
    """Keep the answer under the call's msgid: a repeat of the request gets it again."""
    await store.log_response(
        conn,
        msgid=call.msgid,
        province=call.province,
        infno=call.infno,
        request_digest=digest,
        infcode=infcode,
        response_body=body,
    )


async def _accept(conn: asyncpg.Connection, call: Call, serial: int, digest: str) -> Processed:
    """An asynchronous 2207: log the acceptance (a repeat gets it too) and record the work."""
    body = encode_response(
        call.province,
        call.received_at,
        serial,
        output=SettlementOrderOutput(ord_stas="processing"),
    )
    await _log_answer(conn, call, digest, 0, body)
    await store.insert_async_settlement(
        conn,
        province=call.province,
        **call.envelope_fields(),
        input_builtins=call.input_builtins,
        received_at=call.received_at,
        due_at=call.received_at + dt.timedelta(milliseconds=call.async_delay_ms),
    )
    return Processed(0, body, accepted_async=True)


async def complete_async(
    pool: asyncpg.Pool, msgid: str, policies: Mapping[str, Policy]
) -> SettlementCallback | None:
    """Settle the asynchronous 2207 ``msgid`` now; return the callback reporting the outcome.

    The settlement runs in a savepoint like a synchronous one: a refusal leaves
    nothing behind and becomes a "failed" outcome with its infcode. The logged
    acceptance is replaced by the outcome's envelope, so a re-send under the msgid
    now learns it. None when there is nothing to do (finished already, unknown).
    Any other exception rolls everything back: the request stays "processing".
    """
    async with connection(pool) as conn, conn.transaction():
        await store.lock_msgid(conn, msgid)
        pending = await store.find_async_settlement(conn, msgid, for_update=True)
        if pending is None or pending.state != "processing":
            return None
        serial = await store.next_serial(conn)
        now = dt.datetime.now(dt.UTC)
        try:
            async with conn.transaction():
                call = _call_of(pending, policies)
                output = await _settle(conn, call, serial)
        except ProvinceError as refusal:
            infcode = int(refusal.infcode)
            await store.mark_async_failed(conn, msgid, infcode, refusal.message, now)
            body = encode_response(
                pending.province,
                pending.received_at,
                serial,
                infcode=infcode,
                err_msg=refusal.message,
            )
            callback = _callback(
                pending.province,
                msgid,
                INFNO_SETTLE,
                serial,
                ord_stas="failed",
                refusal=refusal,
            )
        else:
            assert output.setlinfo.setl_id is not None
            await store.mark_async_settled(conn, msgid, output.setlinfo.setl_id, now)
            infcode = 0
            body = encode_response(pending.province, pending.received_at, serial, output=output)
            callback = _callback(
                pending.province, msgid, INFNO_SETTLE, serial, ord_stas="settled", output=output
            )
        await store.replace_logged_response(conn, msgid, infcode, body)
        return callback


def _call_of(pending: store.AsyncSettlementRow, policies: Mapping[str, Policy]) -> Call:
    policy = policies.get(pending.province)
    if policy is None:
        raise ProvinceError(SimulatorCode.WRONG_PROVINCE, f"province {pending.province} not served")
    try:
        typed = decode_input(pending.infno, encode(pending.input))
    except (KeyError, msgspec.ValidationError) as exc:
        raise ProvinceError(SimulatorCode.MALFORMED, f"malformed input: {exc}") from exc
    return Call.of(
        pending,
        province=pending.province,
        policy=policy,
        input=typed,
        input_builtins=pending.input,
        received_at=pending.received_at,
    )


# --- callbacks ---------------------------------------------------------------------------------


def _callback(
    province: str,
    msgid: str,
    infno: str,
    serial: int,
    *,
    ord_stas: str,
    output: SettlementOutput | None = None,
    refusal: ProvinceError | None = None,
) -> SettlementCallback:
    """A callback about ``msgid``: its figures, or the refusal that made it fail.

    Its id is unique because ``serial`` is (one per work done).
    """
    now = dt.datetime.now(dt.UTC)
    return SettlementCallback(
        callback_id=f"CB{new_refmsgid(province, now, serial)}",
        ref_msgid=msgid,
        infno=infno,  # type: ignore[arg-type]
        ord_stas=ord_stas,  # type: ignore[arg-type]
        setlinfo=None if output is None else output.setlinfo,
        setldetail=[] if output is None else output.setldetail,
        err_code=None if refusal is None else int(refusal.infcode),
        err_msg=None if refusal is None else refusal.message,
        callback_time=format_ref_time(now),
    )


async def _callback_for(
    conn: asyncpg.Connection, call: Call, output: Any, serial: int
) -> SettlementCallback | None:
    """The callback of a 2207 just settled or a 2208 just reversed (the settlement's figures)."""
    if call.infno == INFNO_SETTLE:
        return _callback(
            call.province, call.msgid, INFNO_SETTLE, serial, ord_stas="settled", output=output
        )
    if call.infno == INFNO_REVERSE:
        settlement = await store.find_settlement_by_msgid(conn, call.msgid, call.province)
        assert settlement is not None and settlement.reversal_msgid == call.msgid
        settled = msgspec.convert(settlement.response, SettlementOutput)
        return _callback(
            call.province, call.msgid, INFNO_REVERSE, serial, ord_stas="reversed", output=settled
        )
    return None


# --- the transactions ------------------------------------------------------------------------


def _check_person(person: store.PersonRow | None, call: Call, insutype: str) -> store.PersonRow:
    if person is None or person.province != call.province:
        raise ProvinceError(InfCode.PERSON_UNKNOWN)
    if person.insutype != insutype:
        raise ProvinceError(
            SimulatorCode.PERSON_MISMATCH,
            f"person is insured under {person.insutype}, not {insutype}",
        )
    if person.insuplc_admdvs != call.insuplc_admdvs:
        raise ProvinceError(
            SimulatorCode.PERSON_MISMATCH,
            f"person is insured in {person.insuplc_admdvs}, not {call.insuplc_admdvs}",
        )
    return person


def _claim(call: Call, inp: SettlementInput) -> Claim:
    return Claim(
        scheme=SCHEME_OF_INSUTYPE[inp.insutype],
        institution_level=int(inp.medins_lv),  # type: ignore[arg-type]
        offsite=call.insuplc_admdvs != call.mdtrtarea_admvs,
        filing_type=inp.out_fil_type,
        personal_account_allowed=inp.acct_used_flag == "1",
        items=tuple(
            Item(
                item_class=CLASS_OF_CHRGITM_LV[fee.chrgitm_lv],
                **readable_fields(Item, fee),
            )
            for fee in inp.feedetail
        ),
    )


def _calculate(
    call: Call, inp: SettlementInput, person: store.PersonRow, totals: store.YearTotals
) -> Calculation:
    standing = Standing(
        balance_fen=person.acct_balance_fen,
        medical_assistance_eligible=person.maf_eligible,
        deductible_used_ytd_fen=totals.deductible_used_ytd_fen,
        fund_paid_ytd_fen=totals.fund_paid_ytd_fen,
        burden_ytd_fen=totals.burden_ytd_fen,
    )
    try:
        return calculate(call.policy, _claim(call, inp), standing)
    except FilingRequired as exc:
        raise ProvinceError(InfCode.FILING_REQUIRED, str(exc)) from exc


def _output(
    calc: Calculation, inp: SettlementInput, setl_id: str | None, at: dt.datetime
) -> SettlementOutput:
    basic_fund: Literal["310100", "390100"] = (
        FUND_BASIC_EMPLOYEE if inp.insutype == "310" else FUND_BASIC_RESIDENT
    )
    # Each fund that paid: what it paid on (crt_payb_lmt_amt) and what it paid.
    funds: list[tuple[Literal["310100", "390100", "390200", "610100"], int, int]] = [
        (basic_fund, calc.in_scope_fen - calc.deductible_applied_fen, calc.basic_fund_fen),
        (FUND_CRITICAL_ILLNESS, calc.critical_illness_base_fen, calc.critical_illness_fen),
        (
            FUND_MEDICAL_ASSISTANCE,
            calc.in_scope_fen - calc.basic_fund_fen - calc.critical_illness_fen,
            calc.medical_assistance_fen,
        ),
    ]
    details = [
        SetlDetail(
            fund_pay_type=fund,
            inscp_scp_amt=calc.in_scope_fen,
            crt_payb_lmt_amt=base,
            fund_payamt=paid,
        )
        for index, (fund, base, paid) in enumerate(funds)
        if index == 0 or paid  # the basic fund always stands, the others when they paid
    ]
    info = SetlInfo(
        setl_id=setl_id,
        psn_no=inp.psn_no,
        mdtrt_id=inp.mdtrt_id,
        **national_fields(SetlInfo, calc),
        insutype=inp.insutype,
        setl_time=format_inf_time(at),
    )
    return SettlementOutput(setlinfo=info, setldetail=details)


async def _pre_settle(conn: asyncpg.Connection, call: Call, serial: int) -> SettlementOutput:
    """2206: the figures a settlement would have now; nothing changes (step 13)."""
    inp: SettlementInput = call.input
    person = _check_person(await store.get_person(conn, inp.psn_no), call, inp.insutype)
    totals = await store.get_year_totals(conn, inp.psn_no, inp.begntime.year)
    return _output(_calculate(call, inp, person, totals), inp, None, dt.datetime.now(dt.UTC))


async def _settle(conn: asyncpg.Connection, call: Call, serial: int) -> SettlementOutput:
    """2207: settle, and move balance and year-to-date totals with the record."""
    inp: SettlementInput = call.input
    person = _check_person(
        await store.get_person(conn, inp.psn_no, for_update=True), call, inp.insutype
    )
    if await store.live_settlement_for_charge(conn, inp.psn_no, inp.mdtrt_id, inp.chrg_bchno):
        raise ProvinceError(SimulatorCode.DUPLICATE_CHARGE)
    year = inp.begntime.year
    totals = await store.lock_year_totals(conn, inp.psn_no, year)
    calc = _calculate(call, inp, person, totals)
    now = dt.datetime.now(dt.UTC)
    setl_id = f"{call.province}{format_ref_time(now)[:8]}{serial % 10**10:010d}"
    output = _output(calc, inp, setl_id, now)
    await store.insert_settlement(
        conn,
        setl_id=setl_id,
        msgid=call.msgid,
        province=call.province,
        fixmedins_code=call.fixmedins_code,
        settlement_input=inp,
        figures=calc,
        request=call.input_builtins,
        response=msgspec.to_builtins(output),
        settled_at=now,
    )
    await store.add_to_totals(
        conn,
        inp.psn_no,
        year,
        deductible_fen=calc.deductible_applied_fen,
        fund_fen=calc.basic_fund_fen,
        burden_fen=calc.burden_fen,
    )
    balance = await store.add_to_balance(conn, inp.psn_no, -calc.personal_account_fen)
    assert balance == calc.balance_after_fen, (balance, calc.balance_after_fen)
    return output


async def _reverse(conn: asyncpg.Connection, call: Call, serial: int) -> ReversalOutput:
    """2208: undo a settlement exactly, to the fen, in balance and year-to-date totals."""
    inp: ReversalInput = call.input
    settlement = await store.lock_settlement(conn, inp.setl_id)
    if (
        settlement is None
        or settlement.province != call.province
        or settlement.psn_no != inp.psn_no
        or settlement.mdtrt_id != inp.mdtrt_id
    ):
        raise ProvinceError(InfCode.SETTLEMENT_UNKNOWN)
    if settlement.state == "reversed":
        raise ProvinceError(InfCode.ALREADY_REVERSED)
    balance = await store.undo_effects(conn, settlement)
    now = dt.datetime.now(dt.UTC)
    await store.mark_reversed(conn, settlement.setl_id, call.msgid, now)
    return ReversalOutput(
        setl_id=settlement.setl_id,
        psn_no=settlement.psn_no,
        mdtrt_id=settlement.mdtrt_id,
        **national_fields(ReversalOutput, settlement, balc=balance),
        setl_time=format_inf_time(now),
    )


async def _query(conn: asyncpg.Connection, call: Call, serial: int) -> OrderQueryOutput:
    """6301: what an earlier 2207/2208 did; waits for that msgid if it is in flight.

    An asynchronous 2207 answers "processing" until done, then "settled" (or
    "reversed"), or "failed" with the refusal's infcode.
    """
    inp: OrderQueryInput = call.input
    await store.lock_msgid(conn, inp.ref_msgid)
    settlement = await store.find_settlement_by_msgid(conn, inp.ref_msgid, call.province)
    if settlement is None:
        pending = await store.find_async_settlement(conn, inp.ref_msgid)
        if pending is not None and pending.province == call.province:
            if pending.state == "processing":
                return OrderQueryOutput(ord_stas="processing")
            if pending.state == "failed":
                return OrderQueryOutput(
                    ord_stas="failed", err_code=pending.err_code, err_msg=pending.err_msg
                )
        return OrderQueryOutput(ord_stas="not_found")
    settled = msgspec.convert(settlement.response, SettlementOutput)
    status = settlement.state if settlement.msgid == inp.ref_msgid else "reversed"
    return OrderQueryOutput(
        ord_stas=status,  # type: ignore[arg-type]
        setlinfo=settled.setlinfo,
        setldetail=settled.setldetail,
    )


def _check_statement_province(call: Call, setl_optins: str) -> None:
    if setl_optins != call.province:
        raise ProvinceError(
            SimulatorCode.WRONG_PROVINCE,
            f"setl_optins {setl_optins} is not province {call.province}",
        )


def _statement_of(call: Call, inp: StatementTotalsInput | StatementDetailsInput) -> dict[str, Any]:
    """What a statement answer says it is about: this province, the days asked."""
    return {
        "setl_optins": call.province,
        "stmt_begndate": inp.stmt_begndate,
        "stmt_enddate": inp.stmt_enddate,
    }


_TOTAL_FIELDS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "fixmedins_setl_cnt")


async def _statement_totals(
    conn: asyncpg.Connection, call: Call, serial: int
) -> StatementTotalsOutput:
    """3201: the province's net totals of the days, each line compared with the gateway's.

    Every (insutype, clr_type) line either side has is answered: the province's own
    figures (zero where it has none) and ``stmt_rslt`` "0" when the gateway's agree.
    """
    inp: StatementTotalsInput = call.input
    _check_statement_province(call, inp.setl_optins)
    start, end = china_day_bounds(inp.stmt_begndate, inp.stmt_enddate)
    ours = {
        (row.insutype, row.clr_type): row
        for row in await store.statement_totals(conn, call.province, start, end)
    }
    theirs: dict[tuple[str, str], StatementTotal] = {
        (line.insutype, line.clr_type): line for line in inp.stmtinfo
    }
    results = []
    for insutype, clr_type in sorted(ours.keys() | theirs.keys()):
        mine = ours.get((insutype, clr_type))
        figures = {field: getattr(mine, field) if mine else 0 for field in _TOTAL_FIELDS}
        sent = theirs.get((insutype, clr_type))
        given = {field: getattr(sent, field) if sent else 0 for field in _TOTAL_FIELDS}
        differing = [field for field in _TOTAL_FIELDS if figures[field] != given[field]]
        results.append(
            StatementTotalResult(
                insutype=insutype,  # type: ignore[arg-type]
                clr_type=clr_type,
                **figures,
                stmt_rslt="1" if differing else "0",
                stmt_rslt_dscr=f"differs: {', '.join(differing)}" if differing else "",
            )
        )
    return StatementTotalsOutput(
        **_statement_of(call, inp),
        stmt_rslt="1" if any(r.stmt_rslt == "1" for r in results) else "0",
        stmtinfo=results,
    )


def _detail(row: store.StatementLineRow) -> StatementDetail:
    reversed_ = row.state == "reversed"
    return StatementDetail(
        setl_id=row.setl_id,
        msgid=row.msgid,
        psn_no=row.psn_no,
        mdtrt_id=row.mdtrt_id,
        insutype=row.insutype,  # type: ignore[arg-type]
        clr_type=row.clr_type,
        fixmedins_code=row.fixmedins_code,
        **national_fields(StatementDetail, row),
        setl_time=format_inf_time(row.settled_at),
        ord_stas="reversed" if reversed_ else "settled",
        revs_msgid=row.reversal_msgid if reversed_ else None,
        revs_time=format_inf_time(row.reversed_at) if reversed_ and row.reversed_at else None,
    )


async def _statement_details(
    conn: asyncpg.Connection, call: Call, serial: int
) -> StatementDetailsOutput:
    """3202: one page of the settlements made or reversed in the days, in setl_id order."""
    inp: StatementDetailsInput = call.input
    _check_statement_province(call, inp.setl_optins)
    start, end = china_day_bounds(inp.stmt_begndate, inp.stmt_enddate)
    offset = (inp.page_num - 1) * inp.page_size
    total, rows = await store.statement_lines(
        conn, call.province, start, end, limit=inp.page_size, offset=offset
    )
    if offset and offset >= total:
        raise ProvinceError(
            SimulatorCode.MALFORMED, f"page {inp.page_num} is beyond the {total} lines"
        )
    return StatementDetailsOutput(
        **_statement_of(call, inp),
        page_num=inp.page_num,
        page_size=inp.page_size,
        total=total,
        data=[_detail(row) for row in rows],
    )


_HANDLERS: dict[str, Callable[[asyncpg.Connection, Call, int], Awaitable[Any]]] = {
    INFNO_PRE_SETTLE: _pre_settle,
    INFNO_SETTLE: _settle,
    INFNO_REVERSE: _reverse,
    INFNO_ORDER_QUERY: _query,
    INFNO_STATEMENT_TOTALS: _statement_totals,
    INFNO_STATEMENT_DETAILS: _statement_details,
}
