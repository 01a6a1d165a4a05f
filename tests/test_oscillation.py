"""The limb's 3-8 Hz swing read from the accelerometer (firmware/spasmband/oscillation.py).

Each signal sits on one side of one rule: a swing at a clonus frequency in
sensor noise is read, with its frequency; noise, a tremor (8-12 Hz, whose
autocorrelation also peaks at two and three periods), gait, a jerk's damped
swing, a knock's ringing and a reach are not; the reading stops soon after the swing
does, however strong it was; a knock of 8 g keeps the sums within the band's
small ints; a clonus's swing amid a walk's arm swing and heel strikes, on
another axis, is read, and the walk alone is not. Then through the detector:
a weak clonus at rest, whose EMG is near the noise floor, is one clonic event,
and a moderate clonus amid a walk is a clonic event over most of it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
from spasmband.oscillation import Oscillation

from simulator import episodes
from simulator.signal_model import Body
from tests.detector_fixtures import events, run

SMALL_INT = 1 << 30  # MicroPython's small ints on a 32-bit port: beyond this, a heap allocation


def _feed(
    x_at: Callable[[int], float],
    frames: int,
    noise_mg: float = 4.0,
    y_at: Callable[[int], float] = lambda f: 0.0,
) -> list[int]:
    """The oscillation's frequency reading (tenths of Hz, 0: none) after each 10 ms frame,
    for movement x_at(frame) on one axis and y_at(frame) on another (mg), in sensor noise."""
    rng = random.Random(5)
    osc = Oscillation()
    out = []
    for f in range(frames):
        osc.frame(
            int(round(x_at(f) + rng.gauss(0, noise_mg))),
            int(round(y_at(f) + rng.gauss(0, noise_mg))),
            int(round(rng.gauss(0, noise_mg))),
        )
        out.append(osc.freq_dhz())
    return out


def _sine(hz: float, mg: float) -> Callable[[int], float]:
    return lambda f: mg * math.sin(2 * math.pi * hz * f / 100.0)


def test_a_swing_at_clonus_frequencies_is_read_with_its_frequency() -> None:
    for hz in (3.2, 4.5, 6.0, 7.0):
        seen = _feed(_sine(hz, 25.0), 300)
        held = [d for d in seen[150:] if d]
        assert len(held) >= 140, (hz, len(held))
        got = sorted(held)[len(held) // 2] / 10.0
        assert abs(got - hz) <= 0.12 * hz, (hz, got)


def test_noise_tremor_gait_a_jerk_and_a_knock_are_no_swing() -> None:
    assert not any(_feed(lambda f: 0.0, 1000, noise_mg=6.0))
    for hz in (8.5, 9.5, 11.0, 12.0):  # a stiff limb's tremor
        assert not any(_feed(_sine(hz, 60.0), 600)), hz
    assert not any(_feed(_sine(1.8, 150.0), 600))  # arm swing of a walk

    def heel_strikes(f: int) -> float:
        return 300.0 if f % 55 == 0 else 0.0

    assert not any(_feed(heel_strikes, 600))

    def jerk(f: int) -> float:  # one damped swing at 5 Hz, as the signal model draws it
        t = (f - 100) / 100.0
        return 0.0 if t < 0 else 400.0 * math.sin(2 * math.pi * 5 * t) * math.exp(-t / 0.12)

    assert not any(_feed(jerk, 400))

    def knock(f: int) -> float:  # 20 Hz ringing
        t = (f - 100) / 100.0
        return 0.0 if t < 0 else 3000.0 * math.cos(2 * math.pi * 20 * t) * math.exp(-t / 0.03)

    assert not any(_feed(knock, 400))

    for amp in (100.0, 300.0, 500.0):  # a reach: one swing of 0.5-1.5 s

        def reach(f: int, amp: float = amp) -> float:
            return amp * math.sin(2 * math.pi * (f - 100) / 50.0) if 100 <= f < 150 else 0.0

        # (the band-pass rings near its lower edge after it, for a second: read
        # at 2.6-2.7 Hz while a period at the end of the range counted)
        assert not any(_feed(reach, 600)), amp


def test_the_reading_stops_soon_after_a_strong_swing_does() -> None:
    def swing_then_rest(f: int) -> float:
        return 400.0 * math.sin(2 * math.pi * 5 * f / 100.0) if f < 300 else 0.0

    seen = _feed(swing_then_rest, 600)
    assert seen[290]
    assert not any(seen[430:]), [i for i, d in enumerate(seen) if d and i >= 430][:5]


def test_a_knock_of_8_g_keeps_the_sums_small() -> None:
    osc = Oscillation()
    for f in range(400):
        v = 8000 if f % 2 else -8000
        osc.frame(v, -v, v)
        assert max(abs(v) for v in osc._r) < SMALL_INT
        assert max(abs(v) for v in osc._bp) < SMALL_INT
    assert osc.freq_dhz() == 0  # 50 Hz: no clonus


def _walk(f: int) -> float:
    """A walk on one axis: the arm's swing (0.9 Hz and its harmonic) and a heel strike per step."""
    t = f / 100.0
    heel = 600.0 * math.cos(1.9 * (f % 55)) * math.exp(-(f % 55) / 2.0) if f % 55 < 8 else 0.0
    return 400.0 * math.sin(2 * math.pi * 0.9 * t) + 120.0 * math.sin(2 * math.pi * 1.8 * t) + heel


def test_a_clonus_amid_a_walk_is_read_and_the_walk_alone_is_not() -> None:
    for hz in (3.5, 5.0, 7.0):
        seen = _feed(_walk, 800, y_at=_sine(hz, 40.0))
        held = [d for d in seen[200:] if d]
        assert len(held) >= 400, (hz, len(held))  # (the old reader, on the swing's axis: none)
        got = sorted(held)[len(held) // 2] / 10.0
        assert abs(got - hz) <= 0.12 * hz, (hz, got)
    assert not any(_feed(_walk, 1500))
    assert not any(_feed(_walk, 1500, y_at=lambda f: 0.3 * _walk(f + 20)))


def test_a_moderate_clonus_amid_a_walk_is_a_clonic_event_over_most_of_it() -> None:
    covered = 0
    for seed in range(12):
        body = Body(np.random.default_rng(700 + seed), 60)
        episodes.walking(body, 0, 60)
        episodes.clonic(body, 15000, "moderate", "walking")
        rec = body.render()
        lb = next(x for x in rec.labels if x.kind == "clonic")
        for e in events(run(rec)):
            over = min(e[1] + e[2], lb.offset_ms) - max(e[1], lb.onset_ms)
            if e[3] == 2 and over * 2 >= lb.offset_ms - lb.onset_ms:
                covered += 1
                break
    assert covered >= 8, covered  # (10 now; before the swing was read amid a walk: 3)
    for seed in range(6):
        body = Body(np.random.default_rng(800 + seed), 60)
        episodes.walking(body, 0, 60)
        assert not events(run(body.render())), seed


def test_a_weak_clonus_at_rest_is_one_clonic_event() -> None:
    found = 0
    for seed in range(8):
        body = Body(np.random.default_rng(400 + seed), 50)
        episodes.clonic(body, 10000, "weak")
        rec = body.render()
        lb = next(x for x in rec.labels if x.kind == "clonic")
        evs = events(run(rec))
        # nothing outside it, and at most one event over it
        assert all(lb.onset_ms - 1500 <= e[1] <= lb.offset_ms + 500 for e in evs), (seed, evs)
        assert len(evs) <= 1, (seed, evs)
        if evs and evs[0][3] == 2:
            found += 1
    assert found >= 6
