"""What arrived where, during and after a chaos run.

- ``PersistentMosquitto``: host.local_servers' mosquitto with persistence on, so a
  consumer's persistent session (and the QoS 1 messages queued for it) survives the
  broker being stopped and restarted, as with any production broker.
- ``DedupTap``: a deduping MQTT consumer (persistent session, QoS 1, reconnects):
  every copy of every ``<band>/event|marker|fault`` by (band, seq), and the replies.
- ``vm_seqs``: (band, seq) -> point timestamps, per measurement, from VictoriaMetrics.
- ``spool_contig``: per band, the contiguous seq the spool holds (read-only SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiomqtt

from host.local_servers import Mosquitto, VictoriaMetrics

LOGGED_TYPES = ("event", "marker", "fault")


class PersistentMosquitto(Mosquitto):
    """mosquitto that keeps sessions and queued messages across a restart (saved on SIGTERM)."""

    def argv(self) -> list[str]:
        assert self.binary is not None
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "max_queued_messages 1000000\nmax_inflight_messages 100\n"
            f"user {getpass.getuser()}\n"
        )
        return [self.binary, "-c", str(conf)]


class DedupTap:
    """A consumer that dedupes on (band, seq) and keeps the count of every copy."""

    def __init__(self, port: int, client_id: str = "chaos-dedup-consumer") -> None:
        self.port = port
        self.client_id = client_id
        # rtype -> (band, seq) -> utc_ms of each copy
        self.copies: dict[str, dict[tuple[str, int], list[int]]] = {t: {} for t in LOGGED_TYPES}
        self.replies: list[dict[str, Any]] = []
        # (band, seq) -> (type, kind, utc_ms): the InfluxDB point identity of the record
        self.identity: dict[tuple[str, int], tuple[str, int, int]] = {}
        self.connects = 0
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:  # the broker goes away during the run: reconnect, same session
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.client_id, clean_session=False
                ) as c:
                    for t in LOGGED_TYPES:
                        await c.subscribe(f"spasm/v1/+/{t}", qos=1)
                    await c.subscribe("spasm/v1/+/reply", qos=1)
                    self.connects += 1
                    self.ready.set()
                    async for m in c.messages:
                        self._take(str(m.topic), m.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _take(self, topic: str, payload: Any) -> None:
        rtype = topic.rsplit("/", 1)[-1]
        try:
            msg = json.loads(payload if isinstance(payload, bytes | str) else b"")
        except ValueError:
            return
        if rtype == "reply":
            self.replies.append(msg)
        elif rtype in self.copies:
            k = (msg["band"], int(msg["seq"]))
            self.copies[rtype].setdefault(k, []).append(int(msg.get("utc_ms", 0)))
            tag = msg.get("kind", msg.get("fault", msg.get("source", 0)))
            self.identity.setdefault(k, (rtype, int(tag or 0), int(msg.get("utc_ms", 0))))

    async def start(self, timeout: float = 20) -> DedupTap:
        await asyncio.wait_for(self.ready.wait(), timeout)
        return self

    def seqs(self, band: str) -> set[int]:
        """Logged seqs of ``band`` seen at least once (event, marker or fault)."""
        return {s for t in LOGGED_TYPES for (b, s) in self.copies[t] if b == band}

    def extra_copies(self) -> int:
        return sum(len(v) - 1 for t in LOGGED_TYPES for v in self.copies[t].values())

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


def vm_seqs(
    vm: VictoriaMetrics, bands: list[str], ahead_s: float
) -> dict[str, dict[tuple[str, int], list[int]]]:
    """measurement type -> (band, seq) -> timestamps (ms) of every stored point.

    ``ahead_s``: bands on an accelerated clock stamp records ahead of the wall clock."""
    out: dict[str, dict[tuple[str, int], list[int]]] = {}
    sel = "|".join(bands)
    end = time.time() + ahead_s
    for t in LOGGED_TYPES:
        pts: dict[tuple[str, int], list[int]] = {}
        for s in vm.export(f'spasm_{t}_seq{{band=~"{sel}"}}', end=end):
            for ts, v in zip(s["timestamps"], s["values"], strict=True):
                pts.setdefault((s["metric"]["band"], int(v)), []).append(int(ts))
        out[t] = pts
    return out


def vm_status_overwritten(vm: VictoriaMetrics, bands: list[str], ahead_s: float) -> dict[str, int]:
    """The latest STATUS log_overwritten each band reported (as stored by the bridge)."""
    sel = "|".join(bands)
    out: dict[str, int] = {}
    for s in vm.export(f'spasm_status_log_overwritten{{band=~"{sel}"}}', end=time.time() + ahead_s):
        if s["values"]:
            last = max(range(len(s["timestamps"])), key=lambda i: s["timestamps"][i])
            b = s["metric"]["band"]
            out[b] = max(out.get(b, 0), int(s["values"][last]))
    return out


def seqs_by_band(pts: dict[str, dict[tuple[str, int], list[int]]]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for per in pts.values():
        for b, s in per:
            out.setdefault(b, set()).add(s)
    return out


def spool_contig(path: Path) -> dict[str, int]:
    """Per band, the highest seq the spool holds with nothing missing below it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {str(b): int(c) for b, c in db.execute("SELECT band, contig FROM bands")}
    finally:
        db.close()
