"""Alert rules over the record stream, per patient (band), with a cooldown per (band, rule).

The bridge calls ``AlertEngine.feed(record)`` for every record it spools and
``AlertEngine.tick(now_ms)`` now and then (band offline too long is a rule about
silence, so no record ever triggers it); both return the new ``Alert`` objects,
which ``host.alert_publish.AlertPublisher`` sends to MQTT, a command and/or a webhook.

Rules (thresholds in ``[alerts]``, per band overrides in ``[alerts.bands.<band>]``, see
host.alert_config):

- ``rate_above_baseline``: spasms in the last hour exceed ``rate_factor`` times this
  band's own hourly average over the previous ``baseline_days`` (and at least
  ``rate_min_count``), once the band has ``baseline_min_hours`` of history;
- ``sleep_spasms``: ``sleep_max_count`` or more spasms within ``sleep_window_min``
  inside the sleep hours (``sleep_hours`` in ``timezone``);
- ``severe_spasm``: an event of severity >= ``severe_severity``;
- ``long_tonic``: a tonic spasm lasting >= ``long_tonic_s``;
- ``not_worn`` / ``sensor_fault``: the electrodes are off the skin (lead-off), or
  another sensor fault, active in a status or logged for >= ``fault_min_s``;
- ``battery_low``: status battery at or below ``battery_low_pct``;
- ``offline``: no link and no record from the band for ``offline_after_min``.

Alert texts state what the band recorded and the threshold crossed. They never
give medical advice (tests scan every text for advice words): what to do about a
spasm is for the patient and their clinician, not for a monitor.
Records older than ``stale_after_min`` when fed (a replayed backlog) update the
history but raise no alert: an alert is about now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from host.alert_config import AlertsSection, Thresholds, in_window, parse_sleep_hours
from host.records import Event, Fault, Record, Status
from protocol import codec

RULES = (
    "rate_above_baseline",
    "sleep_spasms",
    "severe_spasm",
    "long_tonic",
    "not_worn",
    "sensor_fault",
    "battery_low",
    "offline",
)
SEEN_MAX = 100_000  # logged seqs remembered per band for dedupe (a few weeks of records)
LEAD_OFF = 1  # codec fault number of an electrode lead-off: the band is not on the skin


@dataclass(frozen=True)
class Alert:
    """One alert: ``rule`` names the rule, ``values`` the numbers behind ``text``."""

    band: str
    rule: str
    utc_ms: int  # time of the record (or check) that raised it
    text: str
    values: dict[str, float] = field(default_factory=dict)
    seq: int | None = None  # the band record behind it, if any
    level: str = "warning"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["type"] = "alert"  # tells it apart from the live onsets on the same topic
        d["time"] = dt.datetime.fromtimestamp(self.utc_ms / 1000, dt.UTC).isoformat()
        return d


@dataclass
class _BandState:
    events: deque[int] = field(default_factory=deque)  # event utc_ms within the baseline span
    first_ms: int | None = None  # first record seen: the start of this band's history
    last_seen_ms: int = 0
    linked: bool = False
    seen: set[int] = field(default_factory=set)  # recent logged seqs (dedupe replays)
    seen_order: deque[int] = field(default_factory=deque)
    last_alert: dict[str, int] = field(default_factory=dict)  # rule -> utc_ms of the last alert
    offline_alerted: bool = False


def _count_back(events: deque[int], t: int, span_ms: int) -> int:
    """Events in (t - span, t] of a sorted deque, walking back from the newest."""
    n = 0
    for x in reversed(events):
        if x <= t - span_ms:
            break
        if x <= t:
            n += 1
    return n


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


class AlertEngine:
    """Keeps per-band history and turns records into alerts (no I/O)."""

    def __init__(self, cfg: AlertsSection) -> None:
        self.cfg = cfg
        self.tz = ZoneInfo(cfg.timezone)
        self.bands: dict[str, _BandState] = {}
        self._thr: dict[str, Thresholds] = {}

    def thresholds(self, band: str) -> Thresholds:
        if band not in self._thr:
            self._thr[band] = self.cfg.for_band(band)
        return self._thr[band]

    def _state(self, band: str) -> _BandState:
        return self.bands.setdefault(band, _BandState())

    # ------------------------------------------------------------ entry points

    def feed(self, rec: Record, now_ms: int | None = None) -> list[Alert]:
        """Account for one spooled record; return the alerts it raises (after cooldown)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        st = self._state(rec.band)
        if rec.logged:
            if rec.seq in st.seen:
                return []  # a replay or retry of a record already accounted for
            st.seen.add(rec.seq)
            st.seen_order.append(rec.seq)
            if len(st.seen_order) > SEEN_MAX:
                st.seen.discard(st.seen_order.popleft())
        t = rec.utc_ms or now
        if st.first_ms is None or t < st.first_ms:
            st.first_ms = t
        st.last_seen_ms = max(st.last_seen_ms, t)
        st.offline_alerted = False
        thr = self.thresholds(rec.band)
        found: list[Alert] = []
        if isinstance(rec, Event):
            self._add_event(st, thr, t)
            found += self._event_rules(rec, st, thr, t)
        elif isinstance(rec, Fault):
            found += self._fault_rule(rec, thr, t)
        elif isinstance(rec, Status):
            found += self._status_rules(rec, thr, t)
        if now - t > self.cfg.stale_after_min * 60_000:
            return []  # history only: a backlog is not news
        return [a for a in found if self._cooled(st, thr, a)]

    def link(self, band: str, up: bool, now_ms: int | None = None) -> None:
        """The bridge's link state for ``band`` (offline counts from the link going down)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        st = self._state(band)
        st.linked = up
        st.last_seen_ms = max(st.last_seen_ms, now)
        if up:
            st.offline_alerted = False

    def tick(self, now_ms: int | None = None) -> list[Alert]:
        """Time-based rules (band offline too long); call every minute or so."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        out = []
        for band, st in self.bands.items():
            thr = self.thresholds(band)
            silent_min = (now - st.last_seen_ms) / 60_000
            if st.linked or st.offline_alerted or silent_min < thr.offline_after_min:
                continue
            st.offline_alerted = True  # once per silence, whatever the cooldown
            a = Alert(
                band,
                "offline",
                now,
                f"Band {band}: no link and no data for {_fmt(round(silent_min))} minutes "
                f"(threshold {_fmt(thr.offline_after_min)} minutes).",
                {"silent_min": round(silent_min, 1), "threshold_min": thr.offline_after_min},
            )
            if self._cooled(st, thr, a):
                out.append(a)
        return out

    # ------------------------------------------------------------ rules

    def _add_event(self, st: _BandState, thr: Thresholds, t: int) -> None:
        st.events.append(t)
        if len(st.events) > 1 and st.events[-2] > t:  # out of order (a replay): keep sorted
            st.events = deque(sorted(st.events))
        horizon = st.events[-1] - int(thr.baseline_days * 86_400_000) - 3_600_000
        while st.events and st.events[0] < horizon:
            st.events.popleft()

    def _event_rules(self, ev: Event, st: _BandState, thr: Thresholds, t: int) -> list[Alert]:
        out: list[Alert] = []
        band, kind = ev.band, codec.KINDS[ev.kind] if ev.kind < len(codec.KINDS) else str(ev.kind)
        dur_s = ev.duration_ms / 1000
        if ev.severity >= thr.severe_severity:
            out.append(
                Alert(
                    band,
                    "severe_spasm",
                    t,
                    f"Band {band}: {kind} spasm of severity {ev.severity} of 3 recorded, "
                    f"lasting {_fmt(round(dur_s, 1))} s.",
                    {"severity": ev.severity, "duration_s": dur_s},
                    ev.seq,
                )
            )
        if ev.kind == 3 and dur_s >= thr.long_tonic_s:
            out.append(
                Alert(
                    band,
                    "long_tonic",
                    t,
                    f"Band {band}: tonic spasm lasting {_fmt(round(dur_s, 1))} s recorded "
                    f"(threshold {_fmt(thr.long_tonic_s)} s).",
                    {"duration_s": dur_s, "threshold_s": thr.long_tonic_s},
                    ev.seq,
                )
            )
        last_hour = _count_back(st.events, t, 3_600_000)
        history_h = (t - (st.first_ms or t)) / 3_600_000
        span_h = min(history_h - 1, thr.baseline_days * 24)  # the hours before the last one
        if history_h >= thr.baseline_min_hours and span_h > 0 and last_hour >= thr.rate_min_count:
            lo = t - 3_600_000 - span_h * 3_600_000
            before = sum(1 for x in st.events if lo < x <= t - 3_600_000)
            baseline = before / span_h
            if last_hour > thr.rate_factor * baseline:
                out.append(
                    Alert(
                        band,
                        "rate_above_baseline",
                        t,
                        f"Band {band}: {last_hour} spasms in the last hour; this band's average "
                        f"over the previous {_fmt(round(span_h / 24, 1))} days was "
                        f"{baseline:.2f} per hour (alert above {_fmt(thr.rate_factor)} times "
                        "that).",
                        {"last_hour": last_hour, "baseline_per_h": round(baseline, 3)},
                        ev.seq,
                    )
                )
        start, end = parse_sleep_hours(thr.sleep_hours)
        local = dt.datetime.fromtimestamp(t / 1000, self.tz)
        if in_window(local.hour * 60 + local.minute, start, end):
            win = int(thr.sleep_window_min * 60_000)
            n = 0
            for x in reversed(st.events):  # sorted: stop at the window's start
                if x <= t - win:
                    break
                lt = dt.datetime.fromtimestamp(x / 1000, self.tz)
                if x <= t and in_window(lt.hour * 60 + lt.minute, start, end):
                    n += 1
            if n >= thr.sleep_max_count:
                out.append(
                    Alert(
                        band,
                        "sleep_spasms",
                        t,
                        f"Band {band}: {n} spasms in {_fmt(thr.sleep_window_min)} minutes during "
                        f"sleep hours ({thr.sleep_hours}, {self.cfg.timezone}).",
                        {"count": n, "window_min": thr.sleep_window_min},
                        ev.seq,
                    )
                )
        return out

    def _fault_rule(self, f: Fault, thr: Thresholds, t: int) -> list[Alert]:
        dur_s = f.duration_ms / 1000
        if dur_s < thr.fault_min_s:
            return []
        name = codec.FAULTS[f.fault] if f.fault < len(codec.FAULTS) else str(f.fault)
        if f.fault == LEAD_OFF:
            rule, what = "not_worn", "electrodes off the skin (band not worn or loose)"
        else:
            rule, what = "sensor_fault", f"sensor fault {name}"
        return [
            Alert(
                f.band,
                rule,
                t,
                f"Band {f.band}: {what} for {_fmt(round(dur_s))} s; "
                "no spasms can be recorded while it lasts.",
                {"fault": f.fault, "duration_s": dur_s},
                f.seq,
            )
        ]

    def _status_rules(self, s: Status, thr: Thresholds, t: int) -> list[Alert]:
        out: list[Alert] = []
        if s.battery_pct <= thr.battery_low_pct:
            out.append(
                Alert(
                    s.band,
                    "battery_low",
                    t,
                    f"Band {s.band}: battery at {s.battery_pct} % "
                    f"(alert at {thr.battery_low_pct} % or less).",
                    {"battery_pct": s.battery_pct, "battery_mv": s.battery_mv},
                    level="info",
                )
            )
        if s.faults & (1 << (LEAD_OFF - 1)):
            out.append(
                Alert(
                    s.band,
                    "not_worn",
                    t,
                    f"Band {s.band}: electrodes off the skin now (band not worn or loose); "
                    "no spasms can be recorded while it lasts.",
                    {"faults": s.faults},
                )
            )
        other = s.faults & ~(1 << (LEAD_OFF - 1))
        if other:
            names = [codec.FAULTS[i + 1] for i in range(len(codec.FAULTS) - 1) if other >> i & 1]
            out.append(
                Alert(
                    s.band,
                    "sensor_fault",
                    t,
                    f"Band {s.band}: sensor fault active now ({', '.join(names)}).",
                    {"faults": s.faults},
                )
            )
        return out

    def _cooled(self, st: _BandState, thr: Thresholds, a: Alert) -> bool:
        """One alert per (band, rule) per cooldown: an episode never becomes a storm."""
        last = st.last_alert.get(a.rule)
        if last is not None and abs(a.utc_ms - last) < thr.cooldown_min * 60_000:
            return False
        st.last_alert[a.rule] = a.utc_ms
        return True
