"""Deliver a province's callbacks to the gateway, as an unreliable province would.

Each callback (DOMAIN.md section 8, our profile) is encoded once, so every delivery
of it, a retry or a duplicate, carries the very same body and ``callback_id``; each
attempt is signed afresh with the province's key (``X-Province-Timestamp``,
``X-Province-Signature``; Ed25519 or SM2, amounts in fen or yuan, by the province's
profile, :mod:`.profiles`), so a late retry is still inside the gateway's window.
Delivery runs in background tasks after the work is committed, retries with
exponential backoff until a 2xx, and gives up after ``callback_max_attempts``. The
fault knobs decide, with seeded draws, whether a callback is dropped, delivered twice,
or delayed. Only loopback URLs are ever called (``config.check_loopback_url``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import logging
import random
from typing import TYPE_CHECKING, Literal

import httpx
import msgspec

from medpay.simulator.config import check_loopback_url
from medpay.wire.national import callback_path

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Coroutine
    from typing import Any

    from medpay.simulator.config import FaultKnobs, SimulatorConfig
    from medpay.simulator.profiles import ProvinceWire
    from medpay.wire.national import SettlementCallback

__all__ = ["CallbackDelivery", "CallbackSender", "TaskGroup"]

logger = logging.getLogger("medpay.simulator.callbacks")

#: How many deliveries the admin log keeps (the oldest are forgotten).
DELIVERY_LOG_SIZE = 10_000

DeliveryStatus = Literal["pending", "delivered", "gave_up", "dropped", "cancelled"]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings httpx makes for a client, made once (reading the CA bundle: 20 ms).

    Callbacks go to loopback over plain HTTP, but httpx builds the context anyway.
    """
    return httpx.create_ssl_context(trust_env=False)


class CallbackDelivery(msgspec.Struct, kw_only=True):
    """One delivery of one callback (admin view): a duplicate is a second delivery."""

    callback_id: str
    province: str
    ref_msgid: str
    infno: str
    ord_stas: str
    copy: int  # 1, or 2 for the duplicate
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    url: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None


class TaskGroup:
    """Background tasks owned by the app's lifespan: tracked, logged, cancelled at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def open(self) -> None:
        """Accept tasks again (the lifespan starts)."""
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` in the background (refused once closing: the coroutine is closed)."""
        if self._closed:
            coro.close()
            logger.warning("not starting %s: shutting down", name)
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class CallbackSender:
    """Sends callbacks for every province of the simulator (see module docstring)."""

    def __init__(
        self,
        config: SimulatorConfig,
        wires: dict[str, ProvinceWire],
        tasks: TaskGroup,
        faults: Callable[[str], FaultKnobs],
    ) -> None:
        self.base_url = config.callback_base_url
        self._config = config
        self._wires = wires
        self._tasks = tasks
        self._faults = faults
        self._randoms = {
            admdvs: random.Random(  # noqa: S311 - fault draws, not secrets
                None if config.seed is None else f"{config.seed}:{admdvs}:callbacks"
            )
            for admdvs in wires
        }
        self._client: httpx.AsyncClient | None = None
        self.log: collections.deque[CallbackDelivery] = collections.deque(maxlen=DELIVERY_LOG_SIZE)

    @property
    def enabled(self) -> bool:
        """Whether callbacks are sent at all (a callback base URL is set)."""
        return self.base_url is not None

    def set_base_url(self, url: str | None) -> None:
        """Send later callbacks to ``url`` (loopback only), or stop sending (None)."""
        self.base_url = None if url is None else check_loopback_url(url)

    async def start(self) -> None:
        """Open the HTTP client (the lifespan calls this)."""
        self._client = httpx.AsyncClient(
            timeout=self._config.callback_timeout_s,
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
        )

    async def stop(self) -> None:
        """Close the HTTP client (after the tasks are cancelled)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def send(self, province: str, callback: SettlementCallback) -> None:
        """Schedule ``callback``'s delivery, subject to the province's callback faults."""
        base_url = self.base_url
        if base_url is None:
            return
        faults = self._faults(province)
        rng = self._randoms[province]
        dropped = rng.random() < faults.callback_drop_rate  # both draws every time
        duplicated = rng.random() < faults.callback_duplicate_rate
        now = dt.datetime.now(dt.UTC)
        url = base_url.rstrip("/") + callback_path(province)
        first = CallbackDelivery(
            callback_id=callback.callback_id,
            province=province,
            ref_msgid=callback.ref_msgid,
            infno=callback.infno,
            ord_stas=callback.ord_stas,
            copy=1,
            url=url,
            created_at=now,
        )
        copies = [first, msgspec.structs.replace(first, copy=2)] if duplicated else [first]
        if dropped:
            copies[0].status = "dropped"
            copies[0].finished_at = now
            self.log.append(copies[0])
            logger.info("dropping callback %s (fault)", callback.callback_id)
            return
        self.log.extend(copies)
        self._tasks.spawn(
            self._deliver_all(
                url, self._wires[province].callback(callback), copies, faults.callback_delay_ms
            ),
            name=f"callback {callback.callback_id}",
        )

    async def _deliver_all(
        self, url: str, body: bytes, copies: list[CallbackDelivery], delay_ms: int
    ) -> None:
        try:
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            for delivery in copies:  # the duplicate follows the first delivery
                await self._deliver(url, body, delivery)
        except asyncio.CancelledError:
            for delivery in copies:
                if delivery.status == "pending":
                    delivery.status = "cancelled"
                    delivery.finished_at = dt.datetime.now(dt.UTC)
            raise

    async def _deliver(self, url: str, body: bytes, delivery: CallbackDelivery) -> None:
        """POST until a 2xx, at most ``callback_max_attempts`` times, backing off."""
        config = self._config
        wire = self._wires[delivery.province]
        wait_ms = config.callback_retry_ms
        for attempt in range(1, config.callback_max_attempts + 1):
            delivery.attempts = attempt
            client = self._client
            if client is None:
                raise RuntimeError("the callback sender is not started")
            headers = {"Content-Type": "application/json", **wire.sign(body)}
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                delivery.last_error = repr(exc)
                delivery.last_status_code = None
            else:
                delivery.last_status_code = response.status_code
                if 200 <= response.status_code < 300:
                    delivery.status = "delivered"
                    delivery.last_error = None
                    delivery.finished_at = dt.datetime.now(dt.UTC)
                    return
                delivery.last_error = f"HTTP {response.status_code}"
            if attempt < config.callback_max_attempts:
                await asyncio.sleep(wait_ms / 1000)
                wait_ms = min(wait_ms * 2, config.callback_retry_max_ms)
        delivery.status = "gave_up"
        delivery.finished_at = dt.datetime.now(dt.UTC)
        logger.warning(
            "callback %s to %s: gave up after %d attempts (%s)",
            delivery.callback_id,
            url,
            delivery.attempts,
            delivery.last_error,
        )
