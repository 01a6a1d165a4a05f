"""The detector's speed and heap in the MicroPython VM, for `make bench-detect`.

``vm_speed`` runs the firmware detector (spasmband.detector) inside the MicroPython
VM (tests/mpvm) on VM_SECONDS of seeded spasm signal, best of three runs, and
returns how many times faster than real time it ran there and the heap its state
takes (gc.collect() then gc.mem_alloc(), before and after): the "micropython_vm"
entry of bench-results/detect.json (tests/bench/bench_detect.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from simulator.scenarios import record

VM_SECONDS = 120


def vm_speed() -> dict[str, Any]:
    from tests import mpvm

    rec = record("spasms", 7, VM_SECONDS / 60.0)
    emg = rec.emg_uv.astype("<i4")
    acc = np.round(rec.acc_g * 1000).astype("<i2")
    with tempfile.TemporaryDirectory() as d:
        pe = Path(d) / "emg.bin"
        pa = Path(d) / "acc.bin"
        pe.write_bytes(emg.tobytes())
        pa.write_bytes(acc.tobytes())
        code = """
import gc, time
from array import array
emg = array("i", open("/data/emg.bin", "rb").read())
acc = array("h", open("/data/acc.bin", "rb").read())
from spasmband.detector import Detector


def one_run():
    gc.collect()
    before = gc.mem_alloc()
    det = Detector()
    gc.collect()
    built = gc.mem_alloc()
    fe = det.emg_samples
    fa = det.acc
    pop = det.pop
    n = len(emg) // 10
    events = 0
    peak = 0
    t0 = time.ticks_ms()
    for f in range(n):
        b = f * 10
        fe(emg, b, b + 10)
        a = f * 3
        fa(acc[a], acc[a + 1], acc[a + 2])
        r = pop()
        while r is not None:
            events += 1
            r = pop()
        if f % 1000 == 999:
            gc.collect()
            m = gc.mem_alloc() - before
            if m > peak:
                peak = m
    elapsed = time.ticks_diff(time.ticks_ms(), t0)
    gc.collect()
    after = gc.mem_alloc()
    return n * 10, elapsed, built - before, after - before, peak, events


# best of three runs: the machine is shared, the best run is the least disturbed
runs = [one_run() for _ in range(3)]
times = sorted(r[1] for r in runs)
n10, _, built, after, peak, events = runs[0]
print("RESULT", n10, times[0], times[1], built, after, peak, events)
"""
        out = mpvm.run(code, files=[(pe, "/data/emg.bin"), (pa, "/data/acc.bin")])
    line = [x for x in out.splitlines() if x.startswith("RESULT")][0].split()
    signal_ms, elapsed, median, built, after, peak, events = (int(v) for v in line[1:])
    return {
        "signal_s": signal_ms / 1000.0,
        "vm_elapsed_s": elapsed / 1000.0,
        "times_real_time": round(signal_ms / max(1, elapsed), 1),
        "times_real_time_median_of_3": round(signal_ms / max(1, median), 1),
        "esp32_factor_assumed": 10,
        "esp32_cpu_share_estimate": round(10 * elapsed / signal_ms, 3),
        "heap_after_construction_bytes": built,
        "heap_state_after_run_bytes": after,
        "heap_peak_bytes": max(peak, after, built),
        "events": events,
        "note": (
            "best of 3 runs in one VM (the machine is shared); feeding loop included;"
            " heap measured with gc.collect() then gc.mem_alloc()"
        ),
    }
