"""The national settlement wire format, medpay's profile of it (DOMAIN.md section 8).

Envelopes and transactions keep the national field names exactly, so that a reader
with the national interface specification recognises every field. Where our profile
departs from the national one, it does so on purpose:

* **Money is integer fen** under the national names (``medfee_sumamt``, ``hifp_pay``,
  ...), never floats and never decimal yuan; **ratios are integer basis points**
  (10000 = 100 %). The national profile sends decimal yuan and signs with SM2: its
  codec over these same Structs is :mod:`medpay.wire.national_gm`, and rounding
  never happens on either wire.
* **Signatures are Ed25519** (``signtype`` "ED25519"); see :mod:`medpay.wire.signing`.
* A few **extensions** that the national 2206/2207 input leaves to other
  transactions (2204 fee upload, 2501 filings) travel inside the settlement input,
  so that one call carries everything the insured province's policy needs
  (DOMAIN.md sections 2, 3, 5): ``medins_lv``, ``out_fil_type``, ``begntime``,
  ``feedetail`` and, per item, ``non_medical``.

Transactions: ``2206`` pre-settlement (computes, changes nothing), ``2207``
settlement, ``2208`` reversal, ``6301`` order query, ``3201`` totals reconciliation
and ``3202`` detail reconciliation of a province's statement (DOMAIN.md section 7). ``infcode`` 0 is success and a
negative value an error from :class:`InfCode`; every negative answer means the
province did **nothing** for that request.

**Asynchronous provinces and callbacks** (our profile): a province may accept a 2207
with ``ord_stas`` "processing" and no figures (:class:`SettlementOrderOutput`),
settle later, and report the outcome with a :class:`SettlementCallback` POSTed to
the gateway at :data:`CALLBACK_PATH`, its raw body signed by the province's key
like an answer (``X-Province-Timestamp``, ``X-Province-Signature``; see
:mod:`medpay.wire.signing`). Any province may also send callbacks for its
synchronous 2207 and 2208, so a callback can arrive before or after the answer, and
more than once (a repeat keeps its ``callback_id``). 6301 answers "processing"
while such a settlement is under way, then "settled", or "failed" with the
``err_code`` that the callback carries.

**Statements** (our profile of 3201 and 3202): the gateway asks a province, as the
insured place, for the settlements it made and reversed over China days
``stmt_begndate`` to ``stmt_enddate``. The envelope names the province in both areas
and the gateway's platform code :data:`PLATFORM_FIXMEDINS_CODE` as ``fixmedins_code``
(it reconciles for every institution it settles for). A 3201 carries every
(``insutype``, ``clr_type``) line of the gateway's totals in one call and the
province answers its own totals for every line either side has, each with
``stmt_rslt`` ("0" agreed, "1" not), and the overall ``stmt_rslt``. Totals are net
figures of the days: each settlement made counts once with its figures, each
reversal made counts minus once with the figures of the settlement reversed.
``clr_type`` is the settlement's ``med_type``. A 3202 pages through the detail lines
(``page_num`` from 1, at most 1000 lines a page, in ``setl_id`` order): one line per
settlement made or reversed in the days, with its state now (``ord_stas``) and, once
reversed, ``revs_msgid`` and ``revs_time`` (extensions).

Fund codes in ``setldetail.fund_pay_type`` (the national fund type codes):
``310100`` employee basic medical insurance pooled fund, ``390100`` resident basic
medical insurance fund, ``390200`` resident critical-illness insurance fund,
``610100`` medical assistance fund.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

import msgspec

from medpay.clock import CHINA

__all__ = [
    "CALLBACK_PATH",
    "CHINA_TZ",
    "CHRGITM_LV_OF_CLASS",
    "CLASS_OF_CHRGITM_LV",
    "ERROR_MESSAGES",
    "FEN_MAX",
    "FUND_BASIC_EMPLOYEE",
    "FUND_BASIC_RESIDENT",
    "FUND_CRITICAL_ILLNESS",
    "FUND_MEDICAL_ASSISTANCE",
    "INFNO_KINDS",
    "INFNO_ORDER_QUERY",
    "INFNO_PRE_SETTLE",
    "INFNO_REVERSE",
    "INFNO_SETTLE",
    "INFNO_STATEMENT_DETAILS",
    "INFNO_STATEMENT_TOTALS",
    "INFVER",
    "INPUT_TYPES",
    "INSUTYPE_EMPLOYEE",
    "INSUTYPE_OF_SCHEME",
    "INSUTYPE_RESIDENT",
    "OUTPUT_TYPES",
    "PLATFORM_FIXMEDINS_CODE",
    "PROVINCES",
    "READABLE_NAMES",
    "SCHEME_OF_INSUTYPE",
    "SIGNTYPE",
    "STATEMENT_DAYS_MAX",
    "STATEMENT_PAGE_SIZE_MAX",
    "Admdvs",
    "BasisPoints",
    "FeeDetail",
    "Fen",
    "InfCode",
    "ItemClass",
    "OrderQueryInput",
    "OrderQueryOutput",
    "OutFilType",
    "RequestEnvelope",
    "ResponseEnvelope",
    "ReversalInput",
    "ReversalOutput",
    "Scheme",
    "SetlDetail",
    "SetlInfo",
    "SettlementCallback",
    "SettlementInput",
    "SettlementOrderOutput",
    "SettlementOutput",
    "SignedFen",
    "StatementDetail",
    "StatementDetailsInput",
    "StatementDetailsOutput",
    "StatementTotal",
    "StatementTotalResult",
    "StatementTotalsInput",
    "StatementTotalsOutput",
    "callback_decoder",
    "callback_path",
    "decode_input",
    "encode",
    "format_inf_time",
    "format_ref_time",
    "is_province_code",
    "national_fields",
    "new_msgid",
    "new_refmsgid",
    "parse_inf_time",
    "parse_ref_time",
    "province_of",
    "readable_fields",
    "request_decoder",
    "response_decoder",
]

#: Business times on the national wire are Beijing time (medpay.clock.CHINA).
CHINA_TZ = CHINA

SIGNTYPE = "ED25519"  # stand-in for "SM2"
INFVER = "V1.0"

INFNO_PRE_SETTLE = "2206"
INFNO_SETTLE = "2207"
INFNO_REVERSE = "2208"
INFNO_ORDER_QUERY = "6301"
INFNO_STATEMENT_TOTALS = "3201"
INFNO_STATEMENT_DETAILS = "3202"
#: What each of the two transactions that move money does (a callback's kind, a story's line).
INFNO_KINDS: Final[dict[str, Literal["settlement", "reversal"]]] = {
    INFNO_SETTLE: "settlement",
    INFNO_REVERSE: "reversal",
}

#: The gateway's own code in ``fixmedins_code`` when it asks for a statement: it
#: reconciles as the platform of every institution it settles for, not as one of them.
PLATFORM_FIXMEDINS_CODE: Final = "MEDPAY000000"
#: A statement covers at most this many days, and a 3202 page at most this many lines.
STATEMENT_DAYS_MAX: Final = 31
STATEMENT_PAGE_SIZE_MAX: Final = 1000

#: Where a province POSTs its callbacks, under the gateway's callback base URL.
CALLBACK_PATH = "/v1/callbacks/{admdvs}"

INSUTYPE_EMPLOYEE = "310"  # employee basic medical insurance
INSUTYPE_RESIDENT = "390"  # urban and rural resident basic medical insurance

FUND_BASIC_EMPLOYEE: Final = "310100"
FUND_BASIC_RESIDENT: Final = "390100"
FUND_CRITICAL_ILLNESS: Final = "390200"
FUND_MEDICAL_ASSISTANCE: Final = "610100"

#: The 31 provincial-level divisions (DOMAIN.md section 1), code -> name.
PROVINCES: dict[str, str] = {
    "110000": "Beijing",
    "120000": "Tianjin",
    "130000": "Hebei",
    "140000": "Shanxi",
    "150000": "Inner Mongolia",
    "210000": "Liaoning",
    "220000": "Jilin",
    "230000": "Heilongjiang",
    "310000": "Shanghai",
    "320000": "Jiangsu",
    "330000": "Zhejiang",
    "340000": "Anhui",
    "350000": "Fujian",
    "360000": "Jiangxi",
    "370000": "Shandong",
    "410000": "Henan",
    "420000": "Hubei",
    "430000": "Hunan",
    "440000": "Guangdong",
    "450000": "Guangxi",
    "460000": "Hainan",
    "500000": "Chongqing",
    "510000": "Sichuan",
    "520000": "Guizhou",
    "530000": "Yunnan",
    "540000": "Tibet",
    "610000": "Shaanxi",
    "620000": "Gansu",
    "630000": "Qinghai",
    "640000": "Ningxia",
    "650000": "Xinjiang",
}


class InfCode(enum.IntEnum):
    """``infcode`` values every province answers: 0 success, negative: nothing was done.

    A province may answer finer negative codes of its own; the clearing configuration
    says what each means (``ProvinceEndpoint.infcodes``), and any other negative code
    is a province error.
    """

    OK = 0
    GENERIC = -1  # province-side failure; safe to retry under the same msgid
    PERSON_UNKNOWN = -2  # psn_no not insured in this province
    FILING_REQUIRED = -3  # off-site without a valid filing, and the policy refuses
    MSGID_CONFLICT = -4  # msgid already used for a different request
    SETTLEMENT_UNKNOWN = -5  # setl_id unknown (or not this person's / visit's)
    ALREADY_REVERSED = -6  # the settlement was reversed under another msgid
    BAD_SIGNATURE = -7  # cainfo missing or not valid for any trusted key


ERROR_MESSAGES: dict[InfCode, str] = {
    InfCode.GENERIC: "province platform error",
    InfCode.PERSON_UNKNOWN: "person not insured in this province",
    InfCode.FILING_REQUIRED: "off-site settlement requires a valid filing",
    InfCode.MSGID_CONFLICT: "msgid already used for a different request",
    InfCode.SETTLEMENT_UNKNOWN: "settlement unknown",
    InfCode.ALREADY_REVERSED: "settlement already reversed",
    InfCode.BAD_SIGNATURE: "signature missing or invalid",
}

# --- constrained scalar types ---------------------------------------------------------

#: The largest amount the wire carries (10^13 fen: 100 billion yuan).
FEN_MAX: Final = 10**13
Fen = Annotated[int, msgspec.Meta(ge=0, le=FEN_MAX, description="integer fen")]
#: Net figures of a statement (reversals count minus): may be negative.
SignedFen = Annotated[int, msgspec.Meta(ge=-(10**13), le=10**13, description="integer fen")]
Count = Annotated[int, msgspec.Meta(ge=-(10**9), le=10**9)]
ClrType = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2,6}$")]
Insutype = Literal["310", "390"]
BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points")]
Admdvs = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
PsnNo = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{20}$")]
MsgId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{12}[0-9]{18}$")]
InfNo = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")]
FixmedinsCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{12}$")]
InfTime = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")]
RefTime = Annotated[str, msgspec.Meta(pattern=r"^\d{17}$")]  # yyyyMMddHHmmssSSS
ErrMsg = Annotated[str, msgspec.Meta(max_length=1000)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

#: Off-site filing type valid on the service date (extension; DOMAIN.md section 5).
OutFilType = Literal["long_term", "referral", "emergency", "temporary"]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


# --- envelopes --------------------------------------------------------------------------


class RequestEnvelope(msgspec.Struct, Generic[InputT], frozen=True, kw_only=True):
    """The national request envelope; ``cainfo`` signs every other field."""

    infno: InfNo
    msgid: MsgId
    mdtrtarea_admvs: Admdvs  # treatment area (national spelling, sic)
    insuplc_admdvs: Admdvs  # insured area
    recer_sys_code: Text
    dev_no: Text = ""
    dev_safe_info: Text = ""
    cainfo: Annotated[str, msgspec.Meta(max_length=512)] = ""
    signtype: Text = SIGNTYPE
    infver: Text = INFVER
    opter_type: Literal["1", "2", "3"]  # 1 staff, 2 self-service terminal, 3 mobile
    opter: Text
    opter_name: Text
    inf_time: InfTime  # yyyy-MM-dd HH:mm:ss, Beijing time
    fixmedins_code: FixmedinsCode
    fixmedins_name: Text
    sign_no: Text = ""
    input: InputT


class ResponseEnvelope(msgspec.Struct, Generic[OutputT], frozen=True, kw_only=True):
    """The national response envelope; ``output`` is present exactly when infcode is 0."""

    infcode: int
    inf_refmsgid: str  # receiver area (6) + yyyyMMddHHmmss (14) + serial (10)
    refmsg_time: str  # yyyyMMddHHmmssSSS: when the request was received
    respond_time: str  # yyyyMMddHHmmssSSS: when the answer was made
    err_msg: str | None = None
    output: OutputT | None = None


# --- 2206 / 2207 ------------------------------------------------------------------------


class FeeDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One fee item, already classified by the treatment place's catalogue (section 2)."""

    feedetl_sn: Ident
    med_list_codg: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    med_list_name: Text
    cnt: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    pric: Fen  # unit price
    det_item_fee_sumamt: Fen  # cnt * pric
    chrgitm_lv: Literal["01", "02", "03"]  # class A / B / C
    pric_uplmt_amt: Fen | None = None  # price limit per unit, if any
    selfpay_prop: BasisPoints | None = None  # class B pre-self-pay share; None: the policy's
    non_medical: bool = False  # extension: drug delivery / on-site service fee

    def __post_init__(self) -> None:
        if self.det_item_fee_sumamt != self.cnt * self.pric:
            raise ValueError(
                f"det_item_fee_sumamt {self.det_item_fee_sumamt} != cnt * pric "
                f"({self.cnt} * {self.pric}) for item {self.feedetl_sn}"
            )


class SettlementInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of 2206 (pre-settlement) and 2207 (settlement)."""

    psn_no: PsnNo
    mdtrt_cert_type: Literal["01", "02", "03"]  # e-voucher, ID card, social security card
    mdtrt_cert_no: Text
    med_type: Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
    medfee_sumamt: Fen
    psn_setlway: Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
    mdtrt_id: Ident  # visit id
    chrg_bchno: Ident  # charge batch number
    insutype: Literal["310", "390"]
    acct_used_flag: Literal["0", "1"]  # may the personal account pay
    medins_lv: Literal["1", "2", "3"]  # extension: institution level
    out_fil_type: OutFilType | None = None  # extension: filing valid on begntime
    begntime: dt.date  # extension: service date
    feedetail: Annotated[list[FeeDetail], msgspec.Meta(min_length=1, max_length=500)]

    def __post_init__(self) -> None:
        total = sum(item.det_item_fee_sumamt for item in self.feedetail)
        if total != self.medfee_sumamt:
            raise ValueError(f"medfee_sumamt {self.medfee_sumamt} != sum of feedetail {total}")
        serials = [item.feedetl_sn for item in self.feedetail]
        if len(set(serials)) != len(serials):
            raise ValueError("duplicate feedetl_sn in feedetail")


class SetlInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The settlement figures of DOMAIN.md section 3 under their national names."""

    setl_id: str | None = None  # None for a pre-settlement
    psn_no: str
    mdtrt_id: str
    medfee_sumamt: Fen
    fulamt_ownpay_amt: Fen
    overlmt_selfpay: Fen
    preselfpay_amt: Fen
    inscp_scp_amt: Fen
    act_pay_dedc: Fen
    hifp_pay: Fen
    pool_prop_selfpay: BasisPoints  # our profile: the fund ratio applied (step 7)
    hifmi_pay: Fen
    maf_pay: Fen
    fund_pay_sumamt: Fen
    psn_part_amt: Fen
    acct_pay: Fen
    psn_cash_pay: Fen
    balc: Fen  # personal account balance after this settlement
    insutype: Literal["310", "390"]
    setl_time: InfTime


class SetlDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One fund's share; ``crt_payb_lmt_amt`` is the base its ratio was applied to."""

    fund_pay_type: Literal["310100", "390100", "390200", "610100"]
    inscp_scp_amt: Fen
    crt_payb_lmt_amt: Fen
    fund_payamt: Fen


class SettlementOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 2206, and of a 2207 settled synchronously."""

    setlinfo: SetlInfo
    setldetail: list[SetlDetail] = msgspec.field(default_factory=list)


class SettlementOrderOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 2207 as the gateway reads it: settled now, or accepted and processing.

    A synchronous province sends :class:`SettlementOutput` (no ``ord_stas``: settled);
    an asynchronous one answers ``ord_stas`` "processing" with no figures and reports
    the outcome by :class:`SettlementCallback` (and 6301).
    """

    ord_stas: Literal["settled", "processing"] = "settled"
    setlinfo: SetlInfo | None = None
    setldetail: list[SetlDetail] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.setlinfo is None) != (self.ord_stas == "processing"):
            raise ValueError(f"ord_stas {self.ord_stas!r} with setlinfo {self.setlinfo!r}")
        if self.ord_stas == "processing" and self.setldetail:
            raise ValueError("setldetail on a settlement still processing")


# --- 2208 ---------------------------------------------------------------------------------


class ReversalInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of 2208: which settlement, for which visit and person."""

    setl_id: Ident
    mdtrt_id: Ident
    psn_no: PsnNo


class ReversalOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 2208: what was given back, and the account balance afterwards."""

    setl_id: str  # the settlement reversed
    psn_no: str
    mdtrt_id: str
    medfee_sumamt: Fen
    fund_pay_sumamt: Fen
    acct_pay: Fen  # credited back to the personal account
    psn_cash_pay: Fen  # to be refunded by whoever collected it
    balc: Fen  # personal account balance after the reversal
    setl_time: InfTime  # when the reversal took effect


# --- 6301 ---------------------------------------------------------------------------------


class OrderQueryInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of 6301: the msgid of an earlier 2207 or 2208."""

    ref_msgid: MsgId


class OrderQueryOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 6301: what the referenced request did, as of now.

    ``processing``: an asynchronous 2207 accepted and not finished; ``failed``: it
    finished without effect, ``err_code`` (an :class:`InfCode`) and ``err_msg`` say why.
    ``not_found``: no settlement under that msgid (a re-send under the same msgid
    gets the answer once given to it, if any).
    """

    ord_stas: Literal["settled", "reversed", "not_found", "processing", "failed"]
    setlinfo: SetlInfo | None = None
    setldetail: list[SetlDetail] = msgspec.field(default_factory=list)
    err_code: int | None = None
    err_msg: ErrMsg | None = None


