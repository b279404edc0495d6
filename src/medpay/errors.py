"""Domain errors: a refusal with a stable ``code``, and no HTTP in sight.

Services raise these; the HTTP edge (:mod:`medpay.http.problems`) turns each kind
into its status and an ``application/problem+json`` document, once, for every route.
A service says *what kind* of refusal it is (the request is malformed, the caller is
not who it claims, a rule of the domain says no, the province failed), never which
status code that is.

Foundation module: imports nothing of medpay.
"""

from __future__ import annotations

from typing import ClassVar, Literal

__all__ = [
    "Conflict",
    "Credential",
    "DomainError",
    "ErrorKind",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "Refused",
    "Unauthenticated",
    "UpstreamFailed",
    "UpstreamUnavailable",
]

ErrorKind = Literal[
    "invalid",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "refused",
    "rate_limited",
    "upstream_failed",
    "upstream_unavailable",
]
#: Which credential an :class:`Unauthenticated` is about: the request signature or the
#: patient's identity token (the edge names the scheme to use again).
Credential = Literal["signature", "identity"]


class DomainError(Exception):
    """A failure the caller should see: its kind, stable code, title and detail.

    ``retry_after_s`` says when trying again may help (a request still in progress, a
    province that could not be reached, a limit).
    """

    kind: ClassVar[ErrorKind] = "refused"

    def __init__(
        self,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail or title}")
        self.code = code
        self.title = title
        self.detail = detail
        self.retry_after_s = retry_after_s


class InvalidRequest(DomainError):
    """The request is malformed or incomplete (a missing header, a bad key)."""

    kind = "invalid"


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""

    kind = "unauthenticated"

    def __init__(
        self,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        credential: Credential = "signature",
    ) -> None:
        super().__init__(code, title, detail)
        self.credential = credential


class Forbidden(DomainError):
    """The caller is known but may not do this."""

    kind = "forbidden"


class NotFound(DomainError):
    """No such thing, or not the caller's (the two look the same from outside)."""

    kind = "not_found"


class Conflict(DomainError):
    """The current state does not allow this (already reversed, key reused, in progress)."""

    kind = "conflict"


class Refused(DomainError):
    """Understood, and refused by a rule of the domain (DOMAIN.md)."""

    kind = "refused"


class RateLimited(DomainError):
    """The caller sent more than its limit allows; ``retry_after_s`` says when to return."""

    kind = "rate_limited"


class UpstreamFailed(DomainError):
    """A province refused or answered badly; nothing we can say about the request itself."""

    kind = "upstream_failed"


class UpstreamUnavailable(DomainError):
    """A province could not be reached; nothing happened there."""

    kind = "upstream_unavailable"
