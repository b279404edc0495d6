"""HTTP for relationship transfers and relationship history: parse, authenticate, call the service.

Agencies sign with their own keys (``X-Agency-Id``); each acts only for its own
coordination area (DOMAIN.md section 6). The readings are open to agencies and to
medpay operators (``X-Operator-Id``). Every POST takes an Idempotency-Key.

Imports: ``medpay.relationships`` and the layers below it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Response, Router, get
from litestar.params import FromPath, JSONBody, QueryParameter

from medpay.clock import china_today
from medpay.http import Injected
from medpay.http.openapi import AGENCY_OR_OPERATOR, AGENCY_SECURITY
from medpay.http.problems import problem_responses
from medpay.parties.service import SigningParty
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
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = [
    "PersonRelationshipsController",
    "RelationshipTransferController",
    "relationships_router",
]

_STEP_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422)


def _location(view: TransferView) -> str:
    return f"/v1/relationship-transfers/{view.transfer_id}"


def _step(name: str, path: str, summary: str, status: int = 200) -> Any:
    """The declaration every step of a transfer shares: an agency's idempotent POST."""
    return idempotent_post(
        path,
        guards=[signed_by("agency")],
        security=AGENCY_SECURITY,
        operation_id=name,
        summary=summary,
        status_code=status,
        responses=_STEP_PROBLEMS,
    )


class RelationshipTransferController(Controller):
    """Transfers of a person's relationship between coordination areas (DOMAIN.md section 6)."""

    path = "/relationship-transfers"
    tags = ["relationship transfers"]

    @_step(
        "requestRelationshipTransfer",
        "/",
        "The new area's agency applies to move a person's relationship into its area",
        201,
    )
    async def request_transfer(
        self,
        data: JSONBody[TransferApplication],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[TransferView]:
        """Step 1; the certificate is due within 10 working days. 409 ``transfer_in_progress``."""
        return await idempotent.answer(
            scope=caller.scope,
            status=201,
            run=lambda key, _: transfers.request_transfer(pool, caller, data, idempotency_key=key),
            location=_location,
        )

    @_step(
        "issueContributionCertificate",
        "/{transfer_id:str}/certificate",
        "The old area's agency stops the enrolment and issues the contribution certificate",
    )
    async def issue_certificate(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[ContributionCertificate],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[TransferView]:
        """Step 2: months, personal account balance, the day contributions stopped."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: transfers.issue_certificate(
                pool, caller, transfer_id, data, idempotency_key=key
            ),
            location=_location,
        )

    @_step(
        "acceptRelationshipTransfer",
        "/{transfer_id:str}/acceptance",
        "The new area's agency opens its segment, counting the old months",
    )
    async def accept_transfer(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[TransferAcceptance],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[TransferView]:
        """Step 3: the old segment closes as the new one opens; the balance moved is journalled."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: transfers.accept_transfer(
                pool, caller, transfer_id, data, idempotency_key=key
            ),
            location=_location,
        )

    @_step(
        "rejectRelationshipTransfer",
        "/{transfer_id:str}/rejection",
        "Either area's agency refuses an open transfer",
    )
    async def reject_transfer(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[TransferRejection],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[TransferView]:
        """The old area's segment goes on answering for the person."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: transfers.reject_transfer(
                pool, caller, transfer_id, data, idempotency_key=key
            ),
            location=_location,
        )

    @_step(
        "cancelRelationshipTransfer",
        "/{transfer_id:str}/cancellation",
        "The applicant agency withdraws an open transfer",
    )
    async def cancel_transfer(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[TransferCancellation],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[TransferView]:
        """The old area's segment goes on answering for the person."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: transfers.cancel_transfer(
                pool, caller, transfer_id, data, idempotency_key=key
            ),
            location=_location,
        )

    @get(
        "/",
        guards=[signed_by("agency", "operator")],
        security=AGENCY_OR_OPERATOR,
        operation_id="listRelationshipTransfers",
        summary="Transfers (an agency's: those of its area); overdue=true: past their deadline",
        responses=problem_responses(400, 401),
    )
    async def list_transfers(
        self,
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
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
            pool,
            viewer_area=caller.area_seen,
            overdue=overdue,
            limit=limit,
            today=today,
        )
        return TransferList(as_of=today, transfers=views)

    @get(
        "/{transfer_id:str}",
        guards=[signed_by("agency", "operator")],
        security=AGENCY_OR_OPERATOR,
        operation_id="getRelationshipTransfer",
        summary="A transfer with every step taken",
        responses=problem_responses(401, 404),
    )
    async def get_transfer(
        self,
        transfer_id: FromPath[str],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
    ) -> TransferView:
        """An agency sees the transfers of its own area only."""
        return await transfers.get_transfer(pool, transfer_id, viewer_area=caller.area_seen)


class PersonRelationshipsController(Controller):
    """A person's insurance relationship history (DOMAIN.md section 6)."""

    path = "/persons/{psn_no:str}/relationships"
    tags = ["relationship transfers"]

    @get(
        "/",
        guards=[signed_by("agency", "operator")],
        security=AGENCY_OR_OPERATOR,
        operation_id="getInsuranceRelationships",
        summary="Every segment and transfer of a person, and who insured them on a date",
        responses=problem_responses(400, 401, 404),
    )
    async def get_relationships(
        self,
        psn_no: FromPath[str],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        on: Annotated[
            dt.date | None,
            QueryParameter(
                description="The date asked about (YYYY-MM-DD); default today, China time"
            ),
        ] = None,
    ) -> RelationshipHistory:
        """Who insured the person on ``on``, with how many months counted."""
        return await relationship_history(pool, psn_no, on=on, viewer_area=caller.area_seen)


#: The one entry the app registers.
relationships_router = Router(
    path="/v1", route_handlers=[RelationshipTransferController, PersonRelationshipsController]
)
