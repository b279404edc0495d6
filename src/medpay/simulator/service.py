"""What a provincial platform does with one verified national request.

The insured place settles its own insured under its own policy (DOMAIN.md section 2)
and is the idempotency authority for ``msgid`` (section 8): each request runs in one
transaction that takes an advisory lock on its msgid, answers a repeat from the
msgid log, and otherwise does the work and logs the answer before committing. A
refusal (negative infcode) is logged too, but any work it started is rolled back
to a savepoint first, so a negative answer always means "nothing was done".
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from medpay.simulator import store
from medpay.simulator.policy import (
    Calculation,
    Claim,
    FilingRequired,
    Item,
    Standing,
    calculate,
)
from medpay.wire.national import (
    ERROR_MESSAGES,
    FUND_BASIC_EMPLOYEE,
    FUND_BASIC_RESIDENT,
    FUND_CRITICAL_ILLNESS,
    FUND_MEDICAL_ASSISTANCE,
    INFNO_ORDER_QUERY,
    INFNO_PRE_SETTLE,
    INFNO_REVERSE,
    INFNO_SETTLE,
    InfCode,
    OrderQueryInput,
    OrderQueryOutput,
    ResponseEnvelope,
    ReversalInput,
    ReversalOutput,
    SetlDetail,
    SetlInfo,
    SettlementInput,
    SettlementOutput,
    encode,
    format_inf_time,
    format_ref_time,
    new_refmsgid,
)
from medpay.wire.signing import canonical_string

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import asyncpg

    from medpay.simulator.policy import Policy

__all__ = ["Call", "ProvinceError", "encode_response", "process", "request_digest"]

_CLASSES = {"01": "A", "02": "B", "03": "C"}


class ProvinceError(Exception):
    """A refusal: answered with a negative infcode, after undoing any work."""

    def __init__(self, infcode: InfCode, message: str | None = None) -> None:
        self.infcode = infcode
        self.message = message or ERROR_MESSAGES[infcode]
        super().__init__(f"{int(infcode)} {self.message}")


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


async def process(pool: asyncpg.Pool, call: Call) -> tuple[int, bytes]:
    """Answer ``call``: replay a logged answer, or do the work; return (infcode, body)."""
    handler = _HANDLERS[call.infno]
    digest = call.digest
    async with pool.acquire() as conn, conn.transaction():
        await store.lock_msgid(conn, call.msgid)
        logged = await store.find_logged(conn, call.msgid)
        if logged is not None and logged.request_digest == digest:
            return logged.infcode, logged.response_body.encode()
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
            return conflict.infcode, body  # not logged: the msgid keeps its first answer
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves nothing behind
                output = await handler(conn, call, serial)
        except ProvinceError as refusal:
            infcode = int(refusal.infcode)
            body = encode_response(
                call.province, call.received_at, serial, infcode=infcode, err_msg=refusal.message
            )
        else:
            infcode = 0
            body = encode_response(call.province, call.received_at, serial, output=output)
        await store.log_response(
            conn,
            msgid=call.msgid,
            province=call.province,
            infno=call.infno,
            request_digest=digest,
            infcode=infcode,
            response_body=body,
        )
        return infcode, body


# --- the transactions ------------------------------------------------------------------------


def _check_person(person: store.PersonRow | None, call: Call, insutype: str) -> store.PersonRow:
    if person is None or person.province != call.province:
        raise ProvinceError(InfCode.PERSON_UNKNOWN)
    if person.insutype != insutype:
        raise ProvinceError(
            InfCode.PERSON_MISMATCH, f"person is insured under {person.insutype}, not {insutype}"
        )
    if person.insuplc_admdvs != call.insuplc_admdvs:
        raise ProvinceError(
            InfCode.PERSON_MISMATCH,
            f"person is insured in {person.insuplc_admdvs}, not {call.insuplc_admdvs}",
        )
    return person


def _claim(call: Call, inp: SettlementInput) -> Claim:
    return Claim(
        scheme="employee" if inp.insutype == "310" else "resident",
        institution_level=int(inp.medins_lv),  # type: ignore[arg-type]
        offsite=call.insuplc_admdvs != call.mdtrtarea_admvs,
        filing_type=inp.out_fil_type,
        personal_account_allowed=inp.acct_used_flag == "1",
        items=tuple(
            Item(
                quantity=fee.cnt,
                unit_price_fen=fee.pric,
                item_class=_CLASSES[fee.chrgitm_lv],  # type: ignore[arg-type]
                price_limit_fen=fee.pric_uplmt_amt,
                pre_self_pay_bp=fee.selfpay_prop,
                non_medical=fee.non_medical,
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
    basic_fund = FUND_BASIC_EMPLOYEE if inp.insutype == "310" else FUND_BASIC_RESIDENT
    details = [
        SetlDetail(
            fund_pay_type=basic_fund,
            inscp_scp_amt=calc.in_scope_fen,
            crt_payb_lmt_amt=calc.in_scope_fen - calc.deductible_applied_fen,
            fund_payamt=calc.basic_fund_fen,
        )
    ]
    if calc.critical_illness_fen:
        details.append(
            SetlDetail(
                fund_pay_type=FUND_CRITICAL_ILLNESS,
                inscp_scp_amt=calc.in_scope_fen,
                crt_payb_lmt_amt=calc.critical_illness_base_fen,
                fund_payamt=calc.critical_illness_fen,
            )
        )
    if calc.medical_assistance_fen:
        details.append(
            SetlDetail(
                fund_pay_type=FUND_MEDICAL_ASSISTANCE,
                inscp_scp_amt=calc.in_scope_fen,
                crt_payb_lmt_amt=calc.in_scope_fen
                - calc.basic_fund_fen
                - calc.critical_illness_fen,
                fund_payamt=calc.medical_assistance_fen,
            )
        )
    info = SetlInfo(
        setl_id=setl_id,
        psn_no=inp.psn_no,
        mdtrt_id=inp.mdtrt_id,
        medfee_sumamt=calc.medfee_total_fen,
        fulamt_ownpay_amt=calc.full_own_pay_fen,
        overlmt_selfpay=calc.over_limit_self_pay_fen,
        preselfpay_amt=calc.pre_self_pay_fen,
        inscp_scp_amt=calc.in_scope_fen,
        act_pay_dedc=calc.deductible_applied_fen,
        hifp_pay=calc.basic_fund_fen,
        pool_prop_selfpay=calc.ratio_bp,
        hifmi_pay=calc.critical_illness_fen,
        maf_pay=calc.medical_assistance_fen,
        fund_pay_sumamt=calc.fund_total_fen,
        psn_part_amt=calc.personal_part_fen,
        acct_pay=calc.personal_account_fen,
        psn_cash_pay=calc.cash_fen,
        balc=calc.balance_after_fen,
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
        raise ProvinceError(InfCode.DUPLICATE_CHARGE)
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
        psn_no=inp.psn_no,
        mdtrt_id=inp.mdtrt_id,
        chrg_bchno=inp.chrg_bchno,
        fixmedins_code=call.fixmedins_code,
        insutype=inp.insutype,
        year=year,
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
    await store.get_person(conn, inp.psn_no, for_update=True)
    await store.lock_year_totals(conn, inp.psn_no, settlement.year)
    await store.add_to_totals(
        conn,
        inp.psn_no,
        settlement.year,
        deductible_fen=-settlement.deductible_applied_fen,
        fund_fen=-settlement.basic_fund_fen,
        burden_fen=-settlement.burden_fen,
    )
    balance = await store.add_to_balance(conn, inp.psn_no, settlement.personal_account_fen)
    now = dt.datetime.now(dt.UTC)
    await store.mark_reversed(conn, settlement.setl_id, call.msgid, now)
    return ReversalOutput(
        setl_id=settlement.setl_id,
        psn_no=settlement.psn_no,
        mdtrt_id=settlement.mdtrt_id,
        medfee_sumamt=settlement.medfee_total_fen,
        fund_pay_sumamt=settlement.fund_total_fen,
        acct_pay=settlement.personal_account_fen,
        psn_cash_pay=settlement.cash_fen,
        balc=balance,
        setl_time=format_inf_time(now),
    )


async def _query(conn: asyncpg.Connection, call: Call, serial: int) -> OrderQueryOutput:
    """6301: what an earlier 2207/2208 did; waits for that msgid if it is in flight."""
    inp: OrderQueryInput = call.input
    await store.lock_msgid(conn, inp.ref_msgid)
    settlement = await store.find_settlement_by_msgid(conn, inp.ref_msgid, call.province)
    if settlement is None:
        return OrderQueryOutput(ord_stas="not_found")
    settled = msgspec.convert(settlement.response, SettlementOutput)
    status = settlement.state if settlement.msgid == inp.ref_msgid else "reversed"
    return OrderQueryOutput(
        ord_stas=status,  # type: ignore[arg-type]
        setlinfo=settled.setlinfo,
        setldetail=settled.setldetail,
    )


_HANDLERS: dict[str, Callable[[asyncpg.Connection, Call, int], Awaitable[Any]]] = {
    INFNO_PRE_SETTLE: _pre_settle,
    INFNO_SETTLE: _settle,
    INFNO_REVERSE: _reverse,
    INFNO_ORDER_QUERY: _query,
}
