"""Database foundations: the asyncpg pool, the embedded PostgreSQL we own, migrations.

Layer: foundations. Imports nothing of medpay's domains; the simulator shares it.
"""

from __future__ import annotations

__all__: list[str] = []
