"""Alert delivery through a real mosquitto, a command and a webhook.

Alerts reach every channel; a failing channel (or a missing program or broker) is counted
and does not stop the others; records spooled by the bridge reach the rules through the
alert sink on its spool cursor and come out on MQTT.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from host.alert_config import AlertsSection, check_section
from host.alert_publish import AlertPublisher
from host.alerts import Alert, AlertEngine
from host.config import MqttSection
from host.records import Record
from tests.alerts.receivers import Hook, collect
from tests.alerts.records import HOUR, MIN, T0, B, ev, feed, rules, status
from tests.servers import Mosquitto


async def test_alerts_end_to_end(
    mosquitto: Mosquitto, tmp_path: Path, webhook: tuple[str, type[Hook]]
) -> None:
    url, hook = webhook
    out = tmp_path / "alert.json"
    cfg = AlertsSection(
        enabled=True,
        cooldown_min=60,
        command=[sys.executable, "-c",
                 "import sys, os; open(sys.argv[1], 'a').write(sys.stdin.read() + '\\n'"
                 " + os.environ['SPASM_ALERT_RULE'] + '\\n')", str(out)],
        webhook_url=url,
    )  # fmt: skip
    check_section(cfg)
    eng = AlertEngine(cfg)
    pub = AlertPublisher(cfg, MqttSection(host="127.0.0.1", port=mosquitto.port), "test")
    noon = T0 + 12 * HOUR
    # One episode of five severe spasms in ten minutes, and a low battery: two alerts.
    recs: list[Record] = [ev(i, noon + i * 2 * MIN, severity=3) for i in range(5)]
    recs.append(status(0, noon + 3 * MIN, battery=9))
    alerts = feed(eng, recs)
    assert rules(alerts) == ["severe_spasm", "battery_low"]

    async def go() -> None:
        task = asyncio.create_task(pub.run())
        pub.submit(alerts)
        for _ in range(600):  # bounded: at most 30 s
            if pub.counts.handled >= 2:
                break
            await asyncio.sleep(0.05)
        task.cancel()

    got = await collect(mosquitto, 2, go)
    await pub.close()
    assert got == [json.loads(json.dumps(a.to_json())) for a in alerts]
    assert pub.counts.published == 2 and pub.counts.failed == 0
    assert pub.counts.commands == 2 and pub.counts.webhooks == 2
    lines = out.read_text().splitlines()
    assert [json.loads(lines[0])["rule"], lines[1], json.loads(lines[2])["rule"], lines[3]] == [
        "severe_spasm", "severe_spasm", "battery_low", "battery_low"
    ]  # fmt: skip
    assert [json.loads(b)["rule"] for b in hook.bodies] == ["severe_spasm", "battery_low"]


async def test_a_failing_channel_does_not_stop_the_others(
    mosquitto: Mosquitto, webhook: tuple[str, type[Hook]]
) -> None:
    url, hook = webhook
    hook.status = 500
    cfg = AlertsSection(command=[sys.executable, "-c", "import sys; sys.exit(3)"], webhook_url=url)
    pub = AlertPublisher(cfg, MqttSection(host="127.0.0.1", port=mosquitto.port), "test2")
    a = Alert(B, "battery_low", T0, f"Band {B}: battery at 5 % (alert at 15 % or less).")

    async def go() -> None:
        await pub.publish([a])

    got = await collect(mosquitto, 1, go)
    await pub.close()
    assert got[0]["rule"] == "battery_low"
    assert pub.counts.published == 1 and pub.counts.commands == 0 and pub.counts.webhooks == 0
    assert pub.counts.failed == 2 and len(hook.bodies) == 1
    # A program that does not exist, and a broker that is not there: counted, not raised.
    dead = MqttSection(host="127.0.0.1", port=1)
    pub2 = AlertPublisher(AlertsSection(command=["/nonexistent/notify"]), dead, "test3")
    await pub2.publish([a])
    assert pub2.counts.failed == 2 and pub2.counts.published == 0


async def test_alert_sink_on_the_spool_cursor(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Records spooled by the bridge reach the rules through the sink loop and come out on MQTT."""
    import time

    from host.alert_sink import AlertSink
    from host.async_spool import AsyncSpool
    from host.sinks import drain_forever
    from host.spool import Spool
    from host.stats import Stats

    now = int(time.time() * 1000)
    spool = AsyncSpool(Spool(tmp_path / "spool.db"))
    recs = [ev(i, now - 60_000 + i * 1000, kind=3, severity=3, dur_ms=50_000) for i in range(1, 4)]
    recs.append(ev(4, now - 3 * HOUR, severity=3))  # replayed backlog: history only
    await spool.add(recs)
    sink = AlertSink(
        AlertsSection(enabled=True), MqttSection(host="127.0.0.1", port=mosquitto.port)
    )
    stats = Stats()

    async def go() -> None:
        await sink.start()
        task = asyncio.create_task(drain_forever(sink, spool, stats, asyncio.Event(), 50, 0.3))
        for _ in range(600):  # bounded: at most 30 s
            if sink.publisher.counts.handled >= 2:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    got = await collect(mosquitto, 2, go)
    await sink.close()
    assert sorted(g["rule"] for g in got) == ["long_tonic", "severe_spasm"]
    assert all(g["seq"] == 1 and g["band"] == B for g in got)
    assert await spool.lag("alerts") == 0
    await spool.close()
