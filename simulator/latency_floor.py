"""The onset latency floor: how early any causal detector could announce the labelled spasms.

A spasm is out of sight of any detector until its muscle activation lifts the EMG
noticeably above the resting floor, and a tonic spasm rises as a raised cosine over
0.3-2 s, so it stays near the floor for the first few hundred ms. For each labelled
spasm this finds the first moment at or after its onset at which the activation over
the floor (`Recording.snr`, ground truth from the simulator) reaches a visibility
threshold, given as the EMG RMS ratio over the floor: 1.2 (snr >= 0.66, since the RMS
is sqrt(1 + snr^2) times the floor's) and 1.1 (snr >= 0.46). An ideal detector that
announced at exactly that moment (the "oracle") has that onset latency; the detector
benchmark (tests/bench/bench_detect.py) reports how many labelled spasms no such
detector could announce within the 300 ms target.

Limits: the activation includes whatever else the muscle is doing at the time
(walking, typing), which makes such spasms visible at once (latency 0) although no
detector could tell them from the activity; the accelerometer is left out (in the
model a tonic spasm's tremor and turn follow the same slow rise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.signal_model import AMPLITUDE_CLASSES, SPASM_KINDS, Label, Recording

RMS_RATIOS = (1.2, 1.1)  # EMG RMS over the floor's that a detector could see
TARGET_MS = 300  # the benchmark's onset latency target (p95)


def snr_threshold(rms_ratio: float) -> float:
    """The activation over the floor at which the EMG RMS is rms_ratio times the floor's."""
    return math.sqrt(rms_ratio * rms_ratio - 1.0)


def oracle_latency_ms(snr: np.ndarray, label: Label, rms_ratio: float) -> int | None:
    """Ms from the label's onset to the first sample with snr over the threshold (None: never)."""
    seg = snr[label.onset_ms : max(label.offset_ms, label.onset_ms + 1)]
    above = np.flatnonzero(seg >= snr_threshold(rms_ratio))
    return int(above[0]) if len(above) else None


@dataclass(frozen=True)
class OracleLatency:
    """One labelled spasm's oracle latency (ms, None: never visible) per RMS ratio."""

    kind: str
    amplitude: str
    latency_ms: dict[float, int | None]


def oracle_latencies(rec: Recording) -> list[OracleLatency]:
    """The oracle latencies of every labelled spasm of the recording."""
    if rec.snr is None:
        raise ValueError("the recording carries no activation (render it with Body.render)")
    snr = rec.snr
    return [
        OracleLatency(lb.kind, lb.amplitude, {r: oracle_latency_ms(snr, lb, r) for r in RMS_RATIOS})
        for lb in rec.labels
        if lb.kind in SPASM_KINDS
    ]


def _share_over(lat: list[int | None]) -> float | None:
    # never visible counts as over the target: no detector could announce it in time
    if not lat:
        return None
    return round(sum(1 for x in lat if x is None or x > TARGET_MS) / len(lat), 3)


def _pcts(lat: list[int | None]) -> dict[str, float | None]:
    seen = [float(x) for x in lat if x is not None]
    if not seen:
        return {"median": None, "p95": None}
    return {"median": float(np.percentile(seen, 50)), "p95": float(np.percentile(seen, 95))}


def summarise(rows: list[OracleLatency]) -> dict[str, Any]:
    """Per RMS ratio: share over the target and median/p95, overall, per kind and amplitude."""
    out: dict[str, Any] = {
        "definition": (
            "per labelled spasm, ms from onset to the first sample where the activation over"
            " the resting floor reaches the threshold (EMG RMS = ratio x floor): the onset"
            f" latency of an ideal detector; share over {TARGET_MS} ms counts never-visible"
            " spasms as over; percentiles are over the visible ones"
        ),
        "target_ms": TARGET_MS,
    }
    for r in RMS_RATIOS:
        lat = [x.latency_ms[r] for x in rows]
        by_kind = {k: [x.latency_ms[r] for x in rows if x.kind == k] for k in SPASM_KINDS}
        by_amp = {a: [x.latency_ms[r] for x in rows if x.amplitude == a] for a in AMPLITUDE_CLASSES}
        out[f"rms_ratio_{r}"] = {
            "snr_threshold": round(snr_threshold(r), 3),
            "labelled_spasms": len(lat),
            "never_visible": sum(1 for x in lat if x is None),
            "share_over_target": _share_over(lat),
            "share_over_target_per_kind": {k: _share_over(v) for k, v in by_kind.items()},
            "share_over_target_per_amplitude": {a: _share_over(v) for a, v in by_amp.items()},
            "latency_ms": _pcts(lat),
            "latency_ms_per_kind": {k: _pcts(v) for k, v in by_kind.items()},
        }
    return out


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def describe(summary: dict[str, Any]) -> list[str]:
    """The summary as a few lines of text for the benchmark's table."""
    lines = []
    for r in RMS_RATIOS:
        s = summary[f"rms_ratio_{r}"]
        lat = s["latency_ms"]
        kinds = "  ".join(
            f"{k} {_f(v['median'], '.0f')}/{_f(v['p95'], '.0f')}"
            for k, v in s["latency_ms_per_kind"].items()
        )
        over_k = " ".join(f"{k}={_f(v, '.3f')}" for k, v in s["share_over_target_per_kind"].items())
        over_a = " ".join(
            f"{a}={_f(v, '.3f')}" for a, v in s["share_over_target_per_amplitude"].items()
        )
        lines += [
            f"RMS x{r} (snr >= {s['snr_threshold']}): p50 {_f(lat['median'], '.0f')} ms,"
            f" p95 {_f(lat['p95'], '.0f')} ms; over {TARGET_MS} ms:"
            f" {_f(s['share_over_target'], '.3f')} of {s['labelled_spasms']}"
            f" (never visible: {s['never_visible']})",
            f"  over {TARGET_MS} ms per kind: {over_k}; per amplitude: {over_a}",
            f"  p50/p95 ms per kind: {kinds}",
        ]
    return lines
