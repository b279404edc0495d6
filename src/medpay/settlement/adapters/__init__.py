"""Clearing adapters: one module per provincial wire format, one interface (``base``)."""

from __future__ import annotations

__all__: list[str] = []
