"""Person numbers never leave unmasked: problem details, log lines, metrics labels.

The run-wide half is the scan at the end of every run (``tests/privacy_scan.py``):
every log record, every process log and the PostgreSQL server's log of the run.
"""

from __future__ import annotations

import io
import logging

from medpay.client import InstitutionSignatureAuth
from medpay.demo import DEMO_ORDER
from medpay.institutions.keys import register_institution_key
from medpay.observability.logs import json_formatter
from medpay.privacy import masked_number

from .conftest import ZHEJIANG_EMPLOYEE, operator_auth, problem

PERSON = ZHEJIANG_EMPLOYEE  # the demo order's person (the patient token's)
UNKNOWN = "11010519491231002X"  # a resident ID: 17 digits and its check character


async def test_a_person_number_in_the_path_is_masked_in_the_problem(client, operator) -> None:
    response = await client.get(
        f"/v1/persons/{UNKNOWN}/relationships", auth=operator_auth(operator)
    )
    body = problem(response)
    assert (response.status_code, body["code"]) == (404, "person_not_found")
    assert UNKNOWN not in response.text
    assert masked_number(UNKNOWN) in body["detail"]
    assert body["instance"] == f"/v1/persons/{masked_number(UNKNOWN)}/relationships"


async def test_a_refusal_that_names_the_person_masks_the_number(client, db_pool) -> None:
    private_pem, _ = await register_institution_key(db_pool, "H11010800124", "ed25519")
    unregistered = "44000000000000009999"
    order = {
        "psn_no": unregistered,
        "kind": "standard",
        "items": [{"item_code": "XA10BAA075A001010101445", "max_quantity": 1}],
    }
    response = await client.post(
        "/v1/prescriptions",
        json=order,
        headers={"Idempotency-Key": "privacy-rx-0001"},
        auth=InstitutionSignatureAuth("H11010800124", private_pem),
    )
    body = problem(response)
    assert (response.status_code, body["code"]) == (422, "person_unknown")
    assert unregistered not in response.text
    assert masked_number(unregistered) in body["detail"]


async def test_metrics_after_a_payment_name_no_person(client, signed) -> None:
    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": "privacy-pay-01"}, auth=signed
    )
    assert paid.status_code == 201, paid.text
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'path="/v1/payments"' in metrics.text  # the payment was counted ...
    assert PERSON not in metrics.text  # ... by route template, never by person
    assert masked_number(PERSON) not in metrics.text


def test_log_lines_mask_numbers_in_messages_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    log = logging.getLogger("medpay.test_privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("province said: person %s unknown, phone 13812345678", PERSON)
        log.warning("lookup", extra={"psn_no": UNKNOWN})
        try:
            raise ValueError(f"Key (psn_no)=({PERSON}) conflicts")
        except ValueError:
            log.exception("constraint")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    written = stream.getvalue()
    assert PERSON not in written and UNKNOWN not in written and "13812345678" not in written
    assert masked_number(PERSON) in written and "138****5678" in written
    assert "ValueError" in written  # the traceback is still there, masked
