"""What a report is made of: events, markers and notes of one band over a period, and the numbers.

Two sources give the same ``ReportData``:

- the spool (the embedded default): SQLite ``records`` (events, markers) and
  ``notes`` tables, opened read-only. The spool holds what ``spool.keep_hours``
  keeps once sinks have delivered it (with no sink enabled it keeps everything);
- InfluxDB, through the Flux query API (``spasm_event``, ``spasm_marker``,
  ``spasm_note``). VictoriaMetrics, the tests' server, has no Flux, so this path is
  exercised only against a real InfluxDB 2.x (see host/ALERTS-REPORTS.md).

Computations are plain functions of that data, so tests recompute them directly.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from host.alert_config import in_window, parse_sleep_hours
from host.config import InfluxSection
from host.notes import NOTE_MEASUREMENT, Note
from protocol import codec

EVENT_MEASUREMENT = "spasm_event"  # as written by host/influx_sink.points
MARKER_MEASUREMENT = "spasm_marker"
KIND_NAMES = tuple(k for k in codec.KINDS if k)  # myoclonic, clonic, tonic
MAX_DAYS = 366


class ReportError(ValueError):
    """The report cannot be made (no such spool, unknown band, bad period)."""


@dataclass(frozen=True)
class EventRow:
    utc_ms: int
    kind: str
    severity: int
    duration_ms: int
    confidence: int


@dataclass(frozen=True)
class MarkerRow:
    utc_ms: int
    source: int


@dataclass
class ReportData:
    band: str
    since_ms: int
    until_ms: int
    source: str  # said in the report: where the numbers come from
    events: list[EventRow] = field(default_factory=list)
    markers: list[MarkerRow] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def _kind_name(kind: int) -> str:
    return codec.KINDS[kind] if 0 < kind < len(codec.KINDS) else "unknown"


def from_spool(path: str | Path, band: str, since_ms: int, until_ms: int) -> ReportData:
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{p}: no spool file here (spool.path)")
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise ReportError(f"{p}: not a spool database ({e})") from None
    try:
        if "records" not in tables:
            raise ReportError(f"{p}: not a spool database (no records table)")
        known = db.execute("SELECT 1 FROM records WHERE band=? LIMIT 1", (band,)).fetchone()
        if not known and "notes" in tables:
            known = db.execute("SELECT 1 FROM notes WHERE band=? LIMIT 1", (band,)).fetchone()
        if not known:
            raise ReportError(f"--band: no records of band {band!r} in {p}")
        data = ReportData(band, since_ms, until_ms, f"spool {p}")
        rows = db.execute(
            "SELECT rtype, utc_ms, body FROM records WHERE band=? AND rtype IN ('event','marker')"
            " AND utc_ms>=? AND utc_ms<? ORDER BY utc_ms, seq",
            (band, since_ms, until_ms),
        ).fetchall()
        for rtype, utc, text in rows:
            b = json.loads(text)
            if rtype == "event":
                data.events.append(
                    EventRow(
                        utc,
                        _kind_name(b["kind"]),
                        b["severity"],
                        b["duration_ms"],
                        b["confidence"],
                    )
                )
            else:
                data.markers.append(MarkerRow(utc, b["source"]))
        if "notes" in tables:
            data.notes = [
                Note(*r)
                for r in db.execute(
                    "SELECT band, kind, text, utc_ms, id FROM notes WHERE band=? AND utc_ms>=? "
                    "AND utc_ms<? ORDER BY utc_ms, id",
                    (band, since_ms, until_ms),
                )
            ]
    except sqlite3.DatabaseError as e:
        raise ReportError(f"{p}: cannot read the spool ({e})") from None
    finally:
        db.close()
    return data


# ------------------------------------------------------------ InfluxDB (Flux)


def _rfc3339(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_query(bucket: str, measurement: str, band: str, since_ms: int, until_ms: int) -> str:
    """One measurement of one band, fields pivoted into columns (tags stay columns)."""
    for name, v in (("bucket", bucket), ("band", band)):
        if '"' in v or "\\" in v:
            raise ReportError(f"{name}: {v!r} may not contain quotes or backslashes")
    return (
        f'from(bucket: "{bucket}")\n'
        f"  |> range(start: {_rfc3339(since_ms)}, stop: {_rfc3339(until_ms)})\n"
        f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r.band == "{band}")\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        '  |> sort(columns: ["_time"])'
    )


def from_influx(cfg: InfluxSection, band: str, since_ms: int, until_ms: int) -> ReportData:
    """Read events, markers and notes back through InfluxDB's Flux query API."""
    from influxdb_client import InfluxDBClient

    data = ReportData(band, since_ms, until_ms, f"InfluxDB {cfg.url} bucket {cfg.bucket}")
    try:
        _read_influx(InfluxDBClient, cfg, data)
    except ReportError:
        raise
    except Exception as e:  # connection refused, 401, no Flux on this server, ...
        raise ReportError(f"InfluxDB {cfg.url}: query failed: {e}") from None
    return data


