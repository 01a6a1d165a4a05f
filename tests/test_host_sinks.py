"""MQTT and InfluxDB sinks against a real mosquitto and a real VictoriaMetrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from host.async_spool import AsyncSpool
from host.config import InfluxSection, MqttSection
from host.influx_sink import InfluxSink
from host.mqtt_sink import MqttSink
from host.records import Event, Record, Signal, Status, from_json
from host.sinks import drain_forever
from host.spool import Spool
from host.stats import Stats
from protocol import codec
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401

# Recent: VictoriaMetrics drops points older than its retention (1 month by default).
BASE_UTC = (int(time.time()) - 3600) * 1000


def ev(band: str, seq: int) -> Event:
    return Event(
        band=band,
        seq=seq,
        boot=1,
        utc_ms=BASE_UTC + seq * 1000,
        t_ms=seq * 1000,
        kind=1 + seq % 3,
        severity=2,
        confidence=77,
        duration_ms=900,
        peak_act_x10=123,
        mean_act_x10=45,
        peak_acc_mg=321,
        freq_dhz=42,
        modalities=3,
    )


def status(band: str, seq: int) -> Status:
    return Status(
        band=band,
        seq=seq,
        boot=1,
        utc_ms=BASE_UTC + 500,
        uptime_ms=500,
        battery_pct=77,
        battery_mv=3800,
        quality=90,
        faults=0,
        log_used=3,
        log_capacity=100,
        log_overwritten=0,
        last_seq=2,
        acked_seq=2,
        state=1,
        fw_major=1,
        fw_minor=0,
        fw_patch=0,
    )


def signal(band: str, seq: int) -> Signal:
    return Signal(
        band=band,
        seq=seq,
        boot=1,
        utc_ms=BASE_UTC + 10_000,
        t_ms=10_000,
        rate_hz=25,
        count=3,
        samples=((10, 1, 2, 3), (20, 4, 5, 6), (30, 7, 8, 9)),
    )


async def until(cond: Callable[[], bool], what: str, tries: int = 750) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


class Collector:
    """A plain MQTT subscriber that keeps (topic, payload, retain, qos) of what it gets."""

    def __init__(self, port: int, topic: str) -> None:
        self.port, self.topic = port, topic
        self.got: list[tuple[str, bytes, bool, int]] = []
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe(self.topic, qos=1)
            self.ready.set()
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.got.append((str(m.topic), payload, bool(m.retain), m.qos))

    def by_topic(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _, _ in self.got if t.endswith(suffix)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def spool_with(tmp: Path, records: list[Record]) -> AsyncSpool:
    sp = Spool(tmp / "spool.db")
    sp.add(records)
    return AsyncSpool(sp)


async def test_mqtt_sink_topics_qos_and_retained_status(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    band = "m1"
    sub = Collector(mosquitto.port, f"spasm/v1/{band}/#")
    await sub.ready.wait()
    recs: list[Record] = [ev(band, s) for s in range(1, 21)] + [status(band, 1), signal(band, 1)]
    spool = spool_with(tmp_path, recs)
    stats = Stats()
    sink = MqttSink(MqttSection(enabled=True, port=mosquitto.port), "t1", stats)
    await sink.start()
    wake = asyncio.Event()
    task = asyncio.create_task(drain_forever(sink, spool, stats, wake, 8, 1.0))
    await until(
        lambda: len(sub.by_topic("/event")) == 20 and bool(sub.by_topic("/signal")), "events"
    )
    events = sub.by_topic("/event")
    assert [from_json("event", band, e) for e in events] == [ev(band, s) for s in range(1, 21)]
    assert events[0]["kind_name"] == codec.KINDS[2]  # seq 1: kind 1 + 1 % 3
    assert {q for t, _, _, q in sub.got if t.endswith("/event")} == {1}
    assert from_json("status", band, sub.by_topic("/status")[0]) == status(band, 1)
    assert from_json("signal", band, sub.by_topic("/signal")[0]) == signal(band, 1)
    late = Collector(mosquitto.port, f"spasm/v1/{band}/status")  # retained for newcomers
    await until(lambda: len(late.got) == 1, "retained status")
    assert late.got[0][2] is True
    await until(lambda: stats.sink("mqtt").out == 22, "cursor")
    assert await spool.lag("mqtt") == 0
    sink.band_online(band, True)
    await until(lambda: (f"spasm/v1/{band}/online", b"online", False, 1) in sub.got, "online")
    sink.band_online(band, False)
    await until(lambda: (f"spasm/v1/{band}/online", b"offline", False, 1) in sub.got, "offline")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
    for c in (sub, late):
        await c.close()
    await spool.close()


class GatedMqttSink(MqttSink):
    """Holds deliveries until the test's subscriber is listening again."""

    gate: asyncio.Event

    async def deliver(self, records: list[Record]) -> None:
        await self.gate.wait()
        await super().deliver(records)


