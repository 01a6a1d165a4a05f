"""Home Assistant MQTT discovery for each band, and the retained summary its sensors read.

Home Assistant's MQTT integration creates entities from retained JSON configs on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` (discovery prefix
``homeassistant`` by default; ids of ``[a-zA-Z0-9_-]``). Per band (node id
``spasm_<band>``), one device with:

- spasms today: sensor, state_class total_increasing (back to 0 at local midnight),
  from ``<prefix>/<band>/summary`` ``spasms_today``;
- last spasm: sensor, device_class timestamp, ``summary`` ``last_spasm`` (ISO 8601);
- last spasm kind: sensor, ``summary`` ``last_spasm_kind``;
- battery: sensor, device_class battery, %, ``<prefix>/<band>/status`` ``battery_pct``;
- online: binary_sensor, device_class connectivity, ``<prefix>/<band>/online``
  (``online`` / ``offline``).

The summary sensors are available while the bridge is (``<prefix>/bridge/<id>/online``);
battery while the band is linked (``<prefix>/<band>/online``). ``BandSummary``
keeps the summary from the record stream; the bridge publishes it retained after
each event and the discovery configs (retained) when a band first links.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from host.records import Event, Record
from protocol import codec

DISCOVERY_PREFIX = "homeassistant"
ORIGIN = {"name": "spasm-bridge", "sw_version": "0.1.0"}
_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Topics:
    prefix: str
    band: str
    bridge_id: str

    @property
    def summary(self) -> str:
        return f"{self.prefix}/{self.band}/summary"

    @property
    def status(self) -> str:
        return f"{self.prefix}/{self.band}/status"

    @property
    def online(self) -> str:
        return f"{self.prefix}/{self.band}/online"

    @property
    def bridge_online(self) -> str:
        return f"{self.prefix}/bridge/{self.bridge_id}/online"


def device(band: str, sw_version: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "identifiers": [f"spasm_band_{band}"],
        "name": f"Spasm band {band}",
        "manufacturer": "Spasm band project",
        "model": "Spasm band (ESP32)",
    }
    if sw_version:
        d["sw_version"] = sw_version
    return d


def discovery_messages(
    band: str,
    prefix: str = "spasm/v1",
    bridge_id: str = "bridge",
    discovery_prefix: str = DISCOVERY_PREFIX,
    sw_version: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, config payload) for every entity of ``band``; publish retained."""
    for what, v in (("band", band), ("bridge id", bridge_id)):
        if not _ID.fullmatch(v):
            raise ValueError(f"{what} {v!r}: Home Assistant ids take only a-z A-Z 0-9 _ -")
    t = Topics(prefix.rstrip("/"), band, bridge_id)
    node = f"spasm_{band}"
    dev = device(band, sw_version)
    bridge_avail = {
        "availability_topic": t.bridge_online,
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    band_avail = {**bridge_avail, "availability_topic": t.online}
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "spasms_today",
            {
                "name": "Spasms today",
                "state_topic": t.summary,
                "value_template": "{{ value_json.spasms_today }}",
                "state_class": "total_increasing",
                "unit_of_measurement": "spasms",
                "icon": "mdi:pulse",
                **bridge_avail,
            },
        ),
        (
            "sensor",
            "last_spasm",
            {
                "name": "Last spasm",
                "state_topic": t.summary,
                "value_template": "{{ value_json.last_spasm }}",
                "device_class": "timestamp",
                **bridge_avail,
            },
        ),
        (
            "sensor",
            "last_spasm_kind",
            {
                "name": "Last spasm kind",
                "state_topic": t.summary,
                "value_template": "{{ value_json.last_spasm_kind }}",
                "icon": "mdi:human",
                **bridge_avail,
            },
        ),
        (
            "sensor",
            "battery",
            {
                "name": "Battery",
                "state_topic": t.status,
                "value_template": "{{ value_json.battery_pct }}",
                "device_class": "battery",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                **band_avail,
            },
        ),
        (
            "binary_sensor",
            "online",
            {
                "name": "Online",
                "state_topic": t.online,
                "payload_on": "online",
                "payload_off": "offline",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
            },
        ),
    ]
    out = []
    for component, object_id, cfg in entities:
        uid = f"{node}_{object_id}"
        payload = {**cfg, "unique_id": uid, "device": dev, "origin": ORIGIN, "qos": 1}
        out.append((f"{discovery_prefix}/{component}/{node}/{object_id}/config", payload))
    return out


async def publish_discovery(
    client: aiomqtt.Client,
    band: str,
    prefix: str = "spasm/v1",
    bridge_id: str = "bridge",
    discovery_prefix: str = DISCOVERY_PREFIX,
) -> int:
    """Publish every config of ``band`` retained (QoS 1); return how many."""
    msgs = discovery_messages(band, prefix, bridge_id, discovery_prefix)
    for topic, payload in msgs:
        await client.publish(topic, json.dumps(payload), qos=1, retain=True)
    return len(msgs)


@dataclass
class BandSummary:
    """Today's count and the last spasm of one band, from its events (deduped on seq)."""

    band: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    day: str = ""
    spasms_today: int = 0
    last_ms: int = 0
    last_kind: str = ""
    last_severity: int = 0
    _seen: set[int] = field(default_factory=set)

    def feed(self, rec: Record, now_ms: int) -> bool:
        """Account for one record; True when the summary changed (publish it)."""
        today = dt.datetime.fromtimestamp(now_ms / 1000, self.tz).date().isoformat()
        changed = False
        if today != self.day:
            self.day, self.spasms_today, changed = today, 0, True
            self._seen.clear()
        if not isinstance(rec, Event) or rec.seq in self._seen:
            return changed
        self._seen.add(rec.seq)
        if dt.datetime.fromtimestamp(rec.utc_ms / 1000, self.tz).date().isoformat() == today:
            self.spasms_today += 1
        if rec.utc_ms >= self.last_ms:
            self.last_ms = rec.utc_ms
            self.last_kind = codec.KINDS[rec.kind] if rec.kind < len(codec.KINDS) else ""
            self.last_severity = rec.severity
        return True

    def payload(self) -> dict[str, Any]:
        last = (
            dt.datetime.fromtimestamp(self.last_ms / 1000, dt.UTC).isoformat()
            if self.last_ms
            else None
        )
        return {
            "band": self.band,
            "day": self.day,
            "spasms_today": self.spasms_today,
            "last_spasm": last,
            "last_spasm_kind": self.last_kind or None,
            "last_spasm_severity": self.last_severity or None,
        }
