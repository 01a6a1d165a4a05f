"""The detector in the MicroPython VM: it runs, finds a jerk, reports faults, keeps its memory."""

import gc

from spasmband.detector import PARAMS, Detector


class Noise:
    """Deterministic pseudo-random integers: a small LCG (x * 75 + 74 mod 65537) whose
    values stay small integers, so it allocates nothing (large integers would)."""

    def __init__(self, seed):
        self.x = seed

    def next(self, amp):
        self.x = (self.x * 75 + 74) % 65537
        return self.x % (2 * amp + 1) - amp


def feed(det, ms, emg_at, results):
    noise = Noise(7)
    for t in range(ms):
        det.emg(emg_at(t, noise))
        if t % 10 == 9:
            det.acc(noise.next(3), noise.next(3), 1000 + noise.next(3))
        r = det.pop()
        while r is not None:
            results.append((t, r))
            r = det.pop()


def test_params_validated():
    assert "onset_ratio_x10" in PARAMS
    for bad in ({"nope": 1}, {"onset_ratio_x10": 1}, {"min_event_ms": "x"}):
        try:
            Detector(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))


def test_strong_burst_is_a_jerk_with_an_onset_first():
    det = Detector()
    out = []

    def emg(t, noise):
        return noise.next(60) if 8000 <= t < 8150 else noise.next(6)

    feed(det, 12000, emg, out)
    kinds = [r[0] for _, r in out]
    assert kinds == ["onset", "event"], out
    onset_at, onset = out[0]
    assert onset_at < 8150 and abs(onset[1] - 8000) <= 30
    ev = out[1][1]
    assert ev[3] == 1 and 100 <= ev[2] <= 400 and ev[10] == 3, ev


def test_flatline_and_lead_off_are_faults():
    det = Detector()
    out = []

    def emg(t, noise):
        if 5000 <= t < 7000:
            return 17  # stuck input
        if 9000 <= t < 11000:
            return ((t % 20) - 10) * 300  # floating electrode: mains pickup of millivolts
        return noise.next(6)

    feed(det, 14000, emg, out)
    assert [r for _, r in out if r[0] == "event"] == []
    faults = [(r[2], r[1] // 100, r[3] // 100) for _, r in out if r[0] == "fault"]
    assert faults == [(3, 50, 20), (1, 90, 20)], faults


def test_memory_is_fixed_and_small():
    gc.collect()
    before = gc.mem_alloc()
    det = Detector()
    gc.collect()
    built = gc.mem_alloc() - before
    out = []

    def emg(t, noise):
        return noise.next(80) if (t // 3000) % 2 else noise.next(5)

    feed(det, 20000, emg, out)
    del out
    gc.collect()
    after = gc.mem_alloc() - before
    assert built < 16384, built
    assert after - built < 1024, (built, after)
