"""One virtual band of the fleet (simulator/fleet.py): signals, radio, board, app.

The board is a VirtualBoard running the unmodified firmware app, its sensors fed by
the signal model (fleet_signals.py) and its radio a BandRadio on the virtual air.
Besides the board, a band answers the fleet control port's ``stats`` (the app's
counters, the radio's link and the event log's seqs) and ``power_cut``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simulator.fleet_signals import ScenarioSignals
from simulator.radio.air import Air
from simulator.radio.band_radio import BandRadio
from simulator.virtual_board import VirtualBoard, VirtualClock


class Band:
    """One virtual band: signals, radio, board (and the firmware app on it)."""

    def __init__(
        self,
        air: Air,
        band_id: str,
        flash_dir: str,
        clock: VirtualClock,
        signals: ScenarioSignals,
        app_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.band_id = band_id
        self.signals = signals
        self.radio = BandRadio(air, band_id)
        self.board = VirtualBoard(
            band_id,
            flash_dir,
            emg_source=signals.emg,
            acc_source=signals.acc,
            radio=self.radio,
            clock=clock,
            app_kwargs=app_kwargs,
        )

    def stats(self) -> dict[str, Any]:
        app: Any = self.board.app
        return {
            "connected": self.radio.connected(),
            "secure": self.radio.secure(),
            "mtu": self.radio.mtu(),
            "boots": self.board.boots,
            "events": getattr(app, "events", 0),
            "onsets": getattr(app, "onsets", 0),
            "markers": getattr(app, "markers", 0),
            "faults": getattr(app, "faults_logged", 0),
            "overruns": self.board.overruns,
            "notified": self.radio.stats["notified"],
            "tx_full": self.radio.stats["tx_full"],
            "connects": self.radio.stats["connects"],
            **self.log_stats(),
        }

    def log_stats(self) -> dict[str, Any]:
        """The event log's seqs (the firmware's EventLog of the running app; {} if none)."""
        elog: Any = getattr(self.board.app, "log", None)
        if elog is None or not hasattr(elog, "next_seq"):
            return {}
        return {
            "first_seq": elog.first_seq(),
            "last_seq": elog.next_seq - 1,
            "acked_seq": elog.acked_seq,
            "overwritten": elog.overwritten,
            "log_capacity": elog.capacity,
            "dead": self.board.dead,
        }

    async def power_cut(self, after_bytes: int, off_s: float, wait_s: float) -> dict[str, Any]:
        """Lose power mid-write (or between writes after ``wait_s``), boot after ``off_s``."""
        board = self.board
        board.power_cut(after_bytes)
        loop = asyncio.get_running_loop()
        end = loop.time() + wait_s
        while not board.dead and loop.time() < end:
            await asyncio.sleep(0.01)
        torn = board.dead
        if not torn:
            board.power_off()
        task: Any = board.task
        if isinstance(task, asyncio.Task):
            # every task of the old app stops at its next wait; only then may a new one boot
            await asyncio.wait([task], timeout=10)
        await asyncio.sleep(off_s)
        board.power_on()
        return {"ok": True, "torn": torn, "boots": board.boots + 1}
