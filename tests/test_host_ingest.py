"""The ingest role: two workers on one shared subscription write every event once."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
import pytest

from host.config import load
from host.ingest import IngestWorker
from host.records import Event, to_json
from host.stats import Stats
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401

BASE_UTC = (int(time.time()) - 1800) * 1000


def ev(band: str, seq: int) -> Event:
    return Event(
        band=band,
        seq=seq,
        boot=2,
        utc_ms=BASE_UTC + seq * 100,
        t_ms=seq * 100,
        kind=3,
        severity=1,
        confidence=60,
        duration_ms=3000,
        peak_act_x10=10,
        mean_act_x10=5,
        peak_acc_mg=50,
        freq_dhz=0,
        modalities=1,
    )


def worker(mosq: Mosquitto, vm: Victoria, ident: str, group: str = "g1") -> IngestWorker:
    cfg = load(
        None,
        env={},
        overrides={
            "mqtt": {"port": mosq.port},
            "influx": {"enabled": True, "url": vm.url, "batch_size": 25},
            "ingest": {
                "client_id": ident,
                "group": group,
                "batch_size": 20,
                "flush_interval_s": 0.05,
            },
        },
    )
    return IngestWorker(cfg, Stats())


async def until_true(cond: object, what: str, tries: int = 750) -> None:
    for _ in range(tries):
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_two_workers_split_the_load_and_write_each_event_once(
    mosquitto: Mosquitto, victoria: Victoria, caplog: pytest.LogCaptureFixture
) -> None:
    w1, w2 = worker(mosquitto, victoria, "w1"), worker(mosquitto, victoria, "w2")
    assert w1.filters() == ["$share/g1/spasm/v1/+/event"]
    tasks = [asyncio.create_task(w.run()) for w in (w1, w2)]
    await asyncio.wait_for(asyncio.gather(w1.ready.wait(), w2.ready.wait()), 20)
    n = 300
    bands = ("s1", "s2", "s3")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for seq in range(n):
            band = bands[seq % 3]
            await pub.publish(f"spasm/v1/{band}/event", json.dumps(to_json(ev(band, seq))), qos=1)
        # Garbage on the same topic: refused with a log line, acked, never written.
        await pub.publish("spasm/v1/s1/event", b"{not json", qos=1)
        await pub.publish("spasm/v1/s1/event", json.dumps({"seq": 1}), qos=1)
        bad = to_json(ev("s1", 7))
        bad["severity"] = 9
        await pub.publish("spasm/v1/s1/event", json.dumps(bad), qos=1)
    await until_true(
        lambda: w1.written + w2.written == n + 3, f"all consumed ({w1.written}+{w2.written})"
    )
    assert w1.written > 0 and w2.written > 0  # the broker split the group's load
    assert w1.rejected + w2.rejected == 3
    assert (
        sum("ingest: rejected message on spasm/v1/s1/event" in r.message for r in caplog.records)
        == 3
    )
    series = victoria.wait_points('spasm_event_seq{band=~"s[123]"}', n)
    seqs = sorted(v for s in series for v in s["values"])
    assert seqs == list(range(n))  # every event exactly once, none invented
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for w in (w1, w2):
        await w.close()


async def test_ingest_waits_out_an_influx_outage_without_losing_messages(
    mosquitto: Mosquitto, victoria: Victoria
) -> None:
    # Its own group: w1 and w2 left persistent sessions in g1, and the broker keeps
    # giving them their share (held until they return), as it should.
    w = worker(mosquitto, victoria, "w3", group="g2")
    w.cfg.influx.backoff_max_s = 0.2
    w.cfg.influx.timeout_s = 1.0
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(w.ready.wait(), 20)
    victoria.stop()
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for seq in range(40):
                await pub.publish("spasm/v1/o1/event", json.dumps(to_json(ev("o1", seq))), qos=1)
        await until_true(lambda: w.stats.sink("influx").errors >= 2, "write failures")
        assert w.written == 0
    finally:
        victoria.start()
    await until_true(lambda: w.written == 40, f"written after the outage ({w.written})")
    series = victoria.wait_points('spasm_event_seq{band="o1"}', 40)
    assert sorted(v for s in series for v in s["values"]) == list(range(40))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await w.close()


def test_ingest_command_consumes_until_its_duration(
    mosquitto: Mosquitto, victoria: Victoria, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from host.cli import main

    def publish_soon() -> None:
        async def pub() -> None:
            for _ in range(500):  # until the worker has subscribed (bounded)
                if any("subscribed to" in r.getMessage() for r in list(caplog.records)):
                    break
                await asyncio.sleep(0.01)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                for seq in range(5):
                    payload = json.dumps(to_json(ev("k9", seq)))
                    await c.publish("spasm/v1/k9/event", payload, qos=1)

        asyncio.run(pub())

    t = threading.Thread(target=publish_soon)
    t.start()
    args = ["ingest", "--worker-id", "cli-1", "--duration", "2.5"]
    for kv in (
        f"mqtt.port={mosquitto.port}",
        f"influx.url='{victoria.url}'",
        "ingest.group='g-cli'",
        "ingest.flush_interval_s=0.05",
    ):
        args += ["--set", kv]
    assert main(args) == 0
    t.join()
    assert any("ingest cli-1: wrote 5 records" in r.getMessage() for r in caplog.records)
    series = victoria.wait_points('spasm_event_seq{band="k9"}', 5)
    assert sorted(v for s in series for v in s["values"]) == list(range(5))
