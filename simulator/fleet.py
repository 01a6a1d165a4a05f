"""Many virtual bands in one process: ``spasm-sim run --bands N --scenario NAME``.

Each band (virtual_band.py) is the firmware app, unmodified (``spasmband.app.App``
through ``VirtualBoard.power_on()``), on a VirtualBoard whose sensors are fed by the
signal model (fleet_signals.py) and whose radio is a BandRadio on the virtual
air (simulator/radio). All bands share one clock: real time (``--speed 1``)
or accelerated (``--speed 10``: band time runs ten times faster than the
radio's; sensors, detector and logs follow band time).

Host processes reach the bands over the air's TCP port with the bleak backend
(SPASM_RADIO=tcp:127.0.0.1:PORT). On start the process prints one JSON line
on stdout: {"radio": "tcp:127.0.0.1:PORT", "control": PORT, "bands": {id: address},
"flash": DIR}; then a stats line on stderr every ``--stats-every`` seconds.
The control port takes the fault commands of simulator/radio/control.py plus
``{"cmd": "stats"}``, ``{"cmd": "truth", "band": id}`` (ground-truth labels so
far) and ``{"cmd": "press", "band": id}`` (the marker button, 300 ms; answers with
the wall UTC in ms when it went down, ``utc_ms``), and for
fault runs (tests/chaos) ``{"cmd": "power_cut", "band": id, "after_bytes": n,
"off_s": s}``: the band loses power in the middle of its next flash write (after
``n`` more bytes; or between writes if it writes nothing within ``wait_s``), stays
off ``off_s`` real seconds, then boots again on the same flash.
``--log-segments``/``--log-per-segment`` give every band a smaller event log (the
firmware's App arguments), so an absence long enough to wrap it is minutes, not days.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulator.cli_args import SEED_HELP, add_scenario_option, output_folder_problem, ranged, seed
from simulator.fleet_commands import (
    check_fleet_command,
    check_schedule,
    command_band,
    power_cut_args,
)
from simulator.fleet_signals import ScenarioSignals
from simulator.radio.air import Air, key
from simulator.radio.control import CommandError, FaultControl, load_schedule, run_schedule
from simulator.virtual_band import Band
from simulator.virtual_board import VirtualClock

log = logging.getLogger("spasm-sim")

MAX_BANDS = 200


def band_ids(count: int, seed: int) -> list[str]:
    """Pseudonymous band ids (6 hex digits, like the chip-id based ones), stable per seed."""
    return [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:6] for i in range(count)]


class Fleet:
    """The air, its bands and the control port of one simulator process."""

    def __init__(
        self,
        ids: list[str],
        scenario: str,
        seed: int,
        speed: float,
        flash_root: str,
        chunk_minutes: float = 2.0,
        app_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.air = Air()
        self.clock = VirtualClock(speed=speed)
        self.scenario = scenario
        self.flash_root = flash_root
        self.bands: dict[str, Band] = {}
        for i, band_id in enumerate(ids):
            signals = ScenarioSignals(scenario, seed * 1000 + i, chunk_minutes)
            signals.prepare()
            flash = os.path.join(flash_root, band_id)
            self.bands[band_id] = Band(self.air, band_id, flash, self.clock, signals, app_kwargs)
        self.control = FaultControl(
            self.air, {i: key(b.radio.address) for i, b in self.bands.items()}, self.command
        )
        self.radio_port = 0
        self.control_port = 0
        self._control_server: asyncio.AbstractServer | None = None

    async def start(self, radio_port: int = 0, control_port: int = 0) -> None:
        for band in self.bands.values():
            band.board.power_on()
        for band in self.bands.values():
            await band.radio.wait_ready()
        self.radio_port = await self.air.serve_hosts("127.0.0.1", radio_port)
        self._control_server = await self.control.serve("127.0.0.1", control_port)
        self.control_port = int(self._control_server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    def ready_line(self) -> dict[str, Any]:
        return {
            "radio": f"tcp:127.0.0.1:{self.radio_port}",
            "control": self.control_port,
            "bands": dict(self.control.bands),
            "flash": self.flash_root,
        }

    def stats(self) -> dict[str, dict[str, Any]]:
        return {i: b.stats() for i, b in self.bands.items()}

    def _band(self, cmd: dict[str, Any]) -> Band:
        return self.bands[command_band(cmd, self.bands)]

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        """The fleet's own commands (FaultControl's ``extra``); None for any other name."""
        if check_fleet_command(cmd, self.bands) is None:
            return None
        name = cmd.get("cmd")
        if name == "stats":
            return {"ok": True, "bands": self.stats()}
        if name == "truth":
            labels = self._band(cmd).signals.labels
            return {
                "ok": True,
                "labels": [[lb.onset_ms, lb.offset_ms, lb.kind, lb.amplitude] for lb in labels],
            }
        if name == "press":
            board = self._band(cmd).board
            board.button_level = True
            # when it went down (wall UTC, ms): the truth a marker's stamp is checked against
            at = int(time.time() * 1000)
            await asyncio.sleep(0.3 / (self.clock.speed or 1.0))
            board.button_level = False
            return {"ok": True, "utc_ms": at}
        if name == "power_cut":
            return await self._band(cmd).power_cut(*power_cut_args(cmd))
        return None

    async def close(self) -> None:
        for band in self.bands.values():
            app: Any = band.board.app
            if app is not None:
                app.stop()
        tasks = [b.board.task for b in self.bands.values() if b.board.task is not None]
        if tasks:
            await asyncio.wait([t for t in tasks if isinstance(t, asyncio.Task)], timeout=5)
        if self._control_server is not None:
            self._control_server.close()
        for band in self.bands.values():
            await band.radio.close()
        await self.air.close()


# ---------------------------------------------------------------- command line


_speed = ranged(0.1, 1000)
_bands = ranged(1, MAX_BANDS, integer=True)
_port = ranged(0, 65535, integer=True)
_seconds = ranged(0, float("inf"))


def _ids(text: str) -> list[str]:
    ids = [t.strip().lower() for t in text.split(",") if t.strip()]
    for i in ids:
        if not 2 <= len(i) <= 12 or any(c not in "0123456789abcdef" for c in i):
            raise argparse.ArgumentTypeError(f"band id {i!r}: expected 2-12 hex digits")
    if not ids or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError("expected distinct, comma-separated hex band ids")
    return ids


def log_shape(text: str) -> int:
    """argparse type of the flash log's shape (segments, records per segment): 2..4096."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 2 <= v <= 4096:
        raise argparse.ArgumentTypeError(f"must be 2..4096: {text!r}")
    return v


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``run`` to the ``spasm-sim`` subcommands (simulator/cli.py)."""
    p = subparsers.add_parser(
        "run",
        help="run virtual bands (the firmware app) on the virtual radio",
        description=(
            "Run N virtual bands, each the unmodified firmware app on a simulated board fed by "
            "the signal model, on a virtual Bluetooth LE radio (bumble). Host processes reach "
            "them with the bleak backend simulator.radio.scanner:VirtualBleakScanner / "
            "simulator.radio.client:VirtualBleakClient and SPASM_RADIO=tcp:127.0.0.1:PORT. "
            "Prints one JSON line on stdout when ready: radio address, control port, band ids "
            "and addresses, flash folder. Stops on Ctrl-C, SIGTERM or after --duration."
        ),
    )
    p.add_argument("--bands", type=_bands, default=1, help=f"number of bands, 1..{MAX_BANDS}")
    add_scenario_option(p, "signal-model scenario (see `spasm-sim scenarios`)", required=True)
    p.add_argument("--speed", type=_speed, default=1.0, help="band time per real time (default 1)")
    p.add_argument(
        "--seed", type=seed, default=1, metavar="N", help=f"{SEED_HELP}; also the band ids"
    )
    p.add_argument("--ids", type=_ids, help="comma-separated band ids (hex), instead of --bands")
    p.add_argument(
        "--radio-port", type=_port, default=0, help="TCP port of the air for hosts (0: a free one)"
    )
    p.add_argument(
        "--control-port", type=_port, default=0, help="JSON-lines control port (0: a free one)"
    )
    p.add_argument(
        "--flash",
        help="folder for the bands' flash (one subfolder per band; kept). Default: a temporary "
        "folder, removed at exit",
    )
    p.add_argument(
        "--duration", type=_seconds, default=0.0, help="stop after this many seconds (0: never)"
    )
    p.add_argument(
        "--faults",
        metavar="FILE",
        help="fault schedule file: a JSON list of fault commands (simulator/radio/control.py), "
        'each with "at": seconds after the start, e.g. [{"at": 5, "cmd": "drop", "band": "*"}]; '
        "every command is checked before the bands start",
    )
    p.add_argument(
        "--log-segments",
        type=log_shape,
        help="event log segment files per band (firmware default 17; at least 2)",
    )
    p.add_argument(
        "--log-per-segment",
        type=log_shape,
        help="records per log segment (firmware default 128); capacity is "
        "(segments - 1) x per-segment",
    )
    p.add_argument(
        "--stats-every", type=_seconds, default=10.0, help="seconds between stats lines (0: none)"
    )
    p.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin closes (for a parent process that holds it as a pipe)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run_main)
    return p


def run_main(args: argparse.Namespace) -> int:
    """``spasm-sim run``: returns the exit status."""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ids = args.ids if args.ids else band_ids(args.bands, args.seed)
    schedule: list[dict[str, Any]] = []
    if args.faults:
        try:
            schedule = load_schedule(args.faults)
            check_schedule(args.faults, schedule, ids)
        except CommandError as e:
            print(f"spasm-sim run: --faults {e}", file=sys.stderr)
            return 2
    flash = args.flash
    temporary = flash is None
    if temporary:
        flash = tempfile.mkdtemp(prefix="spasm-sim-")
    else:
        problem = output_folder_problem(Path(flash))
        if problem is not None:
            print(f"spasm-sim run: --flash {flash}: {problem}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(args, ids, flash, schedule))
    except OSError as e:
        print(f"spasm-sim run: {e}", file=sys.stderr)
        return 1
    finally:
        if temporary:
            shutil.rmtree(flash, ignore_errors=True)


async def _run(
    args: argparse.Namespace, ids: list[str], flash: str, schedule: list[dict[str, Any]]
) -> int:
    app_kwargs: dict[str, Any] = {}
    segs, per = getattr(args, "log_segments", None), getattr(args, "log_per_segment", None)
    if segs or per:
        # the App takes both or neither; the other one keeps the firmware default
        app_kwargs = {"log_segments": segs or 17, "log_per_segment": per or 128}
    fleet = Fleet(ids, args.scenario, args.seed, args.speed, flash, app_kwargs=app_kwargs)
    await fleet.start(args.radio_port, args.control_port)
    print(json.dumps(fleet.ready_line()), flush=True)
    log.info(
        "%d band(s) on %s, control port %d, scenario %s, speed %g",
        len(ids),
        fleet.ready_line()["radio"],
        fleet.control_port,
        args.scenario,
        args.speed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.stop_on_stdin_eof:
        try:
            loop.add_reader(
                sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None
            )
        except (OSError, ValueError):
            log.warning("--stop-on-stdin-eof: stdin is not a pipe; ignored")
    tasks = []
    if schedule:
        tasks.append(loop.create_task(run_schedule(fleet.control, schedule)))
    if args.stats_every > 0:
        tasks.append(loop.create_task(_stats_lines(fleet, args.stats_every)))
    try:
        if args.duration > 0:
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await fleet.close()
    totals = fleet.stats()
    log.info(
        "stopped: %s",
        ", ".join(f"{i} {s['events']} events {s['connects']} connects" for i, s in totals.items()),
    )
    return 0


async def _stats_lines(fleet: Fleet, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        parts = []
        for band_id, s in fleet.stats().items():
            link = "secure" if s["secure"] else ("linked" if s["connected"] else "adv")
            parts.append(
                f"{band_id}[{link} ev={s['events']} on={s['onsets']} mk={s['markers']}"
                f" tx={s['notified']}]"
            )
        log.info("stats t=%.0fs %s", fleet.clock.now_ms() / 1000, " ".join(parts))


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.fleet run ...`` (the same as ``spasm-sim run ...``)."""
    parser = argparse.ArgumentParser(prog="python -m simulator.fleet")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
