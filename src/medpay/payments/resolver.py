"""The resolver: every unfinished payment ends settled, failed or reversed.

It watches payments left ``received`` (the process died before sending), ``settling``
(no answer within the grace period), ``unknown`` (a timeout, a reset, a 5xx) and
``reversing``, asks the province what their msgid did and records it, re-sending the
*same* request under the *same* msgid when the province never saw it. Its schedule
lives in the payments table (``next_check_at``), so a restarted resolver, or another
gateway process, picks up where it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from medpay.clock import backoff_seconds, repeat
from medpay.observability import bind_log_context
from medpay.payments import queries
from medpay.payments.states import UNFINISHED_STATES
from medpay.settlement.adapters.base import ClearingError

if TYPE_CHECKING:
    import asyncpg

    from medpay.payments.flow import PaymentFlow

__all__ = ["PaymentResolver"]

_log = logging.getLogger("medpay.resolver")
#: How long a claimed payment is reserved for the resolver that claimed it.
LEASE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0


@dataclasses.dataclass(eq=False, repr=False)
class PaymentResolver:
    """Resolves unfinished payments in the background."""

    pool: asyncpg.Pool
    flow: PaymentFlow
    _: dataclasses.KW_ONLY
    interval_seconds: float = 1.0
    batch: int = 20

    async def run_once(self) -> int:
        """Look at every payment that is due; return how many ended in a final state."""
        claimed = await self.pool.fetch(queries.CLAIM_UNFINISHED, self.batch, LEASE_SECONDS)
        finished = await asyncio.gather(
            *(self._resolve(row["payment_id"], row["check_attempts"]) for row in claimed)
        )
        return sum(finished)

    async def _resolve(self, payment_id: object, attempts: int) -> bool:
        bind_log_context(payment_id=payment_id)  # each gathered task has its own context
        try:
            state = await self.flow.resolve(payment_id)  # type: ignore[arg-type]
        except ClearingError as exc:  # the province could not tell us now
            _log.info(
                "payment %s still unresolved (%s); next look in %.0f s",
                payment_id,
                exc.code,
                backoff_seconds(attempts, most=MAX_BACKOFF_SECONDS),
            )
            state = None
        except Exception:
            _log.exception("resolving payment %s failed", payment_id)
            state = None
        if state is not None and state not in UNFINISHED_STATES:
            return True
        await self.pool.execute(
            queries.RESCHEDULE, payment_id, backoff_seconds(attempts, most=MAX_BACKOFF_SECONDS)
        )
        return False

    async def run_forever(self) -> None:
        """Resolve until cancelled."""
        await repeat(self.run_once, every=self.interval_seconds, log=_log, what="resolver pass")

    async def unfinished(self) -> int:
        """How many payments are not yet in a final state (for operators and the chaos run)."""
        return int(await self.pool.fetchval(queries.COUNT_UNFINISHED))
