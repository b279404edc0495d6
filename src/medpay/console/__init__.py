"""The operator console: a few server-rendered pages over the books, for people with a browser.

Operators log in with a username and a password (argon2id) and get a server-side
session in PostgreSQL; every form carries the session's CSRF token. The pages read what
the signed operator API reads, through the same service functions (books,
reconciliation, clearing): today's volumes by province, the reconciliation
differences, a period's clearing matrix as a heat map, and a payment's whole story.

Layer: above books, below the wiring. Excluded from the OpenAPI document: HTML for
browsers, not an API.
"""

from __future__ import annotations

__all__: list[str] = []
