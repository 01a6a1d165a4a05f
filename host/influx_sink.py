"""InfluxDB sink (influxdb-client async API) and the record -> point mapping.

Measurements (tags are low-cardinality; timestamps are the record's UTC in ms,
so re-writing a record lands on the same point and changes nothing):

- ``spasm_event``  tags band, kind; fields seq, boot, t_ms, severity, confidence,
  duration_ms, peak_act, mean_act, peak_acc_mg, freq_hz, modalities
- ``spasm_marker`` tags band, source; fields seq, boot, t_ms
- ``spasm_fault``  tags band, fault; fields seq, boot, t_ms, duration_ms
- ``spasm_onset``  tags band, kind; fields seq, boot, t_ms, confidence, act
- ``spasm_status`` tags band; fields battery_pct, battery_mv, quality, faults, log_used,
  log_capacity, log_overwritten, last_seq, acked_seq, state, uptime_ms, boot, seq
- ``spasm_signal`` tags band; fields emg_uv, ax_mg, ay_mg, az_mg (one point per sample)

Every field is a number: VictoriaMetrics (the test server) drops string fields.
"""

from __future__ import annotations

import logging
from typing import Any

from influxdb_client import Point, WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from host.config import InfluxSection
from host.records import Event, Fault, Marker, Onset, Record, Signal, Status
from host.sinks import Sink
from protocol import codec

log = logging.getLogger("spasm.influx")


def _point(
    measurement: str, rec: Record, tags: dict[str, str], fields: dict[str, Any], utc_ms: int
) -> Point:
    p = Point(measurement).tag("band", rec.band)
    for k, v in tags.items():
        p = p.tag(k, v)
    for k, v in fields.items():
        p = p.field(k, v)
    return p.time(utc_ms, WritePrecision.MS)


def _name(names: tuple[str, ...], i: int) -> str:
    return names[i] if 0 <= i < len(names) and names[i] else str(i)


def points(rec: Record, signal: bool = True) -> list[Point]:
    """The points one record becomes (a signal chunk: one per sample)."""
    common = {"seq": rec.seq, "boot": rec.boot}
    if isinstance(rec, Event):
        return [
            _point(
                "spasm_event",
                rec,
                {"kind": _name(codec.KINDS, rec.kind)},
                {
                    **common,
                    "t_ms": rec.t_ms,
                    "severity": rec.severity,
                    "confidence": rec.confidence,
                    "duration_ms": rec.duration_ms,
                    "peak_act": rec.peak_act_x10 / 10,
                    "mean_act": rec.mean_act_x10 / 10,
                    "peak_acc_mg": rec.peak_acc_mg,
                    "freq_hz": rec.freq_dhz / 10,
                    "modalities": rec.modalities,
                },
                rec.utc_ms,
            )
        ]
    if isinstance(rec, Marker):
        return [
            _point(
                "spasm_marker",
                rec,
                {"source": str(rec.source)},
                {**common, "t_ms": rec.t_ms},
                rec.utc_ms,
            )
        ]
    if isinstance(rec, Fault):
        return [
            _point(
                "spasm_fault",
                rec,
                {"fault": _name(codec.FAULTS, rec.fault)},
                {**common, "t_ms": rec.t_ms, "duration_ms": rec.duration_ms},
                rec.utc_ms,
            )
        ]
    if isinstance(rec, Onset):
        return [
            _point(
                "spasm_onset",
                rec,
                {"kind": _name(codec.KINDS, rec.kind)},
                {**common, "t_ms": rec.t_ms, "confidence": rec.confidence, "act": rec.act_x10 / 10},
                rec.utc_ms,
            )
        ]
    if isinstance(rec, Status):
        f = {
            k: getattr(rec, k)
            for k in (
                "battery_pct",
                "battery_mv",
                "quality",
                "faults",
                "log_used",
                "log_capacity",
                "log_overwritten",
                "last_seq",
                "acked_seq",
                "state",
                "uptime_ms",
            )
        }
        return [_point("spasm_status", rec, {}, {**common, **f}, rec.utc_ms)]
    if isinstance(rec, Signal):
        if not signal:
            return []
        step = 1000 / rec.rate_hz
        return [
            _point(
                "spasm_signal",
                rec,
                {},
                {"emg_uv": s[0], "ax_mg": s[1], "ay_mg": s[2], "az_mg": s[3]},
                rec.utc_ms + round(i * step),
            )
            for i, s in enumerate(rec.samples)
        ]
    raise ValueError(f"no measurement for {rec.rtype}")


class InfluxWriter:
    """One async client and write API, shared by the sink and the ingest role."""

    def __init__(self, cfg: InfluxSection) -> None:
        self.cfg = cfg
        self._client: InfluxDBClientAsync | None = None

    async def write(self, pts: list[Point]) -> None:
        if not pts:
            return
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.cfg.url,
                token=self.cfg.token or "-",
                org=self.cfg.org,
                timeout=int(self.cfg.timeout_s * 1000),
            )
        api = self._client.write_api()
        for i in range(0, len(pts), self.cfg.batch_size):
            await api.write(
                bucket=self.cfg.bucket,
                org=self.cfg.org,
                record=pts[i : i + self.cfg.batch_size],
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class InfluxSink(Sink):
    name = "influx"

    def __init__(self, cfg: InfluxSection) -> None:
        self.cfg = cfg
        self.writer = InfluxWriter(cfg)
        self._up = False

    @property
    def up(self) -> bool:
        return self._up

    async def start(self) -> None:
        log.info("influx: writing to %s bucket %s", self.cfg.url, self.cfg.bucket)

    async def deliver(self, records: list[Record]) -> None:
        pts: list[Point] = []
        for rec in records:
            pts.extend(points(rec, self.cfg.signal))
        try:
            await self.writer.write(pts)
        except Exception:
            self._up = False
            raise
        self._up = True

    async def close(self) -> None:
        await self.writer.close()
