"""The synthetic population (issue 9, item 2): both registries, every province, idempotent."""

from __future__ import annotations

import re

from medpay.population import (
    DISTRICTS,
    benchmark_institutions,
    generate_persons,
    load_population_file,
    seed_population,
    write_population_file,
)
from medpay.security.persons import psn_no_of
from medpay.simulator.store import SIMULATOR_SCHEMA

PERSONS = 31 * 4 + 7  # four per province, and seven more in the first seven provinces


async def _synthetic_segments(db_pool, where: str = "TRUE") -> list[tuple[str, str, str]]:
    """(number, area, scheme) of the synthetic persons' segments: the registry keeps each
    person by reference, so the number is opened from the sealed copy."""
    rows = await db_pool.fetch(
        "SELECT s.psn_no, p.sealed AS person_sealed, s.insured_area, s.scheme"
        f" FROM insurance_segments s JOIN persons p USING (psn_no) WHERE {where}"
    )
    found = [(psn_no_of(r), r["insured_area"], r["scheme"]) for r in rows]
    return [segment for segment in found if re.match(r"^..8", segment[0])]


async def _gateway_persons(db_pool) -> dict[str, tuple[str, str]]:
    segments = await _synthetic_segments(db_pool, "s.valid_until IS NULL")
    return {number: (area, scheme) for number, area, scheme in segments}


async def _simulator_persons(db_pool) -> dict[str, tuple[str, str]]:
    rows = await db_pool.fetch(
        f"SELECT psn_no, insuplc_admdvs, insutype FROM {SIMULATOR_SCHEMA}.persons"
        " WHERE psn_no LIKE '__8%'"
    )
    scheme = {"310": "employee", "390": "resident"}
    return {r["psn_no"]: (r["insuplc_admdvs"], scheme[r["insutype"]]) for r in rows}


def test_persons_are_deterministic_and_well_formed() -> None:
    first = generate_persons(PERSONS, seed=42)
    assert generate_persons(PERSONS, seed=42) == first
    assert generate_persons(40, seed=42) == first[:40]  # a larger N extends, never reshuffles
    assert {p.psn_no for p in generate_persons(40, seed=43)}.isdisjoint(p.psn_no for p in first)
    for person in first:
        assert re.fullmatch(r"[0-9]{20}", person.psn_no)
        assert person.psn_no[:2] == person.province[:2] == person.insured_area[:2]
        assert person.insured_area in DISTRICTS[person.province]
        assert isinstance(person.acct_balance_fen, int) and person.acct_balance_fen >= 0
        if person.scheme == "resident":
            assert person.acct_balance_fen == 0
        else:
            assert not person.maf_eligible


def test_a_large_population_has_every_kind_of_person() -> None:
    persons = generate_persons(3100, seed=1)
    employees = [p for p in persons if p.scheme == "employee"]
    assert 0.35 < len(employees) / len(persons) < 0.55
    assert len({p.acct_balance_fen for p in employees}) > len(employees) // 2  # varied balances
    assert any(p.acct_balance_fen == 0 for p in employees)
    assert any(p.acct_balance_fen > 1_000_000 for p in employees)
    assert 0 < sum(p.maf_eligible for p in persons) < len(persons) // 10


async def test_persons_are_spread_over_all_31_provinces_on_both_sides(db_pool) -> None:
    persons = generate_persons(PERSONS, seed=7)

    report = await seed_population(db_pool, persons)

    assert (report.gateway_added, report.simulator_added) == (PERSONS, PERSONS)
    gateway, simulator = await _gateway_persons(db_pool), await _simulator_persons(db_pool)
    assert gateway == simulator == {p.psn_no: (p.insured_area, p.scheme) for p in persons}
    per_province = await db_pool.fetch(
        f"SELECT province, count(*) AS n FROM {SIMULATOR_SCHEMA}.persons"
        " WHERE psn_no LIKE '__8%' GROUP BY province"
    )
    counts = {r["province"]: r["n"] for r in per_province}
    assert set(counts) == set(DISTRICTS)
    assert sorted(counts.values()) == [4] * 24 + [5] * 7
    balances = await db_pool.fetch(
        f"SELECT psn_no, acct_balance_fen, maf_eligible FROM {SIMULATOR_SCHEMA}.persons"
        " WHERE psn_no LIKE '__8%'"
    )
    assert {r["psn_no"]: (r["acct_balance_fen"], r["maf_eligible"]) for r in balances} == {
        p.psn_no: (p.acct_balance_fen, p.maf_eligible) for p in persons
    }


