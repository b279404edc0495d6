"""Rate limits over real HTTP: per source, caller and person, estimates lower, failures dearer.

The counters live in PostgreSQL, so two gateway apps on one database share them.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest

from medpay.app import create_app
from medpay.client import AppSignatureAuth
from medpay.demo import DEMO_ORDER

from .conftest import clear_of_a_rate_window_edge, problem, running_gateway

MISSING = f"/v1/payments/{uuid.UUID(int=0)}"


@pytest.fixture(autouse=True)
async def _one_window() -> None:
    """Each test's requests fall in one 60-second window."""
    await clear_of_a_rate_window_edge()


def _limited(settings, **limits):
    """The test gateway's settings with these limits; the others too high to matter here."""
    everything = {
        "rate_limit_per_source": 10_000,
        "rate_limit_per_caller": 10_000,
        "rate_limit_per_person": 10_000,
        "rate_limit_estimates_per_caller": 10_000,
        "rate_limit_estimates_per_person": 10_000,
    }
    return msgspec.structs.replace(settings, **(everything | limits))


def _refusals(metrics, bucket: str) -> float:
    """``medpay_rate_limited_total`` of one bucket kind in a ``/metrics`` answer."""
    assert metrics.status_code == 200, metrics.text
    wanted = f'medpay_rate_limited_total{{scope="{bucket}"}} '
    lines = [line for line in metrics.text.splitlines() if line.startswith(wanted)]
    return float(lines[0].split()[-1]) if lines else 0.0


