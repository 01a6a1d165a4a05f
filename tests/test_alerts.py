"""Alert rules (unit) and alert delivery through a real mosquitto, a command and a webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from host import config as host_config
from host.alert_config import AlertConfigError, AlertsSection, Thresholds, check_section
from host.alert_publish import AlertPublisher
from host.alerts import RULES, Alert, AlertEngine
from host.config import MqttSection
from host.records import Event, Fault, Record, Status
from tests.servers import Mosquitto, mosquitto_fixture  # noqa: F401

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR)  # a midnight UTC in 2026
B = "a1b2c3"

# Words that would make an alert read as medical advice. Alert texts state facts only.
ADVICE = re.compile(
    r"\b(should|must|take|taking|dose|dosage|doctor|physician|nurse|call|consult|seek|"
    r"recommend\w*|advis\w*|advice|medication|medicine|drug|treat\w*|therapy|emergency|"
    r"hospital|please|try|stop|increase your|reduce|rest|relax|stretch|drink|worry)\b",
    re.IGNORECASE,
)


def ev(
    seq: int, t: int, kind: int = 1, severity: int = 1, dur_ms: int = 500, band: str = B
) -> Event:
    return Event(
        band=band, seq=seq, boot=1, utc_ms=t, t_ms=1000, kind=kind, severity=severity,
        confidence=80, duration_ms=dur_ms, peak_act_x10=100, mean_act_x10=50, peak_acc_mg=300,
        freq_dhz=0, modalities=3,
    )  # fmt: skip


def status(seq: int, t: int, battery: int = 80, faults: int = 0) -> Status:
    return Status(
        band=B, seq=seq, boot=1, utc_ms=t, uptime_ms=1000, battery_pct=battery, battery_mv=3700,
        quality=90, faults=faults, log_used=0, log_capacity=100, log_overwritten=0, last_seq=0,
        acked_seq=0, state=1, fw_major=1, fw_minor=0, fw_patch=0,
    )  # fmt: skip


def fault(seq: int, t: int, kind: int, dur_ms: int) -> Fault:
    return Fault(band=B, seq=seq, boot=1, utc_ms=t, t_ms=1000, fault=kind, duration_ms=dur_ms)


def feed(engine: AlertEngine, recs: Sequence[Record]) -> list[Alert]:
    out: list[Alert] = []
    for r in recs:
        out += engine.feed(r, now_ms=r.utc_ms + 1000)
    return out


def rules(alerts: list[Alert]) -> list[str]:
    return [a.rule for a in alerts]


def daytime(seq: int, t: int, **kw: Any) -> Event:
    return ev(seq, t, **kw)


# ------------------------------------------------------------ rules


def test_severe_spasm_once_per_cooldown() -> None:
    eng = AlertEngine(AlertsSection(cooldown_min=60))
    noon = T0 + 12 * HOUR
    got = feed(eng, [ev(0, noon, severity=3), ev(1, noon + 5 * MIN, severity=3)])
    assert rules(got) == ["severe_spasm"]
    assert got[0].seq == 0 and got[0].values["severity"] == 3
    assert rules(feed(eng, [ev(2, noon + 61 * MIN, severity=3)])) == ["severe_spasm"]
    assert feed(eng, [ev(3, noon + 62 * MIN, severity=2)]) == []


def test_long_tonic_with_per_band_threshold() -> None:
    cfg = AlertsSection(long_tonic_s=30, bands={"b2": {"long_tonic_s": 5.0}})
    check_section(cfg)
    eng = AlertEngine(cfg)
    noon = T0 + 12 * HOUR
    assert rules(feed(eng, [ev(0, noon, kind=3, dur_ms=40_000)])) == ["long_tonic"]
    assert feed(eng, [ev(1, noon + MIN, kind=1, dur_ms=40_000, band="b3")]) == []  # not tonic
    assert feed(eng, [ev(2, noon + MIN, kind=3, dur_ms=10_000, band="b3")]) == []  # short
    got = feed(eng, [ev(3, noon + MIN, kind=3, dur_ms=10_000, band="b2")])
    assert rules(got) == ["long_tonic"] and got[0].band == "b2"
    assert eng.thresholds("b2").long_tonic_s == 5 and eng.thresholds("b3").long_tonic_s == 30


def test_rate_above_baseline_needs_history_then_fires_once() -> None:
    cfg = AlertsSection(sleep_hours="00:00-00:01", baseline_min_hours=24, rate_factor=3)
    eng = AlertEngine(cfg)
    seq = 0
    # A burst on the first day: no baseline yet, no alert.
    burst0 = [ev(seq + i, T0 + 10 * HOUR + i * 5 * MIN) for i in range(6)]
    seq += 6
    assert "rate_above_baseline" not in rules(feed(eng, burst0))
    # Three days of one spasm every two hours: the band's own baseline, about 0.5 per hour.
    calm = [ev(seq + i, T0 + 11 * HOUR + i * 2 * HOUR) for i in range(36)]
    seq += 36
    assert "rate_above_baseline" not in rules(feed(eng, calm))
    start = calm[-1].utc_ms + 2 * HOUR
    burst = [ev(seq + i, start + i * 6 * MIN) for i in range(8)]
    got = [a for a in feed(eng, burst) if a.rule == "rate_above_baseline"]
    assert len(got) == 1  # the cooldown holds the rest of the episode
    a = got[0]
    assert a.values["last_hour"] >= 4
    assert a.values["last_hour"] > 3 * a.values["baseline_per_h"]
    assert 0.3 < a.values["baseline_per_h"] < 0.8


def test_sleep_spasms_in_the_patients_timezone() -> None:
    cfg = AlertsSection(timezone="Europe/Berlin", sleep_hours="22:00-07:00", sleep_max_count=3)
    eng = AlertEngine(cfg)
    night = T0 + 1 * HOUR  # 02:00 in Berlin (UTC+1 in November)
    got = feed(eng, [ev(i, night + i * 10 * MIN) for i in range(3)])
    assert rules(got) == ["sleep_spasms"]
    assert "22:00-07:00" in got[0].text and got[0].values["count"] == 3
    morning = T0 + 24 * HOUR + 6 * HOUR + 30 * MIN  # 07:30 in Berlin: awake
    awake = feed(eng, [ev(10 + i, morning + i * 5 * MIN) for i in range(4)])
    assert "sleep_spasms" not in rules(awake)


def test_not_worn_and_sensor_faults() -> None:
    eng = AlertEngine(AlertsSection(fault_min_s=60))
    noon = T0 + 12 * HOUR
    assert feed(eng, [fault(0, noon, 1, 10_000)]) == []  # a short lead-off: a loose moment
    assert rules(feed(eng, [fault(1, noon, 1, 120_000)])) == ["not_worn"]
    assert rules(feed(eng, [fault(2, noon, 2, 120_000)])) == ["sensor_fault"]
    eng2 = AlertEngine(AlertsSection())
    assert rules(feed(eng2, [status(0, noon, faults=0b0001)])) == ["not_worn"]
    got = feed(eng2, [status(1, noon, faults=0b1100)])
    assert rules(got) == ["sensor_fault"] and "flatline" in got[0].text


def test_battery_low_once_per_cooldown() -> None:
    eng = AlertEngine(AlertsSection(battery_low_pct=15, cooldown_min=120))
    noon = T0 + 12 * HOUR
    assert feed(eng, [status(0, noon, battery=50)]) == []
    recs = [status(i, noon + i * 10 * MIN, battery=14 - i) for i in range(6)]
    got = feed(eng, recs)
    assert rules(got) == ["battery_low"] and got[0].values["battery_pct"] == 14


def test_offline_once_per_silence() -> None:
    eng = AlertEngine(AlertsSection(offline_after_min=30, cooldown_min=0))
    t = T0 + 12 * HOUR
    eng.link(B, True, t)
    feed(eng, [status(0, t)])
    eng.link(B, False, t + MIN)
    assert eng.tick(t + 20 * MIN) == []
    got = eng.tick(t + 40 * MIN)
    assert rules(got) == ["offline"] and got[0].values["silent_min"] >= 30
    assert eng.tick(t + 90 * MIN) == []  # still the same silence
    eng.link(B, True, t + 100 * MIN)
    assert eng.tick(t + 200 * MIN) == []  # linked: not offline however long it is quiet
    eng.link(B, False, t + 200 * MIN)
    assert rules(eng.tick(t + 240 * MIN)) == ["offline"]


def test_backlog_and_duplicates_raise_nothing() -> None:
    eng = AlertEngine(AlertsSection(cooldown_min=0, stale_after_min=60))
    t = T0 + 12 * HOUR
    # A replayed backlog from yesterday: history, not news.
    assert eng.feed(ev(0, t, severity=3), now_ms=t + 24 * HOUR) == []
    assert eng.bands[B].events[-1] == t
    got = eng.feed(ev(1, t + 24 * HOUR, severity=3), now_ms=t + 24 * HOUR)
    assert rules(got) == ["severe_spasm"]
    assert eng.feed(ev(1, t + 24 * HOUR, severity=3), now_ms=t + 24 * HOUR) == []  # same seq


def _all_alerts() -> list[Alert]:
    """One scenario that raises every rule."""
    cfg = AlertsSection(cooldown_min=0, baseline_min_hours=24, timezone="UTC")
    eng = AlertEngine(cfg)
    out: list[Alert] = []
    seq = 0
    for i in range(40):  # baseline: one every two hours
        out += feed(eng, [ev(seq, T0 + 9 * HOUR + i * 2 * HOUR)])
        seq += 1
    night = T0 + 4 * 24 * HOUR + 2 * HOUR
    for i in range(6):
        out += feed(eng, [ev(seq, night + i * 5 * MIN, kind=3, severity=3, dur_ms=60_000)])
        seq += 1
    out += feed(eng, [fault(seq, night, 1, 300_000), fault(seq + 1, night, 3, 300_000)])
    out += feed(eng, [status(0, night, battery=5, faults=0b1001)])
    eng.link(B, False, night)
    out += eng.tick(night + 5 * HOUR)
    return out


def test_every_rule_fires_and_no_text_gives_advice() -> None:
    alerts = _all_alerts()
    assert set(rules(alerts)) == set(RULES)
    for a in alerts:
        assert a.text and B in a.text
        assert not ADVICE.search(a.text), f"advice-like wording in {a.rule}: {a.text}"
        assert a.rule in RULES and a.level in ("info", "warning")
        d = json.loads(json.dumps(a.to_json()))
        assert d["type"] == "alert" and d["band"] == B and d["rule"] == a.rule


# ------------------------------------------------------------ config


def test_config_section_fits_host_config() -> None:
    """[alerts] uses only the field types host.config reads, so it can join Config as is."""

    @dataclasses.dataclass
    class WithAlerts:
        alerts: AlertsSection = dataclasses.field(default_factory=AlertsSection)

    c = WithAlerts()
    host_config._apply(
        c,  # type: ignore[arg-type]
        {"alerts": {"enabled": True, "timezone": "Europe/Berlin", "battery_low_pct": 20,
                    "command": ["notify-send", "spasm"], "bands": {"b1": {"cooldown_min": 5}}}},
        "test",
    )  # fmt: skip
    check_section(c.alerts)
    assert c.alerts.for_band("b1").cooldown_min == 5.0 and c.alerts.battery_low_pct == 20
    with pytest.raises(host_config.ConfigError, match="alerts.battery_low_pct"):
        host_config._apply(c, {"alerts": {"battery_low_pct": 101}}, "test")  # type: ignore[arg-type]
    for f in dataclasses.fields(AlertsSection):
        assert str(f.type) in ("bool", "int", "float", "str", "list[str]", "dict[str, Any]")


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"sleep_hours": "late"}, "alerts.sleep_hours"),
        ({"sleep_hours": "22:00-25:00"}, "alerts.sleep_hours"),
        ({"timezone": "Mars/Olympus"}, "alerts.timezone"),
        ({"webhook_url": "ftp://x"}, "alerts.webhook_url"),
        ({"command": [""]}, "alerts.command"),
        ({"bands": {"bad band": {}}}, "alerts.bands"),
        ({"bands": {"b1": []}}, "alerts.bands.b1"),
        ({"bands": {"b1": {"volume": 3}}}, "alerts.bands.b1.volume"),
        ({"bands": {"b1": {"rate_factor": "high"}}}, "alerts.bands.b1.rate_factor"),
        ({"bands": {"b1": {"rate_min_count": 2.5}}}, "alerts.bands.b1.rate_min_count"),
        ({"bands": {"b1": {"severe_severity": 9}}}, "alerts.bands.b1.severe_severity"),
        ({"bands": {"b1": {"sleep_hours": "noon"}}}, "alerts.bands.b1.sleep_hours"),
    ],
)
def test_config_garbage_names_the_key(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(AlertConfigError) as e:
        check_section(AlertsSection(**kw))
    assert str(e.value).startswith(key)


def test_thresholds_are_the_per_band_keys() -> None:
    names = {f.name for f in dataclasses.fields(Thresholds)}
    assert {"cooldown_min", "battery_low_pct", "sleep_hours"} <= names
    assert "webhook_url" not in names and "bands" not in names


# ------------------------------------------------------------ delivery


class _Hook(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        n = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(self.rfile.read(n))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"bodies": [], "status": 200})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/alert", handler
    srv.shutdown()
    srv.server_close()


async def _collect(mosq: Mosquitto, want: int, action: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosq.port, identifier="alert-test") as sub:
        await sub.subscribe("spasm/v1/+/alert", qos=1)
        await action()

        async def read() -> None:
            async for msg in sub.messages:
                got.append(json.loads(bytes(msg.payload)))
                if len(got) >= want:
                    return

        await asyncio.wait_for(read(), 30)  # a bound on the loop, not a speed check
    return got


async def test_alerts_end_to_end(
    mosquitto: Mosquitto, tmp_path: Path, webhook: tuple[str, type[_Hook]]
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

    got = await _collect(mosquitto, 2, go)
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
    mosquitto: Mosquitto, webhook: tuple[str, type[_Hook]]
) -> None:
    url, hook = webhook
    hook.status = 500
    cfg = AlertsSection(command=[sys.executable, "-c", "import sys; sys.exit(3)"], webhook_url=url)
    pub = AlertPublisher(cfg, MqttSection(host="127.0.0.1", port=mosquitto.port), "test2")
    a = Alert(B, "battery_low", T0, f"Band {B}: battery at 5 % (alert at 15 % or less).")

    async def go() -> None:
        await pub.publish([a])

    got = await _collect(mosquitto, 1, go)
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

    got = await _collect(mosquitto, 2, go)
    await sink.close()
    assert sorted(g["rule"] for g in got) == ["long_tonic", "severe_spasm"]
    assert all(g["seq"] == 1 and g["band"] == B for g in got)
    assert await spool.lag("alerts") == 0
    await spool.close()