# --- callbacks (our profile: asynchronous provinces) -----------------------------------------


class SettlementCallback(msgspec.Struct, frozen=True, kw_only=True):
    """What a province POSTs to :data:`CALLBACK_PATH` about one 2207 or 2208 it finished.

    ``callback_id`` is unique per callback; a repeated delivery of the same callback
    keeps it. ``ref_msgid`` is the msgid of the request reported on. "settled" and
    "reversed" carry the settlement's figures (for a reversal: those of the
    settlement reversed); "failed" carries ``err_code`` (a negative :class:`InfCode`)
    and means the province did nothing.
    """

    callback_id: Ident
    ref_msgid: MsgId
    infno: Literal["2207", "2208"]
    ord_stas: Literal["settled", "failed", "reversed"]
    setlinfo: SetlInfo | None = None
    setldetail: list[SetlDetail] = msgspec.field(default_factory=list)
    err_code: int | None = None
    err_msg: ErrMsg | None = None
    callback_time: RefTime  # yyyyMMddHHmmssSSS, Beijing time

    def __post_init__(self) -> None:
        allowed = ("settled", "failed") if self.infno == INFNO_SETTLE else ("reversed", "failed")
        if self.ord_stas not in allowed:
            raise ValueError(f"ord_stas {self.ord_stas!r} does not report a {self.infno}")
        if self.ord_stas == "failed":
            if self.err_code is None or self.err_code >= 0:
                raise ValueError("a failure needs a negative err_code")
            if self.setlinfo is not None or self.setldetail:
                raise ValueError("a failure carries no figures")
        else:
            if self.setlinfo is None or self.setlinfo.setl_id is None:
                raise ValueError(f"ord_stas {self.ord_stas!r} needs setlinfo with a setl_id")
            if self.err_code is not None:
                raise ValueError(f"ord_stas {self.ord_stas!r} with err_code {self.err_code}")


# --- 3201 / 3202: statements (our profile; see the module docstring) -------------------------


def _check_days(begin: dt.date, end: dt.date) -> None:
    if end < begin:
        raise ValueError(f"stmt_enddate {end} is before stmt_begndate {begin}")
    if (end - begin).days >= STATEMENT_DAYS_MAX:
        raise ValueError(f"a statement covers at most {STATEMENT_DAYS_MAX} days")


def _check_statement(begin: dt.date, end: dt.date, lines: Sequence[StatementTotal]) -> None:
    """The days make a statement, and each (insutype, clr_type) line stands once."""
    _check_days(begin, end)
    keys = [(line.insutype, line.clr_type) for line in lines]
    if len(set(keys)) != len(keys):
        raise ValueError("a (insutype, clr_type) line appears twice in stmtinfo")


class StatementTotal(msgspec.Struct, frozen=True, kw_only=True):
    """One (``insutype``, ``clr_type``) line of a day's totals: net figures, net count."""

    insutype: Insutype
    clr_type: ClrType
    medfee_sumamt: SignedFen
    fund_pay_sumamt: SignedFen
    acct_pay: SignedFen
    fixmedins_setl_cnt: Count


class StatementTotalsInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of 3201: the gateway's totals of the days, every line in one call."""

    setl_optins: Admdvs  # the province whose statement this is
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    stmtinfo: Annotated[list[StatementTotal], msgspec.Meta(max_length=200)]

    def __post_init__(self) -> None:
        _check_statement(self.stmt_begndate, self.stmt_enddate, self.stmtinfo)


