"""Helpers for the end-to-end tests: the whole chain as real processes.

- ``FleetProc``: ``python -m simulator.fleet run`` (the unmodified firmware on
  virtual bands, time accelerated) as a subprocess; its control port for
  stats, button presses and radio faults; after it stopped, ``flash_records``
  reads each band's flash with the firmware's own EventLog (under CPython,
  on the simulator's VirtualBoard seam): the ground truth of what was logged.
- ``BridgeProc`` / ``IngestProc``: ``spasm-bridge run`` / ``spasm-bridge
  ingest`` subprocesses with a TOML config written here, reaching the bands
  through bleak with ``ble.backend = "simulator.radio.client"``.
- ``MqttTap``: a subscriber that records every event copy per (band, seq).
- ``vm_points``: points per (band, seq) from VictoriaMetrics' export API.

Every wait is bounded and fails with a message saying what never happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from simulator.radio.control import arequest, request
from tests.servers import Mosquitto, Victoria

ROOT = Path(__file__).resolve().parent.parent
BRIDGE_CLI = str(Path(sys.executable).parent / "spasm-bridge")
if str(ROOT / "firmware") not in sys.path:
    sys.path.append(str(ROOT / "firmware"))  # spasmband: the firmware's own log reader


async def until(cond: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait (bounded) for ``cond``; a liveness bound, not a speed assertion."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"never happened within {seconds:g} s: {what}")
        await asyncio.sleep(0.1)


def _stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


# ---------------------------------------------------------------- the bands


def _spawn(argv: list[str], log: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a simulator process; wait (bounded) for its JSON ready line on stdout."""
    with open(log, "a") as err:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"{argv[2]} gave no ready line within 60 s; see {log}")
    return proc, dict(json.loads(line))


class SimProc:
    """A simulator process (fleet or test bands) with its control port."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def launch(self) -> SimProc:
        self.proc, self.info = _spawn(self.argv, self.log)
        return self

    async def start(self) -> None:
        await asyncio.to_thread(self.launch)

    @property
    def bands(self) -> list[str]:
        return sorted(self.info["bands"])

    @property
    def radio(self) -> str:
        return str(self.info["radio"])

    def address(self, band: str) -> str:
        return str(self.info["bands"][band])

    def control_sync(self, cmd: dict[str, Any]) -> dict[str, Any]:
        answer = request(self.info["control"], cmd, timeout=20)
        assert answer.get("ok") is True, f"simulator refused {cmd}: {answer}"
        return answer

    async def control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        answer = await arequest(self.info["control"], cmd, timeout=20)
        assert answer.get("ok") is True, f"simulator refused {cmd}: {answer}"
        return answer

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None and self.proc.poll() is None:
                self.proc.stdin.close()  # both stop cleanly when stdin closes
            _stop(self.proc)


class TestBandProc(SimProc):
    """``python -m simulator.radio``: echo bands that misbehave on request (testband.py)."""

    __test__ = False  # not a pytest class

    def __init__(self, tmp: Path, bands: int) -> None:
        super().__init__(
            [sys.executable, "-m", "simulator.radio", "--bands", str(bands)], tmp / "testbands.log"
        )


class FleetProc(SimProc):
    """The firmware fleet in a subprocess, on the virtual radio."""

    def __init__(
        self,
        tmp: Path,
        bands: int,
        speed: float,
        seed: int,
        scenario: str = "spasms",
        ids: list[str] | None = None,
        flash: Path | None = None,
    ) -> None:
        self.flash = flash or tmp / "flash"
        self.speed = speed
        argv = [
            sys.executable, "-m", "simulator.fleet", "run",
            "--bands", str(bands), "--scenario", scenario, "--speed", str(speed),
            "--seed", str(seed), "--flash", str(self.flash),
            "--stats-every", "2", "--stop-on-stdin-eof",
        ]  # fmt: skip
        if ids:
            argv += ["--ids", ",".join(ids)]
        super().__init__(argv, tmp / "fleet.log")

    async def stats(self) -> dict[str, dict[str, Any]]:
        return dict((await self.control({"cmd": "stats"}))["bands"])

    async def press(self, band: str) -> int:
        """Press the marker button; returns the wall UTC (ms) when the fleet pressed it
        (not when the request left here: a busy machine delays the request, not the band)."""
        answer = await self.control({"cmd": "press", "band": band})
        return int(answer["utc_ms"])

    async def presses(self, band: str, n: int) -> list[int]:
        """``n`` presses, each released long enough to debounce (3 polls of 20 ms)."""
        out = []
        for _ in range(n):
            out.append(await self.press(band))
            await asyncio.sleep(0.15 / self.speed)
        return out


def flash_records(flash_dir: Path, band: str) -> list[tuple[int, int, int, int]]:
    """(type, seq, boot, t_ms) of every record in the band's flash log, via the firmware's
    EventLog on a VirtualBoard over the same folder (call after the fleet stopped)."""
    from spasmband.event_log import EventLog

    from simulator.virtual_board import VirtualBoard

    elog = EventLog(VirtualBoard(band, str(flash_dir / band)))
    elog.open()
    out = []
    seq = elog.first_seq()
    for _ in range(elog.capacity + 1):  # bounded
        rec = elog.read_from(seq)
        if rec is None:
            break
        out.append((rec[0], rec[1], rec[2], rec[3]))
        seq = rec[1] + 1
    elog.close()
    return out


def acked_seq(flash_dir: Path, band: str) -> int:
    from spasmband.event_log import EventLog

    from simulator.virtual_board import VirtualBoard

    elog = EventLog(VirtualBoard(band, str(flash_dir / band)))
    elog.open()
    elog.close()
    return int(elog.acked_seq)


# ---------------------------------------------------------------- the bridge


def write_config(
    path: Path,
    bands: list[str],
    spool: Path,
    mosq: Mosquitto,
    vm: Victoria | None,
    bridge_id: str = "e2e",
) -> Path:
    allow = ", ".join(f'"{b}"' for b in bands)
    influx = f'enabled = true\nurl = "{vm.url}"\nbackoff_max_s = 1' if vm else "enabled = false"
    path.write_text(
        f"""[bridge]
