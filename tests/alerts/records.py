"""Records for the alert tests, on a fixed clock, and shorthands to feed them to the rules.

``ev``, ``status`` and ``fault`` build records of band ``B`` (unless told otherwise)
stamped at a given UTC time; ``T0`` is a midnight UTC, ``MIN`` and ``HOUR`` in ms.
``feed`` gives records to an AlertEngine as they arrive (a second after their stamp);
``rules`` names the rules of the alerts that came out.
"""

from __future__ import annotations

from collections.abc import Sequence

from host.alerts import Alert, AlertEngine
from host.records import Event, Fault, Record, Status

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR)  # a midnight UTC in 2026
B = "a1b2c3"


def ev(
    seq: int, t: int, kind: int = 1, severity: int = 1, dur_ms: int = 500, band: str = B
) -> Event:
    return Event(
        band=band, seq=seq, boot=1, utc_ms=t, t_ms=1000, kind=kind, severity=severity,
        confidence=80, duration_ms=dur_ms, peak_act_x10=100, mean_act_x10=50, peak_acc_mg=300,
        freq_dhz=0, modalities=3,
    )  # fmt: skip


def status(seq: int, t: int, battery: int = 80, faults: int = 0) -> Status:
    return Status(
        band=B, seq=seq, boot=1, utc_ms=t, uptime_ms=1000, battery_pct=battery, battery_mv=3700,
        quality=90, faults=faults, log_used=0, log_capacity=100, log_overwritten=0, last_seq=0,
        acked_seq=0, state=1, fw_major=1, fw_minor=0, fw_patch=0,
    )  # fmt: skip


def fault(seq: int, t: int, kind: int, dur_ms: int) -> Fault:
    return Fault(band=B, seq=seq, boot=1, utc_ms=t, t_ms=1000, fault=kind, duration_ms=dur_ms)


def feed(engine: AlertEngine, recs: Sequence[Record]) -> list[Alert]:
    out: list[Alert] = []
    for r in recs:
        out += engine.feed(r, now_ms=r.utc_ms + 1000)
    return out


def rules(alerts: list[Alert]) -> list[str]:
    return [a.rule for a in alerts]
