"""The rig of the band-session tests: BandSessions over the virtual radio into one spool.

``Rig`` starts sessions (bleak's public API through the simulator's VirtualBleakClient)
for bands of the processes in conftest.py, spools what they receive, and reads it back
per band; ``event`` builds a spool record for tests that need one of no real band.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bleak.backends.device import BLEDevice

from host.async_spool import AsyncSpool
from host.config import BleSection
from host.records import Event, Status
from host.session import BandSession
from host.spool import Spool
from host.stats import Stats
from simulator.radio.client import VirtualBleakClient
from tests.e2e_chain import SimProc


def cfg(sim: SimProc, **kw: Any) -> BleSection:
    base: dict[str, Any] = {
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "stable_link_s": 0.0,
        "options": {"radio": sim.radio, **kw.pop("options", {})},
    }
    base.update(kw)
    return BleSection(**base)


class Rig:
    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.spool = AsyncSpool(Spool(tmp / "spool.db", **kw))
        self.stats = Stats()
        self.tasks: list[asyncio.Task[None]] = []
        self.sessions: dict[str, BandSession] = {}

    def start(self, sim: SimProc, band: str, **kw: Any) -> BandSession:
        s = BandSession(band, cfg(sim, **kw), VirtualBleakClient, self.spool, self.stats)
        s.offer(BLEDevice(sim.address(band), "SB-" + band, None))
        self.tasks.append(asyncio.create_task(s.run()))
        self.sessions[band] = s
        return s

    def logged(self, band: str) -> list[Any]:
        return [r for _, r in self.spool.spool.read("check", 100_000) if r.band == band and
                r.logged]  # fmt: skip

    def seqs(self, band: str) -> list[int]:
        return [r.seq for r in self.logged(band)]

    def statuses(self, band: str) -> list[Status]:
        return [r for _, r in self.spool.spool.read("check", 100_000)
                if isinstance(r, Status) and r.band == band]  # fmt: skip

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.spool.close()


def event(band: str, seq: int) -> Event:
    return Event(band=band, seq=seq, boot=1, t_ms=0, kind=1, severity=1, confidence=1,
                 duration_ms=1, peak_act_x10=1, mean_act_x10=1, peak_acc_mg=1, freq_dhz=1,
                 modalities=1)  # fmt: skip
