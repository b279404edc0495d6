"""The provincial platform simulator: a separate system that plays every insured place.

It imports nothing from medpay except the shared wire format (``medpay.wire``) and
database infrastructure (``medpay.db``), so it could be split into its own service
unchanged. Entry points: ``config.load_config`` / ``config.default_config``,
``app.create_simulator_app``, ``runner.start_server`` / ``runner.serve_simulator``.
"""

from __future__ import annotations

__all__: list[str] = []
