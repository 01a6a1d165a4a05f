"""What `make run` watches while the chain runs, and the text it shows.

Readers (each a structured source, no log parsing):

- ``spool_progress(path)``: events per band, the last record id and each sink's
  cursor, from the bridge's spool file opened read-only (sink lag = last id - cursor,
  as ``spasm-bridge status`` computes it);
- ``MqttWatcher``: an MQTT subscriber on ``spasm/v1/+/event`` that counts distinct
  (band, seq), as any consumer dedupes;
- ``FleetControl``: the fleet's control port, ``{"cmd": "stats"}``: events logged on
  each band and its link state.

Text: ``progress_block`` (redrawn in place on a terminal), ``progress_line`` (one line
per update otherwise) and ``report_lines`` (where the data went, after the run).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

PREFIX = "spasm/v1"


def spool_progress(path: Path) -> dict[str, Any] | None:
    """Events per band, the last record id and per-sink cursors; None when not readable yet."""
    if not path.exists():
        return None
    try:
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=1.0)
        try:
            events = dict(
                con.execute(
                    "SELECT band, count(*) FROM records WHERE rtype='event' GROUP BY band"
                ).fetchall()
            )
            row = con.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
            cursors = dict(con.execute("SELECT sink, pos FROM cursors").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return None  # not created yet, or busy for a moment: keep the last numbers
    last_id = int(row[0]) if row else 0
    return {"events": events, "last_id": last_id, "cursors": cursors}


class MqttWatcher:
    """Subscribes to every band's event topic and counts distinct (band, seq)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[str, set[int]] = {}
        self.messages = 0
        self.ready = asyncio.Event()

    def distinct(self) -> int:
        return sum(len(s) for s in self.seen.values())

    async def run(self) -> None:
        """Count until cancelled; resubscribe if the broker connection drops."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"spasm-chain-{os.getpid()}"
                ) as client:
                    await client.subscribe(f"{PREFIX}/+/event", qos=1)
                    self.ready.set()
                    async for msg in client.messages:
                        self.count(msg.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    def count(self, payload: Any) -> None:
        self.messages += 1
        try:
            data = json.loads(bytes(payload).decode())
            self.seen.setdefault(str(data["band"]), set()).add(int(data["seq"]))
        except (ValueError, KeyError, TypeError):
            pass  # not an event record: counted as a message only


class FleetControl:
    """The fleet's JSON-lines control port: ``{"cmd": "stats"}`` per band."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Per band stats; {} when the fleet does not answer (it is stopping or gone)."""
        try:
            if self.conn is None:
                self.conn = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 2
                )
            reader, writer = self.conn
            writer.write(b'{"cmd": "stats"}\n')
            await writer.drain()
            answer = json.loads(await asyncio.wait_for(reader.readline(), 2))
            return dict(answer.get("bands", {}))
        except (OSError, TimeoutError, ValueError):
            self.close()
            return {}

    def close(self) -> None:
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


# ------------------------------------------------------------------ text


@dataclass
class BandRow:
    band: str
    stats: dict[str, Any]  # from the fleet's control port
    spooled: int  # events in the spool
    on_mqtt: int | None  # distinct events the subscriber saw; None = no broker

    @property
    def link(self) -> str:
        if self.stats.get("secure"):
            return "secure"
        return "linked" if self.stats.get("connected") else "adv"

    @property
    def on_band(self) -> int:
        return int(self.stats.get("events", 0))


def _sinks(lags: dict[str, int]) -> str:
    return ", ".join(f"{k} lag {v}" for k, v in lags.items()) or "none (embedded spool only)"


def _mq(n: int | None) -> str:
    return f"{'-' if n is None else n:>8}"


