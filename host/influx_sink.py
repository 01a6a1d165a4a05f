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

``lines`` builds the line protocol directly (the sink's path: about 1 us per signal
sample where a ``Point`` took about 30); ``points`` gives the same data as
influxdb-client ``Point`` objects (dashboards, reports, tests). Both give the
same text: tags and fields sorted by key, integers with an ``i``, floats as
``str`` without a trailing ``.0``, timestamps in ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

from influxdb_client import Point, WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync

from host.config import InfluxSection
from host.records import Event, Fault, Marker, Onset, Record, Signal, Status
from host.sinks import Sink
from protocol import codec

log = logging.getLogger("spasm.influx")


Shape = tuple[str, dict[str, str], dict[str, Any], int]  # measurement, tags but band, fields, ms


def _name(names: tuple[str, ...], i: int) -> str:
    return names[i] if 0 <= i < len(names) and names[i] else str(i)


# STATUS's own fields (the record's, less those of every record and the firmware version)
_STATUS_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Status)
    if f.name not in {g.name for g in dataclasses.fields(Record)} and not f.name.startswith("fw_")
)


def _shape(rec: Record) -> Shape:
    """Measurement, tags (besides band), fields and time of a record other than a signal chunk."""
    common = {"seq": rec.seq, "boot": rec.boot}
    if isinstance(rec, Event):
        return (
            "spasm_event",
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
    if isinstance(rec, Marker):
        return ("spasm_marker", {"source": str(rec.source)}, {**common, "t_ms": rec.t_ms},
                rec.utc_ms)  # fmt: skip
    if isinstance(rec, Fault):
        return (
            "spasm_fault",
            {"fault": _name(codec.FAULTS, rec.fault)},
            {**common, "t_ms": rec.t_ms, "duration_ms": rec.duration_ms},
            rec.utc_ms,
        )
    if isinstance(rec, Onset):
        return (
            "spasm_onset",
            {"kind": _name(codec.KINDS, rec.kind)},
            {**common, "t_ms": rec.t_ms, "confidence": rec.confidence, "act": rec.act_x10 / 10},
            rec.utc_ms,
        )
    if isinstance(rec, Status):
        return ("spasm_status", {}, {**common, **{k: getattr(rec, k) for k in _STATUS_FIELDS}},
                rec.utc_ms)  # fmt: skip
    raise ValueError(f"no measurement for {rec.rtype}")


def points(rec: Record, signal: bool = True) -> list[Point]:
    """The points one record becomes (a signal chunk: one per sample)."""
    if isinstance(rec, Signal):
        if not signal:
            return []
        step = 1000 / rec.rate_hz
        return [
            Point("spasm_signal")
            .tag("band", rec.band)
            .field("emg_uv", s[0])
            .field("ax_mg", s[1])
            .field("ay_mg", s[2])
            .field("az_mg", s[3])
            .time(rec.utc_ms + round(i * step), WritePrecision.MS)
            for i, s in enumerate(rec.samples)
        ]
    measurement, tags, fields, ts = _shape(rec)
    p = Point(measurement).tag("band", rec.band)
    for k, v in tags.items():
        p = p.tag(k, v)
    for k, v in fields.items():
        p = p.field(k, v)
    return [p.time(ts, WritePrecision.MS)]


# Line protocol escapes of a tag value (influxdb_client.client.write.point._ESCAPE_KEY)
_TAG_ESCAPE = str.maketrans(
    {",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)


def _tag(value: str) -> str:
    out = value.translate(_TAG_ESCAPE)
    return out + " " if out.endswith("\\") else out


def _value(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        s = str(v)
        return s[:-2] if s.endswith(".0") else s
    raise ValueError(f"field value {v!r}: only numbers are written")


def lines(rec: Record, signal: bool = True) -> list[str]:
    """The line protocol of ``points(rec, signal)``, built without ``Point`` objects."""
    if isinstance(rec, Signal):
        if not signal:
            return []
        head = "spasm_signal,band=" + _tag(rec.band) + " "
        t0 = rec.utc_ms
        step = 1000 / rec.rate_hz
        return [
            f"{head}ax_mg={s[1]}i,ay_mg={s[2]}i,az_mg={s[3]}i,emg_uv={s[0]}i {t0 + round(i * step)}"
            for i, s in enumerate(rec.samples)
        ]
    measurement, tags, fields, ts = _shape(rec)
    head = measurement + ",band=" + _tag(rec.band)
    for k, v in sorted(tags.items()):  # every other tag key sorts after "band"
        t = _tag(v)
        if t:
            head += f",{k}={t}"
    values = ((k, _value(v)) for k, v in sorted(fields.items()))
    return [head + " " + ",".join(f"{k}={t}" for k, t in values if t is not None) + f" {ts}"]


INFLIGHT = 2  # write requests of one batch in flight at once


class InfluxWriter:
    """One async client and write API, shared by the sink and the ingest role.

    ``write`` sends ``influx.batch_size`` points (``Point`` objects or lines of line
    protocol) per request, with up to ``INFLIGHT`` requests in flight, so the server
    stores one while the next is on its way; it returns when all are stored and
    raises the first failure (the caller re-sends the batch: rewrites are no-ops).
    """

    def __init__(self, cfg: InfluxSection) -> None:
        self.cfg = cfg
        self._client: InfluxDBClientAsync | None = None
        self._api: WriteApiAsync | None = None

    async def write(self, pts: Sequence[Point | str]) -> None:
        if not pts:
            return
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.cfg.url,
                token=self.cfg.token or "-",
                org=self.cfg.org,
                timeout=int(self.cfg.timeout_s * 1000),
            )
        size = self.cfg.batch_size
        if len(pts) <= size:
            await self._post(pts)
            return
        running: set[asyncio.Task[None]] = set()
        try:
            for i in range(0, len(pts), size):
                if len(running) >= INFLIGHT:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        t.result()
                running.add(asyncio.create_task(self._post(pts[i : i + size])))
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
        finally:
            for t in running:
                t.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _post(self, chunk: Sequence[Point | str]) -> None:
        assert self._client is not None
        record: str | list[Point | str]
        if all(isinstance(p, str) for p in chunk):
            record = "\n".join(chunk)  # type: ignore[arg-type]
        else:
            record = list(chunk)
        if self._api is None:
            self._api = self._client.write_api()
        await self._api.write(
            bucket=self.cfg.bucket,
            org=self.cfg.org,
            record=record,
            write_precision=WritePrecision.MS,  # type: ignore[arg-type]
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._api = None


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
        out: list[str] = []
        signal = self.cfg.signal
        for rec in records:
            out.extend(lines(rec, signal))
        try:
            await self.writer.write(out)
        except Exception:
            self._up = False
            raise
        self._up = True

    async def close(self) -> None:
        await self.writer.close()
