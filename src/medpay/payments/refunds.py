"""Returns: a partial refund is a reversal and a new settlement of the lines kept.

A patient who returns part of a purchase, or an institution that corrects a bill, is
given back the difference the only way a province allows: the settlement is reversed
(2208) and the lines kept are settled anew under a new msgid, as a payment of their own
(the *replacement*) that names the one it replaces. Both keep their journals; the refund
ties them together as one object with its own id, state and split.

The refund moves with the two settlements, in the same transactions, whoever records
them (the answer, a provincial callback, the resolver, reconciliation):

- the reversal recorded: a full refund is done; for a partial one the replacement is
  recorded ``received`` with the lines kept (:func:`reversed_in`), so that if nobody
  sends it now the resolver does, and the prescription passes to it in the same step;
- the reversal refused: the refund is ``refused`` and nothing else changed;
- the replacement settled: ``refunded``; the replacement failed: ``resettlement_failed``
  (the original is given back in full; the lines kept are to be paid anew).

An interrupted refund therefore finishes (or ends refused) by the resolver's rules
already in force for payments; nothing here needs a watcher of its own.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.errors import Conflict, NotFound, Refused
from medpay.payments import queries
from medpay.payments.schemas import RefundedSplit, RefundView
from medpay.prescriptions.service import pass_redemption
from medpay.schemas import view_of
from medpay.security.persons import person_ref

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.schemas import RefundRequest

__all__ = [
    "RefundNotFound",
    "ReturnedLines",
    "check_refundable",
    "refund_view_in",
    "replacement_ended_in",
    "returned_lines",
    "reversal_refused_in",
    "reversed_in",
    "start_in",
]

#: The refund states in which money went back (the split is shown).
_GIVEN_BACK = frozenset({"refunded", "resettlement_failed"})


class RefundNotFound(NotFound):
    """No refund of this app and person has that id under that payment."""

    def __init__(self) -> None:
        super().__init__("refund_not_found", "No such refund")


class ReturnedLines(msgspec.Struct, frozen=True):
    """The lines of a refund request, checked against the payment."""

    kind: Literal["full", "partial"]
    line_nos: list[int]
    quantities: list[int]


def returned_lines(items: list[dict[str, object]], request: RefundRequest) -> ReturnedLines:
    """Check ``request`` against the payment's ``items``; a refund of every line is ``full``.

    Raises:
        Refused: a line the payment does not have, named twice, or returned beyond
            what was bought (422, ``refund_line_unknown``, ``refund_line_repeated``,
            ``refund_quantity_exceeds_line``).
    """
    bought = {int(str(item["line_no"])): int(str(item["quantity"])) for item in items}
    returned: dict[int, int] = {}
    for line in request.items:
        if line.line_no not in bought:
            raise Refused(
                "refund_line_unknown",
                "The payment has no such line",
                f"Line {line.line_no} is not a line of the payment (lines 1 to {len(bought)}).",
            )
        if line.line_no in returned:
            raise Refused(
                "refund_line_repeated",
                "A line is named twice",
                f"Line {line.line_no} appears more than once; name each line once.",
            )
        if line.quantity > bought[line.line_no]:
            raise Refused(
                "refund_quantity_exceeds_line",
                "More is returned than was bought",
                f"Line {line.line_no} bought {bought[line.line_no]}; "
                f"{line.quantity} cannot be returned.",
            )
        returned[line.line_no] = line.quantity
    full = returned == bought
    return ReturnedLines("full" if full else "partial", list(returned), list(returned.values()))


async def check_refundable(conn: asyncpg.Connection, payment: asyncpg.Record) -> None:
    """Raise the conflict that stops a refund of the locked ``payment``, if any."""
    state = payment["state"]
    if state == "settled":
        return
    if state == "reversing":
        raise Conflict(
            "refund_in_progress",
            "The payment is being given back already",
            "A reversal or refund of this payment is under way; its outcome follows.",
            retry_after_s=5,
        )
    if state == "reversed":
        replacement = await conn.fetchval(queries.REPLACEMENT_OF_PAYMENT, payment["payment_id"])
        detail = "Nothing more to give back."
        if replacement is not None:
            detail = f"The lines kept are payment {replacement}: refund that one."
        raise Conflict("payment_already_reversed", "The payment is already given back", detail)
    raise Conflict(
        "payment_not_refundable",
        "Only a settled payment can be refunded",
        "The payment has not settled.",
    )


async def start_in(
    conn: asyncpg.Connection,
    refund_id: uuid.UUID,
    payment_id: uuid.UUID,
    *,
    app_id: str,
    idempotency_key: str,
    request_digest: str,
    reason: str,
    lines: ReturnedLines,
) -> None:
    """Record the refund with its lines, ``reversing``, in the transaction that starts the 2208."""
    await conn.execute(
        queries.INSERT_REFUND,
        refund_id,
        payment_id,
        app_id,
        idempotency_key,
        request_digest,
        lines.kind,
        reason,
        lines.line_nos,
        lines.quantities,
    )


async def reversed_in(conn: asyncpg.Connection, payment_id: uuid.UUID) -> uuid.UUID | None:
    """The reversal of ``payment_id`` is recorded: move its refund on, if it has one.

    Returns the replacement's id when one was recorded (a partial refund), else None.
    Called by the recorder of the reversal, in its transaction (the payment is locked).
    """
    refund = await conn.fetchrow(queries.REFUND_AWAITING_REVERSAL, payment_id)
    if refund is None:  # a plain reversal
        return None
    if refund["kind"] == "full":
        await conn.execute(queries.REFUND_ENDS, refund["refund_id"], "refunded", None, None)
        return None
    replacement = uuid.uuid4()
    # Due now: whoever is first (the refund's own request, or the resolver) sends it.
    await conn.execute(queries.RECORD_REPLACEMENT, replacement, refund["refund_id"])
    await conn.execute(queries.SET_REFUND_RESETTLING, refund["refund_id"], replacement)
    await pass_redemption(conn, payment_id, replacement)
    return replacement


async def reversal_refused_in(
    conn: asyncpg.Connection, payment_id: uuid.UUID, code: str, detail: str | None
) -> None:
    """The reversal of ``payment_id`` was refused (or never arrived): its refund ends refused."""
    await conn.execute(queries.REFUND_REFUSED, payment_id, code, detail)


async def replacement_ended_in(
    conn: asyncpg.Connection,
    payment_id: uuid.UUID,
    state: Literal["refunded", "resettlement_failed"],
    code: str | None = None,
    detail: str | None = None,
) -> None:
    """The replacement ``payment_id`` settled (``refunded``) or did not (``resettlement_failed``)."""
    await conn.execute(queries.REFUND_OF_REPLACEMENT_ENDS, payment_id, state, code, detail)


async def refund_view_in(
    conn: asyncpg.Connection | asyncpg.Pool,
    refund_id: uuid.UUID,
    *,
    app_id: str | None = None,
    psn_no: str | None = None,
    payment_id: uuid.UUID | None = None,
) -> RefundView:
    """The refund as its app sees it; not found unless it is this app's, person's, payment's."""
    row = await conn.fetchrow(queries.REFUND_BY_ID, refund_id)
    if (
        row is None
        or (app_id is not None and row["app_id"] != app_id)
        or (psn_no is not None and row["psn_no"] != person_ref(psn_no))
        or (payment_id is not None and row["payment_id"] != payment_id)
    ):
        raise RefundNotFound()
    refunded = None
    if row["state"] in _GIVEN_BACK:
        refunded = view_of(row, RefundedSplit)
    return view_of(row, RefundView, refunded=refunded)
