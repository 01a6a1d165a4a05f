"""MQTT sink (aiomqtt): spooled records to topics, band presence, and band commands.

Topics under ``mqtt.topic_prefix`` (default ``spasm/v1``), JSON payloads:

- ``<band>/event``, ``<band>/marker``, ``<band>/fault``: QoS 1 (consumers dedupe on band, seq)
- ``<band>/onset``: QoS 1, live onsets (a spasm is starting); ``<band>/alert`` belongs
  to host/alert_publish.py (alert rules), so the two payloads never share a topic
- ``<band>/status``: QoS 1, retained
- ``<band>/signal``: QoS 0
- ``<band>/online``: retained ``online``/``offline``; each linked band has its own
  small MQTT connection whose last will sets ``offline``, so a dead bridge marks its
  bands offline too. ``bridge/<id>/online`` is the bridge's own will.
- ``<band>/cmd/<name>`` (subscribed): stream, config_get, config_set, reboot;
  the answer goes to ``<band>/reply``. A malformed command is refused with a log line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from host.config import MqttSection
from host.mqtt_client import connect_problem, mqtt_client
from host.records import BandError, ConfigValue, Frame, Record, compact_json, to_json
from host.sinks import Sink, SinkDown
from host.stats import Stats
from protocol import codec

log = logging.getLogger("spasm.mqtt")

TOPIC_OF = {
    "event": "event",
    "marker": "marker",
    "fault": "fault",
    "onset": "onset",
    "status": "status",
    "signal": "signal",
}
QOS_OF = {"signal": 0}
RETAIN = {"status"}
COMMANDS: dict[str, tuple[int, dict[str, Any]]] = {
    "stream": (codec.STREAM, {"on": bool, "rate_hz": int}),
    "config_get": (codec.CONFIG_GET, {"key": str}),
    "config_set": (codec.CONFIG_SET, {"key": str, "value": (int, float, str, bool)}),
    "reboot": (codec.REBOOT, {}),
}
CommandHandler = Callable[[str, int, dict[str, Any]], Awaitable[Frame | None]]
QOS0_QUEUED = 2000  # QoS 0 messages queued for the socket before the sink waits
QOS0_WAIT_S = 10.0  # no room for that long: the broker is down


def payload(rec: Record) -> str:
    """The MQTT payload of a record: ``records.to_json(rec)`` as compact JSON."""
    return compact_json(to_json(rec))


class CommandRejected(ValueError):
    pass


def parse_command(name: str, payload: bytes) -> tuple[int, dict[str, Any]]:
    """Validate a command payload; CommandRejected says why it is refused."""
    if name not in COMMANDS:
        raise CommandRejected(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    ftype, shape = COMMANDS[name]
    try:
        data = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CommandRejected(f"payload is not JSON: {e}") from None
    except RecursionError:  # "[[[[...": json gives up on deep nesting this way
        raise CommandRejected("payload is not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise CommandRejected("payload is not a JSON object")
    extra = set(data) - set(shape)
    if extra:
        raise CommandRejected(f"unknown field(s) {', '.join(sorted(extra))}")
    fields: dict[str, Any] = {}
    for key, typ in shape.items():
        if key not in data:
            raise CommandRejected(f"missing field {key!r}")
        v = data[key]
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise CommandRejected(f"{key}: expected an integer")
        if not isinstance(v, typ):
            raise CommandRejected(f"{key}: wrong type {type(v).__name__}")
        fields[key] = int(v) if key == "on" else v
    for key in ("key", "value"):
        v = fields.get(key)
        if isinstance(v, str) and not _utf8(v):
            raise CommandRejected(f"{key}: not valid UTF-8 (a lone surrogate)")
        if isinstance(v, float) and not math.isfinite(v):
            raise CommandRejected(f"{key}: not a finite number")
    try:
        codec.encode(ftype, 0, fields)  # ranges and lengths, checked by the codec
    except codec.FrameError as e:
        raise CommandRejected(e.detail) from None
    return ftype, fields


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def reply_json(name: str, result: Frame | None) -> dict[str, Any]:
    if isinstance(result, BandError):
        return {"cmd": name, "ok": False, "error": f"band error {result.code}: {result.text}"}
    if isinstance(result, ConfigValue):
        return {
            "cmd": name,
            "ok": result.status == 0,
            "key": result.key,
            "value": result.value,
            "status": result.status,
        }
    return {"cmd": name, "ok": True}


class MqttSink(Sink):
    name = "mqtt"

    def __init__(
        self, cfg: MqttSection, bridge_id: str, stats: Stats, commands: CommandHandler | None = None
    ) -> None:
        self.cfg = cfg
        self.bridge_id = bridge_id
        self.stats = stats
        self.commands = commands
        self.prefix = cfg.topic_prefix.rstrip("/")
        self.client_id = cfg.client_id or f"spasm-bridge-{bridge_id}"
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._presence: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._cmd_tasks: set[asyncio.Task[None]] = set()
        self._qos0: collections.deque[paho.MQTTMessageInfo] = collections.deque()
        self._qos0_client: aiomqtt.Client | None = None
        self.rejected = 0

    @property
    def up(self) -> bool:
        return self._client is not None

    def _new_client(self, identifier: str, will_topic: str) -> aiomqtt.Client:
        will = aiomqtt.Will(will_topic, b"offline", qos=1, retain=True)
        return mqtt_client(self.cfg, identifier, will=will)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connection())

    async def _connection(self) -> None:
        delay = 0.2
        bridge_topic = f"{self.prefix}/bridge/{self.bridge_id}/online"
        while True:
            try:
                async with self._new_client(self.client_id, bridge_topic) as client:
                    # a batch's QoS 1 messages are in flight together: not worth a warning each
                    client.pending_calls_threshold = max(100, 2 * self.cfg.batch_size)
                    await client.publish(bridge_topic, b"online", qos=1, retain=True)
                    if self.commands is not None and self.cfg.commands:
                        await client.subscribe(f"{self.prefix}/+/cmd/+", qos=1)
                    self._client = client
                    self.stats.sink(self.name).up = True
                    log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
                    delay = 0.2
                    async for msg in client.messages:
                        self._on_message(msg)
            except aiomqtt.MqttError as e:
                if self._client is not None:
                    self.stats.reconnects += 1
                level, text = connect_problem(self.cfg, e)
                log.log(level, "mqtt: %s (retrying in %.1f s)", text, delay)
            finally:
                self._client = None
                self.stats.sink(self.name).up = False
            await asyncio.sleep(delay)
            delay = min(self.cfg.backoff_max_s, delay * 2)

    # ------------------------------------------------------------ records

    async def deliver(self, records: list[Record]) -> None:
        """Publish ``records``; return when the broker has every QoS 1 message (PUBACK).

        QoS 0 messages (signal chunks: most of the traffic) go straight to paho's
        queue: aiomqtt would give each its own wait for the socket write (an Event, a
        task and a scan of every pending call). Their only confirmation is the write
        itself; before a batch is queued, fewer than ``QOS0_QUEUED`` may still wait
        for it, so a slow broker holds the sink back instead of filling memory.
        """
        client = self._client
        if client is None:
            raise SinkDown("not connected to the broker")
        await self._qos0_room(client)
        raw = client._client  # noqa: SLF001 (paho's client; see the docstring)
        queued = self._qos0
        pubs = []
        try:
            for rec in records:
                rtype = rec.rtype
                topic = f"{self.prefix}/{rec.band}/{TOPIC_OF[rtype]}"
                qos = QOS_OF.get(rtype, 1)
                if qos == 0:
                    info = raw.publish(topic, payload(rec), qos=0, retain=rtype in RETAIN)
                    if info.rc != paho.MQTT_ERR_SUCCESS:
                        raise SinkDown(f"publish failed: {paho.error_string(info.rc)}")
                    queued.append(info)
                else:
                    retain = rtype in RETAIN
                    pubs.append(client.publish(topic, payload(rec), qos=qos, retain=retain))
        except BaseException:
            for c in pubs:
                c.close()  # never started: nothing was sent for them
            raise
        # QoS 1 publish returns once the broker's PUBACK is in: then the cursor may move.
        await asyncio.gather(*pubs)

    async def _qos0_room(self, client: aiomqtt.Client) -> None:
        """Wait until fewer than QOS0_QUEUED QoS 0 messages wait for the socket."""
        queued = self._qos0
        if self._qos0_client is not client:
            queued.clear()  # a new connection: the old one's unsent QoS 0 messages are gone
            self._qos0_client = client
        loop = asyncio.get_running_loop()
        end = loop.time() + QOS0_WAIT_S
        while queued:
            try:
                while queued and queued[0].is_published():  # written in order
                    queued.popleft()
            except (ValueError, RuntimeError) as e:
                queued.clear()
                raise SinkDown(f"QoS 0 messages not sent: {e}") from None
            if len(queued) < QOS0_QUEUED:
                return
            if self._client is not client or loop.time() > end:
                raise SinkDown("QoS 0 messages not written to the broker in time")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------ presence

    def band_online(self, band: str, up: bool) -> None:
        """Called by a band session when its link comes up or goes down."""
        if up and band not in self._presence:
            stop = asyncio.Event()
            self._presence[band] = (stop, asyncio.create_task(self._present(band, stop)))
        elif not up and band in self._presence:
            self._presence.pop(band)[0].set()

    async def _present(self, band: str, stop: asyncio.Event) -> None:
        topic = f"{self.prefix}/{band}/online"
        delay = 0.2
        while not stop.is_set():
            try:
                async with self._new_client(f"{self.client_id}-{band}", topic) as client:
                    await client.publish(topic, b"online", qos=1, retain=True)
                    await stop.wait()
                    await client.publish(topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(self.cfg.backoff_max_s, delay * 2)

    # ------------------------------------------------------------ commands

    def _on_message(self, msg: aiomqtt.Message) -> None:
        parts = str(msg.topic).split("/")
        if len(parts) < 3 or parts[-2] != "cmd":
            return
        band, name = parts[-3], parts[-1]
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        try:
            ftype, fields = parse_command(name, payload)
        except Exception as e:  # CommandRejected; anything else must not end the connection
            if not isinstance(e, CommandRejected):
                log.error("mqtt: command on %s broke the parser (a bug): %r", msg.topic, e)
            self.rejected += 1
            log.warning("mqtt: rejected command on %s: %s", msg.topic, e)
            self._spawn(self._publish_reply(band, {"cmd": name, "ok": False, "error": str(e)}))
            return
        self._spawn(self._run_command(band, name, ftype, fields))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._cmd_tasks.add(task)
        task.add_done_callback(self._cmd_tasks.discard)

    async def _run_command(self, band: str, name: str, ftype: int, fields: dict[str, Any]) -> None:
        assert self.commands is not None
        try:
            result = await self.commands(band, ftype, fields)
            reply = reply_json(name, result)
        except Exception as e:  # not connected, timeout: tell the caller
            log.warning("mqtt: command %s for band %s failed: %s", name, band, e)
            reply = {"cmd": name, "ok": False, "error": str(e)}
        await self._publish_reply(band, reply)

    async def _publish_reply(self, band: str, reply: dict[str, Any]) -> None:
        client = self._client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(f"{self.prefix}/{band}/reply", json.dumps(reply), qos=1)

    async def close(self) -> None:
        tasks = [t for _, t in self._presence.values()]
        for band in list(self._presence):
            self.band_online(band, False)
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    f"{self.prefix}/bridge/{self.bridge_id}/online", b"offline", qos=1, retain=True
                )
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for t in list(self._cmd_tasks):
            t.cancel()
