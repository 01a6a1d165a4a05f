"""Counters shared by the bridge's tasks and the periodic stats line.

One line, key=value, so it can be grepped and parsed::

    stats in=120 dup=3 bands=3/3 reconnects=1 acked=117 full=0
    sink.mqtt=out:118,lag:2,up:1 sink.influx=out:100,lag:20,up:0
    dropped=crc:2,flood:1 loop_ms=12 gc_ms=3

``loop_ms``: the event loop's worst lateness since the previous line (a 50 ms timer
that fired that much late): every notification, spool commit and delivery waits
that long when the bridge's one core is short. ``gc_ms``: the longest garbage
collection pause since the previous line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("spasm.stats")


@dataclass
class SinkStats:
    out: int = 0  # records confirmed delivered
    errors: int = 0  # failed delivery attempts
    up: bool = False


class Pauses:
    """The event loop's worst lateness and the longest garbage-collector pause (ms),
    since the last ``take()``; measured while ``watch()`` runs."""

    def __init__(self) -> None:
        self.loop_late_ms = 0.0
        self.gc_pause_ms = 0.0
        self._gc_t0 = 0.0

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_pause_ms = max(self.gc_pause_ms, (time.perf_counter() - self._gc_t0) * 1000)

    async def watch(self, tick_s: float = 0.05) -> None:
        """Until cancelled: how late a ``tick_s`` timer fires, and every collection's pause."""
        gc.callbacks.append(self._on_gc)
        loop = asyncio.get_running_loop()
        try:
            while True:
                t = loop.time()
                await asyncio.sleep(tick_s)
                late = (loop.time() - t - tick_s) * 1000
                if late > self.loop_late_ms:
                    self.loop_late_ms = late
        finally:
            gc.callbacks.remove(self._on_gc)

    def take(self) -> tuple[float, float]:
        """(loop lateness, GC pause) so far, and start over."""
        out = (self.loop_late_ms, self.gc_pause_ms)
        self.loop_late_ms = self.gc_pause_ms = 0.0
        return out


@dataclass
class Stats:
    received: Counter[str] = field(default_factory=Counter)  # by record type
    duplicates: int = 0
    acked: int = 0  # ACK commands written to bands
    reconnects: int = 0  # links lost (or refused) and tried again
    dropped: Counter[str] = field(default_factory=Counter)  # frames dropped, by reason
    disconnects: Counter[str] = field(default_factory=Counter)  # peers we dropped, by reason
    sinks: dict[str, SinkStats] = field(default_factory=dict)
    bands_linked: set[str] = field(default_factory=set)
    bands_known: set[str] = field(default_factory=set)
    spool_full: bool = False
    pauses: Pauses = field(default_factory=Pauses)  # since the last stats line

    def sink(self, name: str) -> SinkStats:
        return self.sinks.setdefault(name, SinkStats())

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def line(self, lags: dict[str, int]) -> str:
        parts = [
            f"in={sum(self.received.values())}",
            f"dup={self.duplicates}",
            f"bands={len(self.bands_linked)}/{len(self.bands_known)}",
            f"reconnects={self.reconnects}",
            f"acked={self.acked}",
            f"full={int(self.spool_full)}",
        ]
        for name in sorted(self.sinks):
            s = self.sinks[name]
            parts.append(
                f"sink.{name}=out:{s.out},lag:{lags.get(name, 0)},up:{int(s.up)},err:{s.errors}"
            )
        dropped = ",".join(f"{k}:{v}" for k, v in sorted(self.dropped.items())) or "0"
        parts.append(f"dropped={dropped}")
        if self.disconnects:
            parts.append(
                "kicked=" + ",".join(f"{k}:{v}" for k, v in sorted(self.disconnects.items()))
            )
        parts.append(f"loop_ms={round(self.pauses.loop_late_ms)}")
        parts.append(f"gc_ms={round(self.pauses.gc_pause_ms)}")
        return "stats " + " ".join(parts)


async def report_forever(
    stats: Stats, interval_s: float, lags: Callable[[], Awaitable[dict[str, int]]]
) -> None:
    """Log the stats line every ``interval_s`` seconds until cancelled."""
    watch = asyncio.create_task(stats.pauses.watch())
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                current = await lags()
            except Exception as e:  # a stats line must never take the bridge down
                log.warning("stats: cannot read sink lag: %s", e)
                current = {}
            log.info("%s", stats.line(current))
            stats.pauses.take()
    finally:
        watch.cancel()