class StatementTotalResult(StatementTotal, frozen=True, kw_only=True):
    """The province's figures for one line, and whether the gateway's agree with them."""

    stmt_rslt: Literal["0", "1"]  # 0: agreed, 1: not
    stmt_rslt_dscr: ErrMsg = ""


class StatementTotalsOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 3201: every line either side has; ``stmt_rslt`` "0" only when all agree."""

    setl_optins: Admdvs
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    stmt_rslt: Literal["0", "1"]
    stmtinfo: Annotated[list[StatementTotalResult], msgspec.Meta(max_length=400)]

    def __post_init__(self) -> None:
        _check_statement(self.stmt_begndate, self.stmt_enddate, self.stmtinfo)
        all_agreed = all(line.stmt_rslt == "0" for line in self.stmtinfo)
        if (self.stmt_rslt == "0") != all_agreed:
            raise ValueError(f"stmt_rslt {self.stmt_rslt!r} disagrees with its lines")


class StatementDetailsInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of 3202: one page of the detail lines of the days."""

    setl_optins: Admdvs
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    page_num: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    page_size: Annotated[int, msgspec.Meta(ge=1, le=STATEMENT_PAGE_SIZE_MAX)]

    def __post_init__(self) -> None:
        _check_days(self.stmt_begndate, self.stmt_enddate)


class StatementDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement made or reversed in the days, its figures and its state now."""

    setl_id: Ident
    msgid: MsgId  # of the 2207
    psn_no: PsnNo
    mdtrt_id: Ident
    insutype: Insutype
    clr_type: ClrType
    fixmedins_code: FixmedinsCode
    medfee_sumamt: Fen
    hifp_pay: Fen
    hifmi_pay: Fen
    maf_pay: Fen
    fund_pay_sumamt: Fen
    acct_pay: Fen
    psn_cash_pay: Fen
    setl_time: InfTime
    ord_stas: Literal["settled", "reversed"]
    revs_msgid: MsgId | None = None  # extension: the 2208 that reversed it
    revs_time: InfTime | None = None  # extension: when it was reversed

    def __post_init__(self) -> None:
        if self.hifp_pay + self.hifmi_pay + self.maf_pay != self.fund_pay_sumamt:
            raise ValueError(f"{self.setl_id}: the funds do not add up to fund_pay_sumamt")
        if self.fund_pay_sumamt + self.acct_pay + self.psn_cash_pay != self.medfee_sumamt:
            raise ValueError(f"{self.setl_id}: the split does not add up to medfee_sumamt")
        reversed_ = self.ord_stas == "reversed"
        if reversed_ != (self.revs_msgid is not None) or reversed_ != (self.revs_time is not None):
            raise ValueError(f"{self.setl_id}: ord_stas {self.ord_stas!r} with revs_* fields")


class StatementDetailsOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Output of 3202: one page, and how many lines the days have in all."""

    setl_optins: Admdvs
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    page_num: Annotated[int, msgspec.Meta(ge=1)]
    page_size: Annotated[int, msgspec.Meta(ge=1, le=STATEMENT_PAGE_SIZE_MAX)]
    total: Annotated[int, msgspec.Meta(ge=0)]
    data: Annotated[list[StatementDetail], msgspec.Meta(max_length=STATEMENT_PAGE_SIZE_MAX)]

    def __post_init__(self) -> None:
        if len(self.data) > self.page_size:
            raise ValueError(f"{len(self.data)} lines on a page of {self.page_size}")
        if (self.page_num - 1) * self.page_size + len(self.data) > self.total:
            raise ValueError(f"page {self.page_num} goes beyond the {self.total} lines announced")


def callback_path(admdvs: str) -> str:
    """The path a province's callbacks are POSTed to: ``/v1/callbacks/{admdvs}``."""
    return CALLBACK_PATH.format(admdvs=admdvs)


INPUT_TYPES: dict[str, type[msgspec.Struct]] = {
    INFNO_PRE_SETTLE: SettlementInput,
    INFNO_SETTLE: SettlementInput,
    INFNO_REVERSE: ReversalInput,
    INFNO_ORDER_QUERY: OrderQueryInput,
    INFNO_STATEMENT_TOTALS: StatementTotalsInput,
    INFNO_STATEMENT_DETAILS: StatementDetailsInput,
}
OUTPUT_TYPES: dict[str, type[msgspec.Struct]] = {
    INFNO_PRE_SETTLE: SettlementOutput,
    INFNO_SETTLE: SettlementOrderOutput,
    INFNO_REVERSE: ReversalOutput,
    INFNO_ORDER_QUERY: OrderQueryOutput,
    INFNO_STATEMENT_TOTALS: StatementTotalsOutput,
    INFNO_STATEMENT_DETAILS: StatementDetailsOutput,
}

