"""The exactly-once oracle of a chaos run, and its table.

Ground truth per band: the band numbers its logged records (event, marker, fault)
1, 2, 3, ... with no gaps, across reboots and power cuts (firmware/spasmband/
event_log.py), so ``last_seq`` at the final snapshot says how many it logged. The
only records allowed to be missing are those its documented overflow policy dropped:
older than the oldest record the band still holds, and accounted for by the band's own
count (``log_overwritten`` in STATUS).

Equality of the two is checked as far as it can hold: the band counts a record as
overwritten when its segment is recycled before the band saw an ACK covering it. A
record the bridge had already spooled, but whose ACK never reached the band (the link
dropped, the bridge was killed, or a gap below it in the spool held the ACK back), is
counted by the band and yet delivered. So: records gone from the band and never
delivered must be <= the band's count (more would be a silent loss, LOST), and the
difference is reported per band as ``overflow_but_delivered``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BandVerdict:
    band: str
    logged: int  # records the band logged up to the final snapshot (seq 1..logged)
    events: int  # of which events (as stored in the time-series server)
    delivered_tsdb: int
    delivered_mqtt: int  # distinct (band, seq) a deduping consumer saw
    duplicated_tsdb: int  # (band, seq) with more than one point
    mqtt_extra_copies: int  # at-least-once redeliveries (the consumer drops them)
    missing_tsdb: int
    missing_mqtt: int
    overflow_count: int  # the band's own log_overwritten
    dropped_policy: int  # missing and no longer in the band's log (its overflow policy)
    # counted in overwritten although delivered: the bridge had spooled them but its ACK had
    # not reached the band when the log recycled their segment (the band cannot know)
    overflow_delivered: int
    pending: int  # missing but still in the band's log, never acked: not lost
    lost: int  # missing beyond what the overflow policy accounts for
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(
    band: str,
    last_seq: int,
    first_held: int,
    acked: int,
    overwritten: int,
    tsdb: dict[str, dict[tuple[str, int], list[int]]],
    mqtt: dict[str, dict[tuple[str, int], list[int]]],
    identity: dict[tuple[str, int], tuple[str, int, int]] | None = None,
) -> BandVerdict:
    want = set(range(1, last_seq + 1))
    in_tsdb = {s for per in tsdb.values() for (b, s) in per if b == band}
    in_mqtt = {s for per in mqtt.values() for (b, s) in per if b == band}
    dup = sum(1 for per in tsdb.values() for (b, _), ts in per.items() if b == band and len(ts) > 1)
    extra = sum(len(v) - 1 for per in mqtt.values() for (b, _), v in per.items() if b == band)
    events = sum(1 for (b, s) in tsdb.get("event", {}) if b == band and s <= last_seq)
    miss_t = want - in_tsdb
    miss_m = want - in_mqtt
    gone = {s for s in miss_t | miss_m if s < first_held}  # the band no longer has them
    pending = {s for s in miss_t | miss_m if s >= first_held and s > acked}
    problems = []
    if dup:
        problems.append(f"{dup} seq(s) stored more than once")
    if len(gone) > overwritten:
        problems.append(
            f"LOST: {len(gone)} records gone from the band and never delivered, its overflow "
            f"count is {overwritten}: {sorted(gone)[:12]} (not in the time-series server: "
            f"{sorted(gone & miss_t)[:12]}; not on MQTT: {sorted(gone & miss_m)[:12]})"
        )
    problems += _collisions(band, miss_t - miss_m, identity or {})
    acked_missing = sorted(s for s in miss_t | miss_m if first_held <= s <= acked)
    if acked_missing:
        problems.append(f"acked by the bridge but not delivered: {acked_missing[:12]}")
    strange = sorted((in_tsdb | in_mqtt) - want - set(range(last_seq + 1, last_seq + 10_000)))
    if strange:
        problems.append(f"seqs delivered that the band never logged: {strange[:12]}")
    return BandVerdict(
        band=band,
        logged=last_seq,
        events=events,
        delivered_tsdb=len(want & in_tsdb),
        delivered_mqtt=len(want & in_mqtt),
        duplicated_tsdb=dup,
        mqtt_extra_copies=extra,
        missing_tsdb=len(miss_t),
        missing_mqtt=len(miss_m),
        overflow_count=overwritten,
        dropped_policy=len(gone),
        overflow_delivered=max(0, overwritten - len(gone)),
        pending=len(pending),
        lost=max(0, len(gone) - overwritten) + len(acked_missing),
        problems=problems,
    )


def _collisions(
    band: str, missing: set[int], identity: dict[tuple[str, int], tuple[str, int, int]]
) -> list[str]:
    """Missing seqs whose InfluxDB point identity (type, band, kind tag, timestamp) equals
    another record's: the time-series server keeps one point for both."""
    by_id: dict[tuple[str, int, int], list[int]] = {}
    for (b, s), ident in identity.items():
        if b == band:
            by_id.setdefault(ident, []).append(s)
    out = []
    for s in sorted(missing):
        mine = identity.get((band, s))
        if mine is None:
            continue
        others = [o for o in by_id.get(mine, []) if o != s]
        if others:
            out.append(
                f"seq {s} has the same point identity as seq {others} "
                f"(type {mine[0]}, tag {mine[1]}, utc_ms {mine[2]}): one point for both"
            )
    return out


def band_table(verdicts: list[BandVerdict]) -> str:
    cols = [
        ("band", "band"),
        ("logged", "logged"),
        ("events", "events"),
        ("tsdb", "delivered_tsdb"),
        ("mqtt", "delivered_mqtt"),
        ("dup", "duplicated_tsdb"),
        ("mqtt_redeliv", "mqtt_extra_copies"),
        ("lost", "lost"),
        ("dropped_policy", "dropped_policy"),
        ("band_overflow", "overflow_count"),
        ("overflow_but_delivered", "overflow_delivered"),
        ("pending_on_band", "pending"),
    ]
    rows = [[h for h, _ in cols] + ["ok"]]
    for v in verdicts:
        rows.append([str(getattr(v, a)) for _, a in cols] + ["yes" if v.ok else "NO"])
    tot = (
        ["total"]
        + [str(sum(int(getattr(v, a)) for v in verdicts)) for _, a in cols[1:]]
        + ["yes" if all(v.ok for v in verdicts) else "NO"]
    )
    rows.append(tot)
    return _fmt(rows)


def fault_table(faults: list[dict[str, Any]]) -> str:
    rows = [["#", "sim_min", "fault", "target", "held_s", "recovery_s", "note"]]
    for i, f in enumerate(faults, 1):
        rec = f.get("recovery_s")
        rows.append(
            [
                str(i),
                f"{f['sim_min']:.1f}",
                f["kind"],
                str(f.get("target", "")),
                f"{f['held_s']:.1f}",
                "NOT RECOVERED" if rec is None else f"{rec:.1f}",
                str(f.get("note", "")),
            ]
        )
    return _fmt(rows)


def _fmt(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def as_json(verdicts: list[BandVerdict]) -> list[dict[str, Any]]:
    return [dict(asdict(v), ok=v.ok) for v in verdicts]
