"""The business data of the national front door: what ``encData`` holds, each way.

Field names are the national interface's (camelCase, DOMAIN.md section 8); amounts
are yuan on the wire and integer fen in code (:class:`~medpay.wire.yuan.YuanFen`:
at most two decimals, never negative, never a float). Fields medpay does not use
(``idNo``, ``userName``, ``deptCodg``, ...) may be sent and are ignored: apps built
for the national interface send many, and the signature covers them anyway. Fields
of our own where the national lists have none are marked *extension*.

``ordStas``, as medpay reports it (our reading of the national order states; an
adapter should confirm the codes against the platform's test environment):

=====  ============================================================================
``0``  uploaded (6201), not paid: may be cancelled (6401)
``2``  settling: handed to the home province, or its answer is being resolved;
       also while a refund is under way
``6``  settled: the split is final
``7``  refunded: reversed in full, balance and year-to-date totals returned
``12`` cancelled (6401) before payment
``15`` failed: the province refused, or a rule did; nothing was paid
=====  ============================================================================
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from medpay.schemas import AREA_CODE, InstitutionCode, ItemCode, PrescriptionId, Quantity
from medpay.wire.yuan import YuanFen

__all__ = [
    "ORD_STAS",
    "CancelUpload",
    "CancelUploadAnswer",
    "FeeItemUpload",
    "FeeUpload",
    "FeeUploadAnswer",
    "OrdStas",
    "OrderAnswer",
    "OrderQuery",
    "PayOrder",
    "RefundAnswer",
    "RefundOrder",
    "schema_hook",
]

OrdStas = Literal["0", "2", "6", "7", "12", "15"]
#: Our payment states and upload states as ``ordStas``.
ORD_STAS: dict[str, OrdStas] = {
    "uploaded": "0",
    "received": "2",
    "processing": "2",
    "reversing": "2",
    "settled": "6",
    "reversed": "7",
    "cancelled": "12",
    "failed": "15",
}

PayOrdId = Annotated[str, msgspec.Meta(pattern=r"^ORD[0-9]{14}[0-9A-F]{16}$")]
PayToken = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
PayAuthNo = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
OrderNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
PsnNo = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{6,32}$")]
Serial = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_.-]{1,30}$")]


class _Data(msgspec.Struct, frozen=True, kw_only=True):
    """Business data from an app: unknown national fields are ignored (module docstring)."""


class _Answer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Business data we answer."""


# --- 6201 fee upload -------------------------------------------------------------------------


class FeeItemUpload(_Data, frozen=True, kw_only=True):
    """One fee line (``feedetail``); ``detItemFeeSumamt`` must be ``cnt * pric`` exactly."""

    feedetlSn: Serial  # feedetl_sn: the line's serial within the upload
    medListCodg: ItemCode  # med_list_codg
    cnt: Quantity  # cnt: whole units
    pric: YuanFen  # unit price, yuan
    detItemFeeSumamt: YuanFen  # cnt * pric, yuan


class FeeUpload(_Data, frozen=True, kw_only=True):
    """6201: upload an order's fees, with the patient's payment authorisation.

    ``medOrgOrd`` is the app's own order number: a repeated 6201 with the same one and
    the same content answers the same ``payOrdId``. ``payAuthNo`` must vouch for
    ``psnNo``. ``medfeeSumamt`` must be the sum of the lines, to the fen.
    """

    payAuthNo: PayAuthNo  # the patient's payment authorisation (e-voucher)
    psnNo: PsnNo  # psn_no
    medOrgOrd: OrderNumber  # the institution's (app's) order number
    orgCodg: InstitutionCode  # fixmedins_code: the designated institution
    mdtrtareaAdmvs: AREA_CODE  # mdtrtarea_admvs: the treatment area
    visitType: Literal["online_revisit", "pharmacy_purchase", "home_nursing"]  # extension
    acctUsedFlag: Literal["0", "1"] = "0"  # acct_used_flag: may the personal account pay
    hiRxno: PrescriptionId | None = None  # the e-prescription, for a pharmacy purchase
    medfeeSumamt: YuanFen  # medfee_sumamt, yuan
    feedetail: Annotated[list[FeeItemUpload], msgspec.Meta(min_length=1, max_length=100)]


