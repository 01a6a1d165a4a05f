"""Home Assistant MQTT discovery payloads against HA's documented schema, and through mosquitto.

The key sets below are the configuration variables Home Assistant documents for MQTT
discovery of a sensor and a binary_sensor (home-assistant.io/integrations/sensor.mqtt,
binary_sensor.mqtt, and the discovery section of integrations/mqtt): a payload using a
key outside them would be refused by HA's schema validation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import Any

import aiomqtt
import pytest

from host.ha_discovery import BandSummary, discovery_messages, publish_discovery
from host.records import Event, Status, to_json
from tests.servers import Mosquitto, mosquitto_fixture  # noqa: F401

COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic",
    "unique_id", "value_template",
}  # fmt: skip
SCHEMA = {
    "sensor": COMMON | {"last_reset_value_template", "options", "suggested_display_precision",
                        "state_class", "unit_of_measurement"},
    "binary_sensor": COMMON | {"off_delay", "payload_off", "payload_on"},
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_CLASSES = {
    "sensor": {"battery", "timestamp", "duration", "enum", "date"},  # the ones used, all valid
    "binary_sensor": {"connectivity", "problem", "battery"},
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
TOPIC = re.compile(
    r"^homeassistant/(sensor|binary_sensor)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$"
)


def status_json(band: str) -> dict[str, Any]:
    return to_json(
        Status(band=band, seq=1, boot=1, utc_ms=1, uptime_ms=1, battery_pct=55, battery_mv=3700,
               quality=90, faults=0, log_used=0, log_capacity=10, log_overwritten=0, last_seq=0,
               acked_seq=0, state=1, fw_major=1, fw_minor=0, fw_patch=0)
    )  # fmt: skip


def test_payloads_follow_the_documented_schema() -> None:
    msgs = discovery_messages("a1b2c3", bridge_id="home")
    assert len(msgs) == 5
    summary = BandSummary("a1b2c3").payload()
    states = {
        "spasm/v1/a1b2c3/summary": summary,
        "spasm/v1/a1b2c3/status": status_json("a1b2c3"),
    }
    uids = set()
    for topic, p in msgs:
        m = TOPIC.match(topic)
        assert m, topic
        component, node, object_id = m.groups()
        assert set(p) <= SCHEMA[component], set(p) - SCHEMA[component]
        assert {"name", "unique_id", "state_topic", "device"} <= set(p)
        assert p["unique_id"] == f"{node}_{object_id}" and p["unique_id"] not in uids
        uids.add(p["unique_id"])
        assert set(p["device"]) <= DEVICE_KEYS and p["device"]["identifiers"] == [
            "spasm_band_a1b2c3"
        ]
        assert set(p["origin"]) <= ORIGIN_KEYS and p["origin"]["name"]
        if "device_class" in p:
            assert p["device_class"] in DEVICE_CLASSES[component]
        if "state_class" in p:
            assert p["state_class"] in STATE_CLASSES
        if p.get("device_class") == "battery":
            assert p["unit_of_measurement"] == "%"
        if "availability_topic" in p:
            assert p["availability_topic"] in (
                "spasm/v1/a1b2c3/online",
                "spasm/v1/bridge/home/online",
            )
            assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        if component == "binary_sensor":
            assert p["state_topic"] == "spasm/v1/a1b2c3/online"
            assert (p["payload_on"], p["payload_off"]) == ("online", "offline")
        # Every value_template reads a key the bridge really publishes on that state topic.
        for key in re.findall(r"value_json\.(\w+)", p.get("value_template", "")):
            assert key in states[p["state_topic"]], (p["state_topic"], key)
    assert {t.split("/")[3] for t, _ in msgs} == {
        "spasms_today", "last_spasm", "last_spasm_kind", "battery", "online"
    }  # fmt: skip


@pytest.mark.parametrize("band", ["a b", "a/b", "+", "bänd", ""])
def test_bad_ids_are_refused(band: str) -> None:
    with pytest.raises(ValueError, match="band"):
        discovery_messages(band)


def test_summary_counts_today_and_keeps_the_last_spasm() -> None:
    day = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    ms = int(day.timestamp() * 1000)

    def ev(seq: int, t: int, kind: int) -> Event:
        return Event(band="b", seq=seq, boot=1, utc_ms=t, t_ms=0, kind=kind, severity=2,
                     confidence=90, duration_ms=500, peak_act_x10=10, mean_act_x10=5,
                     peak_acc_mg=0, freq_dhz=0, modalities=1)  # fmt: skip

    s = BandSummary("b")
    assert s.feed(ev(0, ms - 3600_000, 1), ms + 1000)  # yesterday: last spasm, not today's count
    assert s.feed(ev(1, ms + 600_000, 3), ms + 700_000)
    assert s.feed(ev(2, ms + 300_000, 2), ms + 700_000)  # late (replayed): counted, not "last"
    assert not s.feed(ev(2, ms + 300_000, 2), ms + 700_000)  # duplicate seq
    p = s.payload()
    assert p["spasms_today"] == 2 and p["last_spasm_kind"] == "tonic"
    last = dt.datetime.fromisoformat(p["last_spasm"])
    assert last.tzinfo is not None and int(last.timestamp() * 1000) == ms + 600_000
    assert s.feed(ev(3, ms + 86_400_000, 1), ms + 86_400_000 + 1)  # the next day starts at 0
    assert s.payload()["spasms_today"] == 1


async def test_discovery_is_retained_on_the_broker(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="ha-pub") as c:
        n = await publish_discovery(c, "d4e5f6", bridge_id="home")
    got: dict[str, Any] = {}
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="ha-sub") as c:
        await c.subscribe("homeassistant/#", qos=1)

        async def read() -> None:
            async for msg in c.messages:
                assert msg.retain
                got[str(msg.topic)] = json.loads(bytes(msg.payload))
                if len(got) == n:
                    return

        await asyncio.wait_for(read(), 30)  # a bound on the loop, not a speed check
    assert got == dict(discovery_messages("d4e5f6", bridge_id="home"))


async def test_ha_sink_publishes_configs_and_summary(mosquitto: Mosquitto) -> None:
    from host.config import MqttSection
    from host.ha_sink import HaSink

    now = int(time.time() * 1000)

    def ev(seq: int, t: int, kind: int) -> Event:
        return Event(band="h1", seq=seq, boot=1, utc_ms=t, t_ms=0, kind=kind, severity=2,
                     confidence=90, duration_ms=500, peak_act_x10=10, mean_act_x10=5,
                     peak_acc_mg=0, freq_dhz=0, modalities=1)  # fmt: skip

    sink = HaSink(MqttSection(host="127.0.0.1", port=mosquitto.port), bridge_id="home")
    await sink.start()
    await sink.deliver([ev(0, now - 1000, 1), ev(1, now - 500, 2)])
    await sink.deliver([ev(1, now - 500, 2)])  # a redelivered batch changes nothing
    await sink.close()
    got: dict[str, Any] = {}
    want = len(discovery_messages("h1", bridge_id="home")) + 1
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="ha-sub2") as c:
        await c.subscribe("homeassistant/+/spasm_h1/#", qos=1)
        await c.subscribe("spasm/v1/h1/summary", qos=1)

        async def read() -> None:
            async for msg in c.messages:
                got[str(msg.topic)] = json.loads(bytes(msg.payload))
                if len(got) == want:
                    return

        await asyncio.wait_for(read(), 30)  # a bound on the loop, not a speed check
    summary = got.pop("spasm/v1/h1/summary")
    assert got == dict(discovery_messages("h1", bridge_id="home"))
    assert summary["last_spasm_kind"] == "clonic"
    days = [
        dt.datetime.fromtimestamp(t / 1000, dt.UTC).date().isoformat()
        for t in (now - 1000, now - 500)
    ]
    assert summary["spasms_today"] == days.count(summary["day"]) >= 1
