"""Replay bands for load benchmarks: the firmware app with its sampler replaced by a replay.

Why this shape: the cost of a simulated band is the detector, run per sample at 1 kHz
in Python (0.02-0.03 CPU s per band-second): 200 of them would need several cores
before a single byte reached the radio. A replay band keeps everything else real: the
firmware's App, Link (TIME_SYNC, REPLAY, ACK, STREAM), EventLog on the virtual flash,
SignalStream chunking and STATUS, on a BandRadio of the bumble virtual radio; only the
Sampler is swapped for ``ReplaySampler``, which hands precomputed 10 ms frames
(detector envelope and accelerometer) to the SignalStream and precomputed events to
the app's result callback, at the board's clock. The frames and events come from one
short recording of a scenario, run once through the real detector at start-up.

    python tests/bench/replay_band.py --bands 200 [--scenario spasms] [--seconds 60]

prints one JSON line like ``spasm-sim run`` (radio, control, bands) and runs until
SIGTERM / stdin closes. The control port takes the radio fault commands and
``{"cmd": "stats"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for p in (str(ROOT), str(ROOT / "firmware")):
    if p not in sys.path:
        sys.path.insert(0, p)

from spasmband import detector  # noqa: E402
from spasmband.app import App  # noqa: E402
from spasmband.sampler import PERIOD_MS  # noqa: E402

from host.stats import Pauses  # noqa: E402
from simulator.cli_args import SEED_HELP, add_scenario_option, seed  # noqa: E402
from simulator.fleet import band_ids  # noqa: E402
from simulator.radio.air import Air, key  # noqa: E402
from simulator.radio.band_radio import BandRadio  # noqa: E402
from simulator.radio.control import FaultControl  # noqa: E402
from simulator.scenarios import SCENARIOS, record  # noqa: E402
from simulator.virtual_board import VirtualBoard, VirtualClock  # noqa: E402

MAX_BANDS = 500
MAX_RAMP_S = 60.0

Frame = tuple[int, int, int, int]  # envelope uV, ax, ay, az (mg)


def quiet_bumble() -> None:
    """Stop bumble formatting every HCI packet for debug lines that are never logged.

    bumble's Host and Controller build ``f"...{color(...)}: {packet}"`` for a
    ``logger.debug`` on every HCI packet, whether or not DEBUG is on: four times per
    packet in this process (band host and band controller, each way), about a quarter
    of its CPU at 200 bands (py-spy: bumble/colors.py, HCI_Object.format_fields). This
    process exists to be a cheap stand-in for real bands, so unless bumble's logger is
    at DEBUG those packets get a short ``str`` (their class name) and no colours.
    """
    import logging

    from bumble import controller, hci, host

    if logging.getLogger("bumble").isEnabledFor(logging.DEBUG):
        return

    def plain(text: str, *_args: Any, **_kwargs: Any) -> str:
        return text

    def short(self: object) -> str:
        return type(self).__name__

    host.color = plain  # type: ignore[assignment]
    controller.color = plain  # type: ignore[assignment]
    todo: list[type] = [hci.HCI_Packet]
    while todo:
        cls = todo.pop()
        if "__str__" in vars(cls):
            cls.__str__ = short  # type: ignore[method-assign,assignment]
        todo.extend(cls.__subclasses__())


class Recording:
    """One loop of frames and the events the real detector found in it (at their end frame)."""

    def __init__(self, scenario: str, seed: int, seconds: float) -> None:
        rec = record(scenario, seed, seconds / 60.0)
        emg = [int(v) for v in rec.emg_uv]
        acc = [(int(x * 1000), int(y * 1000), int(z * 1000)) for x, y, z in rec.acc_g]
        det = detector.Detector()
        self.frames: list[Frame] = []
        self.events: dict[int, list[tuple[Any, ...]]] = {}
        n = min(len(emg) // 10, len(acc))
        for i in range(n):
            det.emg_samples(emg, i * 10, i * 10 + 10)
            det.acc(*acc[i])
            self.frames.append((int(det.envelope_uv), *acc[i]))
            while True:
                r = det.pop()
                if r is None:
                    break
                if r[0] == "event":
                    self.events.setdefault(i, []).append(r)


class _Det:
    """What STATUS reads from the sampler's detector."""

    quality = 100
    faults = 0
    envelope_uv = 0


