"""W3C trace context: accepted from apps, carried to the provinces; spans only when configured.

Two modes, chosen once per process by :func:`configure_tracing`
(``MEDPAY_OTEL_EXPORTER``):

* ``none`` (the default): no span is recorded or exported. A request's ``traceparent``
  is parsed here (W3C Trace Context, level 1); its trace id is kept, or a new one made,
  and the gateway's hop gets a span id of its own. Calls to the provinces carry
  ``traceparent: 00-<trace id>-<our span id>-<flags>`` and the app's ``tracestate``, and
  every log line carries ``trace_id`` and ``span_id``: a trace can be followed from app
  to province through the logs at the cost of a few random bytes.
* ``console`` or ``otlp``: the OpenTelemetry SDK (``pip install medpay[otel]``) records a
  server span per request and a client span per province call, propagated with the
  API's ``traceparent`` propagator and exported in batches (to stdout, or by OTLP over
  HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``).

Either way the module's two entry points are the same: :func:`server_span` around a
request, :func:`client_span` around an outbound call, which yields the headers to send.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from medpay.observability.context import bind_log_context

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "TraceParent",
    "client_span",
    "configure_tracing",
    "parse_traceparent",
    "server_span",
    "tracing_mode",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: tracestate is passed on as the app sent it, if it is no longer than the spec's 512.
_TRACESTATE_MAX = 512


class TraceParent:
    """One hop of a trace: its trace id, this hop's span id, and the sampled flag."""

    __slots__ = ("flags", "span_id", "trace_id", "tracestate")

    def __init__(self, trace_id: str, span_id: str, flags: str, tracestate: str | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.tracestate = tracestate

    def header(self) -> str:
        """The ``traceparent`` that names this hop as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid ``traceparent``, or None (W3C Trace Context section 3.2).

    Version ``ff`` and all-zero ids are invalid; a version above ``00`` may carry more
    fields after the four we read, version ``00`` may not.
    """
    if not value or len(value) > 256:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if parent_id == _ZERO_SPAN:
        return None
    return trace_id, flags


def _new_id(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


_hop: contextvars.ContextVar[TraceParent | None] = contextvars.ContextVar(
    "medpay_trace_hop", default=None
)


class _Mode:
    name = "none"
    tracer: trace.Tracer | None = None


_mode = _Mode()


def tracing_mode() -> str:
    """``none``, ``console`` or ``otlp``: what :func:`configure_tracing` set up."""
    return _mode.name


def configure_tracing(exporter: str, *, service_name: str = "medpay-gateway") -> None:
    """Set up spans for ``exporter`` (``none``, ``console``, ``otlp``), once per process.

    Raises:
        ValueError: an unknown exporter.
        RuntimeError: spans asked for without the OpenTelemetry SDK installed.
    """
    if exporter not in ("none", "console", "otlp"):
        raise ValueError(f"MEDPAY_OTEL_EXPORTER must be none, console or otlp, not {exporter!r}")
    if exporter == _mode.name:
        return
    if exporter == "none":
        _mode.name, _mode.tracer = "none", None
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "MEDPAY_OTEL_EXPORTER needs the OpenTelemetry SDK: pip install 'medpay[otel]'"
        ) from exc
    span_exporter: Any
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    _mode.name, _mode.tracer = exporter, trace.get_tracer("medpay")


@contextlib.contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """The gateway's hop of the trace named by ``headers`` (``traceparent``, ``tracestate``).

    Binds ``trace_id`` and ``span_id`` to the log context. Yields the span (OpenTelemetry)
    or None; a caller may set attributes on the span it gets.
    """
    tracer = _mode.tracer
    if tracer is None:
        parsed = parse_traceparent(headers.get("traceparent"))
        trace_id, flags = parsed if parsed else (_new_id(16), "00")
        state = headers.get("tracestate") if parsed else None
        hop = TraceParent(
            trace_id,
            _new_id(8),
            flags,
            state if state and len(state) <= _TRACESTATE_MAX else None,
        )
        token = _hop.set(hop)
        bind_log_context(trace_id=hop.trace_id, span_id=hop.span_id)
        try:
            yield None
        finally:
            _hop.reset(token)
        return
    carrier = {k: v for k in ("traceparent", "tracestate") if (v := headers.get(k))}
    parent = propagate.extract(carrier)
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.SERVER, attributes=dict(attributes or {})
    ) as span:
        context = span.get_span_context()
        bind_log_context(
            trace_id=trace.format_trace_id(context.trace_id),
            span_id=trace.format_span_id(context.span_id),
        )
        yield span


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, Any]) -> Iterator[tuple[dict[str, str], Any]]:
    """An outbound call's span: yields (the headers to send, the span or None).

    Without spans the headers name the request's hop as parent (or, outside a request,
    as in the resolver, a new trace of their own).
    """
    tracer = _mode.tracer
    if tracer is None:
        hop = _hop.get() or TraceParent(_new_id(16), _new_id(8), "00", None)
        headers = {"traceparent": hop.header()}
        if hop.tracestate:
            headers["tracestate"] = hop.tracestate
        yield headers, None
        return
    with tracer.start_as_current_span(
        name, kind=trace.SpanKind.CLIENT, attributes=dict(attributes)
    ) as span:
        headers = {}
        propagate.inject(headers, context=otel_context.get_current())
        yield headers, span
