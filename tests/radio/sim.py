"""Shared set-up for the virtual-radio tests: a simulator process and a bleak client.

A simulator process (``python -m simulator.radio``: the air plus echo bands) is
started once per test module by the ``sim`` fixture; each test uses its own band
so that links, bonds and faults of one test do not leak into another. The
fixtures are in tests/radio/conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from bleak import BleakClient

from simulator.radio.client import VirtualBleakClient
from simulator.radio.control import request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BANDS = [f"c0ffe{i:x}" for i in range(12)]


class Sim:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.radio: str = info["radio"]
        self.control: int = info["control"]
        self.bands: dict[str, str] = info["bands"]

    def ctl(self, **cmd: Any) -> dict[str, Any]:
        return request(self.control, cmd)

    async def actl(self, **cmd: Any) -> dict[str, Any]:
        """ctl without blocking the test's event loop (for long commands)."""
        return await asyncio.to_thread(self.ctl, **cmd)

    def state(self, band: str) -> dict[str, Any]:
        return self.ctl(cmd="state", band=band)


def start_process(
    argv: list[str], stderr: int | None = None
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``python <argv>`` that prints one JSON line (its addresses) once it is ready."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"{argv} did not start")
    return proc, json.loads(line)


def start_sim(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """The radio simulator (the air plus echo bands)."""
    return start_process(["-m", "simulator.radio", *args])


async def wait_for(pred: Any, what: str, tries: int = 500) -> None:
    """Poll ``pred`` (bounded: 500 x 10 ms); fail naming ``what``."""
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def client(sim: Sim, band: str, **kw: Any) -> BleakClient:
    return BleakClient(sim.bands[band], backend=VirtualBleakClient, **kw)
