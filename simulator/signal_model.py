"""Synthetic physiology with ground truth: surface EMG (1 kHz) and a 3-axis accelerometer (100 Hz).

A `Body` is a canvas for one recording: it holds the muscle activation (EMG
amplitude in microvolts RMS over time), the accelerometer's gravity direction and
movement, and the labels. Episode functions (`myoclonic`, `clonic`, `tonic`,
`walking`, `typing`, `lifting`, `sleep_turn`, `bump`, `posture_shift`) and sensor
faults (`lead_off`, `saturation`, `flatline`, `acc_dropout`) draw on it; `render()`
turns it into the two signals (and keeps the activation over the floor as `snr`,
ground truth for analysis such as simulator/latency_floor.py):

    EMG = floor noise (sigma0) + band-limited noise (20-450 Hz) x activation
          + mains hum (50 or 60 Hz, with 3rd harmonic and a small frequency error)
          + electrode drift + motion artefact,  quantised to 1 uV, clipped at +-10 mV
    acc = gravity (1 g along a slowly changing direction) + movement + noise (g)

Every knob (noise floor, hum, drift, rates, amplitudes, durations, frequencies)
is drawn from a range by the seeded generator, so two seeds give two different
bodies. Spasm amplitudes are given as signal-to-noise ratio: the spasm's EMG RMS
over the resting floor's RMS; the classes are weak (1.5-3, down near the
floor), moderate (3-8) and strong (8-40).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EMG_HZ = 1000
ACC_HZ = 100
FULL_SCALE_UV = 10000  # the band's EMG front end clips at +-10 mV

AMPLITUDE_CLASSES = {"weak": (1.5, 3.0), "moderate": (3.0, 8.0), "strong": (8.0, 40.0)}
SPASM_KINDS = ("myoclonic", "clonic", "tonic")
CONFOUNDERS = ("rest", "sleep", "walking", "typing", "lifting", "bumps", "sleep_turn")
FAULTS = ("lead_off", "saturation", "flatline", "acc_dropout")


@dataclass
class Label:
    onset_ms: int
    offset_ms: int
    kind: str
    amplitude: str = ""  # spasms only: weak, moderate or strong
    snr: float = 0.0
    during: str = ""  # spasms only: the activity it happened in


@dataclass
class Recording:
    emg_uv: np.ndarray  # int32, 1 kHz
    acc_g: np.ndarray  # float, (n, 3), 100 Hz
    labels: list[Label] = field(default_factory=list)
    # Ground truth for analysis only (not in the CSV files): the muscle activation over the
    # resting floor, act / sigma0, float32 at 1 kHz. The EMG RMS there is sqrt(1 + snr^2)
    # times the floor's (hum, drift and artefacts aside); spasms peak at their label's snr.
    snr: np.ndarray | None = None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class Body:
    """One recording being built: activation, movement, gravity, artefacts, labels."""

    def __init__(self, rng: np.random.Generator, seconds: float) -> None:
        self.rng = rng
        self.n = int(seconds * EMG_HZ)
        self.na = self.n // 10
        self.sigma0 = float(rng.uniform(1.5, 6.0))  # resting EMG floor, uV RMS
        self.hum_hz = float(rng.choice([50.0, 60.0])) + float(rng.normal(0, 0.03))
        self.hum_uv = float(rng.uniform(0.0, 40.0))
        self.drift_uv = float(rng.uniform(10.0, 300.0))
        self.acc_noise_g = float(rng.uniform(0.002, 0.006))
        self.act = np.zeros(self.n)  # EMG activation, uV RMS (on top of the floor)
        self.artefact = np.zeros(self.n)  # low-frequency electrode artefact, uV
        self.move = np.zeros((self.na, 3))  # dynamic acceleration, g
        self.gravity = np.tile(_unit(rng.normal(size=3)), (self.na, 1))
        self.labels: list[Label] = []
        self.emg_faults: list[tuple[int, int, str]] = []
        self.acc_faults: list[tuple[int, int]] = []

    # -- helpers --------------------------------------------------------------

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def direction(self) -> np.ndarray:
        return _unit(self.rng.normal(size=3))

    def label(self, t0: int, t1: int, kind: str, **kw: object) -> None:
        self.labels.append(Label(int(t0), int(min(t1, self.n)), kind, **kw))  # type: ignore[arg-type]

    def add_act(self, t0: int, shape: np.ndarray) -> None:
        t1 = min(self.n, t0 + len(shape))
        if t1 > t0:
            self.act[t0:t1] = np.sqrt(self.act[t0:t1] ** 2 + shape[: t1 - t0] ** 2)

    def add_move(self, t0_ms: int, g: np.ndarray) -> None:
        a0 = t0_ms // 10
        a1 = min(self.na, a0 + len(g))
        if a1 > a0:
            self.move[a0:a1] += g[: a1 - a0]

    def rotate(self, t0_ms: int, dur_ms: int, degrees: float) -> None:
        """Turn the band's orientation by about `degrees` over `dur_ms` from t0."""
        a0 = t0_ms // 10
        a1 = min(self.na, a0 + max(1, dur_ms // 10))
        if a0 >= self.na:
            return
        g0 = self.gravity[a0].copy()
        axis = _unit(np.cross(g0, self.direction()))
        th = np.radians(degrees)
        g1 = g0 * np.cos(th) + np.cross(axis, g0) * np.sin(th)
        w = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a1 - a0))
        seg = (1 - w)[:, None] * g0 + w[:, None] * g1
        self.gravity[a0:a1] = seg / np.linalg.norm(seg, axis=1)[:, None]
        self.gravity[a1:] = g1

    # -- render ---------------------------------------------------------------

    def band_noise(self, n: int) -> np.ndarray:
        """Unit-RMS surface-EMG-like noise: white noise shaped to 20-450 Hz (peak ~100 Hz)."""
        out = np.empty(n)
        chunk = 1 << 16
        f = np.fft.rfftfreq(chunk, 1 / EMG_HZ)
        shape = (f / 20) ** 2 / (1 + (f / 20) ** 2) / (1 + (f / 150) ** 4)
        shape[f > 450] = 0
        for i in range(0, n, chunk):
            w = self.rng.normal(size=chunk)
            x = np.fft.irfft(np.fft.rfft(w) * shape, chunk)
            x /= x.std()
            out[i : i + chunk] = x[: min(chunk, n - i)]
        return out

    def render(self) -> Recording:
        rng = self.rng
        n = self.n
        t = np.arange(n) / EMG_HZ
        emg = self.sigma0 * rng.normal(size=n)
        emg += self.act * self.band_noise(n)
        ph = rng.uniform(0, 2 * np.pi)
        h3 = self.u(0.0, 0.3)
        emg += self.hum_uv * (
            np.sin(2 * np.pi * self.hum_hz * t + ph) + h3 * np.sin(6 * np.pi * self.hum_hz * t)
        )
        # electrode drift: integrated noise, low-passed, scaled
        k = max(1, n // 1000)
        walk = np.cumsum(rng.normal(size=k))
        walk -= np.linspace(walk[0], walk[-1], k)
        walk = walk / (np.abs(walk).max() + 1e-9) * self.drift_uv
        emg += np.interp(np.arange(n), np.linspace(0, n, k), walk)
        emg += self.artefact
        for t0, t1, kind in self.emg_faults:
            emg[t0:t1] = self._fault_signal(kind, t1 - t0, emg[t0:t1])
        emg = np.clip(np.round(emg), -FULL_SCALE_UV, FULL_SCALE_UV).astype(np.int32)
        acc = self.gravity + self.move + self.acc_noise_g * rng.normal(size=(self.na, 3))
        acc = np.clip(acc, -8.0, 8.0)
        for a0, a1 in self.acc_faults:
            acc[a0:a1] = 0.0
        labels = sorted(self.labels, key=lambda lb: lb.onset_ms)
        # computed after the draws, from the final sigma0 (sleep lowers it): no rng use
        snr = (self.act / self.sigma0).astype(np.float32)
        return Recording(emg, acc, labels, snr)

    def _fault_signal(self, kind: str, m: int, live: np.ndarray) -> np.ndarray:
        tt = np.arange(m) / EMG_HZ
        if kind == "lead_off":
            amp = self.u(1500, 5000)
            off = self.u(-3000, 3000)
            return off + amp * np.sin(2 * np.pi * self.hum_hz * tt + self.u(0, 6.3))
        if kind == "saturation":
            sign = self.rng.choice([-1.0, 1.0])
            return live + sign * 2.5 * FULL_SCALE_UV
        # flatline: the input stops at one value
        return np.full(m, float(round(self.u(-50, 50))))

    # -- faults ---------------------------------------------------------------

    def fault(self, t0: int, dur: int, kind: str) -> int:
        """A sensor fault from t0 for dur ms; returns its end."""
        t1 = min(self.n, t0 + dur)
        if kind == "acc_dropout":
            self.acc_faults.append((t0 // 10, t1 // 10))
        else:
            self.emg_faults.append((t0, t1, kind))
        self.label(t0, t1, kind)
        return t1
