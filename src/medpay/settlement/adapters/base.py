"""The clearing adapter interface: how the gateway settles with an insured person's province.

Every settlement goes to the insured person's home province with its items already
classified by the treatment place's catalogue (DOMAIN.md section 2). An adapter
turns our own request and result Structs (readable names, money in ``_fen``, the
national name in a comment) into one province's wire format and back; the rest of
the gateway never sees a wire format.

Failures are exceptions with a stable ``code``, in two families that the payment
flow must treat differently:

* **Nothing happened** (``outcome_known = True``): :class:`ProvinceRejected` (the
  province answered with an error) and :class:`ProvinceUnavailable` (the request
  certainly never reached it: connection refused, connect timeout, no free
  connection). The request may be retried or abandoned.
* **It may have happened** (``outcome_known = False``): :class:`OutcomeUnknown`
  (read timeout, connection reset after sending, HTTP 5xx) and its subclass
  :class:`ProvinceResponseInvalid` (an answer arrived but cannot be trusted or
  parsed: a bad signature or a malformed body proves nothing about what the
  province did). Resolve these by re-sending the **same** request under the **same**
  msgid (the province answers a repeat from its msgid log, with no second effect)
  or by an order query (6301); never by a new msgid, which could settle twice.
  :class:`SettlementPending` is the same family, raised when an asynchronous
  province accepted a settlement and will report its outcome later: by a
  callback (:meth:`ClearingAdapter.parse_callback`) or an order query.

Statements (DOMAIN.md section 7): :meth:`ClearingAdapter.statement_totals` (3201)
sends the gateway's net totals of some China days and returns the province's, line
by line, with whether they agree; :meth:`ClearingAdapter.statement_details` (3202)
returns one page of the settlements the province made or reversed in those days. A
statement is a query: it changes nothing anywhere, so any failure may simply be
asked again under a new msgid. What it says is the province's claim, checked for
consistency here and confirmed by 6301 before the gateway acts on any line.

Callbacks: a province may POST the outcome of a settlement or reversal to the
gateway, signed with its key (DOMAIN.md section 8, our profile). The adapter checks
and reads one into a :class:`ProvinceCallback`, or raises :class:`CallbackRejected`.
A callback can arrive before or after the synchronous answer, twice (same
``callback_id``) or never; the gateway must take each one idempotently.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from medpay.wire.national import PLATFORM_FIXMEDINS_CODE, ItemClass, OutFilType, Scheme

__all__ = [
    "CALLBACK_MALFORMED",
    "CALLBACK_SIGNATURE_INVALID",
    "CALLBACK_TIMESTAMP_OUT_OF_WINDOW",
    "PROBLEM_CHARGE_ALREADY_SETTLED",
    "PROBLEM_FILING_REQUIRED",
    "PROBLEM_MSGID_CONFLICT",
    "PROBLEM_PERSON_MISMATCH",
    "PROBLEM_PERSON_UNKNOWN",
    "PROBLEM_PROVINCE_ERROR",
    "PROBLEM_PROVINCE_REFUSED_REQUEST",
    "PROBLEM_PROVINCE_REFUSED_SIGNATURE",
    "PROBLEM_SETTLEMENT_ALREADY_REVERSED",
    "PROBLEM_SETTLEMENT_UNKNOWN",
    "PROBLEM_WRONG_PROVINCE",
    "CallbackKind",
    "CallbackRejected",
    "CallbackResult",
    "ClassifiedItem",
    "ClearingAdapter",
    "ClearingError",
    "FilingType",
    "FundPayment",
    "ItemClass",
    "OutcomeUnknown",
    "ProvinceCallback",
    "ProvinceRejected",
    "ProvinceResponseInvalid",
    "ProvinceUnavailable",
    "QueryRequest",
    "QueryResult",
    "ReversalRequest",
    "ReversalResult",
    "Scheme",
    "SettlementBreakdown",
    "SettlementPending",
    "SettlementRequest",
    "SettlementResult",
    "StatementDetailsRequest",
    "StatementLine",
    "StatementPage",
    "StatementTotals",
    "StatementTotalsLine",
    "StatementTotalsRequest",
    "TotalsVerdict",
]

Fen = Annotated[int, msgspec.Meta(ge=0)]
Bp = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
Admdvs = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
#: The filing valid on the service date, as the insured province adjusts the ratio by it.
FilingType = OutFilType

# Problem codes of a ProvinceRejected (stable; the API maps them to problem details).
PROBLEM_PROVINCE_ERROR = "province_error"
PROBLEM_PERSON_UNKNOWN = "person_unknown_to_province"
PROBLEM_FILING_REQUIRED = "filing_required"
PROBLEM_MSGID_CONFLICT = "msgid_conflict"
PROBLEM_SETTLEMENT_UNKNOWN = "settlement_unknown_to_province"
PROBLEM_SETTLEMENT_ALREADY_REVERSED = "settlement_already_reversed"
PROBLEM_PROVINCE_REFUSED_SIGNATURE = "province_refused_signature"
PROBLEM_PROVINCE_REFUSED_REQUEST = "province_refused_request"
PROBLEM_WRONG_PROVINCE = "wrong_province"
PROBLEM_PERSON_MISMATCH = "person_record_mismatch"
PROBLEM_CHARGE_ALREADY_SETTLED = "charge_already_settled"

# Codes of a CallbackRejected (stable; the callback endpoint answers them).
CALLBACK_SIGNATURE_INVALID = "callback_signature_invalid"
CALLBACK_TIMESTAMP_OUT_OF_WINDOW = "callback_timestamp_out_of_window"
CALLBACK_MALFORMED = "callback_malformed"

CallbackKind = Literal["settlement", "reversal"]
CallbackResult = Literal["settled", "failed", "reversed"]


# --- requests ---------------------------------------------------------------------------------


class ClassifiedItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A fee item as the treatment place's catalogue classified it (DOMAIN.md section 2)."""

    line_no: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # feedetl_sn
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # med_list_codg
    name: Annotated[str, msgspec.Meta(max_length=200)]  # med_list_name
    quantity: Annotated[int, msgspec.Meta(ge=1)]  # cnt
    unit_price_fen: Fen  # pric
    item_class: ItemClass  # chrgitm_lv: 01 A, 02 B, 03 C
    price_limit_fen: Fen | None = None  # pric_uplmt_amt
    pre_self_pay_bp: Bp | None = None  # selfpay_prop (class B); None: the province's default
    non_medical: bool = False  # drug delivery / on-site service fee: never insured

    @property
    def total_fen(self) -> int:
        """``quantity * unit_price_fen`` (det_item_fee_sumamt)."""
        return self.quantity * self.unit_price_fen


