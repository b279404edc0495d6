"""HTTP for monthly clearing: a period's matrix, and closing it.

Signed operator endpoints (``X-Operator-Id``). Imports: ``medpay.clearing`` and below.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Response, Router
from litestar.params import Parameter

from medpay.clearing.schemas import PERIOD_PATTERN, ClearingMatrix
from medpay.clearing.service import clearing_matrix, close_period, parse_period
from medpay.http import Injected
from medpay.http.problems import problem_responses
from medpay.parties.service import SigningParty
from medpay.security.actions import OPERATORS, Act, signed_get
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = ["clearing_router"]

#: The period in the path, as the document states it (schemathesis sent ``0`` as valid). The
#: pattern is documented, not enforced by Litestar, so that a bad period keeps its stable
#: code (``clearing_period_invalid``, from ``parse_period``).
Period = Annotated[
    str,
    Parameter(description="A month, YYYY-MM", schema_extra={"pattern": PERIOD_PATTERN}),
]


@signed_get("/{period:str}", "getClearingMatrix", "A period's fund amounts per (insured, treatment) province and each net", OPERATORS, problems=(400, 401))  # fmt: skip
async def matrix(act: Act[SigningParty], period: Period) -> ClearingMatrix:
    """Open: the entries so far. Closed: the matrix frozen when it closed."""
    return await clearing_matrix(act.pool, parse_period(period))


@idempotent_post(
    "/{period:str}/close",
    operation_id="closeClearingPeriod",
    summary="Close a period that has ended: its matrix never changes again",
    guards=[signed_by("operator")],
    security=OPERATORS.security,
    status_code=200,
    responses=problem_responses(400, 401, 409),
)
async def close(
    period: Period,
    caller: Injected[SigningParty],
    pool: Injected[asyncpg.Pool],
    idempotent: Injected[IdempotentPost],
) -> Response[Any]:
    """Later settlements and reversals of the month land in the next open period."""
    checked = parse_period(period)  # a bad period before the key is read
    return await idempotent.answer(
        scope=caller.scope,
        status=200,
        run=lambda _key, _digest: close_period(
            pool, checked, closed_by=f"operator:{caller.party_id}"
        ),
        location=lambda _view: f"/v1/clearing/{checked}",
    )


#: Clearing between provinces (DOMAIN.md section 7): one period is a month, China time.
clearing_router = Router(path="/v1/clearing", tags=["clearing"], route_handlers=[matrix, close])
