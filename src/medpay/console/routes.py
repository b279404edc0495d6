"""The console's pages: log in and out, today's volumes, differences, clearing, a payment's story.

HTML for browsers under ``/console``, excluded from the OpenAPI document. The pages call
the same service functions as the signed operator API (``medpay.books``,
``medpay.reconciliation``, ``medpay.clearing``); the API is unchanged and still needs
its signatures, whatever cookie a request carries.
"""

from __future__ import annotations

import datetime as dt
import uuid
from importlib import resources
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, Router, get, post
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from medpay.books.service import parse_payment_id, payment_story, volumes_on
from medpay.clearing.service import clearing_matrix, parse_period, period_of
from medpay.clock import china_today
from medpay.console.logins import authenticate
from medpay.console.sessions import Console, ConsoleSession, is_token, new_token, tokens_match
from medpay.console.views import heat_map
from medpay.console.web import (
    HOME_PATH,
    LOGIN_COOKIE,
    LOGIN_PATH,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    console_session_guard,
    cookie_name,
    exception_handlers,
    expired_cookie,
    is_secure,
    page,
    provide_console,
    provide_console_session,
    read_form,
    refuse_cross_site,
    token_cookie,
)
from medpay.errors import InvalidRequest, NotFound, RateLimited, Unauthenticated
from medpay.http import Injected
from medpay.reconciliation.service import explain_difference, list_differences

__all__ = ["console_router"]

#: How long a login form may wait to be sent.
LOGIN_FORM_SECONDS = 3600
_LOGIN_FIELDS = frozenset({"username", "password", "csrf_token"})
_EXPLANATION_FIELDS = frozenset({"note", "csrf_token"})
_OPEN_SHOWN = 500
_RESOLVED_SHOWN = 50
_NOTE_LENGTH = (3, 1000)
_DIFFERENCE_DIGITS = 18  # a bigint has 19; 18 digits always fit


def _login_form(
    request: Request[Any, Any, Any],
    console: Console,
    *,
    status_code: int = 200,
    message: str | None = None,
    username: str = "",
    headers: dict[str, str] | None = None,
) -> Template:
    """The login page with a new form token, also set in the form's own cookie."""
    secure = is_secure(console, request)
    token = new_token()
    return page(
        "login.html",
        None,
        status_code=status_code,
        headers=headers,
        cookies=[token_cookie(LOGIN_COOKIE, token, secure=secure, max_age=LOGIN_FORM_SECONDS)],
        csrf_token=token,
        message=message,
        username=username,
        active="login",
    )


class LoginController(Controller):
    """Logging in: no session yet, so the form is protected by a double-submitted token."""

    path = "/"

    @get("/login")
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        console: Injected[Console],
        ended: Annotated[int | None, QueryParameter(ge=1, le=1)] = None,
    ) -> Response[Any]:
        """The form; an operator already logged in goes to the first page instead."""
        secure = is_secure(console, request)
        if await console.session(request.cookies.get(cookie_name(SESSION_COOKIE, secure=secure))):
            return Redirect(HOME_PATH, status_code=303, headers=SECURITY_HEADERS)
        message = "Your session has ended. Log in again." if ended else None
        return _login_form(request, console, message=message)

    @post("/login", status_code=303)
    async def login(
        self, request: Request[Any, Any, Any], console: Injected[Console]
    ) -> Response[Any]:
        """Check the form's token, then the username and password; a session on success."""
        refuse_cross_site(request)
        form = await read_form(request, _LOGIN_FIELDS)
        secure = is_secure(console, request)
        expected = request.cookies.get(cookie_name(LOGIN_COOKIE, secure=secure))
        username = form.get("username", "")
        if not is_token(expected) or not tokens_match(expected or "", form.get("csrf_token")):
            return _login_form(
                request,
                console,
                status_code=403,
                username=username,
                message="The form had expired or did not come from this page. Log in again.",
            )
        try:
            operator = await authenticate(
                console.pool, username, form.get("password", ""), console.login_policy
            )
        except Unauthenticated as refused:
            return _login_form(
                request, console, status_code=401, username=username, message=refused.title + "."
            )
        except RateLimited as locked:
            return _login_form(
                request,
                console,
                status_code=429,
                username=username,
                message=f"{locked.title}. {locked.detail}",
                headers={"Retry-After": str(locked.retry_after_s)},
            )
        token = await console.open_session(operator.operator_id)
        return Redirect(
            HOME_PATH,
            status_code=303,
            headers=SECURITY_HEADERS,
            cookies=[
                token_cookie(SESSION_COOKIE, token, secure=secure),
                expired_cookie(LOGIN_COOKIE, secure=secure),
            ],
        )


