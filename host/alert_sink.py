"""Alerts as one more spool sink: every spooled record goes through the alert rules.

Running the rules on the spool's cursor (like the MQTT and InfluxDB sinks) means
the bridge needs no new plumbing: records reach the engine in spool order, once
per delivery, whatever band session spooled them. ``deliver`` never fails (rules
run in memory; alerts are queued for ``AlertPublisher``), so this sink never holds
back pruning. After a restart the sink resumes at its cursor; records it reads
that are older than ``alerts.stale_after_min`` rebuild history without alerting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from host.alert_config import AlertsSection
from host.alert_publish import AlertPublisher
from host.alerts import AlertEngine
from host.config import MqttSection
from host.records import Record
from host.sinks import Sink

log = logging.getLogger("spasm.alerts")


class AlertSink(Sink):
    name = "alerts"

    def __init__(
        self,
        cfg: AlertsSection,
        mqtt: MqttSection | None,
        bridge_id: str = "bridge",
        tick_s: float = 30.0,
    ) -> None:
        self.engine = AlertEngine(cfg)
        self.publisher = AlertPublisher(cfg, mqtt, bridge_id)
        self.delivers = mqtt is not None or bool(cfg.command or cfg.webhook_url)
        self.tick_s = tick_s
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.delivers:  # enabled, yet nobody would be told: say so once, at start
            log.warning(
                "alerts.enabled, but no delivery configured (mqtt.enabled is false, "
                "alerts.command and alerts.webhook_url are empty): alerts only reach the log"
            )
        self._tasks = [
            asyncio.create_task(self.publisher.run(), name="alerts-publish"),
            asyncio.create_task(self._tick_forever(), name="alerts-tick"),
        ]

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.publisher.submit(self.engine.tick())

    async def deliver(self, records: list[Record]) -> None:
        for rec in records:
            self.publisher.submit(self.engine.feed(rec))

    def link(self, band: str, up: bool) -> None:
        """Call from the bridge's link callback: offline is counted from a link going down."""
        self.engine.link(band, up)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.publisher.close()