def progress_block(
    head: str, rows: list[BandRow], lags: dict[str, int], max_rows: int = 1000
) -> list[str]:
    """The block a terminal shows and redraws: one row per band (at most ``max_rows``),
    a total, the sink lags."""
    lines = [head, f"  {'band':<8} {'link':<7} {'on band':>8} {'spooled':>8} {'on MQTT':>8}"]
    shown = rows if len(rows) <= max_rows else rows[: max(1, max_rows - 1)]
    for r in shown:
        lines.append(f"  {r.band:<8} {r.link:<7} {r.on_band:>8} {r.spooled:>8} {_mq(r.on_mqtt)}")
    if len(shown) < len(rows):
        lines.append(f"  ... and {len(rows) - len(shown)} more bands")
    mq = None if not rows or rows[0].on_mqtt is None else sum(r.on_mqtt or 0 for r in rows)
    band = sum(r.on_band for r in rows)
    spooled = sum(r.spooled for r in rows)
    lines.append(f"  {'all':<8} {'':<7} {band:>8} {spooled:>8} {_mq(mq)}")
    lines.append(f"  sinks: {_sinks(lags)}  (lag: records spooled, not yet delivered)")
    return lines


def progress_line(t: float, rows: list[BandRow], lags: dict[str, int]) -> str:
    """One line per update when the output is not a terminal (a log, CI)."""
    per_band = " ".join(
        f"{r.band}={r.on_band}/{r.spooled}/{'-' if r.on_mqtt is None else r.on_mqtt}" for r in rows
    )
    return f"[{t:5.0f}s] events on band/spooled/MQTT: {per_band}  sinks: {_sinks(lags)}"


def report_lines(s: dict[str, Any], duration: float, speed: float) -> list[str]:
    """Where the data went, from the run's summary (see Chain.finish)."""
    run_dir = Path(s["dir"])
    why = {"duration": f"{duration:g} s done"}.get(s["reason"], s["reason"])
    out = [f"\nmake run stopped ({why}) after {s['seconds']:.0f} s. Where the data went:"]
    if s["failed"]:
        out.append(f"  FAILED: {s['failed']}")
    sp = s["spool"]["summary"]
    if sp is None:
        out.append(f"  spool: nothing written ({s['spool']['path']})")
    else:
        kinds: dict[str, int] = {}
        for b in sp["bands"].values():
            for k, v in b["records"].items():
                kinds[k] = kinds.get(k, 0) + v
        per_band = ", ".join(f"{b} {n}" for b, n in s["spool"]["events"].items()) or "none"
        out.append(f"  spool (the embedded store): {s['spool']['path']}")
        out.append(
            f"    {sum(kinds.values())} records: "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + f"; events per band: {per_band}"
        )
        out.append(f"    look inside: .venv/bin/spasm-bridge status -c {run_dir / 'bridge.toml'}")
    m = s["mqtt"]
    if m is None:
        out.append("  MQTT: no broker this run (records stay in the spool)")
    elif not m["subscribed"]:
        out.append(
            f"  MQTT: mosquitto ran on {m['address']} (stopped with the run), but the run "
            "failed before the bridge started: nothing was published"
        )
    else:
        out.append(
            f"  MQTT: mosquitto on {m['address']} (stopped with the run), topics "
            f"{PREFIX}/<band>/event (QoS 1), .../alert, .../status and .../online "
            f"(retained), {PREFIX}/bridge/make-run/online"
        )
        out.append(
            f"    a subscriber on {PREFIX}/+/event saw {m['distinct']} distinct events "
            f"({m['messages']} messages)"
        )
    v = s["victoria"]
    if v is None:
        out.append("  time series: no VictoriaMetrics this run (records stay in the spool)")
    elif "error" in v:
        out.append(f"  time series: VictoriaMetrics at {v['url']}: cannot read back: {v['error']}")
    else:
        out.append(
            f"  time series: VictoriaMetrics at {v['url']} (InfluxDB write API; "
            "stopped with the run)"
        )
        out.append(
            f"    {v['points']} event points read back through /api/v1/export "
            f"({v['distinct']} distinct band+seq)"
        )
        out.append(f"    example query: {v['example']}")
        if speed != 1:
            out.append(
                f"    (band time runs {speed:g}x, so event timestamps run ahead of the "
                "wall clock: queries need an end= in the future)"
            )
        out.append(
            f"    data kept in {v['data']}; to query it again: victoria-metrics "
            f"-storageDataPath={v['data']} -httpListenAddr={v['url'].removeprefix('http://')}"
        )
    if m is None and v is None:
        out.append("  ran on the embedded spool only: mosquitto / victoria-metrics not available")
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir())
    out.append(f"  files kept in {run_dir}/: {', '.join(files)}")
    return out
