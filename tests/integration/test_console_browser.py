"""The operator console in headless Chromium: log in, read the clearing heat map, find a payment.

The distribution's Chromium (found or installed, see ``chromium.py``), one for the whole
module, driven by Playwright over DevTools; each test has its own browser context, so
no cookie crosses from one to the next. Off-site settlements across several provinces
are made over real HTTP first, so the map is not empty. Screenshots are saved under
``artefacts/`` (git-ignored; ``MEDPAY_ARTEFACTS`` to put them elsewhere) and listed at
the end of the run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from medpay.clearing.service import clearing_matrix, period_of
from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.console.views import yuan
from medpay.population import benchmark_institutions, generate_persons, seed_population
from medpay.wire.national import PROVINCES

from .books_helpers import FUNDED_ORDER, pay, reverse
from .chromium import find_or_install_chromium, running_chromium
from .console_helpers import CHEAP_HASHING, PASSWORD, USERNAME, give_login

playwright = pytest.importorskip("playwright.async_api", reason="playwright is a test dependency")

# One browser for the module: under xdist its tests go to one worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("browser")

ARTEFACTS = Path(os.environ.get("MEDPAY_ARTEFACTS") or Path(__file__).parents[2] / "artefacts")
#: Where the off-site care of the seeded persons happens: six provinces' internet hospitals.
TREATMENT_PROVINCES = ("110000", "310000", "330000", "440000", "510000", "420000")


@pytest.fixture
def settings(settings):
    """The test gateway's settings, hashing passwords cheaply."""
    return msgspec.structs.replace(settings, **CHEAP_HASHING)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    path, why = await asyncio.to_thread(find_or_install_chromium)
    if path is None and os.environ.get("CI"):
        pytest.fail(f"CI runs the browser tests, but there is no Chromium: {why}")
    if path is None:
        pytest.skip(f"no Chromium to drive: {why}")
    async with running_chromium(path) as devtools, playwright.async_playwright() as driver:
        chromium = await driver.chromium.connect_over_cdp(devtools)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser, client) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) on the test's gateway."""
    context = await browser.new_context(
        base_url=str(client.base_url).rstrip("/"), viewport={"width": 1480, "height": 900}
    )
    context.set_default_timeout(20_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def console_login(db_pool, operator) -> None:
    await give_login(db_pool, operator.party_id)


def _hospital_of(province: str) -> Any:
    return next(
        i
        for i in benchmark_institutions()
        if i.kind == "internet_hospital" and i.area[:2] == province[:2]
    )


async def _off_site_settlements(client, db_pool, patient_app, identity_issuer) -> list[dict]:
    """One insured person per province, each treated online in another province."""
    persons = generate_persons(31, seed=5)
    wanted = {_hospital_of(p) for p in TREATMENT_PROVINCES}
    hospitals = [
        i
        for i in benchmark_institutions()
        if i in wanted or any(w.relies_on == i.institution_code for w in wanted)
    ]
    await seed_population(db_pool, persons, institutions=hospitals)
    limit = asyncio.Semaphore(4)

    async def one(n: int, person) -> dict:
        treated_in = next(
            p for p in TREATMENT_PROVINCES[n % 6 :] + TREATMENT_PROVINCES if p != person.province
        )
        hospital = _hospital_of(treated_in)
        auth = AppSignatureAuth(
            patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(person.psn_no)
        )
        order = {
            **FUNDED_ORDER,
            "institution_code": hospital.institution_code,
            "treatment_area": hospital.area,
            "items": [
                {**item, "quantity": 10 + 7 * (n % 5)}
                if item["item_code"].startswith("XC10")
                else item
                for item in FUNDED_ORDER["items"]
            ],
        }
        async with limit:
            return await pay(client, auth, order)

    return await asyncio.gather(*(one(n, person) for n, person in enumerate(persons)))


async def _log_in(page) -> None:
    await page.goto("/console/clearing")
    assert page.url.endswith("/console/login")  # no session yet
    await page.fill("#username", USERNAME)
    await page.fill("#password", PASSWORD)
    await page.click(".login button[type=submit]")
    await page.wait_for_url("**/console/")


def _keep(path: Path, record_property) -> Path:
    """Where a screenshot goes, recorded for the run's summary (and its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record_property("artefact", str(path))
    print(f"screenshot: {path}")
    return path


async def test_an_operator_logs_in_and_reads_the_clearing_heat_map(
    page, client, db_pool, patient_app, identity_issuer, console_login, record_property
) -> None:
    paid = await _off_site_settlements(client, db_pool, patient_app, identity_issuer)
    matrix = await clearing_matrix(db_pool, period_of(china_today()))
    largest = max(matrix.cells, key=lambda c: c.fund_total_fen)

    await _log_in(page)
    todays_provinces = await page.locator("#volumes tbody tr").count()
    await page.click("nav >> text=Clearing")
    await page.wait_for_selector("#heat-map")

    assert todays_provinces == 31  # one insured person of each province paid today
    rows = page.locator("#heat-map tbody tr")
    assert await rows.count() == 31
    assert await page.locator("#heat-map td[data-treatment]").count() == 31 * 31
    cell = page.locator(
        f'#heat-map td[data-insured="{largest.insured_province}"]'
        f'[data-treatment="{largest.treatment_province}"]'
    )
    assert await cell.get_attribute("class") == "h8"
    title = await cell.get_attribute("title")
    assert title is not None and f": {yuan(largest.fund_total_fen)} yuan from the funds" in title
    assert PROVINCES[largest.insured_province] in title
    nets = {
        await row.get_attribute("data-province"): await row.locator("td.net").inner_text()
        for row in await rows.all()
    }
    assert nets == {p.province: yuan(p.net_fen) for p in matrix.positions}
    assert await page.inner_text("#net-sum") == "0.00"
    assert await page.inner_text("#cross-provincial") == yuan(matrix.cross_provincial_fen)
    assert matrix.cross_provincial_fen == sum(p["settlement"]["fund_total_fen"] for p in paid) > 0
    shot = _keep(ARTEFACTS / "operator-page.png", record_property)
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


async def test_an_operator_finds_a_payment_by_its_id(
    page, client, guangdong_payment, console_login, record_property
) -> None:
    await _log_in(page)
    await page.fill("#payment-id", guangdong_payment["payment_id"])
    await page.press("#payment-id", "Enter")
    await page.wait_for_url(f"**/console/payments/{guangdong_payment['payment_id']}")

    assert await page.inner_text("#payment-id-shown") == guangdong_payment["payment_id"]
    assert await page.inner_text("#payment-state") == "reversed"
    assert await page.inner_text("#person") == "4400************0002"
    assert "44000000000000000002" not in await page.content()
    states = await page.locator("#states tbody tr td:nth-child(3)").all_inner_texts()
    assert states == ["settling", "settled", "reversing", "reversed"]
    assert await page.locator("table.journal").count() == 2
    shot = _keep(ARTEFACTS / "operator-payment.png", record_property)
    await page.screenshot(path=str(shot), full_page=True)


@pytest.fixture
async def guangdong_payment(client, patient_app, identity_issuer) -> dict:
    """A Guangdong resident's revisit in Beijing, settled and reversed."""
    from .books_helpers import GUANGDONG_RESIDENT

    auth = AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(GUANGDONG_RESIDENT)
    )
    paid = await pay(client, auth, FUNDED_ORDER)
    await reverse(client, auth, paid["payment_id"])
    return paid
