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
