"""HTTP for the institution registry: operators register institutions and manage agreements."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from medpay.errors import NotFound
from medpay.http.openapi import OPERATOR_SECURITY
from medpay.http.problems import problem_responses
from medpay.http.responses import json_response
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
from medpay.security.guards import current_operator, operator_guard
from medpay.security.idempotency import IdempotencyKeyHeader, run_idempotent

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

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


async def _idempotent(
    request: Request[Any, Any, Any],
    idempotency_key: str | None,
    status: int,
    operation: Callable[[str, str], Awaitable[Any]],
    location: Callable[[Any], str],
) -> Response[Any]:
    """Run ``operation(operator_id, key)`` once per operator and Idempotency-Key; replay its outcome."""
    operator_id = current_operator(request).party_id
    scope = f"operator:{operator_id}"

    async def run(key: str, _digest: str) -> Response[bytes]:
        view = await operation(operator_id, key)
        return json_response(view, status, location(view))

    return await run_idempotent(
        request, scope=scope, principal=scope, idempotency_key=idempotency_key, operation=run
    )


class InstitutionController(Controller):
    """The registry of designated institutions and their agreements (DOMAIN.md section 4)."""

    path = "/v1/institutions"
    security = OPERATOR_SECURITY
    tags = ["institutions"]
    guards = [operator_guard]

    @post(
        "/",
        operation_id="registerInstitution",
        summary="Register a hospital, internet hospital or retail pharmacy",
        status_code=201,
        responses=problem_responses(400, 401, 409, 413, 422),
    )
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[NewInstitution],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[InstitutionView]:
        """Add an institution; it settles nothing until it signs an agreement."""
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            201,
            lambda _operator, _key: register_new_institution(pool, data),
            lambda view: f"/v1/institutions/{view.institution_code}",
        )

    @get(
        "/{institution_code:str}",
        operation_id="getInstitution",
        summary="An institution with its agreements and their whole history",
        responses=problem_responses(401, 404),
    )
    async def get_one(
        self, request: Request[Any, Any, Any], institution_code: FromPath[str]
    ) -> InstitutionView:
        """Every agreement, suspension and recorded step; nothing is ever overwritten."""
        return await get_institution(request.app.state.pool, _institution_code(institution_code))

    @post(
        "/{institution_code:str}/agreements",
        operation_id="signAgreement",
        summary="Sign an agreement covering [valid_from, valid_until)",
        status_code=201,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        institution_code: FromPath[str],
        data: JSONBody[NewAgreement],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[AgreementView]:
        """An internet hospital signs only while its physical institution is designated."""
        code = _institution_code(institution_code)
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            201,
            lambda operator_id, key: sign_agreement(
                pool, code, data, operator_id=operator_id, idempotency_key=key
            ),
            lambda view: f"/v1/institutions/{code}",
        )

    async def _step(
        self,
        request: Request[Any, Any, Any],
        institution_code: str,
        agreement_id: str,
        event: Literal["suspended", "reinstated", "dissolved"],
        step: AgreementStep,
        idempotency_key: str | None,
    ) -> Response[Any]:
        code, number = _institution_code(institution_code), _agreement_id(agreement_id)
        pool = request.app.state.pool
        return await _idempotent(
            request,
            idempotency_key,
            200,
            lambda operator_id, key: change_agreement(
                pool,
                code,
                number,
                event,
                step,
                operator_id=operator_id,
                idempotency_key=key,
            ),
            lambda view: f"/v1/institutions/{code}",
        )

    @post(
        "/{institution_code:str}/agreements/{agreement_id:str}/suspension",
        operation_id="suspendAgreement",
        summary="Suspend an agreement from a date until it is reinstated",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def suspend(
        self,
        request: Request[Any, Any, Any],
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[AgreementView]:
        """No settlement from ``effective_from`` until a reinstatement."""
        return await self._step(
            request, institution_code, agreement_id, "suspended", data, idempotency_key
        )

    @post(
        "/{institution_code:str}/agreements/{agreement_id:str}/reinstatement",
        operation_id="reinstateAgreement",
        summary="End an agreement's suspension from a date",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def reinstate(
        self,
        request: Request[Any, Any, Any],
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[AgreementView]:
        """Settlement resumes from ``effective_from``."""
        return await self._step(
            request, institution_code, agreement_id, "reinstated", data, idempotency_key
        )

    @post(
        "/{institution_code:str}/agreements/{agreement_id:str}/dissolution",
        operation_id="dissolveAgreement",
        summary="Dissolve an agreement from a date",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def dissolve(
        self,
        request: Request[Any, Any, Any],
        institution_code: FromPath[str],
        agreement_id: FromPath[str],
        data: JSONBody[AgreementStep],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[AgreementView]:
        """Expenses from ``effective_from`` on are not settled (DOMAIN.md section 4)."""
        return await self._step(
            request, institution_code, agreement_id, "dissolved", data, idempotency_key
        )