def _assert_refused(response, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = problem(response)
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
    assert response.headers["RateLimit-Policy"] == f"{limit};w=60"


async def test_a_burst_past_the_person_limit_is_refused_with_429(
    settings, clearing, signed
) -> None:
    app = create_app(_limited(settings, rate_limit_per_person=5), clearing=clearing)
    async with running_gateway(app) as client:
        before = _refusals(await client.get("/metrics"), "person")
        answers = [await client.get(MISSING, auth=signed) for _ in range(8)]
        after = _refusals(await client.get("/metrics"), "person")

    assert [r.status_code for r in answers] == [404] * 5 + [429] * 3
    assert after - before == 3, "every refusal is counted in medpay_rate_limited_total"
    assert [r.headers["RateLimit-Remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["RateLimit-Limit"] == "5" for r in answers)
    for refused in answers[5:]:
        _assert_refused(refused, 5)


async def test_another_person_of_the_same_app_is_not_refused(
    settings, clearing, signed, patient_app, identity_issuer
) -> None:
    app = create_app(_limited(settings, rate_limit_per_person=3), clearing=clearing)
    other = AppSignatureAuth(
        patient_app.app_id,
        patient_app.private_key_pem,
        identity_issuer.issue("44000000000000000002"),
    )
    async with running_gateway(app) as client:
        for _ in range(3):
            assert (await client.get(MISSING, auth=signed)).status_code == 404
        assert (await client.get(MISSING, auth=signed)).status_code == 429
        assert (await client.get(MISSING, auth=other)).status_code == 404


async def test_the_caller_limit_counts_every_person_of_the_app(
    settings, clearing, signed, patient_app, identity_issuer
) -> None:
    app = create_app(_limited(settings, rate_limit_per_caller=4), clearing=clearing)
    persons = ["33000000000000000001", "44000000000000000002", "11000000000000000003"]
    auths = [
        AppSignatureAuth(patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(p))
        for p in persons
    ]
    async with running_gateway(app) as client:
        answers = [await client.get(MISSING, auth=auths[n % 3]) for n in range(6)]

    assert [r.status_code for r in answers] == [404] * 4 + [429] * 2
    _assert_refused(answers[4], 4)


async def test_bad_signatures_lock_a_source_out_sooner_than_good_requests(
    settings, clearing, signed, patient_app, patient_token
) -> None:
    # 100 per source; a refused signature costs 20: five of them spend the allowance.
    app = create_app(
        _limited(settings, rate_limit_per_source=100, rate_limit_failure_cost=20),
        clearing=clearing,
    )
    forger = AppSignatureAuth(patient_app.app_id, _other_key(), patient_token)
    async with running_gateway(app) as client:
        good = [await client.get(MISSING, auth=signed) for _ in range(5)]
        bad = [await client.get(MISSING, auth=forger) for _ in range(5)]
        after = await client.get(MISSING, auth=signed)
        again = await client.get(MISSING, auth=forger)

    assert [r.status_code for r in good] == [404] * 5
    assert good[-1].headers["RateLimit-Remaining"] == "95"
    # Five good requests used 5; the forger's fourth reaches 5 + 4 * 20 = 85, the fifth 105.
    assert [r.status_code for r in bad] == [401] * 4 + [429]
    assert problem(bad[0])["code"] == "signature_invalid"
    assert bad[3].headers["RateLimit-Remaining"] == "15"
    _assert_refused(bad[4], 100)
    # The source is locked out, good requests included, until the window ends.
    _assert_refused(after, 100)
    _assert_refused(again, 100)


async def test_garbage_tokens_count_against_the_source_and_the_app(
    settings, clearing, patient_app
) -> None:
    app = create_app(
        _limited(settings, rate_limit_per_caller=50, rate_limit_failure_cost=30),
        clearing=clearing,
    )
    garbage = AppSignatureAuth(patient_app.app_id, patient_app.private_key_pem, "not.a.jwt")
    async with running_gateway(app) as client:
        first = await client.get(MISSING, auth=garbage)
        second = await client.get(MISSING, auth=garbage)

    assert first.status_code == 401
    assert problem(first)["code"] == "identity_token_invalid"
    assert first.headers["RateLimit-Remaining"] == "20"
    _assert_refused(second, 50)


async def test_estimates_have_their_own_lower_limit(settings, clearing, signed) -> None:
    app = create_app(
        _limited(settings, rate_limit_per_person=10, rate_limit_estimates_per_person=2),
        clearing=clearing,
    )
    async with running_gateway(app) as client:
        estimates = [
            await client.post(
                "/v1/payments/estimate",
                json=DEMO_ORDER,
                headers={"Idempotency-Key": f"estimate-{n:04d}"},
                auth=signed,
            )
            for n in range(3)
        ]
        read = await client.get(MISSING, auth=signed)

    assert [r.status_code for r in estimates] == [200, 200, 429]
    _assert_refused(estimates[2], 2)
    # Reads go on under the person's own limit: 4 of 10 used (three estimates, one read).
    assert read.status_code == 404
    assert read.headers["RateLimit-Remaining"] == "6"


async def test_two_gateways_on_one_database_share_the_counters(settings, clearing, signed) -> None:
    limited = _limited(settings, rate_limit_per_person=6)
    first, second = create_app(limited, clearing=clearing), create_app(limited, clearing=clearing)
    async with running_gateway(first) as one, running_gateway(second) as two:
        answers = [await (one if n % 2 else two).get(MISSING, auth=signed) for n in range(9)]

    assert [r.status_code for r in answers] == [404] * 6 + [429] * 3
    assert answers[5].headers["RateLimit-Remaining"] == "0"


async def test_health_probes_are_never_limited_even_for_a_locked_out_source(
    settings, clearing, signed
) -> None:
    app = create_app(_limited(settings, rate_limit_per_source=2), clearing=clearing)
    async with running_gateway(app) as client:
        locked = [(await client.get(MISSING, auth=signed)).status_code for _ in range(3)]
        statuses = {(await client.get("/health")).status_code for _ in range(5)}
        statuses |= {
            (await client.get(path)).status_code
            for path in ("/health/live", "/health/ready", "/metrics")
        }
        head = await client.head("/health")
    assert locked == [404, 404, 429]
    assert statuses == {200}
    assert head.status_code == 200
    assert "RateLimit-Limit" not in head.headers


async def test_limits_switched_off_count_nothing(settings, clearing, signed, db_pool) -> None:
    app = create_app(
        _limited(settings, rate_limits=False, rate_limit_per_person=1), clearing=clearing
    )
    async with running_gateway(app) as client:
        statuses = [(await client.get(MISSING, auth=signed)).status_code for _ in range(3)]
    assert statuses == [404] * 3
    assert await db_pool.fetchval("SELECT count(*) FROM rate_limit_counters") == 0


@pytest.mark.parametrize("limit", [1, 3])
async def test_counters_are_rows_of_the_current_window(
    settings, clearing, signed, db_pool, limit: int
) -> None:
    app = create_app(_limited(settings, rate_limit_per_person=limit), clearing=clearing)
    async with running_gateway(app) as client:
        for _ in range(limit + 2):
            await client.get(MISSING, auth=signed)
    rows = await db_pool.fetch("SELECT bucket, hits FROM rate_limit_counters ORDER BY bucket")
    hits = {row["bucket"].split(":", 1)[0]: row["hits"] for row in rows}
    # The refusal is remembered in the process: requests past it never reach the database.
    assert hits == {"caller": limit + 1, "person": limit + 1, "source": limit + 1}


def _other_key() -> str:
    from medpay.security.signatures import generate_key_pair

    return generate_key_pair("ed25519")[0]
