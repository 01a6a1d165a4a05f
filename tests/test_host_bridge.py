"""The `run` role end to end on scripted bands: discovery -> sessions -> spool -> MQTT + InfluxDB.

The bands are tests/host_fakeband.py behind bleak's ``backend=``; the broker and the
time-series server are real. (The simulator's virtual radio with the firmware app is
exercised by the lead's end-to-end tests.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from host.bridge import Bridge
from host.config import Config, load
from tests.host_fakeband import REGISTRY, FakeBand
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    REGISTRY.clear()
    yield
    REGISTRY.clear()


async def until(cond: Callable[[], bool], what: str, tries: int = 750) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def config(tmp: Path, mosq: Mosquitto, vm: Victoria, allow: list[str]) -> Config:
    return load(
        None,
        env={},
        overrides={
            "bridge": {"id": "gw1", "stats_interval_s": 0.5},
            "ble": {
                "backend": "tests.host_fakeband:FakeClient",
                "allow": allow,
                "backoff_initial_s": 0.02,
                "backoff_max_s": 0.2,
            },
            "spool": {"path": str(tmp / "spool.db")},
            "mqtt": {"enabled": True, "port": mosq.port, "backoff_max_s": 0.5},
            "influx": {"enabled": True, "url": vm.url, "backoff_max_s": 0.5},
        },
    )


class Subscriber:
    def __init__(self, port: int) -> None:
        self.port = port
        self.events: dict[tuple[str, int], int] = {}  # (band, seq) -> copies seen
        self.utc: dict[tuple[str, int], int] = {}
        self.other: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe("spasm/v1/#", qos=1)
            self.ready.set()
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                if str(m.topic).endswith("/event"):
                    e = json.loads(payload)
                    key = (e["band"], e["seq"])
                    self.events[key] = self.events.get(key, 0) + 1
                    self.utc[key] = e["utc_ms"]
                else:
                    self.other.append((str(m.topic), payload))

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_bridge_delivers_every_event_once_and_survives_drops_and_restarts(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    a, b, stranger = FakeBand("aa01", mtu=23), FakeBand("bb02", mtu=247), FakeBand("cc03")
    a.log_event(6)  # waiting on the band before the bridge starts
    sub = Subscriber(mosquitto.port)
    await sub.ready.wait()
    cfg = config(tmp_path, mosquitto, victoria, ["aa01", "bb02"])
    bridge = Bridge(cfg)
    stop = asyncio.Event()
    run = asyncio.create_task(bridge.run(stop))
    await until(lambda: a.client is not None and b.client is not None, "both bands linked")
    b.log_event(5)
    a.drop_link()  # out of range for a moment
    a.log_event(4)
    b.log_event(5)
    await until(lambda: len(sub.events) == 20, "20 events on MQTT")
    assert stranger.connects == 0  # not on the allow-list
    # MQTT presence and commands through the bridge to a band.
    await until(lambda: ("spasm/v1/bb02/online", b"online") in sub.other, "online")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish("spasm/v1/bb02/cmd/config_get", b'{"key": "threshold"}', qos=1)
    await until(lambda: any(t == "spasm/v1/bb02/reply" for t, _ in sub.other), "reply")
    reply = json.loads(next(p for t, p in sub.other if t == "spasm/v1/bb02/reply"))
    assert reply == {"cmd": "config_get", "ok": True, "key": "threshold", "value": 42, "status": 0}
    stop.set()
    await run

    # A new bridge on the same spool: nothing is sent twice, new events flow.
    a.log_event(3)
    bridge2 = Bridge(cfg)
    stop2 = asyncio.Event()
    run2 = asyncio.create_task(bridge2.run(stop2))
    await until(lambda: len(sub.events) == 23, "events after restart")
    await until(lambda: bridge2.stats.sinks.get("influx") is not None, "influx sink up")
    await until(lambda: bridge2.stats.sink("influx").out > 0, "influx delivered")
    stop2.set()
    await run2
    await sub.close()

    truth = {("aa01", s): t for s, t in a.truth.items()}
    truth.update({("bb02", s): t for s, t in b.truth.items()})
    assert set(sub.events) == set(truth)
    # QoS 1 is at-least-once; a consumer deduping on (band, seq) sees each event, and the
    # bridge itself sent none twice here.
    assert set(sub.events.values()) == {1}
    assert all(abs(sub.utc[k] - truth[k]) <= 50 for k in truth)
    series = victoria.wait_points('spasm_event_seq{band=~"aa01|bb02"}', len(truth))
    got = sorted((s["metric"]["band"], int(v)) for s in series for v in s["values"])
    assert got == sorted(truth)
    stamps = {
        (s["metric"]["band"], int(v)): t
        for s in series
        for t, v in zip(s["timestamps"], s["values"], strict=True)
    }
    assert all(abs(stamps[k] - truth[k]) <= 50 for k in truth)
    assert a.log == {} and b.log == {}  # every event acked, so the bands freed them


async def test_sink_down_never_blocks_intake(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    band = FakeBand("dd04")
    cfg = config(tmp_path, mosquitto, victoria, ["dd04"])
    cfg.influx.url = "http://127.0.0.1:9"  # nothing listens there
    bridge = Bridge(cfg)
    stop = asyncio.Event()
    run = asyncio.create_task(bridge.run(stop))
    await until(lambda: band.client is not None, "linked")
    band.log_event(30)
    await until(lambda: bool(band.acks()) and band.acks()[-1] == 29, "acked while influx is down")
    await until(lambda: bridge.stats.sink("mqtt").out >= 30, "mqtt keeps delivering")
    lags: dict[str, Any] = await bridge.lags()
    assert lags["influx"] >= 30 and bridge.stats.sink("influx").errors >= 1
    assert "sink.influx=out:0" in bridge.stats.line(lags)
    stop.set()
    await run
    time.sleep(0)


def test_cli_scan_and_run_on_scripted_bands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from host.cli import main

    band, other = FakeBand("ee05"), FakeBand("ff06")
    band.log_event(3)
    common = ["--set", "ble.backend='tests.host_fakeband'", "--set", "ble.allow=['ee05']"]
    assert main(["scan", "--seconds", "0.3", *common]) == 0
    out = capsys.readouterr().out
    assert "ee05" in out and "ff06" in out and "(not in ble.allow)" in out
    spool = f"spool.path='{tmp_path / 'cli.db'}'"
    assert main(["run", "--duration", "1.5", "--set", spool, *common]) == 0
    assert band.acks()[-1] == 2 and other.connects == 0
    logs = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert any(m.startswith("band ee05: linked") for _, _, m in logs)
    assert any(n == "spasm.bridge" and m.startswith("stats in=") for _, n, m in logs)
    assert main(["status", "--set", spool]) == 0
    assert "band ee05: contiguous seq 2; held: event=3" in capsys.readouterr().out
