"""Answers encoded once, as the bytes an idempotent POST stores and replays."""

from __future__ import annotations

import msgspec
from litestar import Response

__all__ = ["encoder", "json_response"]

encoder = msgspec.json.Encoder()


def json_response(answer: object, status: int, location: str | None = None) -> Response[bytes]:
    """``answer`` as JSON bytes with ``status`` (and ``Location`` for a created resource)."""
    return Response(
        content=encoder.encode(answer),
        status_code=status,
        media_type="application/json",
        headers={"Location": location} if location else None,
    )
