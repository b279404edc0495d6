"""HTTP for relationship transfers and relationship history: each route one call into the service.

Agencies sign with their own keys (``X-Agency-Id``); each acts only for its own
coordination area (DOMAIN.md section 6). The readings are open to agencies and to
medpay operators (``X-Operator-Id``). Every POST takes an Idempotency-Key.

Imports: ``medpay.relationships`` and the layers below it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Router
from litestar.params import FromPath, QueryParameter

from medpay.clock import china_today
from medpay.http.openapi import AGENCY_OR_OPERATOR, AGENCY_SECURITY
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
from medpay.security.actions import Act, Signers, signed_get, signed_post

__all__ = ["relationships_router"]

Agency = Act[SigningParty]
_STEP = Signers(
    kinds=("agency",),
    security=AGENCY_SECURITY,
    problems=(400, 401, 403, 404, 409, 413, 422),
    location=lambda view, **_: f"/v1/relationship-transfers/{view.transfer_id}",
)
_READ = Signers(kinds=("agency", "operator"), security=AGENCY_OR_OPERATOR)
_LATE = "Only open transfers past the deadline of the step they await"
_ON = "The date asked about (YYYY-MM-DD); default today, China time"


@signed_post("/", "requestRelationshipTransfer", "The new area's agency applies to move a person's relationship into its area", _STEP, status=201)  # fmt: skip
async def request_transfer(act: Agency, data: TransferApplication) -> TransferView:
    """Step 1; the certificate is due within 10 working days. 409 ``transfer_in_progress``."""
    return await transfers.request_transfer(act.pool, act.caller, data, idempotency_key=act.key)


@signed_post("/{transfer_id:str}/certificate", "issueContributionCertificate", "The old area's agency stops the enrolment and issues the contribution certificate", _STEP)  # fmt: skip
async def issue_certificate(act: Agency, transfer_id: FromPath[str], data: ContributionCertificate) -> TransferView:  # fmt: skip
    """Step 2: months, personal account balance, the day contributions stopped."""
    return await transfers.issue_certificate(act.pool, act.caller, transfer_id, data, idempotency_key=act.key)  # fmt: skip


@signed_post("/{transfer_id:str}/acceptance", "acceptRelationshipTransfer", "The new area's agency opens its segment, counting the old months", _STEP)  # fmt: skip
async def accept_transfer(
    act: Agency, transfer_id: FromPath[str], data: TransferAcceptance
) -> TransferView:
    """Step 3: the old segment closes as the new one opens; the balance moved is journalled."""
    return await transfers.accept_transfer(act.pool, act.caller, transfer_id, data, idempotency_key=act.key)  # fmt: skip


@signed_post("/{transfer_id:str}/rejection", "rejectRelationshipTransfer", "Either area's agency refuses an open transfer", _STEP)  # fmt: skip
async def reject_transfer(
    act: Agency, transfer_id: FromPath[str], data: TransferRejection
) -> TransferView:
    """The old area's segment goes on answering for the person."""
    return await transfers.reject_transfer(act.pool, act.caller, transfer_id, data, idempotency_key=act.key)  # fmt: skip


@signed_post("/{transfer_id:str}/cancellation", "cancelRelationshipTransfer", "The applicant agency withdraws an open transfer", _STEP)  # fmt: skip
async def cancel_transfer(act: Agency, transfer_id: FromPath[str], data: TransferCancellation) -> TransferView:  # fmt: skip
    """The old area's segment goes on answering for the person."""
    return await transfers.cancel_transfer(act.pool, act.caller, transfer_id, data, idempotency_key=act.key)  # fmt: skip


@signed_get("/", "listRelationshipTransfers", "Transfers (an agency's: those of its area); overdue=true: past their deadline", _READ, problems=(400, 401))  # fmt: skip
async def list_transfers(
    act: Agency,
    overdue: Annotated[bool, QueryParameter(description=_LATE)] = False,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> TransferList:
    """Lateness is counted in working days, Monday to Friday, China time."""
    today = china_today()
    views = await transfers.list_transfers(
        act.pool, viewer_area=act.caller.area_seen, overdue=overdue, limit=limit, today=today
    )
    return TransferList(as_of=today, transfers=views)


@signed_get("/{transfer_id:str}", "getRelationshipTransfer", "A transfer with every step taken", _READ)  # fmt: skip
async def get_transfer(act: Agency, transfer_id: FromPath[str]) -> TransferView:
    """An agency sees the transfers of its own area only."""
    return await transfers.get_transfer(act.pool, transfer_id, viewer_area=act.caller.area_seen)


@signed_get("/", "getInsuranceRelationships", "Every segment and transfer of a person, and who insured them on a date", _READ, problems=(400, 401, 404))  # fmt: skip
async def get_relationships(
    act: Agency,
    psn_no: FromPath[str],
    on: Annotated[dt.date | None, QueryParameter(description=_ON)] = None,
) -> RelationshipHistory:
    """Who insured the person on ``on``, with how many months counted."""
    return await relationship_history(act.pool, psn_no, on=on, viewer_area=act.caller.area_seen)


#: The one entry the app registers.
relationships_router = Router(
    path="/v1",
    route_handlers=[
        Router(
            path="/relationship-transfers",
            tags=["relationship transfers"],
            route_handlers=[
                request_transfer,
                issue_certificate,
                accept_transfer,
                reject_transfer,
                cancel_transfer,
                list_transfers,
                get_transfer,
            ],
        ),
        Router(
            path="/persons/{psn_no:str}/relationships",
            tags=["relationship transfers"],
            route_handlers=[get_relationships],
        ),
    ],
)
