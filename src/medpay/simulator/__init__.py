"""The provincial platform simulator: a separate system that plays every insured place.

It imports nothing from medpay except the shared wire format (``medpay.wire``) and
database infrastructure (``medpay.db``), so it could be split into its own service
unchanged (an import-linter contract keeps it so). Its sample persons are a data
file both systems read (``medpay/samples/persons.json``); the gateway learns how to
reach it from the clearing configuration it exports (``config.clearing_provinces``).
Entry points: ``config.load_config`` / ``config.default_config``,
``app.create_simulator_app``; ``medpay simulator`` serves it.
"""

from __future__ import annotations

__all__: list[str] = []
