"""The observability foundation's rules: what a traceparent is, what a label or log field may be."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from medpay.observability import bind_log_context, observe_rate_limited
from medpay.observability.context import clear_log_context, log_context
from medpay.observability.tracing import client_span, parse_traceparent, server_span

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        VALID + "-extra",  # version 00 has exactly four fields
        "00-" + "a" * 300,
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent("01" + VALID[2:] + "-future") == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "01",
    )


def test_outbound_calls_name_the_gateways_hop_as_parent() -> None:
    clear_log_context()
    with server_span("GET /x", {"traceparent": VALID, "tracestate": "app=1"}):
        hop = log_context()
        with client_span("province 2207", {}) as (headers, _):
            pass
    assert headers["traceparent"] == f"00-{hop['trace_id']}-{hop['span_id']}-01"
    assert hop["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert headers["tracestate"] == "app=1"


def test_a_rate_limit_refusal_is_counted_by_scope() -> None:
    before = REGISTRY.get_sample_value("medpay_rate_limited_total", {"scope": "estimate"}) or 0.0
    observe_rate_limited("estimate")
    assert (
        REGISTRY.get_sample_value("medpay_rate_limited_total", {"scope": "estimate"}) == before + 1
    )


@pytest.mark.parametrize("scope", ["33000000000000000001", "app:demo", "", "App"])
def test_a_rate_limit_scope_cannot_be_an_identifier(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        observe_rate_limited(scope)


def test_only_identifiers_of_requests_and_messages_can_be_bound_to_logs() -> None:
    with pytest.raises(ValueError, match="psn_no"):
        bind_log_context(psn_no="33000000000000000001")
