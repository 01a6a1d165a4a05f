"""Helpers for the end-to-end tests: the whole chain as real processes.

- ``FleetProc``: ``python -m simulator.fleet run`` (the unmodified firmware on
  virtual bands, time accelerated) as a subprocess; its control port for
  stats, button presses and radio faults; after it stopped, ``flash_records``
  reads each band's flash with the firmware's own EventLog (under CPython,
  on the simulator's VirtualBoard seam): the ground truth of what was logged.
- ``BridgeProc``: ``spasm-bridge run`` (or another role, such as ``ingest``)
  as a subprocess with a TOML config written here (``write_config``), reaching
  the bands through bleak with ``ble.backend = "simulator.radio.client"``.

What arrived at the sinks (MQTT, VictoriaMetrics) and the delivery checks on it
are tests/e2e_delivery.py.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host.local_servers import log_tail
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


READY_S = 60.0  # the fleet renders its first signal chunks before its ready line


class SimStartError(AssertionError):
    """A simulator process did not start: it exited (its code and log tail) or never got ready."""


def _spawn(argv: list[str], log: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a simulator process; wait (bounded) for its JSON ready line on stdout."""
    with open(log, "a") as err:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_S)
    line = proc.stdout.readline() if ready else ""
    if line:
        return proc, dict(json.loads(line))
    if not ready:
        proc.kill()
    code = proc.wait(10)
    what = (
        f"exited with code {code} before its ready line"
        if ready
        else f"gave no ready line within {READY_S:g} s (killed)"
    )
    raise SimStartError(f"{argv[2]} {what}; log {log}: {log_tail(log, 8)}")


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
