"""The bridge over the simulator's virtual radio (bumble, another process): real BLE protocol.

Looks at the radio helper's work without changing it: echo bands
(``python -m simulator.radio``) for a peer that talks garbage, and the firmware
fleet (``python -m simulator.fleet run``) for a bridge process killed with SIGKILL
and restarted. Only bleak's public API is used on the bridge side; the backend is
configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from host.bridge import Bridge
from host.config import load
from host.spool import Spool
from simulator.radio.control import request
from tests.radio.sim import start_process

ROOT = Path(__file__).resolve().parent.parent
BACKEND = {
    "backend": "simulator.radio.client:VirtualBleakClient",
    "scanner_backend": "simulator.radio.scanner:VirtualBleakScanner",
}


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def control(port: int, cmd: dict[str, Any]) -> dict[str, Any]:
    return request(port, cmd, timeout=10)


@pytest.fixture
def echo_bands() -> Iterator[dict[str, Any]]:
    proc, info = start_process(["-m", "simulator.radio", "--bands", "2"], subprocess.DEVNULL)
    yield info
    stop(proc)


async def until(cond: Callable[[], bool], what: str, tries: int = 1000) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_a_garbage_peer_on_the_real_radio_is_dropped_others_linked(
    tmp_path: Path, echo_bands: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPASM_RADIO", echo_bands["radio"])
    bad, other = sorted(echo_bands["bands"])
    cfg = load(
        None,
        env={},
        overrides={
            "ble": {
                **BACKEND,
                "allow": [bad, other],
                "max_bad_frames": 50,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 1.0,
            },
            "spool": {"path": str(tmp_path / "spool.db")},
        },
    )
    bridge = Bridge(cfg)
    stop_ev = asyncio.Event()
    run = asyncio.create_task(bridge.run(stop_ev))
    await until(
        lambda: all(s.links >= 1 for s in bridge.sessions.values()) and len(bridge.sessions) == 2,
        "both echo bands linked",
    )
    # An echo band answers our commands with our own frames: wrong type on CONTROL.
    assert bridge.stats.dropped["type"] >= 2
    reply = control(
        echo_bands["control"],
        {"cmd": "notify", "band": bad, "char": "events", "count": 200, "size": 20},
    )
    assert reply.get("ok", True) is not False
    await until(lambda: sum(bridge.stats.disconnects.values()) >= 1, "garbage peer dropped")
    assert bridge.stats.dropped["segment"] >= 10
    assert bridge.sessions[other].links >= 1  # the quiet band is unaffected
    stop_ev.set()
    await run


def spool_events(path: Path) -> dict[str, list[int]]:
    sp = Spool(path)
    out: dict[str, list[int]] = {}
    for _, r in sp.read("check", 1_000_000):
        if r.rtype == "event":
            out.setdefault(r.band, []).append(r.seq)
    sp.close()
    return out


def test_bridge_killed_with_sigkill_resumes_from_its_spool(tmp_path: Path) -> None:
    fleet, info = start_process(
        [
            "-m",
            "simulator.fleet",
            "run",
            "--bands",
            "2",
            "--scenario",
            "clonic",
            "--speed",
            "8",
            "--seed",
            "11",
            "--flash",
            str(tmp_path / "flash"),
            "--stop-on-stdin-eof",
        ],
        subprocess.DEVNULL,
    )
    try:
        env = dict(os.environ, SPASM_RADIO=info["radio"])
        spool = tmp_path / "spool.db"
        argv = [
            sys.executable,
            "-m",
            "host.cli",
            "run",
            "--set",
            f"spool.path='{spool}'",
            "--set",
            "bridge.stats_interval_s=2",
            "--set",
            f"ble.backend='{BACKEND['backend']}'",
            "--set",
            f"ble.allow={json.dumps(sorted(info['bands']))}",
        ]
        log1 = open(tmp_path / "bridge1.log", "w")  # noqa: SIM115
        bridge = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log1, stderr=log1)
        for _ in range(600):  # bounded: the detector needs some band time for spasms
            if spool.exists() and sum(len(v) for v in spool_events(spool).values()) >= 4:
                break
            time.sleep(0.2)
        os.kill(bridge.pid, signal.SIGKILL)
        bridge.wait(10)
        before = spool_events(spool)
        assert sum(len(v) for v in before.values()) >= 4
        time.sleep(2)  # the bands log on while no bridge listens
        log2 = open(tmp_path / "bridge2.log", "w")  # noqa: SIM115
        bridge = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log2, stderr=log2)
        time.sleep(8)
        logged = control(info["control"], {"cmd": "stats"})["bands"]  # logged so far
        time.sleep(4)  # the link is up: what was logged reaches the spool meanwhile
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(30) == 0  # a clean stop on SIGTERM
        final = control(info["control"], {"cmd": "stats"})["bands"]
    finally:
        stop(fleet)
    after = spool_events(spool)
    for band, seqs in before.items():
        assert after[band][: len(seqs)] == seqs  # nothing lost or rewritten by the kill
    for band in logged:
        got = after.get(band, [])
        assert sorted(got) == list(range(1, len(got) + 1))  # each once, no gap
        assert logged[band]["events"] <= len(got) <= final[band]["events"]