class FeeUploadAnswer(_Answer, frozen=True, kw_only=True):
    """6201's answer: the order to pay (``payOrdId``) and the token that goes with it."""

    payOrdId: PayOrdId
    payToken: PayToken
    medOrgOrd: str
    ordStas: OrdStas
    feeSumamt: YuanFen  # medfee_sumamt


# --- 6202 pay, 6301 query -------------------------------------------------------------------


class PayOrder(_Data, frozen=True, kw_only=True):
    """6202: pay an uploaded order; the patient's ``payAuthNo`` again (it may be a new one)."""

    payAuthNo: PayAuthNo
    payOrdId: PayOrdId
    payToken: PayToken


class OrderQuery(_Data, frozen=True, kw_only=True):
    """6301: the order's state and split."""

    payOrdId: PayOrdId
    payToken: PayToken


class OrderAnswer(_Answer, frozen=True, kw_only=True):
    """6202's and 6301's answer; the amounts once the home province has settled.

    ``feeSumamt = fundPay + psnAcctPay + ownPayAmt``, to the fen.
    """

    payOrdId: str
    medOrgOrd: str
    ordStas: OrdStas
    feeSumamt: YuanFen  # medfee_sumamt
    fundPay: YuanFen | None = None  # fund_pay_sumamt: basic fund, critical illness, assistance
    psnAcctPay: YuanFen | None = None  # acct_pay: from the personal account
    ownPayAmt: YuanFen | None = None  # psn_cash_pay: paid by the patient (card, wallet)
    setlId: str | None = None  # setl_id
    setlTime: str | None = None  # when it settled, ISO 8601
    failCode: str | None = None  # extension: why it failed (ordStas 15)


# --- 6203 refund ----------------------------------------------------------------------------


class RefundOrder(_Data, frozen=True, kw_only=True):
    """6203: refund a settled order in full (the existing reversal, 2208).

    ``appRefdSn`` is the app's refund serial: a repeat with the same one answers the
    same refund; another serial for an order already being refunded is refused.
    ``totlRefdAmt`` must be the order's whole fee total.
    """

    payOrdId: PayOrdId
    payToken: PayToken
    appRefdSn: OrderNumber
    totlRefdAmt: YuanFen
    refdType: Literal["ALL"] = "ALL"  # only a full refund


class RefundAnswer(_Answer, frozen=True, kw_only=True):
    """6203's answer: what was (or is being) given back."""

    payOrdId: str
    appRefdSn: str
    ordStas: OrdStas
    totlRefdAmt: YuanFen
    fundRefdAmt: YuanFen | None = None  # back to the funds
    psnAcctRefdAmt: YuanFen | None = None  # back to the personal account
    cashRefdAmt: YuanFen | None = None  # for the app to refund to the patient


# --- 6401 upload cancel ---------------------------------------------------------------------


class CancelUpload(_Data, frozen=True, kw_only=True):
    """6401: cancel an uploaded order before it is paid; a repeat is answered the same."""

    payOrdId: PayOrdId
    payToken: PayToken


class CancelUploadAnswer(_Answer, frozen=True, kw_only=True):
    """6401's answer."""

    payOrdId: str
    ordStas: OrdStas


def schema_hook(type_: type) -> dict[str, Any]:
    """JSON Schema of the types msgspec does not know (yuan amounts), for the OpenAPI document."""
    if type_ is YuanFen:
        return {
            "type": "number",
            "minimum": 0,
            "multipleOf": 0.01,
            "description": 'yuan, at most two decimals (a JSON number, or a string like "12.30")',
        }
    raise NotImplementedError(f"no schema for {type_!r}")
