"""Structured logs: the standard library's ``logging``, one JSON object a line (structlog's formatter).

Every module keeps logging through ``logging.getLogger(...)``; this only decides how a
record is written. structlog's ``ProcessorFormatter`` renders each record with the
fields bound in :mod:`medpay.observability.context` (request id, payment id, msgid,
trace), the ``extra`` a call passes, the level, the logger's name and an ISO time in
UTC, and a traceback as a ``exception`` string. The handler writes to stderr, where a
container's log collector reads it.

httpx and httpcore are held at WARNING: httpx writes one INFO line per request, which
cost about 7 % of the gateway's CPU in the benchmark (docs/performance.md) and says
nothing the ``medpay_province_calls_total`` series does not.

Every value written is passed through :func:`medpay.privacy.masked_text` last, the
traceback included: a person, identity or phone number in an exception's text or a
province's message never reaches the log unmasked (``tests/integration/test_privacy.py``).

Only the production entry points (``medpay.asgi``, ``medpay serve``, ``medpay run``) call
:func:`configure_logging`; ``create_app`` leaves logging alone, so tests and embedding
programs keep their own configuration.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog

from medpay.privacy import masked_text

__all__ = ["configure_logging", "json_formatter"]

#: Libraries whose INFO lines are per request and say nothing an operator needs.
QUIET_LOGGERS = ("httpx", "httpcore")


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]


def _mask_identifiers(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> dict[str, Any]:
    """Mask person, identity and phone numbers in every text of the record."""
    return {
        key: masked_text(value) if isinstance(value, str) else value for key, value in event.items()
    }


def json_formatter() -> logging.Formatter:
    """A formatter writing each record as one JSON object with the bound context."""
    return _formatter(
        structlog.processors.EventRenamer("message"),
        _mask_identifiers,
        structlog.processors.JSONRenderer(default=str, ensure_ascii=False),
    )


def _text_formatter() -> logging.Formatter:
    return _formatter(_mask_identifiers, structlog.dev.ConsoleRenderer(colors=False))


def _formatter(*renderers: Any) -> logging.Formatter:
    """Records of structlog and the standard library alike, exceptions written out, then these."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            *renderers,
        ],
    )


def configure_logging(
    *, log_format: str = "json", level: str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as JSON (``json``) or text (``text``).

    Replaces the root logger's handlers; loggers created earlier keep working (none is
    disabled). Returns the handler, so a test can remove it again.

    Raises:
        ValueError: an unknown format or level.
    """
    if log_format not in ("json", "text"):
        raise ValueError(f"MEDPAY_LOG_FORMAT must be json or text, not {log_format!r}")
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        raise ValueError(f"MEDPAY_LOG_LEVEL is not a logging level: {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else _text_formatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level_number))
    return handler
