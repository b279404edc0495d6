"""HTTP for relationship transfers and relationship history: parse, authenticate, call the service.

Agencies sign with their own keys (``X-Agency-Id``); each acts only for its own
coordination area (DOMAIN.md section 6). The readings are open to agencies and to
medpay operators (``X-Operator-Id``). Every POST takes an Idempotency-Key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from medpay.http.openapi import AGENCY_OR_OPERATOR
from medpay.http.problems import problem_responses
from medpay.http.responses import json_response
from medpay.relationships import transfers
from medpay.relationships.schemas import (
    ContributionCertificate,
    RelationshipHistory,
    TransferAcceptance,
    TransferApplication,
    TransferCancellation,
    TransferList,
    TransferRejection,
    TransferView,
)
from medpay.relationships.service import relationship_history
from medpay.relationships.workdays import china_today
from medpay.security.guards import agency_guard, current_agency, operator_guard
from medpay.security.idempotency import IdempotencyKeyHeader, run_idempotent

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = [
    "PersonRelationshipsController",
    "RelationshipTransferController",
    "agency_or_operator_guard",
    "relationships_router",
]

_STEP_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422)


async def agency_or_operator_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A signed request from an insurance agency or, with ``X-Operator-Id``, a medpay operator."""
    if "x-operator-id" in connection.headers and "x-agency-id" not in connection.headers:
        await operator_guard(connection, handler)
    else:
        await agency_guard(connection, handler)


def _viewer_area(request: Request[Any, Any, Any]) -> str | None:
    """The calling agency's area (it sees only its own), or None for an operator (sees all)."""
    agency = getattr(request.state, "agency", None)
    if agency is None:
        return None
    assert agency.area is not None, "every agency runs one coordination area"
    return str(agency.area)


def _answer(view: TransferView, status: int) -> Response[bytes]:
    return json_response(view, status, f"/v1/relationship-transfers/{view.transfer_id}")


async def _idempotent(
    request: Request[Any, Any, Any],
    idempotency_key: str | None,
    operation: Callable[[str], Awaitable[TransferView]],
    status: int,
) -> Response[Any]:
    """Run ``operation`` at most once per (agency, key); a repeat gets the first outcome."""
    agency = current_agency(request)

    async def run(key: str, _digest: str) -> Response[bytes]:
        return _answer(await operation(key), status)

    return await run_idempotent(
        request,
        scope=f"agency:{agency.party_id}",
        principal=agency.party_id,
        idempotency_key=idempotency_key,
        operation=run,
    )


