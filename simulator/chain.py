"""`make run`: virtual bands -> bridge -> spool -> MQTT + VictoriaMetrics, with live progress.

``python -m simulator.chain --bands 3 --scenario spasms --speed 20 --duration 60``

Starts, in this order, each in its own process group (so a Ctrl-C at the terminal
reaches only this process, which then stops the others in order) and each set to
die with this process (so nothing is orphaned even if this one is killed):

1. mosquitto and VictoriaMetrics on free loopback ports (host/local_servers.py),
   where installed; a missing one is said and the run goes on without that sink;
2. the virtual bands: ``python -m simulator.fleet run`` (the firmware app on the
   virtual radio); its JSON ready line gives the radio address and control port;
3. an MQTT subscriber of its own on ``<prefix>/+/event`` (dedupes on band, seq);
4. the bridge: ``python -m host.cli run -c <dir>/bridge.toml`` with
   ``SPASM_RADIO`` set (inherited ``SPASM_*`` variables are dropped, so the
   config file written here is the whole config).

Progress (every --progress-every seconds; redrawn in place on a terminal): per
band, events logged on the band (fleet control port ``stats``), events in the
spool (the spool file, read-only) and events seen on MQTT; per sink, the lag
(spooled records after the sink's cursor). The readers and the text are in
simulator/chain_watch.py; the children and the bridge's config in
simulator/chain_children.py; the command line in simulator/chain_args.py.
Stop: Ctrl-C, SIGTERM or --duration.
Then: bands stopped, the sinks drained (bounded), the bridge stopped, counts read
back (``spasm-bridge status --json``, the subscriber, VictoriaMetrics'
/api/v1/export; simulator/chain_readback.py), servers stopped; children get
SIGTERM, then SIGKILL if they linger. A second Ctrl-C skips the waits. Exit 0
after a normal stop, 1 when a part failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from host.local_servers import Mosquitto, ServerError, VictoriaMetrics
from simulator.chain_args import default_dir, parser
from simulator.chain_children import Child, bridge_toml, child_env, spawn
from simulator.chain_readback import read_back
from simulator.chain_watch import (
    BandRow,
    FleetControl,
    MqttWatcher,
    progress_block,
    progress_line,
    report_lines,
    spool_progress,
)
from simulator.cli_args import output_file_problem, output_folder_problem

START_TIMEOUT_S = 120.0  # the fleet renders its first signal chunks before it is ready
DRAIN_TIMEOUT_S = 20.0


# ------------------------------------------------------------------ the run


class Chain:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.dir: Path = args.dir
        self.spool = self.dir / "spool.db"
        self.mqtt: Mosquitto | None = None
        self.vm: VictoriaMetrics | None = None
        self.notes: list[str] = []
        self.children: list[Child] = []
        self.watcher: MqttWatcher | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.radio = ""
        self.control: FleetControl | None = None
        self.bands: list[str] = []
        self.band_stats: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, Any] = {"events": {}, "last_id": 0, "cursors": {}}
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()
        self.reason = "duration"
        self.failed = ""
        self.started = time.monotonic()
        self.drawn = 0  # lines of the last in-place progress block
        self.tty = out.isatty()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _on_signal(self, name: str) -> None:
        if self.stop.is_set():
            self.hurry.set()
            return
        self.reason = name
        self.stop.set()

    # -------------------------------------------------------------- start

    def start_servers(self) -> None:
        for srv in (Mosquitto(self.dir), VictoriaMetrics(self.dir)):
            if not srv.installed:
                self.notes.append(
                    f"{srv.program} is not installed: no {self._sink_name(srv)} sink this run "
                    f"(`make setup` as root installs it; or sudo apt-get install -y {srv.program})"
                )
                continue
            try:
                srv.start()
            except (ServerError, OSError) as e:
                self.notes.append(f"{srv.program} did not start: {e}")
                continue
            if isinstance(srv, Mosquitto):
                self.mqtt = srv
            else:
                self.vm = srv

    @staticmethod
    def _sink_name(srv: Any) -> str:
        return "MQTT" if isinstance(srv, Mosquitto) else "InfluxDB (VictoriaMetrics)"

    async def start_fleet(self) -> None:
        a = self.args
        argv = [sys.executable, "-m", "simulator.fleet", "run", "--bands", str(a.bands)]
        argv += ["--scenario", a.scenario, "--speed", f"{a.speed:g}", "--seed", str(a.seed)]
        argv += ["--flash", str(self.dir / "flash"), "--stop-on-stdin-eof"]
        child = await spawn(
            "fleet",
            argv,
            self.dir / "fleet.log",
            child_env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.children.append(child)
        assert child.proc.stdout is not None
        ready = asyncio.ensure_future(child.proc.stdout.readline())
        stopped = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait([ready, stopped], timeout=START_TIMEOUT_S, return_when="FIRST_COMPLETED")
        stopped.cancel()
        if not ready.done():
            ready.cancel()
            if not self.stop.is_set():
                raise RuntimeError(f"the bands did not start within {START_TIMEOUT_S:g} s")
            return
        try:
            line = json.loads(ready.result())
            self.radio = str(line["radio"])
            self.bands = sorted(line["bands"])
            self.control = FleetControl(int(line["control"]))
        except (ValueError, KeyError, TypeError):
            await asyncio.sleep(0.5)
            raise RuntimeError("the bands did not start") from None

    async def start_bridge(self) -> None:
        if self.mqtt is not None:
            self.watcher = MqttWatcher(self.mqtt.port)
            self.tasks.append(asyncio.create_task(self.watcher.run()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.watcher.ready.wait(), 10)
            if not self.watcher.ready.is_set():
                raise RuntimeError(f"cannot subscribe to mosquitto on {self.mqtt.address}")
        conf = self.dir / "bridge.toml"
        conf.write_text(bridge_toml(self.bands, self.spool, self.mqtt, self.vm))
        argv = [sys.executable, "-m", "host.cli", "run", "-c", str(conf)]
        self.children.append(
            await spawn(
                "bridge",
                argv,
                self.dir / "bridge.log",
                child_env(self.radio),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
            )
        )

    # -------------------------------------------------------------- progress

    async def refresh(self) -> None:
        if self.control is not None:
            self.band_stats = await self.control.stats() or self.band_stats
        got = await asyncio.to_thread(spool_progress, self.spool)
        if got is not None:
            self.progress = got

    def lags(self) -> dict[str, int]:
        sinks = ([] if self.mqtt is None else ["mqtt"]) + ([] if self.vm is None else ["influx"])
        last = self.progress["last_id"]
        return {s: max(0, last - self.progress["cursors"].get(s, 0)) for s in sinks}

    def draw(self) -> None:
        a = self.args
        t = time.monotonic() - self.started
        rows = [
            BandRow(
                b,
                self.band_stats.get(b, {}),
                int(self.progress["events"].get(b, 0)),
                None if self.watcher is None else len(self.watcher.seen.get(b, ())),
            )
            for b in self.bands
        ]
        head = (
            f"{t:.0f} s"
            + (f" of {a.duration:g} s" if a.duration else " (Ctrl-C stops)")
            + f" | {len(self.bands)} bands, {a.scenario}, {a.speed:g}x"
            + f" (band time {t * a.speed / 60:.1f} min)"
        )
        if self.tty:
            # fit the terminal, or moving the cursor back up would miss the block's top
            cols, rows_free = shutil.get_terminal_size()
            lines = progress_block(head, rows, self.lags(), max_rows=max(1, rows_free - 6))
            lines = [line[: max(10, cols - 1)] for line in lines]
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            self.out.write(up + "".join(line + "\x1b[K\n" for line in lines))
            self.out.flush()
            self.drawn = len(lines)
        else:
            self.say(progress_line(t, rows, self.lags()))

    def check_children(self) -> None:
        for c in self.children:
            if not c.alive and not self.stop.is_set():
                rc = c.proc.returncode or 0
                how = f"was killed by signal {-rc}" if rc < 0 else f"exited with {rc}"
                self.failed = f"the {c.name} {how}; log {c.log}:"
                self.failed += "\n    " + c.log_tail()
                self.reason = "error"
                self.stop.set()

    async def watch(self) -> None:
        if self.args.duration:
            asyncio.get_running_loop().call_later(self.args.duration, self.stop.set)
        while not self.stop.is_set():
            await self.refresh()
            self.check_children()
            self.draw()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.progress_every)

    # -------------------------------------------------------------- stop

    async def wait_until(self, done: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end and not self.hurry.is_set():
            await asyncio.sleep(0.25)
        return bool(done())

    async def shutdown(self) -> None:
        by_name = {c.name: c for c in self.children}
        if self.control is not None:
            await self.refresh()  # the bands' last numbers
            self.control.close()  # before the fleet stops: it would log the open connection
            self.control = None
        if "fleet" in by_name:
            fleet = by_name["fleet"]
            if fleet.proc.stdin is not None:
                fleet.proc.stdin.close()  # --stop-on-stdin-eof
            await fleet.stop(2 if self.hurry.is_set() else 10)
        if "bridge" in by_name and by_name["bridge"].alive:
            last_seen = -1

            async def drained() -> bool:
                # every sink caught up, and nothing new spooled since the last look
                # (the bridge may still be working through notifications it queued)
                nonlocal last_seen
                await self.refresh()
                last_id, last_seen = last_seen, self.progress["last_id"]
                return last_id == last_seen and not any(self.lags().values())

            end = time.monotonic() + DRAIN_TIMEOUT_S
            while not await drained() and time.monotonic() < end and not self.hurry.is_set():
                await asyncio.sleep(0.5)
        if self.watcher is not None:
            want = sum(self.progress["events"].values())
            await self.wait_until(lambda: self.watcher and self.watcher.distinct() >= want, 5)
        for c in self.children:
            await c.stop(2 if self.hurry.is_set() else 15)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # -------------------------------------------------------------- the whole run

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._on_signal, "Ctrl-C")
        loop.add_signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM")
        self.say(f"make run: files of this run in {self.dir}/")
        try:
            self.start_servers()
            for note in self.notes:
                self.say(f"  NOTE {note}")
            if self.mqtt is None and self.vm is None:
                self.say("  no MQTT broker and no time-series server: the embedded spool only")
            for srv in (self.mqtt, self.vm):
                if srv is not None:
                    self.say(f"  {srv.name} on 127.0.0.1:{srv.port} (pid {srv.pid})")
            if not self.stop.is_set():
                await self.start_fleet()
            if not self.stop.is_set():
                self.say(
                    f"  {len(self.bands)} virtual bands {', '.join(self.bands)} on "
                    f"{self.radio}, scenario {self.args.scenario}, speed {self.args.speed:g}x"
                )
                await self.start_bridge()
                self.say(f"  bridge: spool {self.spool}, log {self.dir / 'bridge.log'}")
                await self.watch()
        except (RuntimeError, OSError) as e:
            self.failed, self.reason = str(e), "error"
        finally:
            await self.shutdown()
        summary = await self.finish()
        for srv in (self.mqtt, self.vm):
            if srv is not None:
                await asyncio.to_thread(srv.stop)
        self.report(summary)
        if self.args.summary_json:
            try:
                self.args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
            except OSError as e:  # checked at start, but the disk may have filled since
                print(
                    f"simulator.chain: --summary-json {self.args.summary_json}: {e}",
                    file=sys.stderr,
                )
                return 1
        return 1 if self.failed else 0

    async def finish(self) -> dict[str, Any]:
        """Counts read back from every place the data went (servers still up)."""
        conf = self.dir / "bridge.toml"
        got = await read_back(conf, self.spool, self.mqtt, self.vm, self.watcher)
        return {
            "reason": self.reason,
            "failed": self.failed,
            "seconds": round(time.monotonic() - self.started, 1),
            "dir": str(self.dir),
            "bands": {b: int(s.get("events", 0)) for b, s in self.band_stats.items()},
            **got,
            "notes": self.notes,
            "pids": [c.proc.pid for c in self.children]
            + [s.pid for s in (self.mqtt, self.vm) if s is not None and s.pid is not None],
        }

    def report(self, s: dict[str, Any]) -> None:
        if self.tty and self.drawn:
            self.draw()  # the last numbers stay on screen
        for line in report_lines(s, self.args.duration, self.args.speed):
            self.say(line)


def output_problem(args: argparse.Namespace) -> str | None:
    """The first unusable output path, as "option path: why"; --dir is created here.

    Checked before anything starts, so a bad path fails at once and not after the
    run; --dir first, so --summary-json may name a file in it.
    """
    problem = output_folder_problem(args.dir)
    if problem is not None:
        return f"--dir {args.dir}: {problem}"
    if args.summary_json is not None:
        problem = output_file_problem(args.summary_json)
        if problem is not None:
            return f"--summary-json {args.summary_json}: {problem}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    if args.dir is None:
        args.dir = default_dir()
    problem = output_problem(args)
    if problem is not None:
        print(f"simulator.chain: {problem}", file=sys.stderr)
        return 2
    args.dir = args.dir.resolve()
    return asyncio.run(Chain(args, sys.stdout).run())


if __name__ == "__main__":
    sys.exit(main())
