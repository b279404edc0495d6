"""HTTP for reconciliation differences: what was found, what resolved it, and an operator's word.

Signed operator endpoints (``X-Operator-Id``). Imports: ``medpay.reconciliation`` and below.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import asyncpg
from litestar import Response, Router
from litestar.params import FromPath, JSONBody, QueryParameter

from medpay.errors import NotFound
from medpay.http import Injected
from medpay.http.problems import problem_responses
from medpay.parties.service import SigningParty
from medpay.reconciliation.schemas import DifferenceExplanation, DifferenceList, DifferenceView
from medpay.reconciliation.service import explain_difference, get_difference, list_differences
from medpay.security.actions import OPERATORS, Act, signed_get
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = ["reconciliation_router"]

Operator = Act[SigningParty]
_ID_DIGITS = 18
_STATUS = QueryParameter(description="open or resolved")
_PROVINCE = QueryParameter(pattern=r"^[1-6][0-9]0000$", description="e.g. 330000")
_DAY = QueryParameter(name="date", description="The China day reconciled")
_BEFORE = QueryParameter(ge=1, description="Page on: next_before of the last page")


def _difference_id(raw: str) -> int:
    """The difference id of a path; anything else is an unknown difference."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > _ID_DIGITS:
        raise NotFound("difference_not_found", "No such reconciliation difference")
    return int(raw)


@signed_get("/differences", "listReconciliationDifferences", "Differences found, newest first: open ones await a person or the province", OPERATORS, problems=(400, 401))  # fmt: skip
async def list_found(
    act: Operator,
    status: Annotated[Literal["open", "resolved"] | None, _STATUS] = None,
    province: Annotated[str | None, _PROVINCE] = None,
    day: Annotated[dt.date | None, _DAY] = None,
    before: Annotated[int | None, _BEFORE] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> DifferenceList:
    """Each with what it is about, both sides' records, and what resolved it."""
    return await list_differences(
        act.pool, status=status, province=province, day=day, before=before, limit=limit
    )


@signed_get("/differences/{difference_id:str}", "getReconciliationDifference", "One difference and what resolved it", OPERATORS)  # fmt: skip
async def get_one(act: Operator, difference_id: FromPath[str]) -> DifferenceView:
    """Both sides' records as compared, and its resolution or what it awaits."""
    return await get_difference(act.pool, _difference_id(difference_id))


@idempotent_post(
    "/differences/{difference_id:str}/explanation",
    operation_id="explainReconciliationDifference",
    summary="A person explains an open difference: it is resolved with their note",
    guards=[signed_by("operator")],
    security=OPERATORS.security,
    status_code=200,
    responses=problem_responses(400, 401, 404, 409, 413),
)
async def explain(
    difference_id: FromPath[str],
    data: JSONBody[DifferenceExplanation],
    caller: Injected[SigningParty],
    pool: Injected[asyncpg.Pool],
    idempotent: Injected[IdempotentPost],
) -> Response[Any]:
    """Nothing in the books changes: what a person did about it is outside medpay."""
    number = _difference_id(difference_id)  # an unknown difference before the key is read
    return await idempotent.answer(
        scope=caller.scope,
        status=200,
        run=lambda _key, _digest: explain_difference(
            pool, number, operator_id=caller.party_id, note=data.note
        ),
        location=lambda view: f"/v1/reconciliation/differences/{view.difference_id}",
    )


#: Differences between our books and the provinces' statements (DOMAIN.md section 7).
reconciliation_router = Router(
    path="/v1/reconciliation",
    tags=["reconciliation"],
    route_handlers=[list_found, get_one, explain],
)
