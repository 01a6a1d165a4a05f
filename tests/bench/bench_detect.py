"""Detector accuracy and speed benchmark (`make bench-detect`).

Accuracy: generates the standard set (seeded, so every run scores the same
recordings): more than 8 hours of confounder scenarios and spasm scenarios
holding several hundred labelled spasms of every kind and amplitude class, runs
the firmware detector on each (CPython, two processes) with both modalities,
EMG only and acc only, and scores the output with simulator/scoring.py (the
matching rule is documented there).

Speed and memory: runs the same detector inside the MicroPython VM on 120 s of
signal and reports how many times faster than real time it runs there and the
heap its state takes (gc.mem_alloc after collection, before and after); that
measurement is tests/bench/detect_vm.py.

Prints a table and writes bench-results/detect.json. `--validation` scores a
smaller set of other seeds (1001..; emg+acc only, no VM) for tuning the
detector without fitting the standard set, into bench-results/detect-validation.json;
`--full-only` runs the standard set with both modalities only; `--no-vm` skips the VM.

Latency floor: for every labelled spasm of the set, the onset latency an ideal
detector would have, announcing the moment the activation becomes visible over the
resting floor (simulator/latency_floor.py); reported under "latency_floor" so the
detector's latency can be read against what any causal detector could reach.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from simulator.latency_floor import OracleLatency, oracle_latencies  # noqa: E402
from simulator.latency_floor import describe as describe_floor  # noqa: E402
from simulator.latency_floor import summarise as summarise_floor  # noqa: E402
from simulator.replay import replay  # noqa: E402
from simulator.scenarios import record  # noqa: E402
from simulator.scoring import Score, score  # noqa: E402
from simulator.signal_model import AMPLITUDE_CLASSES, SPASM_KINDS  # noqa: E402
from tests.bench.detect_vm import vm_speed  # noqa: E402

CHUNK_MIN = 10
# (scenario, number of 10-minute recordings): seeds 1..n, each a different body
CONFOUNDER_SET = [
    ("rest", 6),
    ("sleep", 12),
    ("walking", 6),
    ("typing", 6),
    ("lifting", 6),
    ("bumps", 4),
    ("daily", 10),
]
SPASM_SET = [
    ("myoclonic", 4),
    ("clonic", 6),
    ("tonic", 8),
    ("spasms", 4),
    ("spasms_in_motion", 6),
    ("night", 6),
    ("faults", 4),
]
# Validation set for tuning the detector (`--validation`): other bodies than the
# standard set (seeds 1001..), so that tuning does not fit the benchmark's seeds.
VALIDATION_SEED0 = 1000
VALIDATION_SET = [
    ("typing", 3),
    ("bumps", 2),
    ("walking", 2),
    ("daily", 3),
    ("rest", 1),
    ("sleep", 2),
    ("lifting", 2),
    ("myoclonic", 2),
    ("clonic", 3),
    ("tonic", 4),
    ("spasms", 2),
    ("spasms_in_motion", 3),
    ("night", 2),
    ("faults", 1),
]
MODES = {"emg+acc": (True, True), "emg": (True, False), "acc": (False, True)}


def _job(
    args: tuple[str, int, str],
) -> tuple[str, str, Score, float, str, list[OracleLatency]]:
    name, seed, mode = args
    rec = record(name, seed, CHUNK_MIN)
    # the floor depends on the recording only: once per recording, with the mode that always runs
    floor = oracle_latencies(rec) if mode == "emg+acc" else []
    use_emg, use_acc = MODES[mode]
    emg = rec.emg_uv.tolist() if use_emg else None
    acc = np.round(rec.acc_g * 1000).astype(int).tolist() if use_acc else None
    popped = replay(emg, [tuple(a) for a in acc] if acc is not None else None)
    group = "confounders" if any(name == c for c, _ in CONFOUNDER_SET) else "spasms"
    s = score(rec.labels, popped, len(rec.emg_uv))
    return mode, group, s, len(rec.emg_uv) / 1000.0, name, floor


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return float(np.percentile(np.array(xs), q))


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def summarise(spasm: Score, conf: Score, per_scenario: dict[str, list[float]]) -> dict[str, Any]:
    m = spasm.matches + conf.matches
    hit = [x for x in m if x.kind]
    out: dict[str, Any] = {
        "labelled_spasms": len(m),
        "sensitivity": _ratio(len(hit), len(m)),
        "sensitivity_per_kind": {
            k: _ratio(
                sum(1 for x in hit if x.label.kind == k), sum(1 for x in m if x.label.kind == k)
            )
            for k in SPASM_KINDS
        },
        "sensitivity_per_amplitude": {
            a: _ratio(
                sum(1 for x in hit if x.label.amplitude == a),
                sum(1 for x in m if x.label.amplitude == a),
            )
            for a in AMPLITUDE_CLASSES
        },
        "sensitivity_per_context": {
            c: _ratio(
                sum(1 for x in hit if x.label.during == c),
                sum(1 for x in m if x.label.during == c),
            )
            for c in sorted({x.label.during for x in m})
        },
    }
    detections = spasm.detections + conf.detections
    fp_all = len(spasm.false_positives) + len(conf.false_positives)
    out["precision"] = _ratio(detections - fp_all, detections)
    conf_hours = sum(conf.exposure_ms.values()) / 3.6e6
    out["confounder_hours"] = round(conf_hours, 2)
    out["false_positives_confounders"] = len(conf.false_positives)
    out["fp_per_hour_confounders"] = (
        round(len(conf.false_positives) / conf_hours, 3) if conf_hours else None
    )
    per: dict[str, Any] = {}
    for k, ms in sorted(conf.exposure_ms.items()):
        n = sum(1 for c, _, _ in conf.false_positives if c == k)
        kinds = {
            d: sum(1 for c, _, dk in conf.false_positives if c == k and dk == d)
            for d in SPASM_KINDS
        }
        per[k] = {
            "hours": round(ms / 3.6e6, 2),
            "fp": n,
            "fp_per_hour": round(n / (ms / 3.6e6), 3),
            "fp_kinds": kinds,
        }
    out["fp_per_hour_per_confounder"] = {
        name: {
            "hours": round(h, 2),
            "fp": int(n),
            "fp_per_hour": round(n / h, 3),
            "lone_onsets_per_hour": round(lone / h, 1),
        }
        for name, (h, n, lone) in sorted(per_scenario.items())
        if any(name == c for c, _ in CONFOUNDER_SET)
    }
    # live onsets that no event followed: alerts a live consumer had to withdraw
    out["lone_onsets_per_hour_confounders"] = (
        round(conf.lone_onsets / conf_hours, 1) if conf_hours else None
    )
    out["fp_by_charged_label"] = per
    out["false_positives_in_spasm_recordings"] = len(spasm.false_positives)
    lat = [float(x.latency_ms) for x in hit if x.latency_ms is not None]
    out["onset_latency_ms"] = {"median": _pct(lat, 50), "p95": _pct(lat, 95), "n": len(lat)}
    out["onset_latency_ms_per_kind"] = {}
    for k in SPASM_KINDS:
        lk = [float(x.latency_ms) for x in hit if x.label.kind == k and x.latency_ms is not None]
        out["onset_latency_ms_per_kind"][k] = {"median": _pct(lk, 50), "p95": _pct(lk, 95)}
    out["onset_latency_ms_per_amplitude"] = {}
    for a in AMPLITUDE_CLASSES:
        la = [
            float(x.latency_ms) for x in hit if x.label.amplitude == a and x.latency_ms is not None
        ]
        out["onset_latency_ms_per_amplitude"][a] = {"median": _pct(la, 50), "p95": _pct(la, 95)}
    conf_m: dict[str, dict[str, int]] = {
        k: {d: 0 for d in SPASM_KINDS + ("missed",)} for k in SPASM_KINDS
    }
    for x in m:
        conf_m[x.label.kind][x.kind or "missed"] += 1
    out["kind_confusion"] = conf_m
    out["kind_accuracy"] = _ratio(sum(1 for x in hit if x.kind == x.label.kind), len(hit))
    dur = {}
    for k in SPASM_KINDS:
        errs = [
            float(x.duration_err_ms)
            for x in hit
            if x.label.kind == k and x.duration_err_ms is not None
        ]
        dur[k] = {
            "median_ms": _pct(errs, 50),
            "median_abs_ms": _pct([abs(e) for e in errs], 50),
        }
    out["duration_error"] = dur
    faults = {}
    for k, (a, b) in sorted((spasm.faults_found | conf.faults_found).items()):
        faults[k] = {"found": a, "labelled": b}
    out["faults"] = faults
    out["spasm_events_during_emg_faults"] = spasm.events_in_faults + conf.events_in_faults
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def print_table(res: dict[str, Any]) -> None:
    full = res["modes"]["emg+acc"]
    print(f"\nDetector benchmark ({res.get('set', 'standard (seeds 1..)')} set)")
    hours = res["signal_hours"]
    print(f"  recordings: {res['recordings']} x {CHUNK_MIN} min, {hours:.1f} h of signal")
    spasms = full["labelled_spasms"]
    print(f"  labelled spasms: {spasms}, confounder time: {full['confounder_hours']} h")
    print("\n  mode       sens   weakest  precision  FP/h(conf)  lat p50  lat p95  kind acc")
    for mode, r in res["modes"].items():
        weakest = min(
            (v for v in r["sensitivity_per_amplitude"].values() if v is not None), default=None
        )
        lat = r["onset_latency_ms"]
        print(
            f"  {mode:9s} {_fmt(r['sensitivity']):>6s} {_fmt(weakest):>8s}"
            f" {_fmt(r['precision']):>10s} {_fmt(r['fp_per_hour_confounders']):>11s}"
            f" {_fmt(lat['median']):>8s} {_fmt(lat['p95']):>8s} {_fmt(r['kind_accuracy']):>9s}"
        )
    print(
        "\n  emg+acc sensitivity per kind:",
        {k: _fmt(v) for k, v in full["sensitivity_per_kind"].items()},
    )
    print("  per amplitude:", {k: _fmt(v) for k, v in full["sensitivity_per_amplitude"].items()})
    print("  per context:", {k: _fmt(v) for k, v in full["sensitivity_per_context"].items()})
    print(
        "  FP per hour per confounder scenario (and live onsets that no event followed;"
        f" {full['lone_onsets_per_hour_confounders']}/h over all confounders):"
    )
    for k, v in full["fp_per_hour_per_confounder"].items():
        print(
            f"    {k:12s} {v['hours']:6.2f} h  {v['fp']:4d} FP  {v['fp_per_hour']:.3f}/h"
            f"  onsets without event {v['lone_onsets_per_hour']:7.1f}/h"
        )
    print("  FP charged to the label under them (all confounder recordings):")
    for k, v in full["fp_by_charged_label"].items():
        print(f"    {k:12s} {v['fp']:4d} FP  kinds {v['fp_kinds']}")
    print("  kind confusion (true -> detected):")
    for k, row in full["kind_confusion"].items():
        print(f"    {k:10s} " + "  ".join(f"{d}={n}" for d, n in row.items()))
    print("  onset latency per kind:", json.dumps(full["onset_latency_ms_per_kind"]))
    print("  onset latency per amplitude:", json.dumps(full["onset_latency_ms_per_amplitude"]))
    print("  duration error:", json.dumps(full["duration_error"]))
    print(
        "  faults found:",
        json.dumps(full["faults"]),
        " spasm events during EMG faults:",
        full["spasm_events_during_emg_faults"],
    )
    vm = res.get("micropython_vm")
    if vm:
        print(
            f"\n  MicroPython VM: {vm['signal_s']:.0f} s of signal in {vm['vm_elapsed_s']:.2f} s ="
            f" {vm['times_real_time']}x real time"
            f" (ESP32 ~10x slower: ~{vm['esp32_cpu_share_estimate'] * 100:.0f} % CPU);"
            f" heap: state {vm['heap_state_after_run_bytes']} B, peak {vm['heap_peak_bytes']} B"
        )
    floor = res.get("latency_floor")
    if floor:
        lat = full["onset_latency_ms"]
        print(
            "\n  latency floor: onset latency of an ideal detector that announces when the"
            " activation is first visible over the floor"
            f" (this detector: p50 {_fmt(lat['median'])} ms, p95 {_fmt(lat['p95'])} ms)"
        )
        for line in describe_floor(floor):
            print("    " + line)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_detect.py",
        description="Detector accuracy on the standard synthetic set (both sensors, EMG "
        "only, acc only) and its speed and heap in the MicroPython VM. Prints a table "
        "and writes bench-results/detect.json.",
    )
    p.add_argument(
        "--validation",
        action="store_true",
        help="score the validation set (seeds 1001..; both sensors only, no VM) into "
        "bench-results/detect-validation.json: tune on this, never on the standard set",
    )
    p.add_argument(
        "--full-only", action="store_true", help="the standard set with both sensors only"
    )
    p.add_argument("--no-vm", action="store_true", help="skip the MicroPython VM measurement")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    t0 = time.time()
    jobs = []
    validation = args.validation
    modes = ["emg+acc"] if args.full_only or validation else list(MODES)
    chosen = VALIDATION_SET if validation else CONFOUNDER_SET + SPASM_SET
    seed0 = VALIDATION_SEED0 if validation else 0
    for mode in modes:
        for name, n in chosen:
            for seed in range(seed0 + 1, seed0 + n + 1):
                jobs.append((name, seed, mode))
    totals: dict[str, dict[str, Score]] = {
        m: {"spasms": Score(), "confounders": Score()} for m in modes
    }
    seconds = 0.0
    per_scenario: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    floor: list[OracleLatency] = []
    with multiprocessing.Pool(2) as pool:
        for mode, group, s, secs, name, fl in pool.imap_unordered(_job, jobs, chunksize=1):
            totals[mode][group].merge(s)
            floor += fl
            cur = per_scenario[mode].setdefault(name, [0.0, 0.0, 0.0])
            cur[0] += secs / 3600.0
            cur[1] += len(s.false_positives)
            cur[2] += s.lone_onsets
            if mode == "emg+acc":
                seconds += secs
    res: dict[str, Any] = {
        "recordings": sum(n for _, n in chosen),
        "set": "validation (seeds 1001..)" if validation else "standard (seeds 1..)",
        "signal_hours": seconds / 3600.0,
        "matching_rule": (
            Path(ROOT / "simulator" / "scoring.py").read_text().split('"""')[1]
        ).strip(),
        "modes": {
            m: summarise(t["spasms"], t["confounders"], per_scenario[m]) for m, t in totals.items()
        },
        "latency_floor": summarise_floor(floor),
        "targets": {
            "sensitivity": 0.95,
            "weakest_amplitude_sensitivity": 0.85,
            "fp_per_hour_confounders": 0.5,
            "onset_latency_p95_ms": 300,
            "kind_accuracy": 0.9,
            "vm_times_real_time": 40,
            "heap_bytes": 16384,
        },
    }
    if not args.no_vm and not validation:
        res["micropython_vm"] = vm_speed()
    res["bench_seconds"] = round(time.time() - t0, 1)
    out = ROOT / "bench-results" / ("detect-validation.json" if validation else "detect.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print_table(res)
    print(f"\n  wrote {out.relative_to(ROOT)} in {res['bench_seconds']} s")


if __name__ == "__main__":
    main()
