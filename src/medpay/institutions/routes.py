"""HTTP for the institution registry: operators register institutions and manage agreements.

Imports: ``medpay.institutions`` and the layers below it.
"""

from __future__ import annotations

import re
from typing import Literal

from litestar import Router
from litestar.params import FromPath

from medpay.errors import NotFound
from medpay.http.openapi import OPERATOR_SECURITY
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
from medpay.security.actions import Act, Signers, signed_get, signed_post

__all__ = ["institutions_router"]

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


Operator = Act[SigningParty]
_REGISTRY = Signers(
    kinds=("operator",),
    security=OPERATOR_SECURITY,
    location=lambda _view, institution_code, **_: f"/v1/institutions/{institution_code}",
)
_NEW = Signers(
    kinds=("operator",),
    security=OPERATOR_SECURITY,
    problems=(400, 401, 409, 413, 422),
    location=lambda view, **_: f"/v1/institutions/{view.institution_code}",
)
_AGREEMENT = "/{institution_code:str}/agreements/{agreement_id:str}"


async def _agreement_step(
    act: Operator,
    event: Literal["suspended", "reinstated", "dissolved"],
    institution_code: str,
    agreement_id: str,
    step: AgreementStep,
) -> AgreementView:
    """What suspending, reinstating and dissolving share: one step in an agreement's history."""
    code, number = _institution_code(institution_code), _agreement_id(agreement_id)
    return await change_agreement(
        act.pool,
        code,
        number,
        event,
        step,
        operator_id=act.caller.party_id,
        idempotency_key=act.key,
    )


@signed_post("/", "registerInstitution", "Register a hospital, internet hospital or retail pharmacy", _NEW, status=201)  # fmt: skip
async def register(act: Operator, data: NewInstitution) -> InstitutionView:
    """Add an institution; it settles nothing until it signs an agreement."""
    return await register_new_institution(act.pool, data)


@signed_get("/{institution_code:str}", "getInstitution", "An institution with its agreements and their whole history", _REGISTRY)  # fmt: skip
async def get_one(act: Operator, institution_code: FromPath[str]) -> InstitutionView:
    """Every agreement, suspension and recorded step; nothing is ever overwritten."""
    return await get_institution(act.pool, _institution_code(institution_code))


@signed_post("/{institution_code:str}/agreements", "signAgreement", "Sign an agreement covering [valid_from, valid_until)", _REGISTRY, status=201)  # fmt: skip
async def sign(act: Operator, institution_code: FromPath[str], data: NewAgreement) -> AgreementView:
    """An internet hospital signs only while its physical institution is designated."""
    code = _institution_code(institution_code)
    return await sign_agreement(act.pool, code, data, operator_id=act.caller.party_id, idempotency_key=act.key)  # fmt: skip


@signed_post(f"{_AGREEMENT}/suspension", "suspendAgreement", "Suspend an agreement from a date until it is reinstated", _REGISTRY)  # fmt: skip
async def suspend(act: Operator, institution_code: FromPath[str], agreement_id: FromPath[str], data: AgreementStep) -> AgreementView:  # fmt: skip
    """No settlement from ``effective_from`` until a reinstatement."""
    return await _agreement_step(act, "suspended", institution_code, agreement_id, data)


@signed_post(f"{_AGREEMENT}/reinstatement", "reinstateAgreement", "End an agreement's suspension from a date", _REGISTRY)  # fmt: skip
async def reinstate(act: Operator, institution_code: FromPath[str], agreement_id: FromPath[str], data: AgreementStep) -> AgreementView:  # fmt: skip
    """Settlement resumes from ``effective_from``."""
    return await _agreement_step(act, "reinstated", institution_code, agreement_id, data)


@signed_post(f"{_AGREEMENT}/dissolution", "dissolveAgreement", "Dissolve an agreement from a date", _REGISTRY)  # fmt: skip
async def dissolve(act: Operator, institution_code: FromPath[str], agreement_id: FromPath[str], data: AgreementStep) -> AgreementView:  # fmt: skip
    """Expenses from ``effective_from`` on are not settled (DOMAIN.md section 4)."""
    return await _agreement_step(act, "dissolved", institution_code, agreement_id, data)


#: The registry of designated institutions and their agreements (DOMAIN.md section 4).
institutions_router = Router(
    path="/v1/institutions",
    tags=["institutions"],
    route_handlers=[register, get_one, sign, suspend, reinstate, dissolve],
)
