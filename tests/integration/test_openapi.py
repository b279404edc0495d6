"""The committed OpenAPI document is what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from medpay.cli import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_document_matches_the_app() -> None:
    assert COMMITTED.read_bytes() == openapi_document(), (
        "run `medpay openapi` and commit openapi/openapi.json"
    )


async def test_served_document_matches_the_committed_one(client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(COMMITTED.read_text())


def test_every_operation_has_an_id_and_tags() -> None:
    document = json.loads(COMMITTED.read_text())
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert operations
    assert all(op.get("operationId") and op.get("tags") for op in operations)


def test_an_answer_the_document_does_not_list_is_caught() -> None:
    from .conftest import _undocumented

    assert _undocumented({("POST", "/v1/payments/6a902de1/reversal", 202)}) == []
    assert _undocumented({("POST", "/v1/payments", 299)}) == ["POST /v1/payments answered 299"]
    assert _undocumented({("GET", "/nowhere", 404)}) == []


def test_every_post_documents_its_idempotency_key_as_enforced() -> None:
    document = json.loads(COMMITTED.read_text())
    for path, item in document["paths"].items():
        post = item.get("post")
        if post is None or path.startswith(("/v1/callbacks", "/v1/mobile")):
            continue  # provinces key by callback_id; the national interface by its own ids
        (key,) = [p for p in post["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["required"] is True, path
        assert key["schema"]["pattern"] == "^[A-Za-z0-9_.:-]{8,128}$", path


def test_every_request_body_schema_is_closed() -> None:
    document = json.loads(COMMITTED.read_text())
    schemas = document["components"]["schemas"]
    bodies = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for op in item.values()
        for content in op.get("requestBody", {}).get("content", {}).values()
        if "$ref" in content.get("schema", {})
    }
    assert bodies
    assert all(schemas[name].get("additionalProperties") is False for name in bodies), bodies


def test_a_bound_of_zero_on_an_optional_number_is_documented() -> None:
    # Litestar drops ``ge=0`` from ``int | None`` (it tests the bound's truth); schemathesis
    # then sent waiting_months -1781350923 as schema-valid and the server refused it.
    document = json.loads(COMMITTED.read_text())
    waiting = document["components"]["schemas"]["TransferAcceptance"]["properties"][
        "waiting_months"
    ]
    assert (waiting["minimum"], waiting["maximum"]) == (0, 6)


def test_each_create_links_to_where_its_resource_is_read() -> None:
    document = json.loads(COMMITTED.read_text())
    operations = {
        op["operationId"]: op for item in document["paths"].values() for op in item.values()
    }
    for create, read, parameter in [
        ("createPayment", "getPayment", "payment_id"),
        ("issuePrescription", "getPrescription", "prescription_id"),
        ("createFiling", "getFiling", "filing_id"),
        ("registerInstitution", "getInstitution", "institution_code"),
        ("requestRelationshipTransfer", "getRelationshipTransfer", "transfer_id"),
    ]:
        created = next(r for s, r in operations[create]["responses"].items() if s.startswith("2"))
        link = created["links"][read]
        assert link["operationId"] == read and read in operations
        assert link["parameters"] == {parameter: f"$response.body#/{parameter}"}
