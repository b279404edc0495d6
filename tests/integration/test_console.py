"""The operator console over real HTTP: logging in and out, sessions, CSRF, the lockout, the pages.

What a browser does, done with httpx (it keeps cookies as a browser does); the console
in Chromium is ``test_console_browser``. Most tests need no province, so they serve a
gateway without the simulator (``http``); passwords are hashed at argon2's least cost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from medpay.app import create_app
from medpay.client import AppSignatureAuth
from medpay.clock import china_today
from medpay.console.passwords import PasswordHashing
from medpay.console.views import yuan

from .books_helpers import FUNDED_ORDER, GUANGDONG_RESIDENT, pay
from .conftest import operator_auth, problem, running_gateway
from .console_helpers import CHEAP_HASHING, PASSWORD, USERNAME, form_token, give_login, log_in

HTML = "text/html; charset=utf-8"
PAGES = ["/console/", "/console/differences", "/console/clearing", "/console/payments/x"]


@pytest.fixture
def settings(settings):
    """The test gateway's settings, hashing passwords cheaply."""
    return msgspec.structs.replace(settings, **CHEAP_HASHING)


@pytest.fixture
async def http(settings) -> AsyncIterator[httpx.AsyncClient]:
    """A browser's view of a gateway connected to no province (most pages need none)."""
    async with running_gateway(create_app(settings)) as client:
        yield client


@pytest.fixture
async def login(db_pool, operator) -> str:
    """The operator fixture logs in as ``USERNAME``; its operator id."""
    await give_login(db_pool, operator.party_id)
    return operator.party_id


@pytest.fixture
async def logged_in(http, login) -> httpx.AsyncClient:
    """A browser with a live console session in its cookies."""
    response = await log_in(http)
    assert response.status_code == 303, response.text
    return http


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def _attributes(set_cookie: str) -> set[str]:
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


async def _sessions(db_pool) -> list[dict]:
    rows = await db_pool.fetch("SELECT * FROM operator_sessions ORDER BY session_id")
    return [dict(row) for row in rows]


# --- without a session ----------------------------------------------------------------------


async def test_every_page_sends_a_browser_without_a_session_to_log_in(http, login) -> None:
    for path in [*PAGES, "/console/no-such-page"]:
        response = await http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
        assert response.headers["cache-control"] == "no-store"
    for value in ["x", "A" * 43, "' OR 1=1 --"]:  # a cookie that is no session's
        response = await http.get("/console/", headers={"cookie": f"medpay_console={value}"})
        assert response.headers["location"] == "/console/login?ended=1"


# --- logging in -----------------------------------------------------------------------------


async def test_logging_in_sets_a_session_cookie_carrying_only_a_random_token(
    http, login, db_pool
) -> None:
    form = await http.get("/console/login")
    form_cookie = _set_cookies(form)["medpay_console_login"]

    response = await http.post(
        "/console/login",
        data={"username": USERNAME.upper(), "password": PASSWORD, "csrf_token": form_token(form)},
    )

    assert form.headers["content-type"] == HTML
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    assert form_cookie.split(";")[0] == f"medpay_console_login={form_token(form)}"
    assert {"httponly", "samesite=strict", "path=/"} <= _attributes(form_cookie)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/"
    cookies = _set_cookies(response)
    token = cookies["medpay_console"].split(";")[0].split("=", 1)[1]
    attributes = _attributes(cookies["medpay_console"])
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP on loopback
    assert not any(
        a.startswith(("max-age", "expires")) for a in attributes
    )  # ends with the browser
    assert len(token) == 43
    assert "max-age=0" in _attributes(cookies["medpay_console_login"])  # the form's token is spent
    (session,) = await _sessions(db_pool)
    assert session["operator_id"] == login
    assert session["token_digest"] == hashlib.sha256(token.encode()).digest()
    lifetime = session["expires_at"] - session["created_at"]
    assert lifetime.total_seconds() == pytest.approx(12 * 3600, abs=5)
    home = await http.get("/console/")
    assert home.status_code == 200
    assert "Clearing desk (clearing.desk)" in home.text


async def test_over_https_the_cookies_are_secure_and_host_only(http, login) -> None:
    https = {"x-forwarded-proto": "https"}  # the TLS proxy in front, trusted on loopback
    form = await http.get("/console/login", headers=https)
    token = form_token(form)

    response = await http.post(
        "/console/login",
        data={"username": USERNAME, "password": PASSWORD, "csrf_token": token},
        headers={**https, "cookie": f"__Host-medpay_console_login={token}"},
    )

    assert "secure" in _attributes(_set_cookies(form)["__Host-medpay_console_login"])
    assert response.status_code == 303, response.text
    session_cookie = _set_cookies(response)["__Host-medpay_console"]
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= _attributes(session_cookie)
    assert "domain" not in session_cookie.lower()


