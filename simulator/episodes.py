"""Labelled episodes drawn on a `Body`: the three spasm kinds and the confounders of daily life.

Each function takes the body, a start time in ms and draws its own knobs from
the body's seeded generator; it adds muscle activation, movement, orientation
changes and artefacts, labels itself and returns its end time in ms.

Physiology assumed (and what separates spasms from ordinary life here, which is
what any detector must find):
- myoclonic jerk: abrupt (5-15 ms rise) synchronous burst of 50-300 ms; the limb
  jerks (acc pulse that scales with the burst, from barely visible to ~1.5 g).
- clonus: bursts at 3-8 Hz (beat-to-beat jitter 3-8 %, 30-55 % duty) for 2-30 s;
  the limb oscillates at the same frequency.
- tonic spasm: slow rise (0.3-2 s), sustained 1-60 s with +-15 % fluctuation,
  slow fall; little movement (stiffening tremor, a few degrees of posture drift).
- walking: cadence 1.6-2.2 steps/s, EMG bursts with the arm swing (up to 6x the
  floor), heel-strike acc spikes, swing oscillation, motion artefact.
- typing and fine hand use: irregular bursts at 3-7 per second (interval spread
  ~40 %), 30-120 ms each, up to 5x the floor, over raised background activity;
  almost no wrist movement.
- lifting / sustained voluntary contraction: a reach (movement and orientation
  change) then a hold of 2-20 s at 3-20x the floor (as strong as a tonic spasm),
  then a release movement.
- sleep turns: the body rolls (orientation changes 45-180 degrees over 1-4 s)
  with a burst of muscle activity.
- bumps and taps: acc impacts up to 4 g of 10-40 ms with ringing, an electrode
  artefact, little EMG.
"""

from __future__ import annotations

import numpy as np

from simulator.signal_model import AMPLITUDE_CLASSES, EMG_HZ, Body


def _ramp(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, max(1, n)))


def _amplitude(body: Body, klass: str) -> float:
    lo, hi = AMPLITUDE_CLASSES[klass]
    return float(np.exp(body.rng.uniform(np.log(lo), np.log(hi))))


def _acc_scale(snr: float) -> float:
    """Movement (g) that comes with a burst of this SNR: weak bursts barely move the band."""
    return 0.012 * snr


# -- spasms -------------------------------------------------------------------