async def test_mqtt_sink_down_then_back_drains_backlog(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    band = "m2"
    spool = spool_with(tmp_path, [ev(band, s) for s in range(1, 6)])
    stats = Stats()
    sink = GatedMqttSink(
        MqttSection(enabled=True, port=mosquitto.port, backoff_max_s=0.3), "t2", stats
    )
    sink.gate = asyncio.Event()
    sink.gate.set()
    await sink.start()
    wake = asyncio.Event()
    task = asyncio.create_task(drain_forever(sink, spool, stats, wake, 50, 0.3))
    await until(lambda: stats.sink("mqtt").out == 5, "first delivery")
    mosquitto.stop()
    try:
        await until(lambda: not sink.up, "sink notices the broker is gone")
        sink.gate.clear()
        await spool.add([ev(band, s) for s in range(6, 41)])  # intake goes on meanwhile
        wake.set()
        assert await spool.lag("mqtt") == 35
    finally:
        mosquitto.start()
    sub = Collector(mosquitto.port, f"spasm/v1/{band}/event")
    await sub.ready.wait()
    sink.gate.set()
    await until(lambda: len(sub.by_topic("/event")) >= 35, "backlog drained")
    assert sorted({e["seq"] for e in sub.by_topic("/event")}) == list(range(6, 41))
    await until(lambda: stats.sink("mqtt").out == 40, "cursor moved")
    assert await spool.lag("mqtt") == 0
    assert stats.reconnects >= 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
    await sub.close()
    await spool.close()


async def test_malformed_mqtt_commands_are_rejected_with_a_log_line(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, int, dict[str, Any]]] = []

    async def handler(band: str, ftype: int, fields: dict[str, Any]) -> None:
        calls.append((band, ftype, fields))

    sink = MqttSink(MqttSection(enabled=True, port=mosquitto.port), "t3", Stats(), handler)
    await sink.start()
    await until(lambda: sink.up, "sink connected")
    replies = Collector(mosquitto.port, "spasm/v1/c1/reply")
    await replies.ready.wait()
    bad = [
        ("config_get", b"not json"),
        ("config_get", b"[1, 2]"),
        ("config_get", b"{}"),
        ("stream", b'{"on": true, "rate_hz": 500}'),
        ("stream", b'{"on": "yes", "rate_hz": 5}'),
        ("config_set", b'{"key": "k", "value": {"a": 1}}'),
        ("launch", b"{}"),
        ("config_get", b'{"key": "' + b"k" * 100 + b'"}'),
        ("config_get", b"\xff\xfe"),
        # (issue 6) the first two raised past parse_command and ended the connection task
        ("config_get", b"[" * 100_000),
        ("config_get", b'{"key": "\\ud800"}'),
        ("config_set", b'{"key": "k", "value": NaN}'),
    ]
    caplog.set_level(logging.WARNING, logger="spasm.mqtt")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for name, payload in bad:
            await pub.publish(f"spasm/v1/c1/cmd/{name}", payload, qos=1)
        await pub.publish("spasm/v1/c1/cmd/stream", b'{"on": true, "rate_hz": 10}', qos=1)
        await pub.publish("spasm/v1/c1/cmd/config_set", b'{"key": "thr", "value": 2.5}', qos=1)
    await until(lambda: len(replies.by_topic("/reply")) == len(bad) + 2, "replies")
    assert sink.rejected == len(bad)
    rejected = [r for r in caplog.records if "rejected command on spasm/v1/c1/cmd/" in r.message]
    assert len(rejected) == len(bad)
    oks = [r for r in replies.by_topic("/reply") if r["ok"]]
    assert len(oks) == 2
    assert calls == [
        ("c1", codec.STREAM, {"on": 1, "rate_hz": 10}),
        ("c1", codec.CONFIG_SET, {"key": "thr", "value": 2.5}),
    ]
    await replies.close()
    await sink.close()


def influx_cfg(victoria: Victoria, **kw: Any) -> InfluxSection:
    return InfluxSection(
        enabled=True, url=victoria.url, token="t", batch_size=7, backoff_max_s=0.3, **kw
    )