async def test_a_password_hashed_at_another_cost_is_rehashed_at_login(http, operator, db_pool):
    await give_login(db_pool, operator.party_id, hashing=PasswordHashing())  # the default cost

    assert (await log_in(http)).status_code == 303
    rehashed = await db_pool.fetchval("SELECT password_hash FROM operator_logins")
    assert rehashed.startswith("$argon2id$v=19$m=8,t=1,p=1$")  # the gateway's cost
    http.cookies.clear()
    assert (await log_in(http)).status_code == 303


async def test_a_wrong_password_an_unknown_username_and_a_suspended_operator_are_refused_alike(
    http, login, db_pool
) -> None:
    wrong_password = await log_in(http, password="not the password at all")
    unknown_user = await log_in(http, username="nobody.here")
    malformed_user = await log_in(http, username="<script>")
    await db_pool.execute("UPDATE operators SET status = 'suspended' WHERE operator_id = $1", login)
    suspended = await log_in(http)

    for refused in (wrong_password, unknown_user, malformed_user, suspended):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == HTML
        assert "The username or password is wrong." in refused.text
        assert "medpay_console" not in _set_cookies(refused)
    assert "&lt;script&gt;" in malformed_user.text and "<script>" not in malformed_user.text
    assert await _sessions(db_pool) == []


async def test_repeated_failures_lock_the_username_even_for_the_right_password(
    http, login, db_pool
) -> None:
    failures = [await log_in(http, password=f"wrong password {n}") for n in range(5)]

    locked = await log_in(http)  # the right password, too late

    assert [f.status_code for f in failures] == [401] * 5
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "Too many failed logins. This username is locked for 15 minutes" in locked.text
    assert await _sessions(db_pool) == []
    await db_pool.execute(  # the window passes
        "UPDATE operator_login_attempts SET window_started_at = now() - interval '16 minutes'"
    )
    for n in range(4):
        await log_in(http, password=f"wrong again {n}")
    assert (await log_in(http)).status_code == 303  # the fifth attempt of the new window
    http.cookies.clear()  # another browser: a success cleared the count
    assert [(await log_in(http, password=f"{n} wrong")).status_code for n in range(5)] == [401] * 5


async def test_an_unknown_username_is_locked_out_the_same_way(http, login) -> None:
    refused = [(await log_in(http, username="nobody.here", password=f"{n}")) for n in range(5)]

    locked = await log_in(http, username="nobody.here")

    assert [r.status_code for r in refused] == [401] * 5
    assert locked.status_code == 429
    assert "This username is locked" in locked.text
    assert (await log_in(http)).status_code == 303  # another username is not


# --- CSRF ------------------------------------------------------------------------------------


async def test_a_login_form_without_its_token_or_from_another_site_is_refused(
    http, login, db_pool
) -> None:
    credentials = {"username": USERNAME, "password": PASSWORD}
    no_token = await http.post("/console/login", data=credentials)
    await http.get("/console/login")  # the form's cookie, but another token in the form
    wrong_token = await http.post("/console/login", data={**credentials, "csrf_token": "A" * 43})
    cross_site = await log_in(http, **{"sec-fetch-site": "cross-site"})

    for refused in (no_token, wrong_token):
        assert refused.status_code == 403
        assert "did not come from this page" in refused.text
    assert cross_site.status_code == 403
    assert cross_site.headers["content-type"] == HTML
    assert await _sessions(db_pool) == []


async def test_a_post_without_the_sessions_csrf_token_is_refused(logged_in) -> None:
    token = form_token(await logged_in.get("/console/"))
    async with httpx.AsyncClient(base_url=logged_in.base_url) as other_browser:
        await log_in(other_browser)
        others = form_token(await other_browser.get("/console/"))
    assert others != token

    for path in ["/console/logout", "/console/differences/1/explanation"]:
        for data, headers in [
            ({"note": "explained"}, {}),
            ({"note": "explained", "csrf_token": "A" * 43}, {}),
            ({"note": "explained", "csrf_token": others}, {}),
            ({"note": "explained", "csrf_token": token}, {"sec-fetch-site": "same-site"}),
        ]:
            refused = await logged_in.post(path, data=data, headers=headers)
            assert refused.status_code == 403, (path, data, headers)
            assert refused.headers["content-type"] == HTML
            assert "The form did not come from this console" in refused.text
    assert (await logged_in.get("/console/")).status_code == 200  # still logged in


