"""HTTP for off-site filings: agencies file, change and cancel; agencies and operators read.

Imports: ``medpay.filings`` and the layers below it.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import Controller, Response, get
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
from medpay.http import Injected
from medpay.http.openapi import AGENCY_OR_OPERATOR, AGENCY_SECURITY
from medpay.http.problems import problem_responses
from medpay.parties.service import SigningParty
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = ["FilingController"]


def _location(view: FilingView) -> str:
    return f"/v1/filings/{view.filing_id}"


class FilingController(Controller):
    """Off-site filings before cross-provincial direct settlement (DOMAIN.md section 5)."""

    path = "/v1/filings"
    tags = ["filings"]

    @idempotent_post(
        "/",
        operation_id="createFiling",
        summary="File a person insured here for care off-site",
        guards=[signed_by("agency")],
        security=AGENCY_SECURITY,
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 422),
    )
    async def create(
        self,
        data: JSONBody[NewFiling],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[FilingView]:
        """Only the agency of the person's insured area files (403 otherwise)."""
        return await idempotent.answer(
            scope=caller.scope,
            status=201,
            run=lambda key, _: create_filing(pool, data, agency=caller, idempotency_key=key),
            location=_location,
        )

    @idempotent_post(
        "/{filing_id:str}/changes",
        operation_id="changeFiling",
        summary="Change a filing's treatment area, type or dates",
        guards=[signed_by("agency")],
        security=AGENCY_SECURITY,
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def change(
        self,
        filing_id: FromPath[str],
        data: JSONBody[FilingChange],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[FilingView]:
        """A new version; the old one stays readable. Long-term residence: not within 6 months."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: change_filing(
                pool, filing_id, data, agency=caller, idempotency_key=key
            ),
            location=_location,
        )

    @idempotent_post(
        "/{filing_id:str}/cancellation",
        operation_id="cancelFiling",
        summary="Cancel a filing from today or a later date",
        guards=[signed_by("agency")],
        security=AGENCY_SECURITY,
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def cancel(
        self,
        filing_id: FromPath[str],
        data: JSONBody[FilingCancellation],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[FilingView]:
        """A last version with the cancellation date. Long-term residence: not within 6 months."""
        return await idempotent.answer(
            scope=caller.scope,
            status=200,
            run=lambda key, _: cancel_filing(
                pool, filing_id, data, agency=caller, idempotency_key=key
            ),
            location=_location,
        )

    @get(
        "/",
        operation_id="listFilings",
        summary="A person's filings",
        guards=[signed_by("agency", "operator")],
        security=AGENCY_OR_OPERATOR,
        responses=problem_responses(400, 401),
    )
    async def list_filings(
        self,
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        psn_no: Annotated[
            str,
            QueryParameter(
                name="psn_no", pattern=PSN_NO_PATTERN, description="The person (psn_no)"
            ),
        ],
    ) -> FilingList:
        """An agency sees the filings of its own area; an operator sees all."""
        return await filings_of_person(pool, psn_no, area=caller.area_seen)

    @get(
        "/{filing_id:str}",
        operation_id="getFiling",
        summary="A filing with every version of it",
        guards=[signed_by("agency", "operator")],
        security=AGENCY_OR_OPERATOR,
        responses=problem_responses(401, 404),
    )
    async def get_one(
        self,
        filing_id: FromPath[str],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
    ) -> FilingView:
        """An agency sees the filings of its own area (others' look absent); an operator sees all."""
        return await get_filing(pool, filing_id, area=caller.area_seen)