class ReplaySampler:
    """Sampler interface of firmware/spasmband/sampler.py, fed from a Recording."""

    def __init__(self, board: VirtualBoard, rec: Recording, on_result: Any, sig: Any, offset: int):
        self.board = board
        self.rec = rec
        self.on_result = on_result
        self.signal = sig
        self.offset = offset
        self.det = _Det()
        self.t0 = 0
        self.frames = 0
        self.events = 0

    def set_params(self, params: Any) -> None:
        pass

    def start(self, now_ms: int) -> None:
        self.t0 = now_ms
        self.frames = 0

    def poll(self) -> None:
        b = self.board
        due = b.ticks_diff(b.ticks_ms(), self.t0) // 10
        frames = self.rec.frames
        n = len(frames)
        sig = self.signal
        # bounded: a stalled loop catches up at most 2 s of frames (the board's ring)
        todo = min(due - self.frames, 200)
        for _ in range(todo):
            i = (self.offset + self.frames) % n
            self.frames += 1
            t = self.frames * 10
            if sig.on:
                env, ax, ay, az = frames[i]
                sig.frame(self.t0 + t, env, ax, ay, az)
            evs = self.rec.events.get(i)
            if evs:
                for r in evs:
                    # the event ended now: its start is its duration earlier
                    self.events += 1
                    self.on_result(("event", max(0, t - r[2])) + tuple(r[2:]), self.t0)
        if due > self.frames:
            self.frames = due  # frames older than the ring are gone, as on the band

    def now_ms(self) -> int:
        return self.t0 + self.frames * 10


class Ticker:
    """One 20 ms timer for every replay band's periodic tasks (sampler, link, ui).

    The firmware App runs three tasks that each poll and sleep 20 ms (the link 100 ms
    when not connected): 200 bands make 30,000 asyncio timer wake-ups a second, a
    third of this process's CPU (py-spy: VirtualBoard.sleep_ms, asyncio.sleep) on
    top of the polls themselves. A real band has its own CPU for that. Here one
    timer calls the same poll methods of every band on the same schedule; a poll
    that raises crashes its band as App._guard does (the App reboots it).
    """

    def __init__(self) -> None:
        self.jobs: dict[tuple[int, str], ReplayApp] = {}
        self.ticks = 0

    async def hold(self, app: ReplayApp, name: str) -> None:
        """Stand-in for one of the app's task loops until the app cancels the task."""
        key_ = (id(app), name)
        self.jobs[key_] = app
        try:
            await asyncio.get_running_loop().create_future()  # never set: cancelled
        finally:
            self.jobs.pop(key_, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PERIOD_MS / 1000)
            self.ticks += 1
            for (_, name), app in list(self.jobs.items()):
                if not app.running or app.board.dead or app._crashed is not None:
                    continue
                try:
                    if name == "sampler":
                        app.sampler.poll()
                    elif name == "link":
                        if app.link.connected or self.ticks % 5 == 0:  # 20 ms, else 100 ms
                            app.link.poll()
                    else:
                        now = app.timebase.now()  # App._ui_task's body
                        t = app.button.poll(app.board.button(), now)
                        if t is not None:
                            app.log_marker(t)
                        app.led.step(now)
                except Exception as e:
                    app.board.log(f"app: {name}: {e!r}")
                    app._crashed = name


TICKER = Ticker()


class ReplayApp(App):  # type: ignore[misc]
    recording: Recording | None = None

    def setup(self) -> None:
        super().setup()
        assert self.recording is not None
        offset = int.from_bytes(self.board.band_id.encode(), "little") % len(self.recording.frames)
        self.sampler = ReplaySampler(
            self.board, self.recording, self._on_result, self.signal, offset
        )

    async def _sampler_task(self) -> None:
        await TICKER.hold(self, "sampler")

    async def _link_task(self) -> None:
        await TICKER.hold(self, "link")

    async def _ui_task(self) -> None:
        await TICKER.hold(self, "ui")


class ReplayBoard(VirtualBoard):
    def _boot_app(self) -> object:  # the replay app; no sensors to start
        return ReplayApp(self, **self.app_kwargs)