async def test_influx_sink_writes_points_and_a_rewrite_is_one_point(
    tmp_path: Path, victoria: Victoria
) -> None:
    band = "i1"
    recs: list[Record] = [ev(band, s) for s in range(1, 26)] + [status(band, 1), signal(band, 1)]
    sink = InfluxSink(influx_cfg(victoria))
    await sink.deliver(recs)
    await sink.deliver(recs[:10])  # a replay, a retry: the same points again
    series = victoria.wait_points(f'spasm_event_seq{{band="{band}"}}', 25)
    points = sorted(
        (t, v) for s in series for t, v in zip(s["timestamps"], s["values"], strict=True)
    )
    assert points == [(BASE_UTC + s * 1000, s) for s in range(1, 26)]
    assert {s["metric"]["kind"] for s in series} == {"myoclonic", "clonic", "tonic"}
    sev = victoria.wait_points(f'spasm_event_peak_act{{band="{band}"}}', 25)
    assert {v for s in sev for v in s["values"]} == {12.3}
    emg = victoria.wait_points(f'spasm_signal_emg_uv{{band="{band}"}}', 3)
    assert sorted(zip(emg[0]["timestamps"], emg[0]["values"], strict=True)) == [
        (BASE_UTC + 10_000, 10),
        (BASE_UTC + 10_040, 20),
        (BASE_UTC + 10_080, 30),
    ]
    batt = victoria.wait_points(f'spasm_status_battery_pct{{band="{band}"}}', 1)
    assert batt[0]["values"] == [77]
    await sink.close()


async def test_influx_sink_down_then_back_drains_backlog(
    tmp_path: Path, victoria: Victoria
) -> None:
    band = "i2"
    spool = spool_with(tmp_path, [ev(band, s) for s in range(1, 11)])
    stats = Stats()
    sink = InfluxSink(influx_cfg(victoria, timeout_s=2.0))
    wake = asyncio.Event()
    task = asyncio.create_task(drain_forever(sink, spool, stats, wake, 50, 0.3))
    await until(lambda: stats.sink("influx").out == 10, "first delivery")
    victoria.stop()
    try:
        await spool.add([ev(band, s) for s in range(11, 61)])
        wake.set()
        await until(lambda: stats.sink("influx").errors >= 2, "failures while down")
        assert await spool.lag("influx") == 50 and not sink.up
    finally:
        victoria.start()
    await until(lambda: stats.sink("influx").out == 60, "backlog drained")
    series = victoria.wait_points(f'spasm_event_seq{{band="{band}"}}', 60)
    assert sorted(v for s in series for v in s["values"]) == list(range(1, 61))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
    await spool.close()


def _all_kinds(band: str) -> list[Record]:
    from host.records import Fault, Marker, Onset

    return [
        ev(band, 1),
        Event(**{**ev(band, 2).__dict__, "kind": 250, "peak_act_x10": 10, "freq_dhz": 0}),
        Marker(band=band, seq=3, boot=1, utc_ms=BASE_UTC, t_ms=5, source=2),
        Fault(band=band, seq=4, boot=1, utc_ms=BASE_UTC, t_ms=6, fault=1, duration_ms=70),
        Onset(band=band, seq=5, boot=2, utc_ms=BASE_UTC, t_ms=7, kind=1, confidence=60, act_x10=33),
        status(band, 6),
        signal(band, 7),
        Signal(
            band=band,
            seq=8,
            boot=1,
            utc_ms=BASE_UTC,
            t_ms=0,
            rate_hz=50,
            count=10,
            samples=tuple((-i, i, -i, 1000) for i in range(10)),
        ),  # fmt: skip
    ]


@pytest.mark.parametrize("band", ["a1b2c3", "odd band,=x\\"])
def test_line_protocol_is_what_influxdb_client_makes_of_the_points(band: str) -> None:
    from host.influx_sink import lines, points

    for rec in _all_kinds(band):
        assert lines(rec) == [p.to_line_protocol() for p in points(rec)], rec.rtype
        assert lines(rec, signal=False) == [p.to_line_protocol() for p in points(rec, signal=False)]


def test_mqtt_payload_is_the_records_json() -> None:
    from host.mqtt_sink import payload
    from host.records import to_json

    for rec in _all_kinds("a1b2c3"):
        assert json.loads(payload(rec)) == json.loads(json.dumps(to_json(rec))), rec.rtype
