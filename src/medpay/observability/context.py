"""What every log line of a request carries: request id, payment id, msgid, trace.

The fields live in context variables (structlog's ``contextvars`` module, which the JSON
formatter merges into each line), so code deep in the payment flow logs them without
passing them around: the request middleware binds the request id and trace, a route or
the resolver binds the payment id, the adapter binds the msgid of its call. An asyncio
task copies the context when it starts, so a background task keeps what was bound
before it began and never leaks into a request.

Only the names in :data:`LOG_CONTEXT_FIELDS` can be bound: never a person's number, a
certificate number, a name or a phone number (issue 12, item 3).
"""

from __future__ import annotations

import structlog

__all__ = ["LOG_CONTEXT_FIELDS", "bind_log_context", "clear_log_context", "log_context"]

#: Identifiers that say which request, payment and message a line is about, nothing personal.
LOG_CONTEXT_FIELDS = frozenset({"request_id", "payment_id", "msgid", "trace_id", "span_id"})


def bind_log_context(**fields: object) -> None:
    """Bind ``fields`` for the rest of this task's work; a value of None is skipped.

    Raises:
        ValueError: a field that is not in :data:`LOG_CONTEXT_FIELDS`.
    """
    unknown = fields.keys() - LOG_CONTEXT_FIELDS
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}")
    structlog.contextvars.bind_contextvars(
        **{name: str(value) for name, value in fields.items() if value is not None}
    )


def clear_log_context() -> None:
    """Forget everything bound (a request starts from nothing)."""
    structlog.contextvars.clear_contextvars()


def log_context() -> dict[str, object]:
    """What is bound now."""
    return structlog.contextvars.get_contextvars()
