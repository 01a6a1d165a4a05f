"""Home Assistant as a spool sink: discovery configs per band, and each band's summary.

For every band seen in the records it delivers, the sink publishes the band's
discovery configs once per connection (retained; see host.ha_discovery), and,
after each batch, the band's summary (spasms today, last spasm time and kind)
retained on ``<prefix>/<band>/summary``. It has its own MQTT connection; when
the broker is down ``deliver`` raises SinkDown, so the cursor waits and the
batch is redone later (the summary dedupes events on seq).
"""

from __future__ import annotations

import contextlib
import json
import time
from zoneinfo import ZoneInfo

import aiomqtt

from host.config import MqttSection
from host.ha_discovery import DISCOVERY_PREFIX, BandSummary, Topics, publish_discovery
from host.mqtt_client import mqtt_client
from host.records import Record
from host.sinks import Sink, SinkDown


class HaSink(Sink):
    name = "homeassistant"

    def __init__(
        self,
        mqtt: MqttSection,
        bridge_id: str = "bridge",
        timezone: str = "UTC",
        discovery_prefix: str = DISCOVERY_PREFIX,
    ) -> None:
        self.mqtt = mqtt
        self.bridge_id = bridge_id
        self.prefix = mqtt.topic_prefix.rstrip("/")
        self.tz = ZoneInfo(timezone)
        self.discovery_prefix = discovery_prefix
        self.client_id = f"{mqtt.client_id or f'spasm-bridge-{bridge_id}'}-ha"
        self.summaries: dict[str, BandSummary] = {}
        self._announced: set[str] = set()
        self._dirty: set[str] = set()  # summaries changed and not yet published
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    @property
    def up(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        pass  # connects on the first delivery

    async def _connect(self) -> aiomqtt.Client:
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            client = mqtt_client(self.mqtt, self.client_id)
            await stack.enter_async_context(client)
            self._stack, self._client = stack, client
            self._announced.clear()  # a new connection: announce again (HA may have restarted)
        return self._client

    async def deliver(self, records: list[Record]) -> None:
        now = int(time.time() * 1000)
        for rec in records:
            s = self.summaries.get(rec.band)
            if s is None:
                s = self.summaries[rec.band] = BandSummary(rec.band, self.tz)
            if s.feed(rec, now):
                self._dirty.add(rec.band)
        try:
            client = await self._connect()
            for band in sorted({r.band for r in records} - self._announced):
                await publish_discovery(
                    client, band, self.prefix, self.bridge_id, self.discovery_prefix
                )
                self._announced.add(band)
                self._dirty.add(band)
            for band in sorted(self._dirty):
                topic = Topics(self.prefix, band, self.bridge_id).summary
                payload = json.dumps(self.summaries[band].payload())
                await client.publish(topic, payload, qos=1, retain=True)
                self._dirty.discard(band)
        except aiomqtt.MqttError as e:
            await self.close()
            raise SinkDown(f"Home Assistant publish failed: {e}") from None

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
