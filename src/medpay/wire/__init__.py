"""Wire formats shared by the gateway and the provincial platform simulator.

The simulator plays a separate system: this package (and ``medpay.db`` for
infrastructure) is all it may import from medpay, so both ends speak exactly the
same structures (DOMAIN.md section 8).

Layer: foundations. May import ``medpay.clock`` only.
"""

from __future__ import annotations

__all__: list[str] = []
