"""Request signatures, nonces, identity tokens, idempotency and the guards that use them.

Layer: security (above the foundations). It knows keys and signatures, not which
registry holds them: the wiring hands the guards one lookup per kind of caller.
"""

from __future__ import annotations

__all__: list[str] = []