# --- codecs, built once per type ----------------------------------------------------------

_ENCODER = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Encode an envelope (or any wire structure) to JSON bytes."""
    return _ENCODER.encode(value)


@functools.cache
def request_decoder(input_type: Any = msgspec.Raw) -> msgspec.json.Decoder[Any]:
    """The decoder of ``RequestEnvelope[input_type]``, built once per type."""
    return msgspec.json.Decoder(RequestEnvelope[input_type])


@functools.cache
def response_decoder(output_type: Any = msgspec.Raw) -> msgspec.json.Decoder[Any]:
    """The decoder of ``ResponseEnvelope[output_type]``, built once per type."""
    return msgspec.json.Decoder(ResponseEnvelope[output_type])


_CALLBACK_DECODER = msgspec.json.Decoder(SettlementCallback)


def callback_decoder() -> msgspec.json.Decoder[SettlementCallback]:
    """The decoder of :class:`SettlementCallback` (raises DecodeError / ValidationError)."""
    return _CALLBACK_DECODER


@functools.cache
def _input_decoder(input_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(input_type)


def decode_input(infno: str, raw: bytes | msgspec.Raw) -> msgspec.Struct:
    """Decode a request's ``input`` for transaction ``infno``.

    Raises:
        KeyError: ``infno`` is not a transaction of this profile.
        msgspec.ValidationError: the input does not validate.
    """
    return _input_decoder(INPUT_TYPES[infno]).decode(raw)


# --- readable names (both systems' code) -----------------------------------------------------

#: The readable name of a national field, where it means the same in every Struct of our own
#: (the gateway's requests and results, the simulator's policy; DOMAIN.md sections 3 and 8);
#: a message's fields under these names are read and written through :func:`national_fields`
#: and :func:`readable_fields`.
READABLE_NAMES: Final[dict[str, str]] = {
    # who asks, from where (the request envelope)
    "insuplc_admdvs": "insured_area",
    "mdtrtarea_admvs": "treatment_area",
    "fixmedins_name": "institution_name",
    "opter_type": "operator_type",
    "opter": "operator_id",
    "opter_name": "operator_name",
    # a settlement's input (2206 / 2207)
    "mdtrt_cert_type": "certificate_type",
    "mdtrt_cert_no": "certificate_no",
    "med_type": "medical_type",
    "psn_setlway": "settlement_way",
    "chrg_bchno": "charge_batch_no",
    "begntime": "service_date",
    "out_fil_type": "offsite_filing_type",
    # settlement figures (setlinfo, 2208, 3202), money in fen, ratios in basis points
    "medfee_sumamt": "medfee_total_fen",
    "fulamt_ownpay_amt": "full_own_pay_fen",
    "overlmt_selfpay": "over_limit_self_pay_fen",
    "preselfpay_amt": "pre_self_pay_fen",
    "inscp_scp_amt": "in_scope_fen",
    "act_pay_dedc": "deductible_applied_fen",
    "pool_prop_selfpay": "ratio_bp",
    "hifp_pay": "basic_fund_fen",
    "hifmi_pay": "critical_illness_fen",
    "maf_pay": "medical_assistance_fen",
    "fund_pay_sumamt": "fund_total_fen",
    "psn_part_amt": "personal_part_fen",
    "acct_pay": "personal_account_fen",
    "psn_cash_pay": "cash_fen",
    "balc": "balance_after_fen",
    # a fee item (feedetail)
    "feedetl_sn": "line_no",
    "med_list_codg": "code",
    "med_list_name": "name",
    "cnt": "quantity",
    "pric": "unit_price_fen",
    "det_item_fee_sumamt": "total_fen",
    "pric_uplmt_amt": "price_limit_fen",
    "selfpay_prop": "pre_self_pay_bp",
    "non_medical": "non_medical",
}

#: Our names of a catalogue class (chrgitm_lv 01, 02, 03) and of a scheme (insutype 310, 390).
ItemClass = Literal["A", "B", "C"]
Scheme = Literal["employee", "resident"]

#: chrgitm_lv of each catalogue class (section 2), and back.
CHRGITM_LV_OF_CLASS: Final[dict[ItemClass, Literal["01", "02", "03"]]] = {
    "A": "01",
    "B": "02",
    "C": "03",
}
CLASS_OF_CHRGITM_LV: Final = {lv: item_class for item_class, lv in CHRGITM_LV_OF_CLASS.items()}
#: insutype of each scheme, and back.
INSUTYPE_OF_SCHEME: Final[dict[Scheme, Insutype]] = {"employee": "310", "resident": "390"}
SCHEME_OF_INSUTYPE: Final = {insutype: scheme for scheme, insutype in INSUTYPE_OF_SCHEME.items()}


def national_fields(
    message_type: type[msgspec.Struct], source: object, **given: Any
) -> dict[str, Any]:
    """The fields of ``message_type`` that have a readable name, read from ``source`` by it.

    ``given`` fields are taken as they are, not read: a message's other fields and
    any whose value is not ``source``'s.
    """
    fields = {
        name: getattr(source, READABLE_NAMES[name])
        for name in message_type.__struct_fields__
        if name in READABLE_NAMES and name not in given
    }
    return fields | given


def readable_fields(target_type: type[msgspec.Struct], message: msgspec.Struct) -> dict[str, Any]:
    """The fields of ``message`` that ``target_type`` has under their readable names."""
    wanted = set(target_type.__struct_fields__)
    return {
        READABLE_NAMES[name]: getattr(message, name)
        for name in message.__struct_fields__
        if READABLE_NAMES.get(name) in wanted
    }


# --- identifiers and times ----------------------------------------------------------------

_FIXMEDINS = re.compile(r"^[0-9A-Z]{12}$")
_ADMDVS = re.compile(r"^[0-9]{6}$")


def _beijing(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return now.astimezone(CHINA_TZ)


def new_msgid(fixmedins_code: str, now: dt.datetime, seq: int) -> str:
    """A national ``msgid``: institution code (12) + yyyyMMddHHmmss (14) + sequence (4).

    ``now`` must be timezone-aware (it is written in Beijing time); ``seq`` tells apart
    messages of one institution within the same second (0..9999).
    """
    if not _FIXMEDINS.match(fixmedins_code):
        raise ValueError(f"fixmedins_code must be 12 characters [0-9A-Z]: {fixmedins_code!r}")
    if not 0 <= seq <= 9999:
        raise ValueError(f"msgid sequence out of range 0..9999: {seq}")
    msgid = f"{fixmedins_code}{_beijing(now):%Y%m%d%H%M%S}{seq:04d}"
    assert len(msgid) == 30
    return msgid


def new_refmsgid(admdvs: str, now: dt.datetime, serial: int) -> str:
    """A national ``inf_refmsgid``: receiver area (6) + yyyyMMddHHmmss (14) + serial (10)."""
    if not _ADMDVS.match(admdvs):
        raise ValueError(f"admdvs must be 6 digits: {admdvs!r}")
    return f"{admdvs}{_beijing(now):%Y%m%d%H%M%S}{serial % 10**10:010d}"


def format_inf_time(now: dt.datetime) -> str:
    """``inf_time`` / ``setl_time``: ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    return f"{_beijing(now):%Y-%m-%d %H:%M:%S}"


def parse_inf_time(text: str) -> dt.datetime:
    """Read an ``inf_time`` / ``setl_time`` back as an aware datetime."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TZ)


def format_ref_time(now: dt.datetime) -> str:
    """``refmsg_time`` / ``respond_time``: ``yyyyMMddHHmmssSSS`` in Beijing time."""
    local = _beijing(now)
    return f"{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}"


def parse_ref_time(text: str) -> dt.datetime:
    """Read a ``yyyyMMddHHmmssSSS`` time (``respond_time``, ``callback_time``) as aware."""
    if len(text) != 17 or not text.isascii() or not text.isdigit():
        raise ValueError(f"not a yyyyMMddHHmmssSSS time: {text!r}")
    moment = dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TZ)
    return moment.replace(microsecond=int(text[14:]) * 1000)


def province_of(admdvs: str) -> str:
    """The province of an area: its first two digits followed by ``0000`` (section 1)."""
    if not _ADMDVS.match(admdvs):
        raise ValueError(f"admdvs must be 6 digits: {admdvs!r}")
    return f"{admdvs[:2]}0000"


def is_province_code(admdvs: str) -> bool:
    """Whether ``admdvs`` is one of the 31 provincial codes."""
    return admdvs in PROVINCES