class _EnvelopeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the envelope of a request about a visit says: its msgid, both places, who asks."""

    msgid: str  # msgid: idempotency key towards the province; keep it for retries
    insured_area: Admdvs  # insuplc_admdvs
    treatment_area: Admdvs  # mdtrtarea_admvs
    institution_code: str  # fixmedins_code
    institution_name: str  # fixmedins_name
    operator_type: Literal["1", "2", "3"] = "3"  # opter_type: mobile terminal
    operator_id: str = "medpay"  # opter
    operator_name: str = "medpay gateway"  # opter_name


class SettlementRequest(_EnvelopeRequest, frozen=True, kw_only=True):
    """A pre-settlement or settlement, routed to the province of ``insured_area``."""

    psn_no: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{20}$")]  # psn_no
    institution_level: Literal[1, 2, 3]  # medins_lv
    insurance_scheme: Scheme  # insutype: 310 employee, 390 resident
    personal_account_allowed: bool  # acct_used_flag
    service_date: dt.date  # begntime
    offsite_filing_type: FilingType | None = None  # out_fil_type: filing valid on the date
    visit_id: str  # mdtrt_id
    charge_batch_no: str  # chrg_bchno
    items: Annotated[list[ClassifiedItem], msgspec.Meta(min_length=1)]  # feedetail
    certificate_type: Literal["01", "02", "03"] = "01"  # mdtrt_cert_type: e-voucher
    certificate_no: str = ""  # mdtrt_cert_no
    medical_type: str = "11"  # med_type: ordinary outpatient
    settlement_way: str = "01"  # psn_setlway: by item

    @property
    def medfee_total_fen(self) -> int:
        """The sum of all items (medfee_sumamt)."""
        return sum(item.total_fen for item in self.items)


class ReversalRequest(_EnvelopeRequest, frozen=True, kw_only=True):
    """Reverse a confirmed settlement (2208), under a msgid of its own."""

    psn_no: str  # psn_no
    settlement_id: str  # setl_id
    visit_id: str  # mdtrt_id


class QueryRequest(_EnvelopeRequest, frozen=True, kw_only=True):
    """Ask what an earlier settlement or reversal did (6301), under a msgid of its own."""

    ref_msgid: str  # ref_msgid: the msgid of the 2207 / 2208 in question


class StatementTotalsLine(msgspec.Struct, frozen=True, kw_only=True):
    """Net totals of one (scheme, clearing type) over some days: reversals count minus."""

    insurance_scheme: Scheme  # insutype: 310 employee, 390 resident
    clearing_type: str  # clr_type (the settlement's med_type)
    medical_fee_total_fen: int  # medfee_sumamt
    fund_total_fen: int  # fund_pay_sumamt
    personal_account_fen: int  # acct_pay
    settlement_count: int  # fixmedins_setl_cnt

    @property
    def key(self) -> tuple[str, str]:
        """What a line is about: (scheme, clearing type)."""
        return (self.insurance_scheme, self.clearing_type)


class _StatementRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every statement request says: which province, which China days, who asks."""

    msgid: str  # msgid of this request
    province: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}0000$")]  # setl_optins
    first_day: dt.date  # stmt_begndate
    last_day: dt.date  # stmt_enddate
    institution_code: str = PLATFORM_FIXMEDINS_CODE  # fixmedins_code: the gateway itself
    institution_name: str = "medpay gateway"  # fixmedins_name
    operator_type: Literal["1", "2", "3"] = "1"  # opter_type: staff (a reconciliation)
    operator_id: str = "medpay"
    operator_name: str = "medpay reconciliation"

    @property
    def insured_area(self) -> str:
        """insuplc_admdvs: the province's own code (it answers as the insured place)."""
        return self.province

    @property
    def treatment_area(self) -> str:
        """mdtrtarea_admvs: the province too (a statement is about no one visit)."""
        return self.province