def _zero(i: int) -> int:
    return 0


def _zero3(i: int) -> tuple[int, int, int]:
    return (0, 0, 0)


class ReplayFleet:
    def __init__(self, ids: list[str], flash: str) -> None:
        self.air = Air()
        self.clock = VirtualClock(speed=1.0)
        self.radios = {i: BandRadio(self.air, i) for i in ids}
        self.boards = {
            # sources present (the app builds an EMG + acc detector); the replay never reads them
            i: ReplayBoard(
                i,
                f"{flash}/{i}",
                emg_source=_zero,
                acc_source=_zero3,
                radio=self.radios[i],
                clock=self.clock,
            )
            for i in ids
        }
        self.control = FaultControl(
            self.air, {i: key(r.address) for i, r in self.radios.items()}, self.command
        )
        self.pauses = Pauses()  # since the last stats command

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        if cmd.get("cmd") == "stats":
            out = {}
            for i, b in self.boards.items():
                app: Any = b.app
                r = self.radios[i]
                out[i] = {
                    "connected": r.connected(),
                    "secure": r.secure(),
                    "events": getattr(app, "events", 0),
                    "signal_sent": app.signal.sent if app is not None else 0,
                    "signal_dropped": app.signal.dropped if app is not None else 0,
                    "streaming": bool(app is not None and app.signal.on),
                    "notified": r.stats["notified"],
                    "tx_full": r.stats["tx_full"],
                }
            late, pause = self.pauses.take()
            return {"ok": True, "bands": out, "loop_late_ms": round(late),
                    "gc_pause_ms": round(pause)}  # fmt: skip
        return None

    async def start(self, ramp_s: float = 0.0) -> dict[str, Any]:
        for b in self.boards.values():
            b.power_on()
        for r in self.radios.values():
            await r.wait_ready()
        if ramp_s > 0:
            # bands come into range one by one, ``ramp_s`` apart (a ward filling up), so
            # a host does not meet hundreds of new bands in the same second
            for i, r in enumerate(self.radios.values()):
                self.air.out_of_range(key(r.address), i * ramp_s)
        port = await self.air.serve_hosts("127.0.0.1", 0)
        server = await self.control.serve("127.0.0.1", 0)
        ctl = int(server.sockets[0].getsockname()[1])
        return {"radio": f"tcp:127.0.0.1:{port}", "control": ctl, "bands": self.control.bands}


async def _main(args: argparse.Namespace) -> int:
    quiet_bumble()
    ReplayApp.recording = Recording(args.scenario, args.seed, args.seconds)
    with tempfile.TemporaryDirectory(prefix="spasm-replay-") as flash:
        fleet = ReplayFleet(band_ids(args.bands, args.seed), flash)
        info = await fleet.start(args.ramp)
        # 200 bands' firmware, controllers and GATT databases live as long as the process:
        # keep them out of the collector's full passes (each one stalled the loop for
        # hundreds of ms, holding every band's notifications)
        gc.freeze()
        watch = asyncio.create_task(fleet.pauses.watch())
        ticker = asyncio.create_task(TICKER.run())
        info["events_per_loop"] = sum(len(v) for v in ReplayApp.recording.events.values())
        print(json.dumps(info), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
        await stop.wait()
        watch.cancel()
        ticker.cancel()
        for b in fleet.boards.values():
            if b.app is not None:
                b.app.stop()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bands", type=int, default=10, help=f"replay bands (1..{MAX_BANDS})")
    add_scenario_option(
        p,
        f"scenario of the replayed recording: {', '.join(sorted(SCENARIOS))}",
        default="spasms",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="length of the replayed loop")
    p.add_argument("--seed", type=seed, default=1, help=f"{SEED_HELP}; also the band ids")
    p.add_argument(
        "--ramp", type=float, default=0.0, help="seconds between bands coming into range"
    )
    args = p.parse_args(argv)
    if not 1 <= args.bands <= MAX_BANDS:
        p.error(f"--bands: must be 1..{MAX_BANDS}")
    if not 0 <= args.ramp <= MAX_RAMP_S:
        p.error(f"--ramp: must be 0..{MAX_RAMP_S:g} seconds")
    if not 5 <= args.seconds <= 600:
        p.error("--seconds: must be 5..600")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
