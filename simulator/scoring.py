"""Scoring detector output against ground-truth labels (used by the benchmark).

Matching rule: a labelled spasm [onset, offset] is detected when a detected
event's span [t_ms, t_ms + duration_ms] overlaps [onset - 500 ms, offset + 500 ms].
Labels and events are matched one to one, in time order, each label taking
the earliest unmatched event that overlaps it. Events that match no spasm are
false positives; each is charged to the confounder or fault label that covers
its span (from 250 ms before its onset to its end; short episodes and faults
before background activity; "rest" when none does). Onset latency is from the true onset to the
moment the band popped the onset announcement of that event (the event itself
when no onset was announced). A live onset whose event never comes (the
verdict on the whole episode said ordinary life) is counted apart: a live
alert that was withdrawn. Faults are scored separately: a labelled fault is
found when a fault report of the same type overlaps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.signal_model import FAULTS, SPASM_KINDS, Label

KIND_NAMES = ("", "myoclonic", "clonic", "tonic")
FAULT_NAMES = ("", "lead_off", "saturation", "flatline", "acc_dropout")
SLACK_MS = 500


@dataclass
class Match:
    label: Label
    kind: str  # detected kind ("" when missed)
    latency_ms: int | None
    duration_err_ms: int | None


@dataclass
class Score:
    matches: list[Match] = field(default_factory=list)
    false_positives: list[tuple[str, int, str]] = field(
        default_factory=list
    )  # (charged to, t_ms, kind)
    exposure_ms: dict[str, int] = field(default_factory=dict)  # labelled time per confounder
    faults_found: dict[str, list[int]] = field(default_factory=dict)  # name: [found, labelled]
    events_in_faults: int = 0
    detections: int = 0
    lone_onsets: int = 0  # live onsets that no event followed

    def merge(self, other: Score) -> None:
        self.matches += other.matches
        self.false_positives += other.false_positives
        for k, v in other.exposure_ms.items():
            self.exposure_ms[k] = self.exposure_ms.get(k, 0) + v
        for k, (a, b) in other.faults_found.items():
            cur = self.faults_found.setdefault(k, [0, 0])
            cur[0] += a
            cur[1] += b
        self.events_in_faults += other.events_in_faults
        self.lone_onsets += other.lone_onsets
        self.detections += other.detections


def _covering(labels: list[Label], t: int, t1: int | None = None) -> str:
    """The confounder charged for time t (or for an event spanning t..t1)."""
    best = ""
    lo = t if t1 is None else t - 250
    hi = t + 1 if t1 is None else t1
    for lb in labels:
        if lb.kind in SPASM_KINDS:
            continue
        if lb.onset_ms < hi and lo < lb.offset_ms:
            # faults and short confounder episodes take precedence over background
            if lb.kind in FAULTS or best in ("", "rest", "sleep", "walking", "typing"):
                best = lb.kind
    return best or "rest"


def score(labels: list[Label], popped: list[tuple[int, tuple[Any, ...]]], length_ms: int) -> Score:
    """Score one recording's popped detector output against its labels."""
    events = [(t, r) for t, r in popped if r[0] == "event"]
    onsets = {r[1]: t for t, r in popped if r[0] == "onset"}
    faults = [r for _, r in popped if r[0] == "fault"]
    starts = {r[1] for _, r in events}
    lone = sum(1 for _, r in popped if r[0] == "onset" and r[1] not in starts)
    s = Score(detections=len(events), lone_onsets=lone)
    used = [False] * len(events)
    spasms = sorted((lb for lb in labels if lb.kind in SPASM_KINDS), key=lambda lb: lb.onset_ms)
    for lb in spasms:
        found = None
        for i, (_, r) in enumerate(events):
            if used[i]:
                continue
            t0, t1 = r[1], r[1] + r[2]
            if t0 <= lb.offset_ms + SLACK_MS and t1 >= lb.onset_ms - SLACK_MS:
                found = i
                break
        if found is None:
            s.matches.append(Match(lb, "", None, None))
            continue
        used[found] = True
        pop_t, r = events[found]
        announced = onsets.get(r[1], pop_t)
        s.matches.append(
            Match(
                lb, KIND_NAMES[r[3]], announced - lb.onset_ms, r[2] - (lb.offset_ms - lb.onset_ms)
            )
        )
    for i, (_, r) in enumerate(events):
        if not used[i]:
            s.false_positives.append((_covering(labels, r[1], r[1] + r[2]), r[1], KIND_NAMES[r[3]]))
        for lb in labels:
            if lb.kind in FAULTS and lb.kind != "acc_dropout":
                if r[1] < lb.offset_ms and r[1] + r[2] > lb.onset_ms:
                    s.events_in_faults += 1
                    break
    # exposure: time charged to each confounder, using the same precedence
    step = 100
    for t in range(0, length_ms, step):
        k = _covering(labels, t)
        s.exposure_ms[k] = s.exposure_ms.get(k, 0) + step
    for lb in labels:
        if lb.kind in FAULTS:
            cur = s.faults_found.setdefault(lb.kind, [0, 0])
            cur[1] += 1
            code = FAULT_NAMES.index(lb.kind)
            for r in faults:
                if r[2] == code and r[1] <= lb.offset_ms and r[1] + r[3] >= lb.onset_ms:
                    cur[0] += 1
                    break
    return s
