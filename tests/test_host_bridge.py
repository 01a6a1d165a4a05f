"""The `run` role on real parts: firmware bands -> virtual radio -> bridge -> MQTT + InfluxDB.

The bands are the unmodified firmware in a ``python -m simulator.fleet run`` process
(real time, at rest); their marker buttons, pressed through the fleet's control
port at known wall times, log the records (markers travel the same path as spasm
events: logged, replayed, acked, spooled, delivered). The bridge runs in the
test's process and reaches them through bleak with ``ble.backend =
"simulator.radio.client"``; the broker and the time-series server are real. The
spasm events themselves, in separate processes, are tests/test_e2e.py's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from host.bridge import Bridge
from host.config import Config, load
from protocol import codec
from tests.e2e_chain import FleetProc, until
from tests.e2e_delivery import vm_points
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401

BACKEND = "simulator.radio.client"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetProc]:
    proc = FleetProc(tmp_path_factory.mktemp("fleet"), 6, speed=1, seed=51, scenario="rest")
    proc.launch()
    yield proc
    proc.stop()


def config(
    tmp: Path, fleet: FleetProc, mosq: Mosquitto, vm: Victoria, allow: list[str], **ble: Any
) -> Config:
    return load(
        None,
        env={},
        overrides={
            "bridge": {"id": "gw1", "stats_interval_s": 0.5},
            "ble": {
                "backend": BACKEND,
                "allow": allow,
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.5,
                "options": {"radio": fleet.radio, **ble.pop("options", {})},
                **ble,
            },
            "spool": {"path": str(tmp / "spool.db")},
            "mqtt": {"enabled": True, "port": mosq.port, "backoff_max_s": 0.5},
            "influx": {"enabled": True, "url": vm.url, "backoff_max_s": 0.5},
        },
    )


class Subscriber:
    def __init__(self, port: int) -> None:
        self.port = port
        self.marks: dict[tuple[str, int], list[int]] = {}  # (band, seq) -> utc of each copy
        self.status: dict[str, dict[str, Any]] = {}  # band -> newest status
        self.other: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe("spasm/v1/#", qos=1)
            self.ready.set()
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                topic = str(m.topic)
                if topic.endswith("/marker"):
                    e = json.loads(payload)
                    self.marks.setdefault((e["band"], e["seq"]), []).append(e["utc_ms"])
                elif topic.endswith("/status"):
                    st = json.loads(payload)
                    self.status[st["band"]] = st
                else:
                    self.other.append((topic, payload))

    def count(self, band: str) -> int:
        return sum(1 for b, _ in self.marks if b == band)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _freed(bridge: Bridge, sub: Subscriber, band: str, last: int) -> None:
    """The band says (in a fresh STATUS) that it holds nothing unacknowledged up to ``last``;
    STREAM off is the host command that makes a band send one at once. Asked again until
    then (bounded): the ACK may still be on its way when the first STATUS goes out."""

    def freed() -> bool:
        st = sub.status.get(band, {})
        return st.get("acked_seq") == last and st.get("log_used") == 0

    for _ in range(40):
        await bridge.command(band, codec.STREAM, {"on": 0, "rate_hz": 1})
        for _ in range(10):
            if freed():
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"band {band} never said it acked up to {last}: {sub.status.get(band)}")


async def test_bridge_delivers_every_record_once_and_survives_drops_and_restarts(
    tmp_path: Path, fleet: FleetProc, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    a, b, stranger = fleet.bands[:3]
    pressed = {a: await fleet.presses(a, 3), b: await fleet.presses(b, 1)}  # before any host
    sub = Subscriber(mosquitto.port)
    await sub.ready.wait()
    cfg = config(tmp_path, fleet, mosquitto, victoria, [a, b])
    bridge = Bridge(cfg)
    stop = asyncio.Event()
    run = asyncio.create_task(bridge.run(stop))
    await until(lambda: sub.count(a) == 3 and sub.count(b) == 1, "the backlog on MQTT")
    pressed[b] += await fleet.presses(b, 2)
    assert (await fleet.control({"cmd": "drop", "band": a}))["dropped"] == 1  # out of range
    pressed[a] += await fleet.presses(a, 2)
    pressed[b] += await fleet.presses(b, 2)
    await until(lambda: sub.count(a) == 5 and sub.count(b) == 5, "10 markers on MQTT")
    assert (await fleet.stats())[stranger]["connects"] == 0  # not on the allow-list
    # MQTT presence and commands through the bridge to a band.
    await until(lambda: (f"spasm/v1/{b}/online", b"online") in sub.other, "online")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish(f"spasm/v1/{b}/cmd/config_get", b'{"key": "status_s"}', qos=1)
    await until(lambda: any(t == f"spasm/v1/{b}/reply" for t, _ in sub.other), "reply")
    reply = json.loads(next(p for t, p in sub.other if t == f"spasm/v1/{b}/reply"))
    assert reply == {"cmd": "config_get", "ok": True, "key": "status_s", "value": 60, "status": 0}
    stop.set()
    await run

    # A new bridge on the same spool (with the default 23-byte MTU this time): nothing is
    # sent twice, what the band logged meanwhile flows.
    pressed[a] += await fleet.presses(a, 2)
    cfg2 = config(tmp_path, fleet, mosquitto, victoria, [a, b], options={"mtu": 23})
    bridge2 = Bridge(cfg2)
    stop2 = asyncio.Event()
    run2 = asyncio.create_task(bridge2.run(stop2))
    await until(lambda: sub.count(a) == 7, "markers after the restart")
    await until(lambda: bridge2.sessions[a].connected and bridge2.sessions[b].connected, "links")
    assert bridge2.sessions[a]._mtu == 23  # noqa: SLF001
    await _freed(bridge2, sub, a, 7)
    await _freed(bridge2, sub, b, 5)
    await until(lambda: "influx" in bridge2.stats.sinks, "influx sink up")
    stop2.set()
    await run2
    await sub.close()

    truth = {(band, i + 1): t for band, ts in pressed.items() for i, t in enumerate(ts)}
    assert set(sub.marks) == set(truth)
    # QoS 1 is at-least-once; a consumer deduping on (band, seq) sees each record, and the
    # bridge itself sent none twice here.
    assert {len(v) for v in sub.marks.values()} == {1}
    # The band stamps a press when its button poll sees it (20 ms), through its TIME_SYNC.
    assert all(abs(sub.marks[k][0] - truth[k]) <= 50 for k in truth), {
        k: sub.marks[k][0] - truth[k] for k in truth
    }
    points: dict[tuple[str, int], list[int]] = {}
    for _ in range(60):
        points = await asyncio.to_thread(vm_points, victoria, [a, b], "spasm_marker")
        if set(points) >= set(truth):
            break
        await asyncio.sleep(0.25)
    assert set(points) == set(truth)
    assert all(points[k] == sub.marks[k] for k in truth)  # one point each, the same stamp


async def test_sink_down_never_blocks_intake(
    tmp_path: Path, fleet: FleetProc, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    band = fleet.bands[3]
    await fleet.presses(band, 3)
    cfg = config(tmp_path, fleet, mosquitto, victoria, [band])
    cfg.influx.url = "http://127.0.0.1:9"  # nothing listens there
    bridge = Bridge(cfg)
    stop = asyncio.Event()
    run = asyncio.create_task(bridge.run(stop))
    sub = Subscriber(mosquitto.port)
    await sub.ready.wait()
    await until(lambda: band in bridge.sessions and bridge.sessions[band].connected, "linked")
    await _freed(bridge, sub, band, 3)  # acked (and freed on the band) while influx is down
    await until(lambda: bridge.stats.sink("mqtt").out >= 3, "mqtt keeps delivering")
    lags: dict[str, Any] = await bridge.lags()
    assert lags["influx"] >= 3 and bridge.stats.sink("influx").errors >= 1
    assert "sink.influx=out:0" in bridge.stats.line(lags)
    stop.set()
    await run
    await sub.close()


def test_cli_scan_and_run_on_firmware_bands(
    tmp_path: Path,
    fleet: FleetProc,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from host.cli import main

    band, other = fleet.bands[4], fleet.bands[5]
    for _ in range(2):
        fleet.control_sync({"cmd": "press", "band": band})
        time.sleep(0.15)  # released long enough to debounce
    monkeypatch.setenv("SPASM_RADIO", fleet.radio)
    common = ["--set", f"ble.backend='{BACKEND}'", "--set", f"ble.allow=['{band}']"]
    assert main(["scan", "--seconds", "1", *common]) == 0
    out = capsys.readouterr().out
    assert band in out and f"{other}" in out and "(not in ble.allow)" in out
    spool = f"spool.path='{tmp_path / 'cli.db'}'"
    assert main(["run", "--duration", "3", "--set", spool, *common]) == 0
    assert fleet.control_sync({"cmd": "stats"})["bands"][other]["connects"] == 0
    logs = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert any(m.startswith(f"band {band}: linked") for _, _, m in logs)
    assert any(n == "spasm.bridge" and m.startswith("stats in=") for _, n, m in logs)
    assert main(["status", "--set", spool]) == 0
    assert f"band {band}: contiguous seq 2; held: marker=2" in capsys.readouterr().out
