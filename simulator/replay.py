"""Run the band's own detector (firmware/spasmband/detector.py) over whole signals.

Feeds samples in the band's order (10 EMG samples, then the acc sample of the
same 10 ms) and collects every popped result together with the detector time
(ms) at which it was popped, which is when the band would have sent it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spasmband.detector import Detector

Result = tuple[Any, ...]


def replay(
    emg_uv: Sequence[int] | None,
    acc_mg: Sequence[tuple[int, int, int]] | None,
    params: dict[str, int] | None = None,
) -> list[tuple[int, Result]]:
    """[(pop_time_ms, result), ...] for an EMG stream at 1 kHz and/or an acc stream at 100 Hz."""
    det = Detector(params, emg=emg_uv is not None, acc=acc_mg is not None)
    out: list[tuple[int, Result]] = []
    feed_emg = det.emg_samples
    feed_acc = det.acc
    pop = det.pop
    if emg_uv is not None:
        emg = list(emg_uv)
        frames = len(emg) // 10
        if acc_mg is not None:
            frames = min(frames, len(acc_mg))
    else:
        assert acc_mg is not None
        emg = []
        frames = len(acc_mg)
    for f in range(frames):
        if emg:
            feed_emg(emg, f * 10, f * 10 + 10)
        if acc_mg is not None:
            x, y, z = acc_mg[f]
            feed_acc(x, y, z)
        r = pop()
        while r is not None:
            out.append(((f + 1) * 10, r))
            r = pop()
    det.finish()
    r = pop()
    while r is not None:
        out.append((frames * 10, r))
        r = pop()
    return out
