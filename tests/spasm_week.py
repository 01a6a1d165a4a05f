"""A simulated week of one band's records, synthesised directly (records, not signals).

Seeded and cheap: running the signal model and detector over a week of 1 kHz EMG
would take minutes, and the report only needs records. The generator keeps the
ground truth the report must recover: which button presses belong to which event
(pressed 5-60 s after the onset), and presses that belong to none (at least 15
minutes from any event). Events are at least 4 minutes apart, so pairing a press
with its event is unambiguous for any window up to 2 minutes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from host.notes import Note
from host.records import Event, Fault, Marker, Record, Status

HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass
class Week:
    band: str
    start_ms: int
    records: list[Record] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    true_markers: int = 0  # presses made for a detected event
    notes: list[Note] = field(default_factory=list)

    @property
    def end_ms(self) -> int:
        return self.start_ms + 7 * DAY


def hourly_rate(hour: int) -> float:
    """Spasms per hour by hour of day (UTC): more at night and in the evening."""
    return 0.8 + 1.2 * math.exp(-(((hour - 3) % 24) ** 2) / 8) + 0.6 * (18 <= hour <= 21)


def simulated_week(band: str, start_ms: int, seed: int = 7) -> Week:
    """``start_ms`` should be midnight UTC, so days in the report are whole."""
    rng = random.Random(seed)
    w = Week(band, start_ms)
    times: list[int] = []
    t = start_ms
    while t < w.end_ms:
        hour = (t - start_ms) // HOUR % 24
        t += int(rng.expovariate(hourly_rate(hour)) * HOUR) + 1
        if t < w.end_ms and (not times or t - times[-1] >= 240_000):
            times.append(t)
    stream: list[tuple[int, str, dict[str, Any]]] = []
    for et in times:
        kind = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        dur = {1: rng.randint(150, 900), 2: rng.randint(1500, 12000), 3: rng.randint(3000, 45000)}
        stream.append(
            (
                et,
                "event",
                {
                    "kind": kind,
                    "severity": rng.choices((1, 2, 3), weights=(5, 3, 1))[0],
                    "confidence": rng.randint(55, 99),
                    "duration_ms": dur[kind],
                },
            )
        )
        if rng.random() < 0.35:
            stream.append((et + rng.randint(5_000, 60_000), "marker", {"source": 1}))
            w.true_markers += 1
    spurious = 0
    while spurious < 6:
        mt = start_ms + rng.randint(0, 7 * DAY - 1)
        if all(abs(mt - et) > 15 * 60_000 for et in times):
            stream.append((mt, "marker", {"source": 1}))
            spurious += 1
    stream.append((start_ms + 2 * DAY + 5 * HOUR, "fault", {"fault": 1, "duration_ms": 120_000}))
    stream.sort(key=lambda x: x[0])
    for seq, (ut, rtype, f) in enumerate(stream, start=1):  # a band's first seq is 1
        common: dict[str, Any] = {
            "band": band,
            "seq": seq,
            "boot": 1,
            "utc_ms": ut,
            "t_ms": ut - start_ms,
        }
        if rtype == "event":
            ev = Event(
                **common,
                **f,
                peak_act_x10=rng.randint(30, 400),
                mean_act_x10=rng.randint(20, 200),
                peak_acc_mg=rng.randint(0, 2000),
                freq_dhz=rng.randint(30, 80) if f["kind"] == 2 else 0,
                modalities=3,
            )
            w.events.append(ev)
            w.records.append(ev)
        elif rtype == "marker":
            mk = Marker(**common, source=f["source"])
            w.markers.append(mk)
            w.records.append(mk)
        else:
            w.records.append(Fault(**common, **f))
    for h in range(0, 7 * 24, 1):  # hourly status, battery slowly down and recharged daily
        ut = start_ms + h * HOUR + 30_000
        w.records.append(
            Status(
                band=band,
                seq=h,
                boot=1,
                utc_ms=ut,
                uptime_ms=ut - start_ms,
                battery_pct=max(5, 100 - 4 * (h % 24)),
                battery_mv=3600 + 2 * (100 - 4 * (h % 24)),
                quality=rng.randint(70, 100),
                faults=0,
                log_used=1,
                log_capacity=1000,
                log_overwritten=0,
                last_seq=0,
                acked_seq=0,
                state=1,
                fw_major=1,
                fw_minor=0,
                fw_patch=0,
            )
        )
    w.notes = [
        Note(band, "trigger", "hot day, little water", start_ms + 1 * DAY + 14 * HOUR),
        Note(band, "medication", "baclofen 10 mg", start_ms + 3 * DAY + 8 * HOUR),
        Note(band, "therapy", "physiotherapy 45 min", start_ms + 5 * DAY + 15 * HOUR),
    ]
    return w
