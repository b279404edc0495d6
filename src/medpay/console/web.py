"""The console's HTTP edge for browsers: the session guard, forms, cookies and HTML errors.

The cookie carries only the session's token and is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no request another site starts carries it, not even a link
followed: the console has no inbound links worth a session, and it keeps every page
out of reach of cross-site requests) and ``Secure`` when the console is reached over
HTTPS, then named ``__Host-...`` so that no other host can set it; ``Path=/`` as that
prefix requires. It has no expiry: it ends with the browser, the session's timeouts
are the server's.

Every POST is a form (``application/x-www-form-urlencoded``, read strictly here: the
JSON strictness of :mod:`medpay.http.strict` applies to handlers with a ``data``
body, which these have not) and must carry its session's CSRF token; the login form,
before any session, carries a token that must equal the one in its own short cookie
(double submit). A POST the browser says another site started (``Sec-Fetch-Site``) is
refused before either is looked at. Errors are HTML pages, and a request without a
live session is sent to the login page.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from medpay.console.sessions import CONSOLE_STATE_KEY, Console, ConsoleSession, tokens_match
from medpay.errors import DomainError, Forbidden, InvalidRequest
from medpay.http.problems import status_of

if TYPE_CHECKING:
    from litestar import Request
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = [
    "HOME_PATH",
    "LOGIN_COOKIE",
    "LOGIN_PATH",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "LoginRequired",
    "UnsupportedForm",
    "console_of",
    "console_session_guard",
    "cookie_name",
    "exception_handlers",
    "expired_cookie",
    "is_secure",
    "page",
    "provide_console",
    "provide_console_session",
    "read_form",
    "refuse_cross_site",
    "session_of",
    "token_cookie",
]

_log = logging.getLogger("medpay.console")

HOME_PATH = "/console/"
LOGIN_PATH = "/console/login"
SESSION_COOKIE = "medpay_console"
LOGIN_COOKIE = "medpay_console_login"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_FORM_FIELDS_MAX = 16
# Text a form may carry: no control characters but tab and line ends.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: Every console answer: nothing cached, no framing, no script or style from elsewhere.
SECURITY_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page (``ended``: it had one)."""

    def __init__(self, *, ended: bool) -> None:
        super().__init__("login required")
        self.ended = ended


class UnsupportedForm(HTTPException):
    """A POST that is not an HTML form."""

    status_code = 415


def console_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Console:
    """The console the wiring put on the application's state."""
    return cast("Console", connection.app.state[CONSOLE_STATE_KEY])


def provide_console(request: Request[Any, Any, Any]) -> Console:
    """The console, for handlers."""
    return console_of(request)


def is_secure(console: Console, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the console's cookies are Secure on this request."""
    if console.cookie_secure is not None:
        return console.cookie_secure
    return connection.url.scheme == "https"


def cookie_name(base: str, *, secure: bool) -> str:
    """``__Host-`` prefixed when Secure: only this host, over HTTPS, on path /, can set it."""
    return f"__Host-{base}" if secure else base


def token_cookie(base: str, token: str, *, secure: bool, max_age: int | None = None) -> Cookie:
    """A cookie carrying ``token`` and nothing else."""
    return Cookie(
        key=cookie_name(base, secure=secure),
        value=token,
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=max_age,
    )


def expired_cookie(base: str, *, secure: bool) -> Cookie:
    """What makes the browser forget the cookie ``base``."""
    return Cookie(
        key=cookie_name(base, secure=secure),
        value="",
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=0,
        expires=0,
    )


def refuse_cross_site(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Refuse a request the browser says another site started (a forged form, say)."""
    site = connection.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise _forged()


def _forged() -> Forbidden:
    return Forbidden(
        "csrf_token_invalid",
        "The form did not come from this console",
        "It was sent from another page or has expired. Reload the page and send it again.",
    )


async def read_form(
    request: Request[Any, Any, Any], fields: frozenset[str] | None = None
) -> dict[str, str]:
    """The fields of an HTML form, each once; ``fields``: the only ones it may have.

    415 for a body that is not a form; 400 for one that does not parse, repeats a field,
    has one it should not, or carries control characters.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise UnsupportedForm(detail="Send the form as application/x-www-form-urlencoded.")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            encoding="utf-8",
            errors="strict",
            max_num_fields=_FORM_FIELDS_MAX,
        )
    except (UnicodeDecodeError, ValueError):
        raise _bad_form("The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _bad_form(f"The field {name!r} is sent twice.")
        if fields is not None and name not in fields:
            raise _bad_form(f"The form has no field {name!r}.")
        if _CONTROL.search(value):
            raise _bad_form(f"The field {name!r} contains control characters.")
        form[name] = value
    return form


def _bad_form(detail: str) -> InvalidRequest:
    return InvalidRequest("form_invalid", "The form is not valid", detail)


async def console_session_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A live session, or the login page; a POST must also carry the session's CSRF token."""
    console = console_of(connection)
    token = connection.cookies.get(
        cookie_name(SESSION_COOKIE, secure=is_secure(console, connection))
    )
    session = await console.session(token)
    if session is None:
        raise LoginRequired(ended=token is not None)
    connection.state.console_session = session
    if cast("Request[Any, Any, Any]", connection).method == "POST":
        refuse_cross_site(connection)
        form = await read_form(cast("Request[Any, Any, Any]", connection))
        if not tokens_match(session.csrf_token, form.get("csrf_token")):
            raise _forged()


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession | None:
    """The session the guard found for this request, if it got that far."""
    return cast("ConsoleSession | None", connection.state.get("console_session"))


def provide_console_session(request: Request[Any, Any, Any]) -> ConsoleSession:
    """The live session of this request (found by :func:`console_session_guard`)."""
    session = session_of(request)
    assert session is not None, "a page with a session is guarded by console_session_guard"
    return session


def page(
    name: str,
    session: ConsoleSession | None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    """The page ``name`` (a template) with the console's headers."""
    return Template(
        template_name=name,
        context={"session": session, **context},
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
        cookies=cookies,
        media_type=MediaType.HTML,
    )


def _error_page(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> Template:
    return page(
        "error.html",
        session_of(request),
        status_code=status,
        headers=headers,
        status=status,
        title=title,
        detail=detail,
        active="",
    )


def _on_login_required(request: Request[Any, Any, Any], exc: LoginRequired) -> Redirect:
    target = f"{LOGIN_PATH}?ended=1" if exc.ended else LOGIN_PATH
    secure = is_secure(console_of(request), request)
    cookies = [expired_cookie(SESSION_COOKIE, secure=secure)] if exc.ended else None
    return Redirect(target, status_code=303, headers=SECURITY_HEADERS, cookies=cookies)


def _on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Template:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return _error_page(request, status_of(exc), exc.title, exc.detail, headers)


_HTTP_TITLES = {
    400: "The request is not valid",
    404: "No such page",
    405: "Method not allowed",
    408: "The request did not arrive in time",
    413: "The form is too large",
    415: "Not a form",
}


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    status = exc.status_code
    if status >= 500:
        return _on_unexpected(request, exc)
    title = _HTTP_TITLES.get(status, "The request was refused")
    detail = exc.detail if exc.detail and exc.detail != title else None
    return _error_page(request, status, title, detail)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Template:
    _log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_page(
        request, 500, "Something went wrong", "Nothing was changed. Try again in a moment."
    )


#: The console's errors, as pages (the router's; the API keeps its problem documents).
exception_handlers: dict[type[Exception] | int, Any] = {
    LoginRequired: _on_login_required,
    DomainError: _on_domain_error,
    HTTPException: _on_http_exception,
    Exception: _on_unexpected,
}
