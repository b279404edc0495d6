"""No input, however malformed, gets a 500: every POST of the OpenAPI document, signed by
the kind of caller it expects, is sent bodies and path values that are wrong in many ways.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from medpay.client import InstitutionSignatureAuth
from medpay.institutions.keys import register_institution_key

from .conftest import agency_auth, operator_auth

DOCUMENT = json.loads(
    (Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text()
)
# The national front door answers every failure in its own envelope (test_mobile_front_door).
POSTS = sorted(
    path
    for path, ops in DOCUMENT["paths"].items()
    if "post" in ops and "callbacks" not in path and not path.startswith("/v1/mobile/")
)
BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b"12345678901234567890123456789",
    b'{"unexpected": true}',
    b'{"psn_no": "\\u0000", "items": [{"item_code": "\\u0000", "quantity": -1}]}',
    json.dumps(
        {"valid_from": "2026-02-30", "treatment_area": "999999", "quantity": 10**30}
    ).encode(),
    b"\xff\xfe\x00garbage",
]
PATH_VALUES = ["0", "not-a-uuid", "9" * 40, "%00", "00000000-0000-0000-0000-000000000000"]
_keys = itertools.count()


def _fill(path: str, value: str) -> str:
    filled = path
    while "{" in filled:
        start = filled.index("{")
        filled = filled[:start] + value + filled[filled.index("}") + 1 :]
    return filled


@pytest.fixture
async def callers(signed, zhejiang_agency, operator, db_pool):
    """One signer of each kind; each endpoint gets the one its security names."""
    private_pem, _ = await register_institution_key(db_pool, "H11010800124")
    return {
        "PatientToken": signed,
        "AgencyId": agency_auth(zhejiang_agency),
        "OperatorId": operator_auth(operator),
        "InstitutionId": InstitutionSignatureAuth("H11010800124", private_pem),
    }


def _auth_for(path: str, callers: dict[str, object]) -> object:
    security = DOCUMENT["paths"][path]["post"].get("security", [{}])
    for requirement in security:
        for scheme in requirement:
            if scheme in callers:
                return callers[scheme]
    raise AssertionError(f"no caller for {path}: {security}")


@pytest.mark.parametrize("path", POSTS)
async def test_malformed_requests_get_a_problem_never_a_500(client, callers, path: str) -> None:
    auth = _auth_for(path, callers)
    statuses = set()
    for value, body in itertools.product(PATH_VALUES[:2] if "{" in path else [""], BODIES):
        response = await client.post(
            _fill(path, value),
            content=body,
            headers={
                "Idempotency-Key": f"fuzz-{next(_keys):08d}",
                "Content-Type": "application/json",
            },
            auth=auth,
        )
        statuses.add(response.status_code)
        assert response.status_code < 500, (path, value, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), (path, body)
    assert statuses <= {400, 401, 403, 404, 409, 413, 415, 422}, statuses


@pytest.mark.parametrize("value", PATH_VALUES)
async def test_odd_path_values_on_reads_are_problems(client, callers, value: str) -> None:
    for path, ops in DOCUMENT["paths"].items():
        if "get" not in ops or "{" not in path:
            continue
        security = ops["get"].get("security", [{}])
        scheme = next(s for requirement in security for s in requirement if s in callers)
        response = await client.get(_fill(path, value), auth=callers[scheme])
        assert response.status_code < 500, (path, value, response.text)