class RelationshipTransferController(Controller):
    """Transfers of a person's relationship between coordination areas (DOMAIN.md section 6)."""

    path = "/relationship-transfers"
    security = AGENCY_OR_OPERATOR
    tags = ["relationship transfers"]

    @post(
        "/",
        guards=[agency_guard],
        operation_id="requestRelationshipTransfer",
        summary="The new area's agency applies to move a person's relationship into its area",
        status_code=201,
        responses=_STEP_PROBLEMS,
    )
    async def request_transfer(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[TransferApplication],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransferView]:
        """Step 1; the certificate is due within 10 working days. 409 ``transfer_in_progress``."""
        pool, agency = request.app.state.pool, current_agency(request)
        return await _idempotent(
            request,
            idempotency_key,
            lambda key: transfers.request_transfer(pool, agency, data, idempotency_key=key),
            201,
        )

    @post(
        "/{transfer_id:str}/certificate",
        guards=[agency_guard],
        operation_id="issueContributionCertificate",
        summary="The old area's agency stops the enrolment and issues the contribution certificate",
        status_code=200,
        responses=_STEP_PROBLEMS,
    )
    async def issue_certificate(
        self,
        request: Request[Any, Any, Any],
        transfer_id: FromPath[str],
        data: JSONBody[ContributionCertificate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransferView]:
        """Step 2: months, personal account balance, the day contributions stopped."""
        pool, agency = request.app.state.pool, current_agency(request)
        return await _idempotent(
            request,
            idempotency_key,
            lambda key: transfers.issue_certificate(
                pool, agency, transfer_id, data, idempotency_key=key
            ),
            200,
        )

    @post(
        "/{transfer_id:str}/acceptance",
        guards=[agency_guard],
        operation_id="acceptRelationshipTransfer",
        summary="The new area's agency opens its segment, counting the old months",
        status_code=200,
        responses=_STEP_PROBLEMS,
    )
    async def accept_transfer(
        self,
        request: Request[Any, Any, Any],
        transfer_id: FromPath[str],
        data: JSONBody[TransferAcceptance],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransferView]:
        """Step 3: the old segment closes as the new one opens; the balance moved is journalled."""
        pool, agency = request.app.state.pool, current_agency(request)
        return await _idempotent(
            request,
            idempotency_key,
            lambda key: transfers.accept_transfer(
                pool, agency, transfer_id, data, idempotency_key=key
            ),
            200,
        )

    @post(
        "/{transfer_id:str}/rejection",
        guards=[agency_guard],
        operation_id="rejectRelationshipTransfer",
        summary="Either area's agency refuses an open transfer",
        status_code=200,
        responses=_STEP_PROBLEMS,
    )
    async def reject_transfer(
        self,
        request: Request[Any, Any, Any],
        transfer_id: FromPath[str],
        data: JSONBody[TransferRejection],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransferView]:
        """The old area's segment goes on answering for the person."""
        pool, agency = request.app.state.pool, current_agency(request)
        return await _idempotent(
            request,
            idempotency_key,
            lambda key: transfers.reject_transfer(
                pool, agency, transfer_id, data, idempotency_key=key
            ),
            200,
        )

    @post(
        "/{transfer_id:str}/cancellation",
        guards=[agency_guard],
        operation_id="cancelRelationshipTransfer",
        summary="The applicant agency withdraws an open transfer",
        status_code=200,
        responses=_STEP_PROBLEMS,
    )
    async def cancel_transfer(
        self,
        request: Request[Any, Any, Any],
        transfer_id: FromPath[str],
        data: JSONBody[TransferCancellation],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransferView]:
        """The old area's segment goes on answering for the person."""
        pool, agency = request.app.state.pool, current_agency(request)
        return await _idempotent(
            request,
            idempotency_key,
            lambda key: transfers.cancel_transfer(
                pool, agency, transfer_id, data, idempotency_key=key
            ),
            200,
        )

    @get(
        "/",
        guards=[agency_or_operator_guard],
        operation_id="listRelationshipTransfers",
        summary="Transfers (an agency's: those of its area); overdue=true: past their deadline",
        responses=problem_responses(400, 401),
    )
    async def list_transfers(
        self,
        request: Request[Any, Any, Any],
        overdue: Annotated[
            bool,
            QueryParameter(
                description="Only open transfers past the deadline of the step they await"
            ),
        ] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> TransferList:
        """Lateness is counted in working days, Monday to Friday, China time."""
        today = china_today()
        views = await transfers.list_transfers(
            request.app.state.pool,
            viewer_area=_viewer_area(request),
            overdue=overdue,
            limit=limit,
            today=today,
        )
        return TransferList(as_of=today, transfers=views)

    @get(
        "/{transfer_id:str}",
        guards=[agency_or_operator_guard],
        operation_id="getRelationshipTransfer",
        summary="A transfer with every step taken",
        responses=problem_responses(401, 404),
    )
    async def get_transfer(
        self, request: Request[Any, Any, Any], transfer_id: FromPath[str]
    ) -> TransferView:
        """An agency sees the transfers of its own area only."""
        return await transfers.get_transfer(
            request.app.state.pool, transfer_id, viewer_area=_viewer_area(request)
        )


class PersonRelationshipsController(Controller):
    """A person's insurance relationship history (DOMAIN.md section 6)."""

    path = "/persons/{psn_no:str}/relationships"
    security = AGENCY_OR_OPERATOR
    tags = ["relationship transfers"]

    @get(
        "/",
        guards=[agency_or_operator_guard],
        operation_id="getInsuranceRelationships",
        summary="Every segment and transfer of a person, and who insured them on a date",
        responses=problem_responses(400, 401, 404),
    )
    async def get_relationships(
        self,
        request: Request[Any, Any, Any],
        psn_no: FromPath[str],
        on: Annotated[
            dt.date | None,
            QueryParameter(
                description="The date asked about (YYYY-MM-DD); default today, China time"
            ),
        ] = None,
    ) -> RelationshipHistory:
        """Who insured the person on ``on``, with how many months counted."""
        return await relationship_history(
            request.app.state.pool, psn_no, on=on, viewer_area=_viewer_area(request)
        )


#: The one entry the app registers.
relationships_router = Router(
    path="/v1", route_handlers=[RelationshipTransferController, PersonRelationshipsController]
)