async def test_a_post_that_is_not_a_proper_form_gets_an_html_error(logged_in) -> None:
    for content, content_type, status in [
        (b'{"csrf_token": "x"}', "application/json", 415),
        (b"csrf_token=a&csrf_token=b", "application/x-www-form-urlencoded", 400),
        (b"csrf_token=%00", "application/x-www-form-urlencoded", 400),
        (b"csrf_token=%ff", "application/x-www-form-urlencoded", 400),
        (b"&&==", "application/x-www-form-urlencoded", 400),
    ]:
        response = await logged_in.post(
            "/console/logout", content=content, headers={"content-type": content_type}
        )
        assert response.status_code == status, content
        assert response.headers["content-type"] == HTML


# --- logging out, and sessions that end --------------------------------------------------------


async def test_logging_out_revokes_the_session_for_good(logged_in, db_pool) -> None:
    old_cookie = logged_in.cookies["medpay_console"]
    token = form_token(await logged_in.get("/console/"))

    response = await logged_in.post("/console/logout", data={"csrf_token": token})
    replayed = await logged_in.get("/console/", headers={"cookie": f"medpay_console={old_cookie}"})

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert "max-age=0" in _attributes(_set_cookies(response)["medpay_console"])
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/console/login?ended=1"
    (session,) = await _sessions(db_pool)
    assert session["revoked_reason"] == "logout" and session["revoked_at"] is not None


async def test_a_session_idle_too_long_ends(logged_in, db_pool) -> None:
    idle = (
        "UPDATE operator_sessions"
        " SET created_at = now() - interval '2 hours', last_seen_at = now() - $1::interval"
    )
    await db_pool.execute(idle, dt.timedelta(minutes=29))
    alive = await logged_in.get("/console/")  # and seen now
    await db_pool.execute(idle, dt.timedelta(minutes=31))

    ended = await logged_in.get("/console/clearing")
    login_page = await logged_in.get(ended.headers["location"])

    assert alive.status_code == 200
    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/login?ended=1"
    assert "max-age=0" in _attributes(_set_cookies(ended)["medpay_console"])
    assert "Your session has ended" in login_page.text


async def test_a_session_ends_at_its_absolute_expiry_however_active(logged_in, db_pool) -> None:
    await db_pool.execute(
        "UPDATE operator_sessions SET created_at = now() - interval '13 hours',"
        " last_seen_at = now(), expires_at = now() - interval '1 hour'"
    )

    ended = await logged_in.get("/console/")

    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/login?ended=1"


async def test_a_new_login_or_a_suspension_ends_the_operators_sessions(
    logged_in, login, db_pool
) -> None:
    await give_login(db_pool, login, password="another long passphrase")

    assert (await logged_in.get("/console/")).status_code == 303
    (session,) = await _sessions(db_pool)
    assert session["revoked_reason"] == "login_changed"
    assert (await log_in(logged_in, password="another long passphrase")).status_code == 303
    await db_pool.execute("UPDATE operators SET status = 'suspended' WHERE operator_id = $1", login)
    assert (await logged_in.get("/console/")).status_code == 303


# --- the pages -------------------------------------------------------------------------------


async def test_the_pages_show_yuan_and_mask_the_person_number(
    client, login, patient_app, identity_issuer
) -> None:
    guangdong = AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(GUANGDONG_RESIDENT)
    )
    paid = await pay(client, guangdong, FUNDED_ORDER)
    assert (await log_in(client)).status_code == 303

    volumes = await client.get("/console/")
    found = await client.get("/console/payments", params={"id": f" {paid['payment_id']} "})
    story = await client.get(found.headers["location"])

    assert f"Payments of {china_today()} (today)" in volumes.text
    assert '<tr data-province="440000">' in volumes.text
    assert f"<td>{yuan(paid['medical_fee_total_fen'])}</td>" in volumes.text
    assert found.status_code == 303
    assert found.headers["location"] == f"/console/payments/{paid['payment_id']}"
    assert story.status_code == 200
    assert "4400************0002" in story.text
    assert GUANGDONG_RESIDENT not in story.text
    assert f"<td>{yuan(paid['settlement']['fund_total_fen'])}</td>" in story.text
    assert "<td>settling</td>" in story.text and "<td>settled</td>" in story.text
    assert "2207 settlement" in story.text


