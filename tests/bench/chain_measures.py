"""What the chain benchmark (tests/bench/bench_chain.py) reads off the running chain.

- the bridge's stats lines in its log: intake, influx sink out and lag, event-loop
  lateness and GC pauses (``stats_lines``, ``loop_lines``);
- end-to-end latency band -> time-series server: ``LatencyProbe`` polls VictoriaMetrics
  for the newest signal points of a few bands;
- band -> bridge latency of the spooled signal chunks, from the spool (``band_to_bridge_ms``);
- the influx sink's drain rate after an outage, from the stats lines (``drain_rate``);
- the raw influxdb-client write rate into the same server (``raw_influx_rate``);
- ``pct``: a percentile of a list.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from host.local_servers import VictoriaMetrics

STATS = re.compile(r"^(\S+ \S+) INFO spasm.stats: stats in=(\d+) .*sink.influx=out:(\d+),lag:(\d+)")
SAMPLES_PER_CHUNK = 10  # 50 Hz in chunks of rate // 5 (firmware/spasmband/signal_stream.py)
LOOP = re.compile(r"^(\S+ \S+) INFO spasm.stats: stats .* loop_ms=(\d+) gc_ms=(\d+)")


def _matches(log: Path, pattern: re.Pattern[str]) -> list[tuple[float, ...]]:
    """(unix time, the pattern's other groups as ints) for every matching log line."""
    out = []
    for ln in log.read_text(errors="replace").splitlines():
        m = pattern.match(ln)
        if m:
            day, ms = m.group(1).split(",")
            t = time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
            out.append((t, *(int(g) for g in m.groups()[1:])))
    return out


def stats_lines(log: Path) -> list[tuple[float, int, int, int]]:
    """(unix time, in, influx out, influx lag) of every stats line of the bridge log."""
    return _matches(log, STATS)  # type: ignore[return-value]


def loop_lines(log: Path) -> list[tuple[float, int, int]]:
    """(unix time, worst event-loop lateness, longest GC pause; ms) of every stats line."""
    return _matches(log, LOOP)  # type: ignore[return-value]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class LatencyProbe:
    """Polls VictoriaMetrics for the newest signal points of a few bands."""

    def __init__(self, vm: VictoriaMetrics, bands: list[str], poll: float) -> None:
        self.vm = vm
        self.sel = "|".join(bands)
        self.poll = poll
        self.seen: set[tuple[str, int]] = set()
        self.latencies_ms: list[float] = []
        self.errors = 0

    def _once(self) -> None:
        now = time.time()
        self.vm.force_flush()
        q = {"match[]": f'spasm_signal_emg_uv{{band=~"{self.sel}"}}', "start": str(now - 10),
             "end": str(now + 60)}  # fmt: skip
        text = self.vm.get("/api/v1/export", q).decode()
        seen_at = time.time() * 1000
        for line in text.splitlines():
            s = json.loads(line)
            b = s["metric"]["band"]
            for ts in s["timestamps"]:
                k = (b, int(ts))
                if k not in self.seen:
                    self.seen.add(k)
                    self.latencies_ms.append(seen_at - ts)

    async def run(self, seconds: float) -> None:
        # points already there when the probe starts are not new: prime the seen set
        await asyncio.to_thread(self._once)
        self.latencies_ms.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                await asyncio.to_thread(self._once)
            except (OSError, ValueError):
                self.errors += 1
            await asyncio.sleep(self.poll)


def raw_influx_rate(url: str, seconds: float, batch: int, bands: int) -> dict[str, Any]:
    """Points/s influxdb-client's synchronous write API puts into the server."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    client = InfluxDBClient(url=url, token="bench", org="spasm", timeout=30_000)
    api = client.write_api(write_options=SYNCHRONOUS)
    t0_ms = int(time.time() * 1000) - 3_600_000
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        lines = []
        for i in range(batch):
            k = n + i
            lines.append(
                f"spasm_signal,band=raw{k % bands:03d} emg_uv={k % 500}i,ax_mg={k % 7}i,"
                f"ay_mg={k % 11}i,az_mg=1000i {t0_ms + k // bands * 20}"
            )
        api.write(bucket="spasm", record=lines, write_precision="ms")
        n += batch
    elapsed = time.perf_counter() - start
    client.close()
    return {"points": n, "seconds": round(elapsed, 2), "points_per_s": round(n / elapsed)}


RAW_BATCH = 1000  # = influx.batch_size, the bridge's points per write request


def drain_rate(lines: list[tuple[float, int, int, int]]) -> dict[str, Any]:
    """Records/s the influx sink delivered working off its backlog (stats lines after the
    server came back): from the first line that shows deliveries to the first line whose
    lag is under one second of intake."""
    start = next(
        (i for i in range(1, len(lines)) if lines[i][2] > lines[i - 1][2] and lines[i - 1][3] > 0),
        None,
    )
    if start is None:
        return {}
    start -= 1
    t0, in0, out0, lag0 = lines[start]
    for t, inn, out, lag in lines[start + 1 :]:
        intake_per_s = (inn - in0) / max(t - t0, 1e-9)
        if lag <= intake_per_s:
            rate = (out - out0) / max(t - t0, 1e-9)
            return {
                "drain_backlog_records": lag0,
                "drain_s": round(t - t0, 1),
                "drain_records_per_s": round(rate, 1),
                "drain_points_per_s": round(rate * SAMPLES_PER_CHUNK),
                "drain_intake_records_per_s": round(intake_per_s, 1),
            }
    t, _, out, lag = lines[-1]
    return {"drain_incomplete_lag": lag,
            "drain_records_per_s": round((out - out0) / max(t - t0, 1e-9), 1)}  # fmt: skip


def band_to_bridge_ms(spool: Path, since: float, until: float) -> list[float]:
    """Per signal chunk spooled in [since, until]: receive time - its last sample's time."""
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT received_ms - utc_ms - (json_extract(body, '$.count') - 1) * 1000"
            " / json_extract(body, '$.rate_hz') FROM records"
            " WHERE rtype = 'signal' AND received_ms BETWEEN ? AND ?",
            (int(since * 1000), int(until * 1000)),
        ).fetchall()
    finally:
        db.close()
    return [float(r[0]) for r in rows]
