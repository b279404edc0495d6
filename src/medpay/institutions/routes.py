"""HTTP for the institution registry: operators register institutions and manage agreements.

Imports: ``medpay.institutions`` and the layers below it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import asyncpg
from litestar import Controller, Response, get
from litestar.params import FromPath, JSONBody

from medpay.errors import NotFound
from medpay.http import Injected
from medpay.http.openapi import OPERATOR_SECURITY
from medpay.http.problems import problem_responses
from medpay.institutions.schemas import (
    INSTITUTION_CODE_PATTERN,
    AgreementStep,
    AgreementView,
    InstitutionView,
    NewAgreement,
    NewInstitution,
)
from medpay.institutions.service import (
    change_agreement,
    get_institution,
    register_new_institution,
    sign_agreement,
)
from medpay.parties.service import SigningParty
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

__all__ = ["InstitutionController"]

_PATH_DIGITS = 18  # a bigint agreement id has at most 18 digits we accept
_CODE = re.compile(INSTITUTION_CODE_PATTERN)


def _institution_code(raw: str) -> str:
    """The institution code of the path; anything malformed is an unknown institution."""
    if not _CODE.fullmatch(raw):
        raise NotFound("institution_not_found", "No such institution", "Not an institution code.")
    return raw


def _agreement_id(raw: str) -> int:
    """The agreement id of the path; anything else is an unknown agreement."""
    if not raw.isdigit() or len(raw) > _PATH_DIGITS or not raw.isascii():
        raise NotFound("agreement_not_found", "No such agreement of this institution")
    return int(raw)


async def _agreement_step(
    event: Literal["suspended", "reinstated", "dissolved"],
    institution_code: str,
    agreement_id: str,
    step: AgreementStep,
    operator: SigningParty,
    pool: Injected[asyncpg.Pool],
    idempotent: Injected[IdempotentPost],
) -> Response[Any]:
    """What suspending, reinstating and dissolving share: one step in an agreement's history."""
    code, number = _institution_code(institution_code), _agreement_id(agreement_id)
    return await idempotent.answer(
        scope=operator.scope,
        status=200,
        run=lambda key, _: change_agreement(
            pool, code, number, event, step, operator_id=operator.party_id, idempotency_key=key
        ),
        location=lambda _view: f"/v1/institutions/{code}",
    )


class InstitutionController(Controller):
    """The registry of designated institutions and their agreements (DOMAIN.md section 4)."""

    path = "/v1/institutions"
    security = OPERATOR_SECURITY
    tags = ["institutions"]
    guards = [signed_by("operator")]

    @idempotent_post(
        "/",
        operation_id="registerInstitution",
        summary="Register a hospital, internet hospital or retail pharmacy",
        status_code=201,
        responses=problem_responses(400, 401, 409, 413, 422),
    )
    async def register(
        self,
        data: JSONBody[NewInstitution],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[InstitutionView]:
        """Add an institution; it settles nothing until it signs an agreement."""
        return await idempotent.answer(
            scope=caller.scope,
            status=201,
            run=lambda _key, _digest: register_new_institution(pool, data),
            location=lambda view: f"/v1/institutions/{view.institution_code}",
        )

    @get(
        "/{institution_code:str}",
        operation_id="getInstitution",
        summary="An institution with its agreements and their whole history",
        responses=problem_responses(401, 404),
    )
    async def get_one(
        self, institution_code: FromPath[str], pool: Injected[asyncpg.Pool]
    ) -> InstitutionView:
        """Every agreement, suspension and recorded step; nothing is ever overwritten."""
        return await get_institution(pool, _institution_code(institution_code))

    @idempotent_post(
        "/{institution_code:str}/agreements",
        operation_id="signAgreement",
        summary="Sign an agreement covering [valid_from, valid_until)",
        status_code=201,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def sign(
        self,
        institution_code: FromPath[str],
        data: JSONBody[NewAgreement],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[AgreementView]:
        """An internet hospital signs only while its physical institution is designated."""
        code = _institution_code(institution_code)
        return await idempotent.answer(
            scope=caller.scope,
            status=201,
            run=lambda key, _: sign_agreement(
                pool, code, data, operator_id=caller.party_id, idempotency_key=key
            ),
            location=lambda _view: f"/v1/institutions/{code}",
        )

    @idempotent_post(
        "/{institution_code:str}/agreements/{agreement_id:str}/suspension",
        operation_id="suspendAgreement",
        summary="Suspend an agreement from a date until it is reinstated",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def suspend(
        self,
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[AgreementView]:
        """No settlement from ``effective_from`` until a reinstatement."""
        return await _agreement_step(
            "suspended", institution_code, agreement_id, data, caller, pool, idempotent
        )

    @idempotent_post(
        "/{institution_code:str}/agreements/{agreement_id:str}/reinstatement",
        operation_id="reinstateAgreement",
        summary="End an agreement's suspension from a date",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def reinstate(
        self,
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[AgreementView]:
        """Settlement resumes from ``effective_from``."""
        return await _agreement_step(
            "reinstated", institution_code, agreement_id, data, caller, pool, idempotent
        )

    @idempotent_post(
        "/{institution_code:str}/agreements/{agreement_id:str}/dissolution",
        operation_id="dissolveAgreement",
        summary="Dissolve an agreement from a date",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def dissolve(
        self,
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        caller: Injected[SigningParty],
        pool: Injected[asyncpg.Pool],
        idempotent: Injected[IdempotentPost],
    ) -> Response[AgreementView]:
        """Expenses from ``effective_from`` on are not settled (DOMAIN.md section 4)."""
        return await _agreement_step(
            "dissolved", institution_code, agreement_id, data, caller, pool, idempotent
        )
