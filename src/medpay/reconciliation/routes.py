"""HTTP for reconciliation differences: what was found, what resolved it, and an operator's word.

Signed operator endpoints (``X-Operator-Id``). Imports: ``medpay.reconciliation`` and below.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import asyncpg
from litestar import Controller, Response, get
from litestar.params import FromPath, JSONBody, QueryParameter

from medpay.errors import NotFound
from medpay.http import Injected
from medpay.http.openapi import OPERATOR_SECURITY
from medpay.http.problems import problem_responses
from medpay.parties.service import SigningParty
from medpay.reconciliation.schemas import DifferenceExplanation, DifferenceList, DifferenceView
from medpay.reconciliation.service import explain_difference, get_difference, list_differences
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = ["ReconciliationController"]

_ID_DIGITS = 18


def _difference_id(raw: str) -> int:
    """The difference id of a path; anything else is an unknown difference."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > _ID_DIGITS:
        raise NotFound("difference_not_found", "No such reconciliation difference")
    return int(raw)


class ReconciliationController(Controller):
    """Differences between our books and the provinces' statements (DOMAIN.md section 7)."""

    path = "/v1/reconciliation"
    tags = ["reconciliation"]
    guards = [signed_by("operator")]
    security = OPERATOR_SECURITY

    @get(
        "/differences",
        operation_id="listReconciliationDifferences",
        summary="Differences found, newest first: open ones await a person or the province",
        responses=problem_responses(400, 401),
    )
    async def list_differences(
        self,
        pool: Injected[asyncpg.Pool],
        status: Annotated[
            Literal["open", "resolved"] | None, QueryParameter(description="open or resolved")
        ] = None,
        province: Annotated[
            str | None, QueryParameter(pattern=r"^[1-6][0-9]0000$", description="e.g. 330000")
        ] = None,
        day: Annotated[
            dt.date | None, QueryParameter(name="date", description="The China day reconciled")
        ] = None,
        before: Annotated[
            int | None, QueryParameter(ge=1, description="Page on: next_before of the last page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> DifferenceList:
        """Each with what it is about, both sides' records, and what resolved it."""
        return await list_differences(
            pool, status=status, province=province, day=day, before=before, limit=limit
        )

    @get(
        "/differences/{difference_id:str}",
        operation_id="getReconciliationDifference",
        summary="One difference and what resolved it",
        responses=problem_responses(401, 404),
    )
    async def get_difference(
        self, difference_id: FromPath[str], pool: Injected[asyncpg.Pool]
    ) -> DifferenceView:
        """Both sides' records as compared, and its resolution or what it awaits."""
        return await get_difference(pool, _difference_id(difference_id))

    @idempotent_post(
        "/differences/{difference_id:str}/explanation",
        operation_id="explainReconciliationDifference",
        summary="A person explains an open difference: it is resolved with their note",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413),
    )
    async def explain(
        self,
        difference_id: FromPath[str],
        data: JSONBody[DifferenceExplanation],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[Any]:
        """Nothing in the books changes: what a person did about it is outside medpay."""
        number = _difference_id(difference_id)
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda _key, _digest: explain_difference(
                pool, number, operator_id=caller.party_id, note=data.note
            ),
            location=lambda view: f"/v1/reconciliation/differences/{view.difference_id}",
        )
