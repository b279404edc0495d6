"""HTTP for off-site filings: agencies file, change and cancel; agencies and operators read.

Imports: ``medpay.filings`` and the layers below it.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Router
from litestar.params import FromPath, QueryParameter

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
from medpay.http.openapi import AGENCY_OR_OPERATOR, AGENCY_SECURITY
from medpay.parties.service import SigningParty
from medpay.security.actions import Act, Signers, signed_get, signed_post

__all__ = ["filings_router"]

Agency = Act[SigningParty]
_FILE = Signers(
    kinds=("agency",),
    security=AGENCY_SECURITY,
    location=lambda view, **_: f"/v1/filings/{view.filing_id}",
)
_READ = Signers(kinds=("agency", "operator"), security=AGENCY_OR_OPERATOR)
_PERSON = QueryParameter(name="psn_no", pattern=PSN_NO_PATTERN, description="The person (psn_no)")


@signed_post("/", "createFiling", "File a person insured here for care off-site", _FILE, status=201, problems=(400, 401, 403, 409, 413, 422))  # fmt: skip
async def create(act: Agency, data: NewFiling) -> FilingView:
    """Only the agency of the person's insured area files (403 otherwise)."""
    return await create_filing(act.pool, data, agency=act.caller, idempotency_key=act.key)


@signed_post("/{filing_id:str}/changes", "changeFiling", "Change a filing's treatment area, type or dates", _FILE)  # fmt: skip
async def change(act: Agency, filing_id: FromPath[str], data: FilingChange) -> FilingView:
    """A new version; the old one stays readable. Long-term residence: not within 6 months."""
    return await change_filing(act.pool, filing_id, data, agency=act.caller, idempotency_key=act.key)  # fmt: skip


@signed_post("/{filing_id:str}/cancellation", "cancelFiling", "Cancel a filing from today or a later date", _FILE)  # fmt: skip
async def cancel(act: Agency, filing_id: FromPath[str], data: FilingCancellation) -> FilingView:
    """A last version with the cancellation date. Long-term residence: not within 6 months."""
    return await cancel_filing(act.pool, filing_id, data, agency=act.caller, idempotency_key=act.key)  # fmt: skip


@signed_get("/", "listFilings", "A person's filings", _READ, problems=(400, 401))
async def list_filings(act: Agency, psn_no: Annotated[str, _PERSON]) -> FilingList:
    """An agency sees the filings of its own area; an operator sees all."""
    return await filings_of_person(act.pool, psn_no, area=act.caller.area_seen)


@signed_get("/{filing_id:str}", "getFiling", "A filing with every version of it", _READ)
async def get_one(act: Agency, filing_id: FromPath[str]) -> FilingView:
    """An agency sees the filings of its own area (others' look absent); an operator sees all."""
    return await get_filing(act.pool, filing_id, area=act.caller.area_seen)


#: Off-site filings before cross-provincial direct settlement (DOMAIN.md section 5).
filings_router = Router(
    path="/v1/filings",
    tags=["filings"],
    route_handlers=[create, change, cancel, list_filings, get_one],
)
