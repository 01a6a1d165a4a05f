"""Sensor sources for a virtual band, fed by the signal model (simulator/scenarios.py).

``ScenarioSignals(scenario, seed)`` renders the scenario in chunks of
``chunk_minutes`` (chunk k with its own seed), the next one ahead of time in
a worker thread, so a band can run for as long as the simulator does without
stalling the event loop, and hands the samples to the VirtualBoard through
its ``fill(buf, start, n)`` source protocol: ``emg`` (int microvolts at 1 kHz)
and ``acc`` (x, y, z in mg at 100 Hz). The ground truth of every rendered
chunk is kept in ``labels`` (times in ms since the band started sampling).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from simulator.scenarios import record
from simulator.signal_model import ACC_HZ, EMG_HZ, Label

_RENDERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signal-render")


class ScenarioSignals:
    """Endless EMG and accelerometer samples of one scenario for one band."""

    def __init__(self, scenario: str, seed: int, chunk_minutes: float = 2.0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.chunk_minutes = chunk_minutes
        self.labels: list[Label] = []
        self._pending: dict[int, Future[tuple[np.ndarray, np.ndarray, list[Label]]]] = {}
        self._emg: dict[int, np.ndarray] = {}
        self._acc: dict[int, np.ndarray] = {}
        self._emg_per_chunk = int(round(chunk_minutes * 60 * EMG_HZ))
        self._acc_per_chunk = int(round(chunk_minutes * 60 * ACC_HZ))
        self.emg = _Stream(self, "emg", self._emg_per_chunk, 1)
        self.acc = _Stream(self, "acc", self._acc_per_chunk, 3)

    def _render(self, k: int) -> tuple[np.ndarray, np.ndarray, list[Label]]:
        rec = record(self.scenario, self.seed * 100003 + k, self.chunk_minutes)
        emg = np.ascontiguousarray(rec.emg_uv[: self._emg_per_chunk], dtype=np.int32)
        acc_mg = np.clip(np.round(rec.acc_g * 1000.0), -32768, 32767)
        acc = np.ascontiguousarray(acc_mg[: self._acc_per_chunk].astype(np.int16).ravel())
        return emg, acc, rec.labels

    def _future(self, k: int) -> Future[tuple[np.ndarray, np.ndarray, list[Label]]]:
        f = self._pending.get(k)
        if f is None:
            f = _RENDERER.submit(self._render, k)
            self._pending[k] = f
        return f

    def prepare(self) -> None:
        """Render the first chunk now (before the band starts sampling)."""
        self.chunk(0, "emg")

    def chunk(self, k: int, kind: str) -> np.ndarray:
        """Samples of chunk ``k`` (EMG int32, or acc int16 x,y,z interleaved)."""
        store = self._emg if kind == "emg" else self._acc
        if k not in store:
            # rendered ahead in a worker thread: a band's sampler must not stall
            # the event loop of every band for the time a chunk takes to render
            emg, acc, labels = self._future(k).result()
            self._pending.pop(k, None)
            self._future(k + 1)
            self._emg[k] = emg
            self._acc[k] = acc
            offset = int(k * self.chunk_minutes * 60 * 1000)
            for lb in labels:
                self.labels.append(
                    Label(
                        lb.onset_ms + offset,
                        lb.offset_ms + offset,
                        lb.kind,
                        lb.amplitude,
                        lb.snr,
                        lb.during,
                    )
                )
            # keep memory bounded: only the chunks in use
            for old in [c for c in self._emg if c < k - 1]:
                del self._emg[old]
                del self._acc[old]
        return store[k]


class _Stream:
    """One sensor of a ScenarioSignals, as a VirtualBoard source (``fill``)."""

    def __init__(self, owner: ScenarioSignals, kind: str, per_chunk: int, width: int) -> None:
        self.owner = owner
        self.kind = kind
        self.per_chunk = per_chunk
        self.width = width

    def fill(self, buf: Any, start: int, n: int) -> None:
        w = self.width
        out = memoryview(buf)
        done = 0
        while done < n:
            k, i = divmod(start + done, self.per_chunk)
            take = min(n - done, self.per_chunk - i)
            data = self.owner.chunk(k, self.kind)
            out[done * w : (done + take) * w] = data[i * w : (i + take) * w].data
            done += take