class ConsolePages(Controller):
    """What a logged-in operator reads, and the two things they do: explain, log out."""

    path = "/"
    guards = [console_session_guard]

    @post("/logout", status_code=303)
    async def logout(
        self,
        request: Request[Any, Any, Any],
        console: Injected[Console],
        session: Injected[ConsoleSession],
    ) -> Response[Any]:
        """The session is revoked and its cookie forgotten."""
        await console.close_session(session.session_id)
        return Redirect(
            LOGIN_PATH,
            status_code=303,
            headers=SECURITY_HEADERS,
            cookies=[expired_cookie(SESSION_COOKIE, secure=is_secure(console, request))],
        )

    @get("/")
    async def volumes(
        self,
        session: Injected[ConsoleSession],
        pool: Injected[asyncpg.Pool],
        day: Annotated[dt.date | None, QueryParameter(name="date")] = None,
    ) -> Template:
        """A service date's payments and amounts by insured province (default today, China)."""
        volumes = await volumes_on(pool, day)
        return page("volumes.html", session, volumes=volumes, today=china_today(), active="volumes")

    @get("/differences")
    async def differences(
        self, session: Injected[ConsoleSession], pool: Injected[asyncpg.Pool]
    ) -> Template:
        """The open differences, then the last ones resolved and what resolved them."""
        still_open = await list_differences(pool, status="open", limit=_OPEN_SHOWN)
        resolved = await list_differences(pool, status="resolved", limit=_RESOLVED_SHOWN)
        return page(
            "differences.html",
            session,
            open=still_open.differences,
            more_open=still_open.next_before is not None,
            resolved=resolved.differences,
            active="differences",
        )

    @post("/differences/{difference_id:str}/explanation", status_code=303)
    async def explain(
        self,
        request: Request[Any, Any, Any],
        difference_id: FromPath[str],
        session: Injected[ConsoleSession],
        pool: Injected[asyncpg.Pool],
    ) -> Response[Any]:
        """A person's explanation resolves an open difference (nothing in the books changes)."""
        number = _difference_number(difference_id)
        form = await read_form(request, _EXPLANATION_FIELDS)
        note = form.get("note", "").strip()
        if not _NOTE_LENGTH[0] <= len(note) <= _NOTE_LENGTH[1]:
            raise _note_refused()
        await explain_difference(pool, number, operator_id=session.operator_id, note=note)
        return Redirect(
            f"/console/differences#difference-{number}",
            status_code=303,
            headers=SECURITY_HEADERS,
        )

    @get("/clearing")
    async def clearing(
        self,
        session: Injected[ConsoleSession],
        pool: Injected[asyncpg.Pool],
        period: Annotated[str | None, QueryParameter(max_length=20)] = None,
    ) -> Template:
        """A period's clearing matrix as a heat map, with each province's net position."""
        chosen = parse_period(period) if period else period_of(china_today())
        matrix = await clearing_matrix(pool, chosen)
        return page(
            "clearing.html", session, matrix=matrix, heat=heat_map(matrix), active="clearing"
        )

    @get("/payments")
    async def find_payment(
        self,
        session: Injected[ConsoleSession],
        payment_id: Annotated[str | None, QueryParameter(name="id", max_length=200)] = None,
    ) -> Response[Any]:
        """The search box: a payment id goes to its story."""
        text = (payment_id or "").strip()
        if not text:
            return Redirect(HOME_PATH, status_code=303, headers=SECURITY_HEADERS)
        try:
            found = uuid.UUID(text)
        except ValueError:
            raise NotFound(
                "payment_not_found",
                "No such payment",
                "A payment id looks like 0b6e4c1e-2f1d-4c89-9d0a-5b7f3a1c2e4d.",
            ) from None
        return Redirect(f"/console/payments/{found}", status_code=303, headers=SECURITY_HEADERS)

    @get("/payments/{payment_id:str}")
    async def story(
        self,
        session: Injected[ConsoleSession],
        pool: Injected[asyncpg.Pool],
        payment_id: FromPath[str],
    ) -> Template:
        """A payment's whole story: states, province messages, callbacks, journals."""
        story = await payment_story(pool, parse_payment_id(payment_id))
        return page("payment.html", session, story=story, active="payment")

    @get("/{rest:path}")
    async def nowhere(self, rest: FromPath[str]) -> None:
        """Any other console path, for an operator logged in: an HTML 404."""
        raise NotFound("page_not_found", "No such page", "The console has no page at this address.")


def _difference_number(text: str) -> int:
    """A difference's number in a path; anything else (or too large for one) is unknown."""
    if not text.isascii() or not text.isdigit() or len(text) > _DIFFERENCE_DIGITS:
        raise NotFound("difference_not_found", "No such reconciliation difference")
    return int(text)


def _note_refused() -> InvalidRequest:
    return InvalidRequest(
        "explanation_invalid",
        "The explanation is not valid",
        f"Say what was found and done, in {_NOTE_LENGTH[0]} to {_NOTE_LENGTH[1]} characters.",
    )


_STYLESHEET = resources.files("medpay.console").joinpath("static/console.css").read_bytes()


@get("/console.css")
async def stylesheet() -> Response[bytes]:
    """The console's one stylesheet (the CSP allows styles from here only)."""
    return Response(
        content=_STYLESHEET,
        media_type="text/css",
        headers={
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


#: Everything under /console: HTML for browsers, not part of the API's document.
console_router = Router(
    path="/console",
    route_handlers=[LoginController, ConsolePages, stylesheet],
    dependencies={
        "console": Provide(provide_console, sync_to_thread=False),
        "session": Provide(provide_console_session, sync_to_thread=False),
    },
    exception_handlers=exception_handlers,
    include_in_schema=False,
)
