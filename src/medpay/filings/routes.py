"""HTTP for off-site filings: agencies file, change and cancel; agencies and operators read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from medpay.filings.schemas import (
    PSN_NO_PATTERN,
    FilingCancellation,
    FilingChange,
    FilingList,
    FilingView,
    NewFiling,
)
from medpay.filings.service import (
    cancel_filing,
    change_filing,
    create_filing,
    filings_of_person,
    get_filing,
)
from medpay.http.openapi import AGENCY_OR_OPERATOR
from medpay.http.problems import problem_responses
from medpay.http.responses import json_response
from medpay.security.guards import agency_guard, current_agency, operator_guard
from medpay.security.idempotency import IdempotencyKeyHeader, run_idempotent

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from medpay.parties.service import SigningParty

__all__ = ["FilingController", "agency_or_operator_guard"]


async def agency_or_operator_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """An operator's request (X-Operator-Id) or else an agency's: both may read filings."""
    if "x-operator-id" in connection.headers:
        await operator_guard(connection, handler)
    else:
        await agency_guard(connection, handler)


def _reader_area(request: Request[Any, Any, Any]) -> str | None:
    """The insured area whose filings the caller may read; None for an operator (all)."""
    agency: SigningParty | None = request.state.get("agency")
    if agency is None:
        assert request.state.get("operator") is not None
        return None
    assert agency.area is not None
    return agency.area


async def _idempotent(
    request: Request[Any, Any, Any],
    idempotency_key: str | None,
    status: int,
    operation: Callable[[SigningParty, str], Awaitable[FilingView]],
) -> Response[Any]:
    """Run ``operation(agency, key)`` once per agency and Idempotency-Key; replay its outcome."""
    agency = current_agency(request)
    scope = f"agency:{agency.party_id}"

    async def run(key: str, _digest: str) -> Response[bytes]:
        view = await operation(agency, key)
        return json_response(view, status, f"/v1/filings/{view.filing_id}")

    return await run_idempotent(
        request, scope=scope, principal=scope, idempotency_key=idempotency_key, operation=run
    )


class FilingController(Controller):
    """Off-site filings before cross-provincial direct settlement (DOMAIN.md section 5)."""

    path = "/v1/filings"
    security = AGENCY_OR_OPERATOR
    tags = ["filings"]

    @post(
        "/",
        operation_id="createFiling",
        summary="File a person insured here for care off-site",
        guards=[agency_guard],
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 422),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[NewFiling],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[FilingView]:
        """Only the agency of the person's insured area files (403 otherwise)."""
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            201,
            lambda agency, key: create_filing(pool, data, agency=agency, idempotency_key=key),
        )

    @post(
        "/{filing_id:str}/changes",
        operation_id="changeFiling",
        summary="Change a filing's treatment area, type or dates",
        guards=[agency_guard],
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def change(
        self,
        request: Request[Any, Any, Any],
        filing_id: FromPath[str],
        data: JSONBody[FilingChange],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[FilingView]:
        """A new version; the old one stays readable. Long-term residence: not within 6 months."""
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            200,
            lambda agency, key: change_filing(
                pool, filing_id, data, agency=agency, idempotency_key=key
            ),
        )

    @post(
        "/{filing_id:str}/cancellation",
        operation_id="cancelFiling",
        summary="Cancel a filing from today or a later date",
        guards=[agency_guard],
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        filing_id: FromPath[str],
        data: JSONBody[FilingCancellation],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[FilingView]:
        """A last version with the cancellation date. Long-term residence: not within 6 months."""
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            200,
            lambda agency, key: cancel_filing(
                pool, filing_id, data, agency=agency, idempotency_key=key
            ),
        )

    @get(
        "/",
        operation_id="listFilings",
        summary="A person's filings",
        guards=[agency_or_operator_guard],
        responses=problem_responses(400, 401),
    )
    async def list_filings(
        self,
        request: Request[Any, Any, Any],
        psn_no: Annotated[
            str,
            QueryParameter(
                name="psn_no", pattern=PSN_NO_PATTERN, description="The person (psn_no)"
            ),
        ],
    ) -> FilingList:
        """An agency sees the filings of its own area; an operator sees all."""
        return await filings_of_person(request.app.state.pool, psn_no, area=_reader_area(request))

    @get(
        "/{filing_id:str}",
        operation_id="getFiling",
        summary="A filing with every version of it",
        guards=[agency_or_operator_guard],
        responses=problem_responses(401, 404),
    )
    async def get_one(
        self, request: Request[Any, Any, Any], filing_id: FromPath[str]
    ) -> FilingView:
        """An agency sees the filings of its own area (others' look absent); an operator sees all."""
        return await get_filing(request.app.state.pool, filing_id, area=_reader_area(request))