def _read_influx(client_cls: type, cfg: InfluxSection, data: ReportData) -> None:
    band, since_ms, until_ms = data.band, data.since_ms, data.until_ms
    with client_cls(
        url=cfg.url, token=cfg.token or "-", org=cfg.org, timeout=int(cfg.timeout_s * 1000)
    ) as client:
        api = client.query_api()

        def rows(measurement: str) -> list[dict[str, object]]:
            q = flux_query(cfg.bucket, measurement, band, since_ms, until_ms)
            return [r.values for t in api.query(q, org=cfg.org) for r in t.records]

        def ms(v: object) -> int:
            assert isinstance(v, dt.datetime)
            return int(v.timestamp() * 1000)

        for r in rows(EVENT_MEASUREMENT):
            data.events.append(
                EventRow(
                    ms(r["_time"]),
                    str(r.get("kind", "unknown")),
                    _int(r["severity"]),
                    _int(r["duration_ms"]),
                    _int(r["confidence"]),
                )
            )
        for r in rows(MARKER_MEASUREMENT):
            data.markers.append(MarkerRow(ms(r["_time"]), int(str(r.get("source", "1")))))
        for r in rows(NOTE_MEASUREMENT):
            data.notes.append(
                Note(band, str(r["kind"]), str(r.get("text", "")), ms(r["_time"]), _int(r["id"]))
            )


def _int(v: object) -> int:
    if isinstance(v, int | float):
        return int(v)
    raise ReportError(f"InfluxDB returned {v!r} where a number was expected")


# ------------------------------------------------------------ numbers


def local(ms: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz)


def per_day_by_kind(data: ReportData, tz: ZoneInfo) -> list[tuple[dt.date, dict[str, int]]]:
    """Every local day of the period with its event count per kind (zeros included)."""
    first = local(data.since_ms, tz).date()
    last = local(data.until_ms - 1, tz).date()
    days = [first + dt.timedelta(d) for d in range((last - first).days + 1)]
    table = {d: dict.fromkeys(KIND_NAMES, 0) for d in days}
    for e in data.events:
        row = table[local(e.utc_ms, tz).date()]
        row[e.kind] = row.get(e.kind, 0) + 1
    return [(d, table[d]) for d in days]


@dataclass(frozen=True)
class DayNight:
    night_count: int
    day_count: int
    night_hours: float
    day_hours: float

    @property
    def night_rate(self) -> float:
        return self.night_count / self.night_hours if self.night_hours else 0.0

    @property
    def day_rate(self) -> float:
        return self.day_count / self.day_hours if self.day_hours else 0.0


def is_night(ms: int, tz: ZoneInfo, sleep: tuple[int, int]) -> bool:
    t = local(ms, tz)
    return in_window(t.hour * 60 + t.minute, *sleep)


