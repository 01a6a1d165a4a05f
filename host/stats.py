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
    loop_late_ms: float = 0.0  # worst event-loop lateness since the last stats line
    gc_pause_ms: float = 0.0  # longest garbage-collector pause since the last stats line

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
        parts.append(f"loop_ms={round(self.loop_late_ms)}")
        parts.append(f"gc_ms={round(self.gc_pause_ms)}")
        return "stats " + " ".join(parts)


async def report_forever(
    stats: Stats, interval_s: float, lags: Callable[[], Awaitable[dict[str, int]]]
) -> None:
    """Log the stats line every ``interval_s`` seconds until cancelled."""
    watch = asyncio.create_task(watch_loop(stats))
    started = [0.0]

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            stats.gc_pause_ms = max(stats.gc_pause_ms, (time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(on_gc)
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                current = await lags()
            except Exception as e:  # a stats line must never take the bridge down
                log.warning("stats: cannot read sink lag: %s", e)
                current = {}
            log.info("%s", stats.line(current))
            stats.loop_late_ms = stats.gc_pause_ms = 0.0
    finally:
        watch.cancel()
        gc.callbacks.remove(on_gc)


async def watch_loop(stats: Stats, tick_s: float = 0.05) -> None:
    """Keep ``stats.loop_late_ms``: how late a ``tick_s`` timer fires, at worst."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(tick_s)
        late = (loop.time() - t - tick_s) * 1000
        if late > stats.loop_late_ms:
            stats.loop_late_ms = late
