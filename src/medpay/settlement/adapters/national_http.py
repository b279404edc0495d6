"""The national wire format over HTTP (DOMAIN.md section 8), our Ed25519 / integer-fen profile.

One adapter per province, all sharing the process's pooled ``httpx.AsyncClient``.
The request envelope is signed (``cainfo``); the answer's body signature is
verified before anything in it is believed. Transport failures are classified by
whether the request can have reached the province (see ``base``): only a failure to
connect (or to get a pooled connection) proves it did not.

An asynchronous province answers a 2207 with ``ord_stas`` "processing": the adapter
raises :class:`SettlementPending`, and the outcome arrives as a callback, which
:meth:`NationalHttpAdapter.parse_callback` checks against the same province key as
the answers, or from 6301.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING, Any, Self

import httpx
import msgspec

from medpay.clock import china_date
from medpay.observability import province_call
from medpay.privacy import masked_text
from medpay.settlement.adapters.base import (
    CALLBACK_MALFORMED,
    CALLBACK_SIGNATURE_INVALID,
    CALLBACK_TIMESTAMP_OUT_OF_WINDOW,
    PROBLEM_FILING_REQUIRED,
    PROBLEM_MSGID_CONFLICT,
    PROBLEM_PERSON_UNKNOWN,
    PROBLEM_PROVINCE_ERROR,
    PROBLEM_PROVINCE_REFUSED_SIGNATURE,
    PROBLEM_SETTLEMENT_ALREADY_REVERSED,
    PROBLEM_SETTLEMENT_UNKNOWN,
    CallbackRejected,
    ClearingError,
    FundPayment,
    OutcomeUnknown,
    ProvinceCallback,
    ProvinceRejected,
    ProvinceResponseInvalid,
    ProvinceUnavailable,
    QueryResult,
    ReversalResult,
    SettlementBreakdown,
    SettlementPending,
    SettlementResult,
    StatementLine,
    StatementPage,
    StatementTotals,
    StatementTotalsLine,
    TotalsVerdict,
)
from medpay.wire.national import (
    CHRGITM_LV_OF_CLASS,
    INFNO_KINDS,
    INFNO_ORDER_QUERY,
    INFNO_PRE_SETTLE,
    INFNO_REVERSE,
    INFNO_SETTLE,
    INFNO_STATEMENT_DETAILS,
    INFNO_STATEMENT_TOTALS,
    INSUTYPE_OF_SCHEME,
    SCHEME_OF_INSUTYPE,
    FeeDetail,
    InfCode,
    OrderQueryInput,
    OrderQueryOutput,
    RequestEnvelope,
    ReversalInput,
    ReversalOutput,
    SettlementInput,
    SettlementOrderOutput,
    SettlementOutput,
    StatementDetailsInput,
    StatementDetailsOutput,
    StatementTotal,
    StatementTotalsInput,
    StatementTotalsOutput,
    callback_decoder,
    encode,
    format_inf_time,
    national_fields,
    parse_inf_time,
    parse_ref_time,
    province_of,
    readable_fields,
    response_decoder,
)
from medpay.wire.signing import (
    DEFAULT_MAX_SKEW_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    load_private_key,
    load_public_key,
    sign_request,
    verify_body_signature,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from medpay.settlement.adapters.base import (
        QueryRequest,
        ReversalRequest,
        SettlementRequest,
        StatementDetailsRequest,
        StatementTotalsRequest,
    )
    from medpay.settlement.adapters.config import ClearingConfig, ProvinceEndpoint
    from medpay.wire.national import (
        ResponseEnvelope,
        SetlDetail,
        SetlInfo,
        SettlementCallback,
        StatementDetail,
    )

__all__ = ["DEFAULT_TIMEOUT", "INFCODE_PROBLEMS", "NationalHttpAdapter", "new_http_client"]

#: Connect fast (a refused or silent province is "unavailable", safely); read longer.
DEFAULT_TIMEOUT = httpx.Timeout(connect=2.0, read=10.0, write=5.0, pool=2.0)

#: infcode -> (problem code, may the same request succeed later)
INFCODE_PROBLEMS: dict[int, tuple[str, bool]] = {
    InfCode.GENERIC: (PROBLEM_PROVINCE_ERROR, True),
    InfCode.PERSON_UNKNOWN: (PROBLEM_PERSON_UNKNOWN, False),
    InfCode.FILING_REQUIRED: (PROBLEM_FILING_REQUIRED, False),
    InfCode.MSGID_CONFLICT: (PROBLEM_MSGID_CONFLICT, False),
    InfCode.SETTLEMENT_UNKNOWN: (PROBLEM_SETTLEMENT_UNKNOWN, False),
    InfCode.ALREADY_REVERSED: (PROBLEM_SETTLEMENT_ALREADY_REVERSED, False),
    InfCode.BAD_SIGNATURE: (PROBLEM_PROVINCE_REFUSED_SIGNATURE, False),
}

_UNKNOWN_PROBLEM = (PROBLEM_PROVINCE_ERROR, False)

#: The metrics' outcome of each failure, most specific first (invalid is a kind of unknown).
_OUTCOMES: tuple[tuple[type[ClearingError], str], ...] = (
    (ProvinceRejected, "rejected"),
    (ProvinceUnavailable, "unavailable"),
    (ProvinceResponseInvalid, "invalid"),
    (ClearingError, "unknown"),
)


#: Failures that happen before any byte of the request can have been sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


#: How long an idle connection to a province is kept (shorter than its server keeps it).
KEEPALIVE_EXPIRY_S = 2.0


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings httpx would make for each client, made once per process.

    Building them reads the whole CA bundle: 20 ms a client, which the test suite paid
    for every gateway it started. An ``SSLContext`` may be shared between clients.
    """
    return httpx.create_ssl_context(trust_env=False)