class StatementTotalsRequest(_StatementRequest, frozen=True, kw_only=True):
    """Compare the gateway's totals of the days with the province's (3201)."""

    lines: list[StatementTotalsLine]


class StatementDetailsRequest(_StatementRequest, frozen=True, kw_only=True):
    """One page of the province's detail lines of the days (3202), pages counted from 1."""

    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1000


# --- results ----------------------------------------------------------------------------------


class FundPayment(msgspec.Struct, frozen=True, kw_only=True):
    """One fund's share of a settlement (setldetail)."""

    fund_type: str  # fund_pay_type, e.g. 310100 employee basic fund
    in_scope_fen: Fen  # inscp_scp_amt
    payable_base_fen: Fen  # crt_payb_lmt_amt: the base its ratio applied to
    paid_fen: Fen  # fund_payamt


class SettlementBreakdown(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure of DOMAIN.md section 3 for one settlement, checked on construction."""

    settlement_id: str | None  # setl_id (None for a pre-settlement)
    medfee_total_fen: Fen  # medfee_sumamt
    full_own_pay_fen: Fen  # fulamt_ownpay_amt
    over_limit_self_pay_fen: Fen  # overlmt_selfpay
    pre_self_pay_fen: Fen  # preselfpay_amt
    in_scope_fen: Fen  # inscp_scp_amt
    deductible_applied_fen: Fen  # act_pay_dedc
    ratio_bp: Bp  # pool_prop_selfpay (our profile: the ratio applied)
    basic_fund_fen: Fen  # hifp_pay
    critical_illness_fen: Fen  # hifmi_pay
    medical_assistance_fen: Fen  # maf_pay
    fund_total_fen: Fen  # fund_pay_sumamt
    personal_part_fen: Fen  # psn_part_amt
    personal_account_fen: Fen  # acct_pay
    cash_fen: Fen  # psn_cash_pay: paid by card or wallet, outside medpay
    balance_after_fen: Fen  # balc
    settled_at: dt.datetime  # setl_time
    funds: tuple[FundPayment, ...] = ()  # setldetail
    #: Whom and which visit the province says it settled (checked against the payment).
    psn_no: str | None = None  # psn_no
    visit_id: str | None = None  # mdtrt_id

    def __post_init__(self) -> None:
        parts = (
            self.full_own_pay_fen
            + self.over_limit_self_pay_fen
            + self.pre_self_pay_fen
            + self.in_scope_fen
        )
        if parts != self.medfee_total_fen:
            raise ValueError(f"items split {parts} != medfee_total_fen {self.medfee_total_fen}")
        funds = self.basic_fund_fen + self.critical_illness_fen + self.medical_assistance_fen
        if funds != self.fund_total_fen:
            raise ValueError(f"funds {funds} != fund_total_fen {self.fund_total_fen}")
        if self.fund_total_fen + self.personal_part_fen != self.medfee_total_fen:
            raise ValueError("fund_total_fen + personal_part_fen != medfee_total_fen")
        if self.personal_account_fen + self.cash_fen != self.personal_part_fen:
            raise ValueError("personal_account_fen + cash_fen != personal_part_fen")


class SettlementResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a pre-settlement or settlement."""

    msgid: str  # our msgid
    province_msgid: str  # inf_refmsgid
    breakdown: SettlementBreakdown


class ReversalResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a reversal: what was given back."""

    msgid: str
    province_msgid: str  # inf_refmsgid
    settlement_id: str  # setl_id reversed
    medfee_total_fen: Fen  # medfee_sumamt
    fund_total_fen: Fen  # fund_pay_sumamt returned to the funds
    personal_account_fen: Fen  # acct_pay credited back to the account
    cash_fen: Fen  # psn_cash_pay: to be refunded by whoever collected it
    balance_after_fen: Fen  # balc after the reversal
    reversed_at: dt.datetime


class QueryResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the request ``ref_msgid`` did, as the province sees it now.

    ``processing``: an asynchronous province accepted it and has not finished (ask
    again, or wait for the callback). ``failed``: it finished with no effect;
    ``error_code`` is the ``PROBLEM_*`` code of the province's reason. ``not_found``:
    no settlement under ``ref_msgid``; re-send the same request under the same msgid.
    """

    msgid: str
    province_msgid: str
    ref_msgid: str
    status: Literal["settled", "reversed", "not_found", "processing", "failed"]  # ord_stas
    breakdown: SettlementBreakdown | None = None
    error_code: str | None = None  # PROBLEM_* for "failed"
    message: str | None = None  # err_msg for "failed"


class TotalsVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """The province's totals of one line, and whether the gateway's agreed (stmt_rslt)."""

    line: StatementTotalsLine  # the province's figures
    agreed: bool  # stmt_rslt "0"
    description: str = ""  # stmt_rslt_dscr


class StatementTotals(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a 3201: every line either side has; ``agreed`` when all of them agree."""

    msgid: str
    province_msgid: str  # inf_refmsgid
    agreed: bool  # stmt_rslt
    lines: list[TotalsVerdict]


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement the province made or reversed in the days, as it records it (3202)."""

    settlement_id: str  # setl_id
    msgid: str  # msgid of the 2207
    psn_no: str  # psn_no
    visit_id: str  # mdtrt_id
    insurance_scheme: Scheme  # insutype
    clearing_type: str  # clr_type
    institution_code: str  # fixmedins_code
    medical_fee_total_fen: Fen  # medfee_sumamt
    basic_fund_fen: Fen  # hifp_pay
    critical_illness_fen: Fen  # hifmi_pay
    medical_assistance_fen: Fen  # maf_pay
    fund_total_fen: Fen  # fund_pay_sumamt
    personal_account_fen: Fen  # acct_pay
    cash_fen: Fen  # psn_cash_pay
    settled_at: dt.datetime  # setl_time
    reversal_msgid: str | None = None  # revs_msgid: the 2208, once reversed
    reversed_at: dt.datetime | None = None  # revs_time

    @property
    def reversed(self) -> bool:
        """Whether the province has reversed it since (ord_stas "reversed")."""
        return self.reversal_msgid is not None


class StatementPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a 3202 and how many lines the days have in all."""

    msgid: str
    province_msgid: str  # inf_refmsgid
    page: int  # page_num
    page_size: int
    total_lines: int  # total
    lines: list[StatementLine]

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return self.page * self.page_size >= self.total_lines


class ProvinceCallback(msgspec.Struct, frozen=True, kw_only=True):
    """A province's signed report on one settlement or reversal, checked and mapped.

    ``kind`` "settlement" reports on a 2207 (``result`` settled or failed), "reversal"
    on a 2208 (reversed or failed). ``breakdown`` is the settlement's (for a reversal:
    the settlement reversed); ``error_code`` is a ``PROBLEM_*`` code for "failed",
    after which the province did nothing.
    """

    callback_id: str  # callback_id: a repeated delivery keeps it
    ref_msgid: str  # ref_msgid: our msgid of the 2207 / 2208
    kind: CallbackKind  # infno: 2207 settlement, 2208 reversal
    result: CallbackResult  # ord_stas
    breakdown: SettlementBreakdown | None = None  # setlinfo + setldetail
    error_code: str | None = None  # from err_code
    message: str | None = None  # err_msg
    sent_at: dt.datetime | None = None  # callback_time


# --- errors -----------------------------------------------------------------------------------


class ClearingError(Exception):
    """A settlement call failed; ``code`` is stable, ``outcome_known`` says what to do next."""

    code: ClassVar[str] = "clearing_error"
    outcome_known: ClassVar[bool] = False

    def __init__(self, message: str, *, province: str = "", msgid: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.province = province
        self.msgid = msgid


class ProvinceRejected(ClearingError):
    """The province answered with an error and did nothing.

    ``code`` is one of the ``PROBLEM_*`` constants; ``retryable`` is true when the same
    request (same msgid) may succeed later.
    """

    outcome_known = True

    def __init__(
        self,
        code: str,
        infcode: int,
        message: str,
        *,
        province: str = "",
        msgid: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(message, province=province, msgid=msgid)
        self.code = code  # type: ignore[misc]
        self.infcode = infcode
        self.retryable = retryable


class ProvinceUnavailable(ClearingError):
    """The request certainly did not reach the province (nothing was sent)."""

    code = "province_unavailable"
    outcome_known = True


class OutcomeUnknown(ClearingError):
    """The request may have been processed: resolve by the same msgid, never a new one."""

    code = "settlement_outcome_unknown"
    outcome_known = False


class ProvinceResponseInvalid(OutcomeUnknown):
    """An answer arrived but is malformed or badly signed; what happened stays unknown."""

    code = "province_response_invalid"


class SettlementPending(OutcomeUnknown):
    """An asynchronous province accepted the settlement and is processing it.

    The outcome comes by callback, or from an order query on the same msgid
    ("processing" until it is known). Never re-send under a new msgid.
    """

    code = "settlement_pending"


class CallbackRejected(Exception):
    """A callback that cannot be believed or read; ``code`` is a ``CALLBACK_*`` constant.

    ``callback_signature_invalid``: headers missing or malformed, or not signed by
    the province's key. ``callback_timestamp_out_of_window``: a well-formed timestamp
    more than 300 s from now (a replay, or a clock to fix). ``callback_malformed``:
    signed, but not a valid callback. None of them says anything about the payment.
    """

    def __init__(self, code: str, message: str, *, province: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.province = province


# --- the interface ----------------------------------------------------------------------------


@runtime_checkable
class ClearingAdapter(Protocol):
    """One province's clearing platform, whatever its wire format."""

    province_code: str  # admdvs of the province, e.g. 330000

    async def pre_settle(self, request: SettlementRequest) -> SettlementResult:
        """Compute a settlement without effect (2206)."""
        ...

    async def settle(self, request: SettlementRequest) -> SettlementResult:
        """Settle (2207): funds, personal account and year-to-date totals move."""
        ...

    async def reverse(self, request: ReversalRequest) -> ReversalResult:
        """Reverse a settlement exactly (2208)."""
        ...

    async def query(self, request: QueryRequest) -> QueryResult:
        """What an earlier settlement or reversal did (6301)."""
        ...

    async def statement_totals(self, request: StatementTotalsRequest) -> StatementTotals:
        """The province's net totals of the days against the gateway's (3201)."""
        ...

    async def statement_details(self, request: StatementDetailsRequest) -> StatementPage:
        """One page of the settlements the province made or reversed in the days (3202)."""
        ...

    def parse_callback(
        self,
        body: bytes,
        timestamp: str | None,
        signature: str | None,
        *,
        now: float | None = None,
    ) -> ProvinceCallback:
        """Check a callback's signature (this province's key) and read it; or CallbackRejected."""
        ...
