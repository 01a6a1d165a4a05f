"""The `ingest` role: MQTT shared subscription -> InfluxDB.

Workers subscribe to ``$share/<group>/<prefix>/+/<type>`` (types from
``ingest.topics``); the broker hands each message to one worker of the group, so
several workers on several machines split the load. A message is acknowledged
(PUBACK) only after its batch is written to InfluxDB, in a persistent session:
a worker that dies before writing leaves the message with the broker. aiomqtt 2.5
has no manual-ack API, so paho's public ``manual_ack_set``/``ack`` are used on
the client aiomqtt wraps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import aiomqtt

from host.config import Config
from host.influx_sink import InfluxWriter, lines
from host.mqtt_client import connect_problem, mqtt_client
from host.records import from_json
from host.stats import Stats

log = logging.getLogger("spasm.ingest")

# what a hostile or broken payload can raise in _parse (RecursionError: JSON nested too deep)
BAD_MESSAGE = (ValueError, UnicodeDecodeError, IndexError, TypeError, RecursionError)


class IngestWorker:
    def __init__(self, cfg: Config, stats: Stats | None = None) -> None:
        self.cfg = cfg
        self.stats = stats or Stats()
        self.prefix = cfg.mqtt.topic_prefix.rstrip("/")
        self.client_id = cfg.ingest.client_id or f"spasm-ingest-{cfg.bridge.id}"
        self.writer = InfluxWriter(cfg.influx)
        self.written = 0  # records written to InfluxDB by this worker
        self.rejected = 0
        self.ready = asyncio.Event()  # subscribed (for tests and logs)

    def filters(self) -> list[str]:
        return [
            f"$share/{self.cfg.ingest.group}/{self.prefix}/+/{t}" for t in self.cfg.ingest.topics
        ]

    def _client(self) -> aiomqtt.Client:
        c = self.cfg.mqtt
        client = mqtt_client(c, self.client_id, clean_session=False)
        client._client.manual_ack_set(True)  # noqa: SLF001 (see the module docstring)
        return client

    def _parse(self, msg: aiomqtt.Message) -> Any:
        parts = str(msg.topic).split("/")
        band, rtype = parts[-2], parts[-1]
        payload = msg.payload if isinstance(msg.payload, bytes | bytearray) else b""
        data = json.loads(bytes(payload).decode("utf-8"))
        return from_json(rtype, band, data)

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff."""
        delay = 0.2
        rng = random.Random()
        while True:
            try:
                async with self._client() as client:
                    for f in self.filters():
                        await client.subscribe(f, qos=1)
                    log.info(
                        "ingest %s: subscribed to %s", self.client_id, ", ".join(self.filters())
                    )
                    self.ready.set()
                    delay = 0.2
                    await self._consume(client)
            except aiomqtt.MqttError as e:
                self.ready.clear()
                self.stats.reconnects += 1
                level, text = connect_problem(self.cfg.mqtt, e)
                log.log(level, "ingest %s: %s (retrying)", self.client_id, text)
            await asyncio.sleep(delay / 2 + rng.uniform(0, delay / 2))
            delay = min(self.cfg.mqtt.backoff_max_s, delay * 2)

    async def _consume(self, client: aiomqtt.Client) -> None:
        # The reader only queues; None marks the end of the stream. The batcher never
        # cancels a pending get, so no message can be taken and then forgotten (an
        # unacked message would also hold one of the broker's in-flight slots forever).
        queue: asyncio.Queue[aiomqtt.Message | None] = asyncio.Queue()

        async def reader() -> None:
            try:
                async for msg in client.messages:
                    queue.put_nowait(msg)
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(reader())
        size = self.cfg.ingest.batch_size
        try:
            ended = False
            while not ended:
                first = await queue.get()
                if first is None:
                    break
                batch = [first]
                if queue.qsize() < size:
                    await asyncio.sleep(self.cfg.ingest.flush_interval_s)
                while len(batch) < size and not queue.empty():
                    msg = queue.get_nowait()
                    if msg is None:
                        ended = True
                        break
                    batch.append(msg)
                await self._write(batch)
                for m in batch:  # PUBACK only now: the points are stored
                    client._client.ack(m.mid, m.qos)  # noqa: SLF001
            exc = task.exception() if task.done() and not task.cancelled() else None
            raise exc if exc is not None else aiomqtt.MqttError("message stream ended")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task

    async def _write(self, batch: list[aiomqtt.Message]) -> None:
        pts: list[str] = []
        for msg in batch:
            try:
                rec = self._parse(msg)
            except BAD_MESSAGE as e:
                self.rejected += 1
                self.stats.drop("bad_message")
                log.warning("ingest: rejected message on %s: %s", msg.topic, e)
                continue
            pts.extend(lines(rec, self.cfg.influx.signal))
            self.stats.received[rec.rtype] += 1
        delay = 0.2
        rng = random.Random()
        while True:
            try:
                await self.writer.write(pts)
                break
            except Exception as e:  # retried until it works; the broker keeps the messages
                self.stats.sink("influx").errors += 1
                log.warning("ingest: InfluxDB write failed (%s: %s); retrying", type(e).__name__, e)
                await asyncio.sleep(delay / 2 + rng.uniform(0, delay / 2))
                delay = min(self.cfg.influx.backoff_max_s, delay * 2)
        self.written += len(batch)
        self.stats.sink("influx").out += len(batch)

    async def close(self) -> None:
        await self.writer.close()
