"""Routes of signed callers declared by what they do: a route, a summary, a call into a service.

Agencies, operators and institutions act through many small endpoints that differ
only in their route, body and service call. Each is written as a function whose
first parameter is the :class:`Act` (who signed, the pool and, for a POST, its
Idempotency-Key) and whose other parameters are the path and query parameters as
Litestar takes them, and ``data``, the body, by its type::

    AGENCY = Signers(kinds=("agency",), security=AGENCY_SECURITY)

    @signed_post("/{filing_id:str}/changes", "changeFiling", "Change a filing", AGENCY)
    async def change(act: Act[SigningParty], filing_id: FromPath[str], data: FilingChange) -> FilingView:
        return await change_filing(act.pool, filing_id, data, agency=act.caller, idempotency_key=act.key)

:func:`signed_post` and :func:`signed_get` turn it into a Litestar route handler
with the caller's guard, the injected resources and, for a POST, idempotency (the
view it returns is answered as JSON, and replayed for a repeat of the request).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import asyncpg
from litestar import Response, get
from litestar.params import JSONBody

from medpay.http import Injected
from medpay.http.openapi import OPERATOR_SECURITY
from medpay.http.problems import problem_responses
from medpay.security.guards import signed_by
from medpay.security.idempotency import IdempotentPost, idempotent_post

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from litestar.handlers import HTTPRouteHandler

    from medpay.security.guards import CallerKind

__all__ = ["OPERATORS", "Act", "Scoped", "Signers", "signed_get", "signed_post"]


class Scoped(Protocol):
    """A caller whose Idempotency-Keys live in a scope of its own (``agency:<id>``, ...)."""

    @property
    def scope(self) -> str:
        """The scope of its keys."""
        ...


C = TypeVar("C", bound=Scoped)


@dataclasses.dataclass(frozen=True, slots=True)
class Act(Generic[C]):
    """What a signed caller's action runs with."""

    caller: C
    pool: asyncpg.Pool
    #: The request's Idempotency-Key and digest (empty for a read).
    key: str = ""
    digest: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Signers:
    """Who may call a group of routes, how it is documented, and what they may answer."""

    kinds: tuple[CallerKind, ...]
    security: list[dict[str, list[str]]]
    #: Problem statuses the routes document.
    problems: tuple[int, ...] = (400, 401, 404, 409, 413, 422)
    #: Where a created or changed resource lives (a POST answer's Location), from the
    #: view answered and the route's parameters: ``location(view, **params)``.
    location: Callable[..., str] | None = None


#: Operators, where their routes need nothing else of their own.
OPERATORS = Signers(kinds=("operator",), security=OPERATOR_SECURITY)

# The generic aliases, applied to types known only at run time (mypy sees them as Any).
_JSON_BODY: Any = JSONBody
_INJECTED: Any = Injected
_RESPONSE: Any = Response


def _handler(
    action: Callable[..., Awaitable[Any]],
    *,
    idempotent: bool,
    status: int,
    location: Callable[..., str] | None,
) -> Callable[..., Awaitable[Any]]:
    """A Litestar handler around ``action``: its own parameters, plus the injected ones."""
    hints = typing.get_type_hints(action, include_extras=True)
    own = list(inspect.signature(action).parameters.values())[1:]  # all but the Act
    params = [
        p.replace(
            kind=inspect.Parameter.KEYWORD_ONLY,
            annotation=_JSON_BODY[hints[p.name]] if p.name == "data" else hints[p.name],
        )
        for p in own
    ]
    injected = {"caller": _INJECTED[Any], "pool": _INJECTED[asyncpg.Pool]}
    if idempotent:
        injected["idempotent"] = _INJECTED[IdempotentPost]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        for name, annotation in injected.items()
    ]
    answer = hints["return"]

    async def handler(**kwargs: Any) -> Any:
        caller, pool = kwargs.pop("caller"), kwargs.pop("pool")
        if not idempotent:
            return await action(Act(caller, pool), **kwargs)
        post: IdempotentPost = kwargs.pop("idempotent")
        return await post.answer(
            scope=caller.scope,
            status=status,
            run=lambda key, digest: action(Act(caller, pool, key, digest), **kwargs),
            location=(lambda view: location(view, **kwargs)) if location else None,
        )

    returns = _RESPONSE[answer] if idempotent else answer
    handler.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    handler.__name__ = handler.__qualname__ = action.__name__
    handler.__doc__ = action.__doc__
    handler.__module__ = action.__module__
    return handler


def _signed(
    method: Callable[..., Any],
    path: str,
    operation_id: str,
    summary: str,
    signers: Signers,
    problems: Sequence[int],
    route: dict[str, Any],
) -> Callable[..., Any]:
    """``method`` (a route decorator) with what every signed route has: guard, security, problems."""
    return method(
        path,
        operation_id=operation_id,
        summary=summary,
        guards=[signed_by(*signers.kinds), *route.pop("guards", [])],
        security=signers.security,
        responses=problem_responses(*problems),
        **route,
    )


def signed_post(
    path: str,
    operation_id: str,
    summary: str,
    signers: Signers,
    *,
    status: int = 200,
    problems: Sequence[int] | None = None,
    **route: Any,
) -> Callable[[Callable[..., Awaitable[Any]]], HTTPRouteHandler]:
    """An idempotent POST by one of ``signers``, answered with ``status``."""

    def declare(action: Callable[..., Awaitable[Any]]) -> HTTPRouteHandler:
        handler = _handler(action, idempotent=True, status=status, location=signers.location)
        return _signed(
            idempotent_post,
            path,
            operation_id,
            summary,
            signers,
            problems or signers.problems,
            {"status_code": status, **route},
        )(handler)

    return declare


def signed_get(
    path: str,
    operation_id: str,
    summary: str,
    signers: Signers,
    *,
    problems: Sequence[int] = (401, 404),
    **route: Any,
) -> Callable[[Callable[..., Awaitable[Any]]], HTTPRouteHandler]:
    """A read by one of ``signers``."""

    def declare(action: Callable[..., Awaitable[Any]]) -> HTTPRouteHandler:
        handler = _handler(action, idempotent=False, status=200, location=None)
        return _signed(get, path, operation_id, summary, signers, problems, route)(handler)

    return declare