async def test_seeding_again_skips_everyone_already_there(db_pool) -> None:
    persons = generate_persons(62, seed=7)
    await seed_population(db_pool, persons[:31])
    # The province has since charged one of them: re-seeding must not reset the balance.
    someone = next(p for p in persons[:31] if p.acct_balance_fen > 0)
    await db_pool.execute(
        f"UPDATE {SIMULATOR_SCHEMA}.persons SET acct_balance_fen = 1 WHERE psn_no = $1",
        someone.psn_no,
    )

    report = await seed_population(db_pool, persons)
    again = await seed_population(db_pool, persons)

    assert (report.gateway_added, report.simulator_added) == (31, 31)
    assert (again.gateway_added, again.simulator_added) == (0, 0)
    assert len(await _gateway_persons(db_pool)) == len(await _simulator_persons(db_pool)) == 62
    assert len(await _synthetic_segments(db_pool)) == 62
    balance = await db_pool.fetchval(
        f"SELECT acct_balance_fen FROM {SIMULATOR_SCHEMA}.persons WHERE psn_no = $1",
        someone.psn_no,
    )
    assert balance == 1


async def test_the_gateway_alone_can_be_seeded(db_pool) -> None:
    report = await seed_population(db_pool, generate_persons(31, seed=9), simulator=False)

    assert (report.gateway_added, report.simulator_added) == (31, None)
    assert await _simulator_persons(db_pool) == {}


async def test_every_province_gets_designated_institutions(db_pool) -> None:
    await seed_population(db_pool, [])

    rows = await db_pool.fetch(
        "SELECT i.institution_code, i.area, i.kind FROM institutions i"
        " JOIN institution_agreements a USING (institution_code)"
        " WHERE i.institution_code LIKE '_______9000_'"
    )
    kinds: dict[str, set[str]] = {}
    for row in rows:
        kinds.setdefault(row["area"][:2] + "0000", set()).add(row["kind"])
    assert kinds == {
        province: {"hospital", "internet_hospital", "retail_pharmacy"} for province in DISTRICTS
    }
    assert len(rows) == len(benchmark_institutions()) == 93


def test_the_population_file_round_trips(tmp_path) -> None:
    persons = generate_persons(40, seed=3)
    path = tmp_path / "population.json"

    write_population_file(path, 3, persons)

    loaded = load_population_file(path)
    assert (loaded.seed, loaded.persons) == (3, persons)
    assert loaded.institutions == benchmark_institutions()


async def test_a_seeded_person_settles_end_to_end(client, signed, identity_issuer, db_pool) -> None:
    """An employee of the population, insured far from Beijing, pays for an online revisit there."""
    persons = generate_persons(PERSONS, seed=5)
    await seed_population(db_pool, persons)
    person = next(p for p in persons if p.province >= "500000" and p.acct_balance_fen > 10_000)
    signed.identity_token = identity_issuer.issue(person.psn_no)
    order = {
        "institution_code": "H11010890002",  # the benchmark internet hospital of Beijing
        "treatment_area": "110108",
        "visit_type": "online_revisit",
        "items": [
            {"item_code": "001101000010000-IR01", "quantity": 1, "unit_price_fen": 2500},
            {"item_code": "XA10BAA075A001010101445", "quantity": 2, "unit_price_fen": 1200},
        ],
        "personal_account_allowed": True,
    }

    response = await client.post(
        "/v1/payments", json=order, headers={"Idempotency-Key": "population-0001"}, auth=signed
    )

    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["state"] == "settled"
    assert (payment["insured_area"], payment["scheme"]) == (person.insured_area, "employee")
    split = payment["settlement"]
    assert split["medical_fee_total_fen"] == 4900
    assert split["personal_account_fen"] == 4900  # all deductible; the account pays it
    assert split["account_balance_after_fen"] == person.acct_balance_fen - 4900