id = "{bridge_id}"
stats_interval_s = 2

[ble]
backend = "simulator.radio.client"
allow = [{allow}]
backoff_initial_s = 0.2
backoff_max_s = 1.0

[spool]
path = "{spool}"

[mqtt]
enabled = true
host = "127.0.0.1"
port = {mosq.port}
backoff_max_s = 1

[influx]
{influx}

[ingest]
flush_interval_s = 0.2
"""
    )
    return path


class BridgeProc:
    """``spasm-bridge <role>`` as a subprocess; stderr kept in a log file."""

    def __init__(self, config: Path, radio: str, log: Path, role: str = "run", *extra: str):
        self.argv = [BRIDGE_CLI, role, "-c", str(config), *extra]
        self.env = dict(os.environ, SPASM_RADIO=radio)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BridgeProc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        return _stop(self.proc)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


# ---------------------------------------------------------------- what arrived


class MqttTap:
    """Every copy of every ``<band>/event`` and ``<band>/marker`` message, by (band, seq)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.copies: dict[str, dict[tuple[str, int], list[int]]] = {"event": {}, "marker": {}}
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe("spasm/v1/+/event", qos=1)
            await c.subscribe("spasm/v1/+/marker", qos=1)
            self.ready.set()
            async for m in c.messages:
                rtype = str(m.topic).rsplit("/", 1)[-1]
                payload = m.payload if isinstance(m.payload, bytes) else b""
                e = json.loads(payload)
                self.copies[rtype].setdefault((e["band"], e["seq"]), []).append(e["utc_ms"])

    async def start(self) -> MqttTap:
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    def events(self, bands: list[str]) -> dict[tuple[str, int], list[int]]:
        return {k: v for k, v in self.copies["event"].items() if k[0] in bands}

    def has(self, band: str, seqs: set[int], rtype: str = "event") -> bool:
        got = self.copies[rtype]
        return all((band, s) in got for s in seqs)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def vm_points(
    vm: Victoria, bands: list[str], measurement: str = "spasm_event"
) -> dict[tuple[str, int], list[int]]:
    """(band, seq) -> timestamps (ms) of every point VictoriaMetrics holds for it.

    The export covers all time up to a day ahead: accelerated bands stamp their events
    in the future (band time runs faster than the wall clock that synced it)."""
    match = f'{measurement}_seq{{band=~"{"|".join(bands)}"}}'
    with urllib.request.urlopen(vm.url + "/internal/force_flush", timeout=10):
        pass
    query = urllib.parse.urlencode(
        {"match[]": match, "start": "0", "end": str(int(time.time()) + 86400)}
    )
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as r:
        text = r.read().decode()
    out: dict[tuple[str, int], list[int]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        for t, v in zip(s["timestamps"], s["values"], strict=True):
            out.setdefault((s["metric"]["band"], int(v)), []).append(int(t))
    return out


async def vm_until(
    vm: Victoria, bands: list[str], want: set[tuple[str, int]]
) -> dict[tuple[str, int], list[int]]:
    """Poll (bounded) until every (band, seq) of ``want`` has a point; returns all points."""
    pts: dict[tuple[str, int], list[int]] = {}
    for _ in range(80):
        pts = await asyncio.to_thread(vm_points, vm, bands)
        if want <= set(pts):
            return pts
        await asyncio.sleep(0.25)
    missing = sorted(want - set(pts))
    raise AssertionError(f"VictoriaMetrics never got {len(missing)} events: {missing[:10]}")


# ---------------------------------------------------------------- the checks


def logged_total(stats: dict[str, Any]) -> int:
    """Records a band has logged this run (its last seq, on a fresh flash)."""
    return int(stats["events"]) + int(stats["markers"]) + int(stats["faults"])


async def deliver_snapshot(
    fleet: FleetProc, tap: MqttTap, seconds: float = 40
) -> dict[str, dict[str, Any]]:
    """Take the fleet's stats now and wait (bounded) until MQTT has as many events and
    markers per band as the bands had logged by then."""
    snap = await fleet.stats()

    def caught_up() -> bool:
        for band, s in snap.items():
            ev = sum(1 for k in tap.copies["event"] if k[0] == band)
            mk = sum(1 for k in tap.copies["marker"] if k[0] == band)
            if ev < s["events"] or mk < s["markers"]:
                return False
        return True

    await until(caught_up, f"MQTT caught up with what the bands logged: {snap}", seconds)
    return snap


def check_exactly_once(
    flash: dict[str, list[tuple[int, int, int, int]]],
    snap: dict[str, dict[str, Any]],
    mqtt: dict[tuple[str, int], list[int]],
    vm: dict[tuple[str, int], list[int]],
) -> set[tuple[str, int]]:
    """The delivery invariants; returns the (band, seq) of the events checked: every event
    logged before the snapshot ``snap``."""
    from protocol import codec

    logged = {(b, r[1]) for b, recs in flash.items() for r in recs if r[0] == codec.EVENT}
    must = {(b, seq) for b, seq in logged if seq <= logged_total(snap[b])}
    assert must, "the bands logged no event: nothing was tested"
    assert must <= set(mqtt), f"never on MQTT: {sorted(must - set(mqtt))}"
    assert must <= set(vm), f"never in VictoriaMetrics: {sorted(must - set(vm))}"
    assert set(mqtt) <= logged, f"on MQTT, never logged: {sorted(set(mqtt) - logged)}"
    assert set(vm) <= logged, f"in VictoriaMetrics, never logged: {sorted(set(vm) - logged)}"
    doubled = {k: v for k, v in vm.items() if len(v) != 1}
    assert not doubled, f"more than one point per (band, seq): {doubled}"
    # at-least-once on MQTT: copies may repeat, but every copy carries the same stamp,
    # the one the time-series point has
    moved = {k: (v, vm.get(k)) for k, v in mqtt.items() if set(v) != set(vm.get(k, v[:1]))}
    assert not moved, f"stamps differ between copies / sinks: {moved}"
    return must


def check_acked(acked: dict[str, int], snap: dict[str, dict[str, Any]]) -> None:
    """What was delivered was acknowledged to the band (which may then free it)."""
    for band, s in snap.items():
        assert acked[band] >= logged_total(s), (
            f"band {band}: delivered every record up to seq {logged_total(s)}, but the band's "
            f"flash says acked up to {acked[band]}"
        )