async def test_bad_input_on_a_page_is_an_html_error_never_a_500(logged_in) -> None:
    for path, status in [
        ("/console/payments?id=nope", 404),
        (f"/console/payments/{uuid.UUID(int=0)}", 404),
        ("/console/payments/" + "9" * 40, 404),
        ("/console/no-such-page", 404),
        ("/console/clearing?period=2026-13", 400),
        ("/console/?date=2026-02-30", 400),
        ("/console/clearing?period=2026-11&period=2026-12", 400),
    ]:
        response = await logged_in.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"] == HTML


async def test_an_operator_explains_a_difference_from_the_page(
    client, login, signed, simulator, gateway, db_pool
) -> None:
    from medpay.plugin import resources_of
    from medpay.reconciliation.service import Reconciler

    paid = await pay(client, signed)
    async with httpx.AsyncClient(base_url=simulator.url) as province:
        await province.put(
            f"/admin/settlements/{paid['settlement']['settlement_id']}/basic-fund",
            json={"hifp_pay": paid["settlement"]["basic_fund_fen"] + 7},
        )
    reconciler = Reconciler(db_pool, resources_of(gateway).payment_flow, retry_seconds=0.01)
    await reconciler.reconcile("330000", china_today(), triggered_by="test")
    assert (await log_in(client)).status_code == 303
    listed = await client.get("/console/differences")
    number = await db_pool.fetchval("SELECT difference_id FROM reconciliation_differences")
    explain = f"/console/differences/{number}/explanation"
    token = form_token(listed)

    too_short = await client.post(explain, data={"note": " ok ", "csrf_token": token})
    explained = await client.post(
        explain, data={"note": "Province corrected its statement, ticket 42.", "csrf_token": token}
    )
    again = await client.post(explain, data={"note": "Once more.", "csrf_token": token})
    unknown = [
        await client.post(
            f"/console/differences/{number}/explanation",
            data={"note": "No such thing.", "csrf_token": token},
        )
        for number in ("0", "9" * 30, "x1")
    ]
    shown = await client.get("/console/differences")

    assert f'<tr id="difference-{number}">' in listed.text and "figures_differ" in listed.text
    assert too_short.status_code == 400
    assert explained.status_code == 303
    assert again.status_code == 409 and "already resolved" in again.text
    assert [u.status_code for u in unknown] == [404, 404, 404]
    assert all(u.headers["content-type"] == HTML for u in unknown)
    row = await db_pool.fetchrow("SELECT status, resolved_by FROM reconciliation_differences")
    assert (row["status"], row["resolved_by"]) == ("resolved", "operator:op_clearing")
    assert "No open difference" in shown.text
    assert "Province corrected its statement, ticket 42." in shown.text


# --- the signed API is unchanged ----------------------------------------------------------------


async def test_the_signed_api_neither_needs_nor_accepts_the_console_cookie(
    logged_in, operator
) -> None:
    with_cookie_only = await logged_in.get("/v1/books/volumes")
    signed = await logged_in.get("/v1/books/volumes", auth=operator_auth(operator))

    assert with_cookie_only.status_code == 401
    assert problem(with_cookie_only)["code"] == "signature_missing"
    assert signed.status_code == 200
    assert signed.json()["day"] == china_today().isoformat()


async def test_a_refunded_payment_links_its_refund_and_the_lines_kept(
    client, login, patient_app, identity_issuer
) -> None:
    guangdong = AppSignatureAuth(
        patient_app.app_id, patient_app.private_key_pem, identity_issuer.issue(GUANGDONG_RESIDENT)
    )
    paid = await pay(client, guangdong, FUNDED_ORDER)
    refund = await client.post(
        f"/v1/payments/{paid['payment_id']}/refunds",
        json={"items": [{"line_no": 2, "quantity": 1}], "reason": "returned"},
        headers={"Idempotency-Key": f"console-refund-{uuid.uuid4().hex}"},
        auth=guangdong,
    )
    assert refund.status_code == 201, refund.text
    body = refund.json()
    assert body["state"] == "refunded"
    kept = body["replacement_payment_id"]
    assert (await log_in(client)).status_code == 303

    original = await client.get(f"/console/payments/{paid['payment_id']}")
    replacement = await client.get(f"/console/payments/{kept}")

    assert original.status_code == replacement.status_code == 200
    assert f"<code>{body['refund_id']}</code>: partial, returned" in original.text
    assert f'the lines kept: <a href="/console/payments/{kept}">' in original.text
    assert f'<a id="replaces" href="/console/payments/{paid["payment_id"]}">' in replacement.text
    assert f'; of <a href="/console/payments/{paid["payment_id"]}">' in replacement.text
