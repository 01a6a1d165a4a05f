"""Deliver alerts: MQTT ``<prefix>/<band>/alert``, a configured command, a webhook.

``AlertPublisher.submit(alerts)`` queues (never blocks the record path);
``run()`` delivers the queue until cancelled; ``publish(alerts)`` delivers now.
Every channel is independent: a failing webhook never stops the MQTT alert.

- MQTT: QoS 1, JSON from ``Alert.to_json`` (``"type": "alert"``), one connection of
  its own (client id ``<mqtt client id>-alerts``), reconnected on the next alert.
- Command: ``alerts.command`` is an argv list run without a shell; the alert JSON
  is on stdin and in ``SPASM_ALERT_JSON``, with ``SPASM_ALERT_BAND``,
  ``SPASM_ALERT_RULE`` and ``SPASM_ALERT_TEXT``; killed after ``command_timeout_s``.
- Webhook: HTTP POST of the alert JSON (``Content-Type: application/json``) to
  ``alerts.webhook_url``; any 2xx answer counts as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import aiomqtt

from host.alert_config import AlertsSection
from host.alerts import Alert
from host.config import MqttSection
from host.mqtt_client import mqtt_client

log = logging.getLogger("spasm.alerts")


@dataclass
class AlertCounts:
    handled: int = 0  # alerts every configured channel has been tried for
    published: int = 0
    commands: int = 0
    webhooks: int = 0
    failed: int = 0


class AlertPublisher:
    def __init__(
        self, cfg: AlertsSection, mqtt: MqttSection | None, bridge_id: str = "bridge"
    ) -> None:
        self.cfg = cfg
        self.mqtt = mqtt
        self.prefix = mqtt.topic_prefix.rstrip("/") if mqtt else ""
        self.client_id = f"{(mqtt.client_id if mqtt else '') or f'spasm-bridge-{bridge_id}'}-alerts"
        self.counts = AlertCounts()
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=10_000)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    def submit(self, alerts: list[Alert]) -> None:
        """Queue alerts for ``run()``; a full queue drops (and logs) the newest."""
        for a in alerts:
            try:
                self.queue.put_nowait(a)
            except asyncio.QueueFull:
                self.counts.failed += 1
                log.error("alert queue full: dropped %s alert for band %s", a.rule, a.band)

    async def run(self) -> None:
        while True:
            a = await self.queue.get()
            await self.publish([a])

    async def publish(self, alerts: list[Alert]) -> None:
        for a in alerts:
            payload = json.dumps(a.to_json(), separators=(",", ":"))
            log.warning("alert %s band %s: %s", a.rule, a.band, a.text)
            if self.mqtt is not None:
                await self._mqtt(a, payload)
            if self.cfg.command:
                await self._command(a, payload)
            if self.cfg.webhook_url:
                await self._webhook(payload)
            self.counts.handled += 1

    # ------------------------------------------------------------ channels

    async def _connect(self) -> aiomqtt.Client:
        assert self.mqtt is not None
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            client = mqtt_client(self.mqtt, self.client_id)
            await stack.enter_async_context(client)
            self._stack, self._client = stack, client
        return self._client

    async def _mqtt(self, a: Alert, payload: str) -> None:
        topic = f"{self.prefix}/{a.band}/alert"
        for attempt in (1, 2):  # a dropped connection is retried once on a new one
            try:
                client = await self._connect()
                await client.publish(topic, payload, qos=1)
                self.counts.published += 1
                return
            except aiomqtt.MqttError as e:
                await self._drop()
                if attempt == 2:
                    self.counts.failed += 1
                    log.error("alert: MQTT publish to %s failed: %s", topic, e)

    async def _drop(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def _command(self, a: Alert, payload: str) -> None:
        env = dict(os.environ)
        env.update(
            SPASM_ALERT_JSON=payload,
            SPASM_ALERT_BAND=a.band,
            SPASM_ALERT_RULE=a.rule,
            SPASM_ALERT_TEXT=a.text,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.cfg.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            self.counts.failed += 1
            log.error("alert: cannot run %s (alerts.command): %s", self.cfg.command[0], e)
            return
        try:
            _, err = await asyncio.wait_for(
                proc.communicate(payload.encode()), self.cfg.command_timeout_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self.counts.failed += 1
            log.error(
                "alert: %s killed after %.1f s", self.cfg.command[0], self.cfg.command_timeout_s
            )
            return
        if proc.returncode != 0:
            self.counts.failed += 1
            log.error(
                "alert: %s exited with %d: %s",
                self.cfg.command[0],
                proc.returncode,
                err.decode(errors="replace").strip()[:200],
            )
            return
        self.counts.commands += 1

    async def _webhook(self, payload: str) -> None:
        req = urllib.request.Request(
            self.cfg.webhook_url,
            data=payload.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )

        def post() -> int:
            with urllib.request.urlopen(req, timeout=self.cfg.webhook_timeout_s) as r:
                return int(r.status)

        try:
            status = await asyncio.to_thread(post)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            self.counts.failed += 1
            log.error("alert: webhook %s failed: %s", self.cfg.webhook_url, e)
            return
        if not 200 <= status < 300:
            self.counts.failed += 1
            log.error("alert: webhook %s answered %d", self.cfg.webhook_url, status)
            return
        self.counts.webhooks += 1

    async def close(self) -> None:
        await self._drop()