def myoclonic(body: Body, t0: int, klass: str, during: str = "rest") -> int:
    snr = _amplitude(body, klass)
    dur = int(body.u(50, 300))
    rise = int(body.u(5, 15))
    shape = np.ones(dur)
    shape[:rise] = _ramp(rise)
    tail = np.exp(-np.arange(dur) / body.u(0.5, 2.0) / dur)
    shape *= tail / tail[: max(1, dur // 3)].mean()
    body.add_act(t0, snr * body.sigma0 * shape)
    # the limb jerks: a damped oscillation at 3-10 Hz along one direction
    na = int(body.u(0.3, 0.6) * 100)
    tt = np.arange(na) / 100.0
    f = body.u(3, 10)
    g = _acc_scale(snr) * body.u(0.5, 1.5) * np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.12)
    body.add_move(t0 + 10, g[:, None] * body.direction())
    body.label(t0, t0 + dur, "myoclonic", amplitude=klass, snr=snr, during=during)
    return t0 + dur


def clonic(body: Body, t0: int, klass: str, during: str = "rest") -> int:
    snr = _amplitude(body, klass)
    f = body.u(3, 8)
    total = int(body.u(2000, 30000))
    duty = body.u(0.3, 0.55)
    jitter = body.u(0.03, 0.08)
    shape = np.zeros(total + 400)
    t = 0.0
    while t < total:
        period = 1000.0 / f * (1 + jitter * body.rng.normal())
        on = int(period * duty)
        beat = np.sin(np.linspace(0, np.pi, max(2, on))) ** 0.5
        k = int(t)
        shape[k : k + len(beat)] = np.maximum(shape[k : k + len(beat)], beat * body.u(0.8, 1.2))
        t += period
    end = int(t - 1000.0 / f * (1 - duty))
    shape = shape[:end]
    wax = 0.8 + 0.2 * np.sin(np.linspace(0, np.pi * body.u(1, 3), len(shape)))
    body.add_act(t0, snr * body.sigma0 * shape * wax)
    na = len(shape) // 10
    tt = np.arange(na) / 100.0
    g = _acc_scale(snr) * body.u(0.5, 1.5) * np.sin(2 * np.pi * f * tt + body.u(0, 6.3))
    body.add_move(t0, g[:, None] * body.direction())
    body.label(t0, t0 + len(shape), "clonic", amplitude=klass, snr=snr, during=during)
    return t0 + len(shape)


def tonic(body: Body, t0: int, klass: str, during: str = "rest") -> int:
    snr = _amplitude(body, klass)
    rise = int(body.u(300, 2000))
    hold = int(body.u(1000, 60000))
    fall = int(body.u(300, 1500))
    n = rise + hold + fall
    shape = np.ones(n)
    shape[:rise] = _ramp(rise)
    shape[rise + hold :] = _ramp(fall)[::-1]
    tt = np.arange(n) / EMG_HZ
    shape *= 1 + 0.15 * np.sin(2 * np.pi * body.u(0.3, 2.0) * tt + body.u(0, 6.3))
    body.add_act(t0, snr * body.sigma0 * shape)
    na = n // 10
    ta = np.arange(na) / 100.0
    trem = 0.003 * snr * np.sin(2 * np.pi * body.u(8, 12) * ta) * shape[::10][:na]
    body.add_move(t0, trem[:, None] * body.direction())
    body.rotate(t0, rise, body.u(0, 8))
    body.label(t0, t0 + n, "tonic", amplitude=klass, snr=snr, during=during)
    return t0 + n


SPASMS = {"myoclonic": myoclonic, "clonic": clonic, "tonic": tonic}


# -- confounders ----------------------------------------------------------------


def walking(body: Body, t0: int, seconds: float) -> int:
    n = int(seconds * EMG_HZ)
    cadence = body.u(1.6, 2.2)  # steps per second
    burst = body.u(1.5, 6.0) * body.sigma0
    swing = body.u(0.1, 0.5)
    direction = body.direction()
    t = 0.0
    art = body.u(20, 150)
    while t < n - 600:
        k = t0 + int(t)
        dur = int(body.u(150, 300))
        body.add_act(k, burst * body.u(0.6, 1.2) * np.sin(np.linspace(0, np.pi, dur)))
        heel = body.u(0.2, 1.0) * np.exp(-np.arange(8) / 2.0) * np.cos(np.arange(8) * 1.9)
        body.add_move(k + 200, heel[:, None] * body.direction())
        a = np.arange(int(1000 / cadence))
        body.artefact[k : k + len(a)] += (art * np.sin(2 * np.pi * a / len(a)))[: body.n - k]
        t += 1000.0 / cadence * (1 + 0.03 * body.rng.normal())
    tt = np.arange(n // 10) / 100.0
    g = swing * np.sin(np.pi * cadence * tt) + 0.3 * swing * np.sin(2 * np.pi * cadence * tt)
    body.add_move(t0, g[:, None] * direction)
    body.add_act(t0, np.full(n, body.u(0.5, 1.5) * body.sigma0))
    body.label(t0, t0 + n, "walking")
    return t0 + n


def typing(body: Body, t0: int, seconds: float) -> int:
    n = int(seconds * EMG_HZ)
    rate = body.u(3, 7)
    amp = body.u(1.5, 5.0) * body.sigma0
    body.add_act(t0, np.full(n, body.u(0.5, 1.5) * body.sigma0))
    t = 0.0
    while t < n - 200:
        dur = int(body.u(30, 120))
        body.add_act(t0 + int(t), amp * body.u(0.5, 1.2) * np.sin(np.linspace(0, np.pi, dur)))
        tap = body.u(0.005, 0.03) * np.exp(-np.arange(5) / 1.5)
        body.add_move(t0 + int(t), tap[:, None] * body.direction())
        t += 1000.0 / rate * max(0.2, 1 + 0.4 * body.rng.normal())
        if body.rng.random() < 0.03:
            t += body.u(500, 3000)  # a pause to think
    body.label(t0, t0 + n, "typing")
    return t0 + n


def lifting(body: Body, t0: int) -> int:
    reach = int(body.u(500, 1500))
    hold = int(body.u(2000, 20000))
    level = body.u(3, 20) * body.sigma0
    _reach_move(body, t0, reach, body.u(20, 90))
    ramp = int(body.u(200, 800))
    n = ramp + hold + ramp
    shape = np.ones(n)
    shape[:ramp] = _ramp(ramp)
    shape[-ramp:] = _ramp(ramp)[::-1]
    tt = np.arange(n) / EMG_HZ
    shape *= 1 + 0.3 * np.sin(2 * np.pi * body.u(0.2, 1.0) * tt)
    start = t0 + int(reach * body.u(0.5, 0.9))
    body.add_act(start, level * shape)
    body.add_act(t0, np.full(reach, 0.3 * level))
    trem = body.u(0.005, 0.02) * np.sin(2 * np.pi * body.u(8, 12) * np.arange(n // 10) / 100)
    body.add_move(start, trem[:, None] * body.direction())
    end = start + n
    _reach_move(body, end - ramp, int(body.u(500, 1500)), body.u(20, 90))
    body.label(t0, end + 500, "lifting")
    return end + 1000


def _reach_move(body: Body, t0: int, dur: int, degrees: float) -> None:
    na = max(2, dur // 10)
    g = body.u(0.1, 0.5) * np.sin(np.linspace(0, 2 * np.pi, na))
    body.add_move(t0, g[:, None] * body.direction())
    body.rotate(t0, dur, degrees)


def sleep_turn(body: Body, t0: int) -> int:
    dur = int(body.u(1000, 4000))
    body.rotate(t0, dur, body.u(45, 180))
    na = dur // 10
    g = body.u(0.05, 0.3) * np.sin(np.linspace(0, np.pi * body.u(2, 4), na))
    body.add_move(t0, g[:, None] * body.direction())
    body.add_act(t0, body.u(2, 10) * body.sigma0 * np.sin(np.linspace(0, np.pi, dur)))
    body.label(t0, t0 + dur, "sleep_turn")
    return t0 + dur


def bump(body: Body, t0: int) -> int:
    na = int(body.u(1, 4))
    ring = np.arange(30)
    f = body.u(15, 30)
    g = body.u(0.5, 4.0) * np.exp(-ring / (na + 1.0)) * np.cos(2 * np.pi * f * ring / 100.0)
    body.add_move(t0, g[:, None] * body.direction())
    a = np.arange(int(body.u(50, 300)))
    art = body.u(20, 300) * np.exp(-a / (len(a) / 3.0))
    body.artefact[t0 : t0 + len(a)] += art[: max(0, body.n - t0)]
    body.add_act(t0, body.u(0.0, 1.5) * body.sigma0 * np.exp(-a / 30.0))
    body.label(t0, t0 + 300, "bumps")
    return t0 + 300


def posture_shift(body: Body, t0: int) -> int:
    dur = int(body.u(300, 1500))
    body.rotate(t0, dur, body.u(2, 20))
    body.add_act(t0, body.u(0.3, 1.2) * body.sigma0 * np.sin(np.linspace(0, np.pi, dur)))
    return t0 + dur
