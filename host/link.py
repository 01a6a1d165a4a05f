"""Per-link plumbing for a band session: which frames go where, the notification inbox
with its flood guard, the band-time to UTC map, reconnect backoff, drop reasons.

The bleak notification callbacks only append to the inbox (they run on the event
loop and must not block); the session's pump does the work.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bleak.backends.characteristic import BleakGATTCharacteristic

from host.records import Record
from protocol import codec, gatt, segmentation

CHARS = {
    "events": gatt.EVENTS,
    "signal": gatt.SIGNAL,
    "control": gatt.CONTROL,
    "status": gatt.STATUS,
}
# Which band->host types may arrive on which characteristic.
ALLOWED = {
    "events": (codec.EVENT, codec.ONSET, codec.MARKER, codec.FAULT),
    "signal": (codec.SIGNAL,),
    "control": (codec.CONFIG_VALUE, codec.ERROR),
    "status": (codec.STATUS,),
}


class Kick(Exception):
    """We drop the peer (flood, garbage); the reason is the message."""


def now_ms() -> int:
    return int(time.time() * 1000)


def drop_reason(e: codec.FrameError) -> str:
    if isinstance(e, codec.SegmentError) and "too long" in e.detail:
        return "oversized"
    return {
        codec.E_CRC: "crc",
        codec.E_LENGTH: "length",
        codec.E_VERSION: "version",
        codec.E_TYPE: "type",
        codec.E_RANGE: "range",
        codec.E_SEGMENT: "segment",
    }.get(e.code, "bad_frame")


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, so bands spread out."""
    d = min(cap, initial * (2 ** min(attempt, 30)))
    return d / 2 + rng.uniform(0, d / 2)


@dataclass
class ClockMap:
    """Maps one boot's band time to UTC from (band ms, host UTC) observations on this link.

    Every observation's host time is at or after the band's, so the smallest
    (utc - band_ms) seen is the best estimate of the boot's UTC.
    """

    boot: int = -1
    utc_at_boot: int | None = None

    def observe(self, boot: int, band_ms: int, utc_ms: int) -> None:
        cand = utc_ms - band_ms
        if boot != self.boot or self.utc_at_boot is None:
            self.boot, self.utc_at_boot = boot, cand
        elif cand < self.utc_at_boot:
            self.utc_at_boot = cand

    def stamp(self, rec: Record, received_ms: int) -> int:
        if rec.utc_ms:
            return rec.utc_ms
        if rec.boot == self.boot and self.utc_at_boot is not None:
            return self.utc_at_boot + rec.band_ms
        return received_ms


@dataclass
class Link:
    """State of one connection: the inbox the bleak callbacks fill without blocking."""

    mtu: int
    limit_per_s: int
    inbox_size: int
    inbox: asyncio.Queue[tuple[str, bytes, int] | None] = field(default_factory=asyncio.Queue)
    joiners: dict[str, segmentation.Reassembler] = field(default_factory=dict)
    window_start: float = 0.0
    window_count: int = 0
    bad: int = 0
    kick: str = ""

    def callback(self, name: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            if self.kick:
                return
            t = time.monotonic()
            if t - self.window_start >= 1.0:
                self.window_start, self.window_count = t, 0
            self.window_count += 1
            if self.window_count > self.limit_per_s or self.inbox.qsize() >= self.inbox_size:
                self.kick = "flood"
                self.inbox.put_nowait(None)
                return
            self.inbox.put_nowait((name, bytes(data), now_ms()))

        return on_notify
