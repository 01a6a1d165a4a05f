"""The `run` role: discovery, one session per band, the spool, the sinks and the stats line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bleak.backends.device import BLEDevice

from host import notes
from host.alert_sink import AlertSink
from host.async_spool import AsyncSpool
from host.ble_backend import resolve_backends
from host.config import Config
from host.discovery import Discovery
from host.ha_sink import HaSink
from host.influx_sink import InfluxSink
from host.mqtt_sink import MqttSink
from host.records import Frame
from host.session import BandSession, CommandError
from host.sinks import Sink, drain_forever
from host.spool import Spool
from host.stats import Stats, report_forever

log = logging.getLogger("spasm.bridge")


class Bridge:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stats = Stats()
        self.client_backend, self.scanner_backend = resolve_backends(cfg.ble)
        self.spool = AsyncSpool(Spool(cfg.spool.path, cfg.spool.keep_hours, cfg.spool.max_mb))
        self.sessions: dict[str, BandSession] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.sinks: list[Sink] = []
        self.wakes: dict[str, asyncio.Event] = {}
        self.mqtt: MqttSink | None = None
        if cfg.mqtt.enabled:
            self.mqtt = MqttSink(cfg.mqtt, cfg.bridge.id, self.stats, self.command)
            self.sinks.append(self.mqtt)
        if cfg.influx.enabled:
            self.sinks.append(InfluxSink(cfg.influx))
        # alert rules and Home Assistant are sinks too: their own cursors, never in intake's way
        self.alert_sink: AlertSink | None = None
        if cfg.alerts.enabled:
            mqtt = cfg.mqtt if cfg.mqtt.enabled else None
            self.alert_sink = AlertSink(cfg.alerts, mqtt, cfg.bridge.id)
            self.sinks.append(self.alert_sink)
        if cfg.mqtt.enabled and cfg.homeassistant.enabled:
            self.sinks.append(
                HaSink(
                    cfg.mqtt,
                    cfg.bridge.id,
                    cfg.alerts.timezone,
                    cfg.homeassistant.discovery_prefix,
                )
            )
        self.discovery = Discovery(
            cfg.ble.allow, self.scanner_backend, self._on_band, cfg.ble.options
        )

    def _on_band(self, band: str, device: BLEDevice) -> None:
        session = self.sessions.get(band)
        if session is None:
            session = BandSession(
                band,
                self.cfg.ble,
                self.client_backend,
                self.spool,
                self.stats,
                self._on_link,
                self._on_spooled,
            )
            self.sessions[band] = session
            self.stats.bands_known.add(band)
            self.tasks.append(asyncio.create_task(session.run(), name=f"band-{band}"))
        session.offer(device)

    def _on_link(self, band: str, up: bool) -> None:
        if self.mqtt is not None:
            self.mqtt.band_online(band, up)
        if self.alert_sink is not None:
            self.alert_sink.link(band, up)

    def _on_spooled(self) -> None:
        for ev in self.wakes.values():
            ev.set()

    async def command(self, band: str, ftype: int, fields: dict[str, Any]) -> Frame | None:
        session = self.sessions.get(band)
        if session is None:
            raise CommandError(f"unknown band {band}")
        return await session.command(ftype, fields)

    async def lags(self) -> dict[str, int]:
        return {s.name: await self.spool.lag(s.name) for s in self.sinks}

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            n = await self.spool.prune(s.name for s in self.sinks) if self.sinks else 0
            if n:
                log.info("spool: pruned %d delivered records", n)

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        if not self.sinks:
            log.warning("no sink enabled: records stay in the spool %s", cfg.spool.path)
        if not cfg.ble.allow:
            log.warning("ble.allow is empty: connecting to every band in range")
        for sink in self.sinks:
            wake = self.wakes[sink.name] = asyncio.Event()
            await sink.start()
            backoff = cfg.mqtt.backoff_max_s if sink.name == "mqtt" else cfg.influx.backoff_max_s
            batch = cfg.mqtt.batch_size if sink.name == "mqtt" else cfg.influx.batch_size
            self.tasks.append(
                asyncio.create_task(
                    drain_forever(sink, self.spool, self.stats, wake, batch, backoff),
                    name=f"sink-{sink.name}",
                )
            )
        self.tasks.append(asyncio.create_task(self.discovery.run(), name="discovery"))
        self.tasks.append(
            asyncio.create_task(
                report_forever(self.stats, cfg.bridge.stats_interval_s, self.lags), name="stats"
            )
        )
        self.tasks.append(asyncio.create_task(self._prune_forever(), name="prune"))
        if cfg.influx.enabled:
            self.tasks.append(asyncio.create_task(notes.push_forever(cfg), name="notes"))
        log.info(
            "bridge %s: running (spool %s, sinks: %s)",
            cfg.bridge.id,
            cfg.spool.path,
            ", ".join(s.name for s in self.sinks) or "none",
        )
        await stop.wait()
        await self.close()

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()
        log.info("%s", self.stats.line(await self.lags()))
        await self.spool.close()
