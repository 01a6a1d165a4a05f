"""The loop every sink runs: read after its cursor in the spool, deliver, advance the cursor.

A sink that is down only grows its own lag: BLE intake writes the spool and
never waits for a sink. Failed deliveries are retried with capped exponential
backoff; the whole batch is re-sent (at-least-once; the ends are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod

from host.async_spool import AsyncSpool
from host.records import Record
from host.stats import Stats

log = logging.getLogger("spasm.sink")


class SinkDown(RuntimeError):
    """The sink's server is not reachable right now."""


class Sink(ABC):
    name: str = "sink"

    @abstractmethod
    async def start(self) -> None:
        """Start background work (connections); return quickly."""

    @abstractmethod
    async def deliver(self, records: list[Record]) -> None:
        """Deliver all of ``records`` or raise."""

    @abstractmethod
    async def close(self) -> None:
        """Stop background work and release connections."""

    @property
    def up(self) -> bool:
        return True


async def drain_forever(
    sink: Sink,
    spool: AsyncSpool,
    stats: Stats,
    wake: asyncio.Event,
    batch: int,
    backoff_max_s: float,
    idle_s: float = 1.0,
) -> None:
    """Deliver the spool to ``sink`` until cancelled.

    With a backlog (a full batch read), the next batch is read while this one is
    delivered; a failed delivery drops that read and starts again from the cursor.
    """
    st = stats.sink(sink.name)
    await spool.register(sink.name)
    failures = 0
    rng = random.Random()
    ahead: asyncio.Task[list[tuple[int, Record]]] | None = None
    try:
        while True:
            if ahead is not None:
                rows, ahead = await ahead, None
            else:
                rows = await spool.read(sink.name, batch)
            if not rows:
                wake.clear()
                # Re-check after clearing so a record spooled in between is not missed.
                rows = await spool.read(sink.name, batch)
                if not rows:
                    try:
                        await asyncio.wait_for(wake.wait(), idle_s)
                    except TimeoutError:
                        pass
                    continue
            if len(rows) == batch:
                # a backlog (an outage, a slow server): read the next batch (from the file,
                # on the spool's thread) while this one is delivered
                ahead = asyncio.create_task(spool.read(sink.name, batch, after=rows[-1][0]))
            try:
                await sink.deliver([r for _, r in rows])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if ahead is not None:
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)
                    ahead = None  # read again from the cursor: the same batch
                st.errors += 1
                st.up = sink.up
                failures += 1
                delay = min(backoff_max_s, 0.1 * 2 ** min(failures, 20))
                delay = delay / 2 + rng.uniform(0, delay / 2)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "sink %s: delivery failed (%s: %s); retrying in %.1f s",
                        sink.name,
                        type(e).__name__,
                        e,
                        delay,
                    )
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("sink %s: delivering again after %d failed attempts", sink.name, failures)
            failures = 0
            st.up = True
            await spool.commit(sink.name, rows[-1][0])
            st.out += len(rows)
    finally:
        if ahead is not None:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