def day_night(data: ReportData, tz: ZoneInfo, sleep_hours: str) -> DayNight:
    sleep = parse_sleep_hours(sleep_hours)
    night = sum(1 for e in data.events if is_night(e.utc_ms, tz, sleep))
    # Hours of the period inside the sleep window, minute by minute (DST-proof).
    step = 60_000
    night_min = sum(1 for m in range(data.since_ms, data.until_ms, step) if is_night(m, tz, sleep))
    total_min = len(range(data.since_ms, data.until_ms, step))
    return DayNight(night, len(data.events) - night, night_min / 60, (total_min - night_min) / 60)


def heatmap(data: ReportData, tz: ZoneInfo) -> list[list[int]]:
    """Counts by local weekday (0 = Monday) and hour of day: 7 rows of 24."""
    grid = [[0] * 24 for _ in range(7)]
    for e in data.events:
        t = local(e.utc_ms, tz)
        grid[t.weekday()][t.hour] += 1
    return grid


@dataclass(frozen=True)
class MarkerMatch:
    markers: int
    markers_caught: int  # felt spasms (button presses) with a detected event in the window
    events: int
    events_marked: int  # detected events the patient marked
    before_s: float
    after_s: float


def match_markers(data: ReportData, before_s: float, after_s: float) -> MarkerMatch:
    """Pair each marker with the nearest unpaired event whose onset is in
    [marker - before_s, marker + after_s]; one event pairs with one marker at most."""
    events = sorted(e.utc_ms for e in data.events)
    used: set[int] = set()
    caught = 0
    for m in sorted(x.utc_ms for x in data.markers):
        lo, hi = m - before_s * 1000, m + after_s * 1000
        best = None
        for i, t in enumerate(events):
            if t < lo or i in used:
                continue
            if t > hi:
                break
            if best is None or abs(t - m) < abs(events[best] - m):
                best = i
        if best is not None:
            used.add(best)
            caught += 1
    return MarkerMatch(len(data.markers), caught, len(events), len(used), before_s, after_s)


def poisson_interval(k: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson mean given ``k`` counts."""
    a = (1 - conf) / 2

    def cdf(n: int, lam: float) -> float:  # P(X <= n)
        if lam == 0:
            return 1.0
        term = math.exp(-lam)
        total = term
        for i in range(1, n + 1):
            term *= lam / i
            total += term
        return min(1.0, total)

    def solve(f_target: float, n: int) -> float:
        lo, hi = 0.0, max(10.0, k * 3 + 10.0)
        for _ in range(100):  # cdf(n, lam) falls as lam grows
            mid = (lo + hi) / 2
            if cdf(n, mid) > f_target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(1 - a, k - 1)
    upper = solve(a, k)
    return lower, upper


@dataclass(frozen=True)
class Window:
    count: int
    hours: float
    mean_severity: float | None

    @property
    def rate(self) -> float:
        return self.count / self.hours if self.hours else 0.0

    def rate_interval(self) -> tuple[float, float]:
        lo, hi = poisson_interval(self.count)
        return (lo / self.hours, hi / self.hours) if self.hours else (0.0, 0.0)


def before_after(data: ReportData, note: Note, window_h: float) -> tuple[Window, Window]:
    """Spasms in the ``window_h`` hours before and after a note, clipped to the period."""
    w = int(window_h * 3_600_000)
    spans = (
        (max(data.since_ms, note.utc_ms - w), note.utc_ms),
        (note.utc_ms, min(data.until_ms, note.utc_ms + w)),
    )
    out = []
    for lo, hi in spans:
        sev = [e.severity for e in data.events if lo <= e.utc_ms < hi]
        out.append(
            Window(len(sev), max(0, hi - lo) / 3_600_000, sum(sev) / len(sev) if sev else None)
        )
    return out[0], out[1]


def kind_counts(data: ReportData) -> dict[str, int]:
    c = Counter(e.kind for e in data.events)
    return {k: c.get(k, 0) for k in KIND_NAMES}