def new_http_client(*, max_connections: int = 100, max_keepalive: int = 20) -> httpx.AsyncClient:
    """The pooled client the adapters share, one per process; close it at shutdown.

    No redirects and no proxies from the environment: a payment backend talks to the
    address it was configured with. An idle connection is dropped after 2 s, before the
    province's server closes it (uvicorn's keep-alive is 5 s, httpx's own default too):
    a request sent on a connection the server is closing at that moment is a payment
    whose outcome is unknown (a 202 and the resolver), which the benchmark saw.
    """
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
        follow_redirects=False,
        trust_env=False,
        verify=_tls_context(),
    )


class NationalHttpAdapter:
    """A province speaking the national envelope over HTTP POST at ``url``."""

    kind = "national_http"

    def __init__(
        self,
        url: str,
        province_code: str,
        signing_key: Ed25519PrivateKey,
        province_public_key: Ed25519PublicKey,
        client: httpx.AsyncClient,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        *,
        recer_sys_code: str = "MEDPAY",
        clock: Callable[[], dt.datetime] | None = None,
        infcodes: Mapping[int, str] | None = None,
    ) -> None:
        if province_of(province_code) != province_code:
            raise ValueError(f"not a province code: {province_code}")
        self.url = url
        self.province_code = province_code
        self._signing_key = signing_key
        self._province_key = province_public_key
        self._client = client
        self._timeout = timeout
        self._recer_sys_code = recer_sys_code
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        #: The national codes, and this province's own finer ones (never retried as is).
        self._infcodes = {
            **INFCODE_PROBLEMS,
            **{code: (problem, False) for code, problem in (infcodes or {}).items()},
        }

    @classmethod
    def from_endpoint(
        cls, endpoint: ProvinceEndpoint, config: ClearingConfig, client: httpx.AsyncClient
    ) -> NationalHttpAdapter:
        """Build from one line of the clearing configuration (see ``registry``)."""
        return cls._configured(
            endpoint,
            config,
            client,
            load_private_key(config.signing_key_pem),
            load_public_key(endpoint.public_key_pem),
        )

    @classmethod
    def _configured(
        cls,
        endpoint: ProvinceEndpoint,
        config: ClearingConfig,
        client: httpx.AsyncClient,
        signing_key: Any,
        province_public_key: Any,
    ) -> Self:
        """The adapter for ``endpoint`` with keys of its profile: both profiles time out alike."""
        return cls(
            endpoint.url,
            endpoint.admdvs,
            signing_key,
            province_public_key,
            client,
            httpx.Timeout(
                connect=endpoint.connect_timeout_s,
                read=endpoint.read_timeout_s,
                write=endpoint.read_timeout_s,
                pool=endpoint.connect_timeout_s,
            ),
            recer_sys_code=config.recer_sys_code,
            infcodes=endpoint.infcodes,
        )

    # --- transactions -----------------------------------------------------------------------

    async def pre_settle(self, request: SettlementRequest) -> SettlementResult:
        """2206: the figures a settlement would have now; nothing changes."""
        return await self._settlement(INFNO_PRE_SETTLE, request)

    async def settle(self, request: SettlementRequest) -> SettlementResult:
        """2207: settle with the province.

        Raises:
            SettlementPending: an asynchronous province accepted it and is processing.
        """
        return await self._settlement(INFNO_SETTLE, request)

    async def reverse(self, request: ReversalRequest) -> ReversalResult:
        """2208: reverse a settlement."""
        envelope = self._envelope(
            INFNO_REVERSE,
            request,
            ReversalInput(
                setl_id=request.settlement_id, mdtrt_id=request.visit_id, psn_no=request.psn_no
            ),
        )
        refmsgid, output = await self._call(envelope, ReversalOutput)
        if output.setl_id != request.settlement_id or output.psn_no != request.psn_no:
            raise self._invalid(request.msgid, "reversal answer is about another settlement")
        return ReversalResult(
            msgid=request.msgid,
            province_msgid=refmsgid,
            settlement_id=output.setl_id,
            reversed_at=parse_inf_time(output.setl_time),
            **readable_fields(ReversalResult, output),
        )

    async def query(self, request: QueryRequest) -> QueryResult:
        """6301: what the request ``ref_msgid`` did."""
        envelope = self._envelope(
            INFNO_ORDER_QUERY, request, OrderQueryInput(ref_msgid=request.ref_msgid)
        )
        refmsgid, output = await self._call(envelope, OrderQueryOutput)
        breakdown = error_code = message = None
        if output.ord_stas in ("settled", "reversed"):
            if output.setlinfo is None:
                raise self._invalid(request.msgid, f"ord_stas {output.ord_stas} without setlinfo")
            breakdown = self._breakdown(request.msgid, output.setlinfo, output.setldetail)
        elif output.ord_stas == "failed":
            if output.err_code is None or output.err_code >= 0:
                raise self._invalid(request.msgid, "ord_stas failed without a negative err_code")
            error_code = self._problem_of(output.err_code)[0]
            message = masked_text(output.err_msg) or f"infcode {output.err_code}"
        return QueryResult(
            msgid=request.msgid,
            province_msgid=refmsgid,
            ref_msgid=request.ref_msgid,
            status=output.ord_stas,
            breakdown=breakdown,
            error_code=error_code,
            message=message,
        )

    async def statement_totals(self, request: StatementTotalsRequest) -> StatementTotals:
        """3201: send the gateway's net totals of the days; the province answers its own.

        Raises:
            ProvinceResponseInvalid: the answer is about other days or another
                province, or leaves out a line the gateway sent.
        """
        envelope = self._envelope(
            INFNO_STATEMENT_TOTALS,
            request,
            StatementTotalsInput(
                **self._statement_of(request),
                stmtinfo=[
                    StatementTotal(
                        insutype=INSUTYPE_OF_SCHEME[line.insurance_scheme],
                        clr_type=line.clearing_type,
                        medfee_sumamt=line.medical_fee_total_fen,
                        fund_pay_sumamt=line.fund_total_fen,
                        acct_pay=line.personal_account_fen,
                        fixmedins_setl_cnt=line.settlement_count,
                    )
                    for line in request.lines
                ],
            ),
        )
        refmsgid, output = await self._call(envelope, StatementTotalsOutput)
        self._check_statement(request, output)
        verdicts = [
            TotalsVerdict(
                line=StatementTotalsLine(
                    insurance_scheme=SCHEME_OF_INSUTYPE[line.insutype],
                    clearing_type=line.clr_type,
                    medical_fee_total_fen=line.medfee_sumamt,
                    settlement_count=line.fixmedins_setl_cnt,
                    **readable_fields(StatementTotalsLine, line),
                ),
                agreed=line.stmt_rslt == "0",
                description=line.stmt_rslt_dscr,
            )
            for line in output.stmtinfo
        ]
        answered = {verdict.line.key for verdict in verdicts}
        if any(line.key not in answered for line in request.lines):
            raise self._invalid(request.msgid, "3201 answer leaves out a line the gateway sent")
        return StatementTotals(
            msgid=request.msgid,
            province_msgid=refmsgid,
            agreed=output.stmt_rslt == "0",
            lines=verdicts,
        )

    async def statement_details(self, request: StatementDetailsRequest) -> StatementPage:
        """3202: one page of the settlements the province made or reversed in the days.

        Raises:
            ProvinceResponseInvalid: another page, other days or province, or a line
                neither made nor reversed within the days.
        """
        envelope = self._envelope(
            INFNO_STATEMENT_DETAILS,
            request,
            StatementDetailsInput(
                **self._statement_of(request),
                page_num=request.page,
                page_size=request.page_size,
            ),
        )
        refmsgid, output = await self._call(envelope, StatementDetailsOutput)
        self._check_statement(request, output)
        if (output.page_num, output.page_size) != (request.page, request.page_size):
            raise self._invalid(request.msgid, "3202 answer is another page")
        lines = [self._statement_line(request, detail) for detail in output.data]
        return StatementPage(
            msgid=request.msgid,
            province_msgid=refmsgid,
            page=output.page_num,
            page_size=output.page_size,
            total_lines=output.total,
            lines=lines,
        )

    def _statement_of(
        self, request: StatementTotalsRequest | StatementDetailsRequest
    ) -> dict[str, Any]:
        """The province and days of a statement's input; it is asked of that province only."""
        if request.province != self.province_code:
            raise ValueError(
                f"a statement of province {request.province} is not asked of {self.province_code}"
            )
        return {
            "setl_optins": request.province,
            "stmt_begndate": request.first_day,
            "stmt_enddate": request.last_day,
        }

    def _check_statement(
        self,
        request: StatementTotalsRequest | StatementDetailsRequest,
        output: StatementTotalsOutput | StatementDetailsOutput,
    ) -> None:
        asked = (request.province, request.first_day, request.last_day)
        if (output.setl_optins, output.stmt_begndate, output.stmt_enddate) != asked:
            raise self._invalid(request.msgid, "statement is about another province or days")

    def _statement_line(
        self, request: StatementDetailsRequest, detail: StatementDetail
    ) -> StatementLine:
        settled_at = parse_inf_time(detail.setl_time)
        reversed_at = None if detail.revs_time is None else parse_inf_time(detail.revs_time)

        def within(moment: dt.datetime | None) -> bool:
            day = china_date(moment)
            return day is not None and request.first_day <= day <= request.last_day

        if not (within(settled_at) or within(reversed_at)):
            raise self._invalid(
                request.msgid, f"{detail.setl_id} was neither made nor reversed in the days asked"
            )
        return StatementLine(
            settlement_id=detail.setl_id,
            msgid=detail.msgid,
            psn_no=detail.psn_no,
            visit_id=detail.mdtrt_id,
            insurance_scheme=SCHEME_OF_INSUTYPE[detail.insutype],
            clearing_type=detail.clr_type,
            institution_code=detail.fixmedins_code,
            medical_fee_total_fen=detail.medfee_sumamt,
            **readable_fields(StatementLine, detail),
            settled_at=settled_at,
            reversal_msgid=detail.revs_msgid,
            reversed_at=reversed_at,
        )

    # --- callbacks ------------------------------------------------------------------------------

    def parse_callback(
        self,
        body: bytes,
        timestamp: str | None,
        signature: str | None,
        *,
        now: float | None = None,
    ) -> ProvinceCallback:
        """Check a callback's body signature with this province's key, then read it.

        ``timestamp`` and ``signature`` are the ``X-Province-Timestamp`` and
        ``X-Province-Signature`` headers; the timestamp must lie within 300 s of
        ``now`` (default: the adapter's clock).

        Raises:
            CallbackRejected: ``callback_signature_invalid``,
                ``callback_timestamp_out_of_window`` or ``callback_malformed``.
        """
        current = self._clock().timestamp() if now is None else now
        if not timestamp or not signature:
            raise self._rejected(CALLBACK_SIGNATURE_INVALID, "signature headers missing")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise self._rejected(CALLBACK_SIGNATURE_INVALID, "timestamp is not unix seconds")
        if abs(current - int(timestamp)) > DEFAULT_MAX_SKEW_S:
            raise self._rejected(
                CALLBACK_TIMESTAMP_OUT_OF_WINDOW,
                f"timestamp {timestamp} is more than {DEFAULT_MAX_SKEW_S} s from now",
            )
        try:
            self._verify_body(body, timestamp, signature, now=current)
        except SignatureError as exc:
            raise self._rejected(CALLBACK_SIGNATURE_INVALID, str(exc)) from exc
        try:
            callback = self._decode_callback(body)
            sent_at = parse_ref_time(callback.callback_time)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise self._rejected(CALLBACK_MALFORMED, f"not a valid callback: {exc}") from exc
        breakdown = error_code = message = None
        if callback.setlinfo is not None:
            try:
                breakdown = self._breakdown(
                    callback.ref_msgid, callback.setlinfo, callback.setldetail
                )
            except ProvinceResponseInvalid as exc:
                raise self._rejected(CALLBACK_MALFORMED, exc.message) from exc
        if callback.err_code is not None:
            error_code = self._problem_of(callback.err_code)[0]
            message = masked_text(callback.err_msg) or f"infcode {callback.err_code}"
        return ProvinceCallback(
            callback_id=callback.callback_id,
            ref_msgid=callback.ref_msgid,
            kind=INFNO_KINDS[callback.infno],
            result=callback.ord_stas,
            breakdown=breakdown,
            error_code=error_code,
            message=message,
            sent_at=sent_at,
        )

    def _problem_of(self, infcode: int) -> tuple[str, bool]:
        """The ``PROBLEM_*`` code of a negative infcode, and whether the same request may succeed."""
        return self._infcodes.get(infcode, _UNKNOWN_PROBLEM)

    def _rejected(self, code: str, message: str) -> CallbackRejected:
        return CallbackRejected(code, message, province=self.province_code)

    # --- mapping ------------------------------------------------------------------------------

    async def _settlement(self, infno: str, request: SettlementRequest) -> SettlementResult:
        envelope = self._envelope(infno, request, self._settlement_input(request))
        output_type = SettlementOrderOutput if infno == INFNO_SETTLE else SettlementOutput
        refmsgid, output = await self._call(envelope, output_type)
        if getattr(output, "ord_stas", "settled") == "processing":
            raise SettlementPending(
                f"province accepted the settlement and is processing it ({refmsgid})",
                province=self.province_code,
                msgid=request.msgid,
            )
        info = output.setlinfo
        assert info is not None  # SettlementOrderOutput: "settled" always carries setlinfo
        if info.psn_no != request.psn_no or info.mdtrt_id != request.visit_id:
            raise self._invalid(request.msgid, "answer is about another person or visit")
        if info.medfee_sumamt != request.medfee_total_fen:
            raise self._invalid(request.msgid, "answer settles another total")
        if (info.setl_id is None) != (infno == INFNO_PRE_SETTLE):
            raise self._invalid(request.msgid, "setl_id present on a pre-settlement or missing")
        return SettlementResult(
            msgid=request.msgid,
            province_msgid=refmsgid,
            breakdown=self._breakdown(request.msgid, info, output.setldetail),
        )

    def _settlement_input(self, request: SettlementRequest) -> SettlementInput:
        if province_of(request.insured_area) != self.province_code:
            raise ValueError(
                f"insured area {request.insured_area} is not in province {self.province_code}"
            )
        return SettlementInput(
            **national_fields(SettlementInput, request),
            psn_no=request.psn_no,
            mdtrt_id=request.visit_id,
            insutype=INSUTYPE_OF_SCHEME[request.insurance_scheme],
            acct_used_flag="1" if request.personal_account_allowed else "0",
            medins_lv=str(request.institution_level),  # type: ignore[arg-type]
            feedetail=[
                FeeDetail(
                    **national_fields(
                        FeeDetail, item, chrgitm_lv=CHRGITM_LV_OF_CLASS[item.item_class]
                    )
                )
                for item in request.items
            ],
        )

    def _breakdown(
        self, msgid: str, info: SetlInfo, details: list[SetlDetail]
    ) -> SettlementBreakdown:
        try:
            return SettlementBreakdown(
                settlement_id=info.setl_id,
                psn_no=info.psn_no,
                visit_id=info.mdtrt_id,
                **readable_fields(SettlementBreakdown, info),
                settled_at=parse_inf_time(info.setl_time),
                funds=tuple(
                    FundPayment(
                        fund_type=detail.fund_pay_type,
                        in_scope_fen=detail.inscp_scp_amt,
                        payable_base_fen=detail.crt_payb_lmt_amt,
                        paid_fen=detail.fund_payamt,
                    )
                    for detail in details
                ),
            )
        except ValueError as exc:
            raise self._invalid(msgid, f"inconsistent figures: {exc}") from exc

    def _envelope(self, infno: str, request: Any, payload: Any) -> RequestEnvelope[Any]:
        """The envelope of one request, unsigned: :meth:`_encode_request` signs it as sent."""
        envelope = RequestEnvelope[Any](
            infno=infno,
            msgid=request.msgid,
            recer_sys_code=self._recer_sys_code,
            inf_time=format_inf_time(self._clock()),
            fixmedins_code=request.institution_code,
            **national_fields(RequestEnvelope, request),
            input=payload,
        )
        return envelope

    # --- the profile: how envelopes are signed and amounts written (overridden by a subclass) --

    def _encode_request(self, envelope: RequestEnvelope[Any]) -> bytes:
        """The request as sent: our profile signs with Ed25519, amounts in integer fen."""
        return encode(sign_request(envelope, self._signing_key))

    def _verify_body(
        self, body: bytes, timestamp: str | None, signature: str | None, *, now: float
    ) -> None:
        """Check the province's signature over a raw answer or callback (raises SignatureError)."""
        verify_body_signature(body, timestamp, signature, self._province_key, now=now)

    def _decode_answer(self, body: bytes, output_type: type[Any]) -> ResponseEnvelope[Any]:
        """The answer, typed (raises DecodeError or ValidationError)."""
        return response_decoder(output_type).decode(body)  # type: ignore[arg-type]  # a Struct type is hashable

    def _decode_callback(self, body: bytes) -> SettlementCallback:
        """A callback, typed (raises DecodeError, ValidationError or ValueError)."""
        return callback_decoder().decode(body)

    # --- transport ------------------------------------------------------------------------------

    def _invalid(self, msgid: str, message: str) -> ProvinceResponseInvalid:
        return ProvinceResponseInvalid(message, province=self.province_code, msgid=msgid)

    async def _call(
        self, envelope: RequestEnvelope[Any], output_type: type[Any]
    ) -> tuple[str, Any]:
        """POST the signed envelope, observed (metrics, traceparent, msgid in the logs)."""
        async with province_call(
            self.province_code, envelope.infno, self.url, envelope.msgid
        ) as call:
            try:
                answer = await self._exchange(envelope, output_type, call.headers)
            except ClearingError as exc:
                call.outcome = next(name for kind, name in _OUTCOMES if isinstance(exc, kind))
                raise
            call.outcome = "ok"
            return answer

    async def _exchange(
        self, envelope: RequestEnvelope[Any], output_type: type[Any], headers: dict[str, str]
    ) -> tuple[str, Any]:
        """POST the signed envelope; return (inf_refmsgid, typed output) or raise."""
        msgid = envelope.msgid
        where = {"province": self.province_code, "msgid": msgid}
        try:
            response = await self._client.post(
                self.url,
                content=self._encode_request(envelope),
                headers={"Content-Type": "application/json", **headers},
                timeout=self._timeout,
            )
        except _NOT_SENT as exc:
            raise ProvinceUnavailable(f"province not reachable: {exc!r}", **where) from exc
        except httpx.TransportError as exc:  # timeouts after sending, resets, protocol errors
            raise OutcomeUnknown(f"no answer from the province: {exc!r}", **where) from exc
        if response.status_code >= 500:
            raise OutcomeUnknown(f"province answered HTTP {response.status_code}", **where)
        if response.status_code != 200:
            raise self._invalid(msgid, f"unexpected HTTP {response.status_code}")
        body = response.content
        try:
            self._verify_body(
                body,
                response.headers.get(TIMESTAMP_HEADER),
                response.headers.get(SIGNATURE_HEADER),
                now=self._clock().timestamp(),
            )
        except SignatureError as exc:
            raise self._invalid(msgid, f"answer signature: {exc}") from exc
        try:
            answer = self._decode_answer(body, output_type)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise self._invalid(msgid, f"malformed answer: {exc}") from exc
        if answer.infcode < 0:
            code, retryable = self._problem_of(answer.infcode)
            raise ProvinceRejected(
                code,
                answer.infcode,
                masked_text(answer.err_msg) or f"infcode {answer.infcode}",
                retryable=retryable,
                **where,
            )
        if answer.infcode != 0 or answer.output is None:
            raise self._invalid(msgid, f"infcode {answer.infcode} with output {answer.output!r}")
        return answer.inf_refmsgid, answer.output
