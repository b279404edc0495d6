"""Helpers shared by the books tests: paying as several persons, moving a person's relationship."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import httpx

from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.demo import DEMO_ORDER
from medpay.parties.service import find_agency, register_agency
from medpay.relationships.schemas import (
    ContributionCertificate,
    TransferAcceptance,
    TransferApplication,
)
from medpay.relationships.transfers import accept_transfer, issue_certificate, request_transfer

#: A Guangdong resident (deductible 10,000 fen): her funds pay for care in Beijing.
GUANGDONG_RESIDENT = "44000000000000000002"
#: The demo's revisit with a month of atorvastatin: enough for a resident's fund to pay.
FUNDED_ORDER = {
    **DEMO_ORDER,
    "items": [
        {**item, "quantity": 30} if item["item_code"].startswith("XC10") else item
        for item in DEMO_ORDER["items"]  # type: ignore[attr-defined]
    ],
}


async def pay(client: httpx.AsyncClient, auth: AppSignatureAuth, order: dict | None = None) -> dict:
    """One payment of ``order`` (the demo's by default) under a fresh key; its answer."""
    response = await client.post(
        "/v1/payments",
        json=order or DEMO_ORDER,
        headers={"Idempotency-Key": f"books-{uuid.uuid4().hex}"},
        auth=auth,
    )
    assert response.status_code in (201, 202), response.text
    return response.json()


async def reverse(client: httpx.AsyncClient, auth: AppSignatureAuth, payment_id: str) -> dict:
    """Reverse a payment under a fresh key; its answer."""
    response = await client.post(
        f"/v1/payments/{payment_id}/reversal",
        headers={"Idempotency-Key": f"books-rev-{uuid.uuid4().hex}"},
        auth=auth,
    )
    assert response.status_code in (200, 202), response.text
    return response.json()


async def _agency(pool: asyncpg.Pool, area: str):
    agency_id = f"agency_{area}"
    found = await find_agency(pool, agency_id)
    if found is None:
        await register_agency(pool, f"Agency {area}", area, agency_id=agency_id)
        found = await find_agency(pool, agency_id)
    assert found is not None
    return found


async def move_relationship(
    pool: asyncpg.Pool,
    psn_no: str,
    *,
    from_area: str,
    to_area: str,
    scheme: str,
    balance_fen: int,
    months: int = 24,
) -> uuid.UUID:
    """A whole relationship transfer (DOMAIN.md section 6), accepted today; its id."""
    today = china_today()
    old, new = await _agency(pool, from_area), await _agency(pool, to_area)
    applied = await request_transfer(
        pool,
        new,
        TransferApplication(psn_no=psn_no, from_area=from_area, to_area=to_area, scheme=scheme),  # type: ignore[arg-type]
        idempotency_key=f"move-{uuid.uuid4().hex}",
    )
    await issue_certificate(
        pool,
        old,
        applied.transfer_id,
        ContributionCertificate(
            contribution_months=months,
            personal_account_balance_fen=balance_fen,
            contributions_stopped_on=today,
        ),
        idempotency_key=f"certify-{uuid.uuid4().hex}",
    )
    await accept_transfer(
        pool,
        new,
        applied.transfer_id,
        TransferAcceptance(valid_from=today + dt.timedelta(days=0)),
        idempotency_key=f"accept-{uuid.uuid4().hex}",
    )
    return applied.transfer_id
