"""The band's detector under CPython: interface, kinds, faults, one-modality operation."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from spasmband import detector
from spasmband.detector import EMG_HZ, PARAMS, Detector

from protocol import codec
from simulator.scenarios import record
from tests.detector_fixtures import EVERYTHING, events, overlapping, recording, run

KIND = {"myoclonic": 1, "clonic": 2, "tonic": 3}
FAULT = {"lead_off": 1, "saturation": 2, "flatline": 3, "acc_dropout": 4}


def test_params_are_few_named_and_consistent() -> None:
    assert EMG_HZ == 1000 and detector.ACC_HZ == 100
    assert 3 <= len(PARAMS) <= 10
    for name, spec in PARAMS.items():
        default, lo, hi = spec
        assert all(isinstance(v, int) for v in spec), name
        assert lo <= default <= hi, name
    assert detector.check_params(None) == {k: v[0] for k, v in PARAMS.items()}


@pytest.mark.parametrize(
    "params",
    [
        {"nope": 1},
        {"onset_ratio_x10": 5},
        {"onset_ratio_x10": 1000},
        {"min_event_ms": "40"},
        {"offset_ratio_x10": 30, "onset_ratio_x10": 20},
    ],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Detector(params)


def test_needs_a_modality() -> None:
    with pytest.raises(ValueError):
        Detector(emg=False, acc=False)


def test_every_spasm_kind_found_with_its_kind_and_no_false_alarm() -> None:
    rec = recording(*EVERYTHING)
    popped = run(rec)
    evs = events(popped)
    by = {lb.kind: lb for lb in rec.labels}
    for kind in ("clonic", "tonic"):
        lb = by[kind]
        found = overlapping(evs, lb.onset_ms, lb.offset_ms)
        assert [e[3] for e in found] == [KIND[kind]], (kind, found)
    strong_jerk = [lb for lb in rec.labels if lb.kind == "myoclonic" and lb.amplitude == "strong"]
    found = overlapping(evs, strong_jerk[0].onset_ms, strong_jerk[0].offset_ms)
    assert [e[3] for e in found] == [1]
    clonic = overlapping(evs, by["clonic"].onset_ms, by["clonic"].offset_ms)[0]
    assert 30 <= clonic[9] <= 80  # dominant frequency in tenths of Hz: clonus is 3-8 Hz
    for name in ("lifting", "bumps", "sleep_turn", "walking", "typing"):
        lb = by[name]
        assert overlapping(evs, lb.onset_ms, lb.offset_ms, slack=0) == [], name


def test_onset_is_announced_before_the_event_ends() -> None:
    rec = recording(*EVERYTHING)
    popped = run(rec)
    tonic = [lb for lb in rec.labels if lb.kind == "tonic"][0]
    onsets = [(t, r) for t, r in popped if r[0] == "onset" and abs(r[1] - tonic.onset_ms) < 3000]
    ends = [t for t, r in popped if r[0] == "event" and abs(r[1] - tonic.onset_ms) < 3000]
    assert onsets and ends and onsets[0][0] < ends[0] - 10000
    assert onsets[0][0] - tonic.onset_ms < 3000


@pytest.mark.parametrize("name,seed", [("everything", 0), ("spasms_in_motion", 11)])
def test_each_event_confirms_its_onset_by_the_same_start(name: str, seed: int) -> None:
    # the contract SPEC.md gives hosts and apps: an onset is provisional, and
    # the event that confirms it (popped later) has the same t_ms; an onset
    # inside an event's span under another stamp would be neither confirmed
    # nor withdrawn
    rec = recording(*EVERYTHING) if name == "everything" else recording(name, seed, 5)
    popped = run(rec)
    onset_at = {r[1]: t for t, r in popped if r[0] == "onset"}
    evs = [(t, r) for t, r in popped if r[0] == "event"]
    assert len(evs) >= 3, evs
    for t, ev in evs:
        assert ev[1] in onset_at and onset_at[ev[1]] < t, ev  # announced, earlier
        inside = [t0 for t0 in onset_at if ev[1] <= t0 <= ev[1] + ev[2]]
        assert inside == [ev[1]], (ev, inside)


def test_faults_come_out_as_faults_never_as_spasms() -> None:
    rec = recording(*EVERYTHING)
    popped = run(rec)
    faults = events(popped, "fault")
    evs = events(popped)
    for lb in rec.labels:
        if lb.kind in FAULT:
            hits = [f for f in faults if f[2] == FAULT[lb.kind]]
            assert len(hits) == 1, lb
            f = hits[0]
            assert abs(f[1] - lb.onset_ms) <= 60 and abs(f[3] - (lb.offset_ms - lb.onset_ms)) <= 60
            if lb.kind != "acc_dropout":
                assert overlapping(evs, lb.onset_ms, lb.offset_ms, slack=0) == [], lb


def test_results_fit_the_wire_format() -> None:
    rec = recording(*EVERYTHING)
    for _, r in run(rec):
        if r[0] == "event":
            names = (
                "t_ms",
                "duration_ms",
                "kind",
                "severity",
                "confidence",
                "peak_act_x10",
                "mean_act_x10",
                "peak_acc_mg",
                "freq_dhz",
                "modalities",
            )
            fields = dict(zip(names, r[1:], strict=True))
            frame = codec.encode(codec.EVENT, 1, dict(fields, boot=1, utc_ms=0))
        elif r[0] == "onset":
            fields = dict(zip(("t_ms", "kind", "confidence", "act_x10"), r[1:], strict=True))
            frame = codec.encode(codec.ONSET, 1, dict(fields, boot=1, utc_ms=0))
        else:
            fields = dict(zip(("t_ms", "fault", "duration_ms"), r[1:], strict=True))
            frame = codec.encode(codec.FAULT, 1, dict(fields, boot=1, utc_ms=0))
        assert codec.decode(frame)[3]["t_ms"] == r[1]


def test_one_modality_still_works_with_lower_confidence() -> None:
    rec = recording(*EVERYTHING)
    both = {e[1] // 1000: e for e in events(run(rec))}
    emg_only = events(run(rec, acc=False))
    tonic = [lb for lb in rec.labels if lb.kind == "tonic"][0]
    found = overlapping(emg_only, tonic.onset_ms, tonic.offset_ms)
    assert [e[3] for e in found] == [3] and found[0][10] == 1
    match = both[found[0][1] // 1000]
    assert found[0][5] < match[5]
    acc_only = run(rec, emg=False)
    clonic = [lb for lb in rec.labels if lb.kind == "clonic"][0]
    found = overlapping(events(acc_only), clonic.onset_ms, clonic.offset_ms)
    assert [e[3] for e in found] == [2] and found[0][10] == 2 and found[0][5] < 60
    assert all(e[3] != 3 for e in events(acc_only))  # no tonic spasms without EMG
    assert [f[2] for f in events(acc_only, "fault")] == [4]


def test_quiet_rest_gives_no_events_and_live_properties() -> None:
    rec = record("rest", 11, 3.0)
    det = Detector()
    emg = rec.emg_uv.tolist()
    acc = [tuple(int(round(v * 1000)) for v in row) for row in rec.acc_g]
    out = []
    for f, (x, y, z) in enumerate(acc):
        for i in range(f * 10, f * 10 + 10):
            det.emg(emg[i])
        det.acc(x, y, z)
        r = det.pop()
        while r is not None:
            out.append(r)
            r = det.pop()
    assert [r for r in out if r[0] != "onset"] == []
    assert det.faults == 0 and det.quality > 50
    assert 0 < det.envelope_uv < 50


def _fed(rec_emg: list[int], acc: list[tuple[int, int, int]] | None, cuts: random.Random | None):
    """Everything a detector pops, EMG fed one sample at a time (cuts None) or in
    runs of random length (0-37 samples, across frame boundaries when acc is None)."""
    det = Detector(acc=acc is not None)
    out: list[tuple[int, tuple[Any, ...]]] = []
    frames = len(acc) if acc is not None else len(rec_emg) // 10
    i = 0
    for f in range(frames):
        end = f * 10 + 10 if acc is not None else min(len(rec_emg), i + 10)
        if cuts is None:
            for k in range(i, end):
                det.emg(rec_emg[k])
            i = end
        else:
            while i < end:
                j = min(end if acc is not None else len(rec_emg), i + cuts.randint(0, 37))
                det.emg_samples(rec_emg, i, j)
                i = j
        if acc is not None:
            det.acc(*acc[f])
        r = det.pop()
        while r is not None:
            out.append((f, r))
            r = det.pop()
    return out


@pytest.mark.parametrize("with_acc", [True, False])
def test_emg_in_runs_gives_what_emg_one_sample_at_a_time_gives(with_acc: bool) -> None:
    rec = recording(*EVERYTHING)  # every kind of episode and every fault
    emg = rec.emg_uv.tolist()
    acc = [tuple(int(round(v * 1000)) for v in row) for row in rec.acc_g] if with_acc else None
    one = _fed(emg, acc, None)
    assert {r[3] for _, r in one if r[0] == "event"} == {1, 2, 3}
    runs = _fed(emg, acc, random.Random(3))
    if with_acc:
        assert runs == one
    else:  # runs may cross frame ends: the same results, popped up to a run later
        assert [r for _, r in runs] == [r for _, r in one]


def test_missing_acc_samples_do_not_stall_the_detector() -> None:
    det = Detector()
    out = []
    for i in range(6000):  # acc never fed: frames still complete (every 20 EMG samples)
        det.emg(0 if 1000 <= i < 3000 else (7 if i % 2 else -7))
        r = det.pop()
        if r is not None:
            out.append(r)
    assert [(r[0], r[2]) for r in out] == [("fault", 3)]
    assert abs(out[0][1] - 1000) <= 20 and abs(out[0][3] - 2000) <= 20


def _bursts(spans: list[tuple[int, int]], ms: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Resting noise (+-6 uV) with strong bursts (+-60 uV) in `spans`; acc at rest."""
    rng = random.Random(5)
    det = Detector()
    out = []
    for t in range(ms):
        amp = 60 if any(a <= t < b for a, b in spans) else 6
        det.emg(rng.randint(-amp, amp))
        if t % 10 == 9:
            det.acc(rng.randint(-3, 3), rng.randint(-3, 3), 1000 + rng.randint(-3, 3))
        r = det.pop()
        while r is not None:
            out.append((t, r))
            r = det.pop()
    return out


def test_pieces_of_one_spasm_make_one_event_with_one_early_onset() -> None:
    # two bursts 700 ms apart: one spasm that dipped, not two (weak clonus and
    # tonic spasms come and go like this); announced once, at the first piece
    out = _bursts([(8000, 8150), (8850, 9000)], 14000)
    onsets = [(t, r) for t, r in out if r[0] == "onset"]
    evs = [(t, r) for t, r in out if r[0] == "event"]
    assert len(onsets) == 1 and len(evs) == 1, out
    assert onsets[0][0] < 8150 and abs(onsets[0][1][1] - 8000) <= 30
    ev = evs[0][1]
    assert ev[1] == onsets[0][1][1] and ev[1] + ev[2] >= 8950
    # the event is held back until no continuation can come (1.5 s of quiet)
    assert evs[0][0] >= 9000 + 1500


def test_bursts_far_apart_are_separate_events() -> None:
    out = _bursts([(8000, 8150), (12000, 12150)], 16000)
    evs = [r for _, r in out if r[0] == "event"]
    assert len(evs) == 2, out
    assert abs(evs[0][1] - 8000) <= 30 and abs(evs[1][1] - 12000) <= 30, evs


def test_a_burst_rising_as_the_last_event_is_reported_gets_its_own_start() -> None:
    # burst B rises just before the held-back event A is reported (1.5 s after A) and
    # is confirmed just after: B once took A's start, and the time-series server,
    # whose point identity is (band, kind, start), kept only one of the two
    for start in range(9700, 9740, 5):
        out = _bursts([(8000, 8150), (start, start + 1500)], 14000)
        starts = [r[1] for _, r in out if r[0] == "event"]
        # (B may also join A as one spasm in pieces: then one event, not two)
        assert starts and len(starts) == len(set(starts)), (start, starts)


def test_limb_rhythm_is_read_whatever_the_direction_of_swing() -> None:
    # acc only: a 5 Hz swing along (1, -1, 0), where the sum of the axes
    # cancels out, is still clonus (it was once read on that sum)
    det = Detector(emg=False)
    rng = random.Random(3)
    out = []
    for f in range(3000):
        a = int(100 * math.sin(2 * math.pi * 5 * f / 100.0)) if 1000 <= f < 1500 else 0
        det.acc(a + rng.randint(-3, 3), -a + rng.randint(-3, 3), 1000 + rng.randint(-3, 3))
        r = det.pop()
        while r is not None:
            out.append(r)
            r = det.pop()
    evs = [r for r in out if r[0] == "event"]
    assert [(e[3], e[9]) for e in evs] == [(2, 50)], evs  # clonic, 5.0 Hz


def test_a_jerk_amid_walking_is_its_own_event() -> None:
    # step bursts (2 per second) with the arm swinging merge into one long
    # episode that is gait; a strong burst inside it splits off and is a jerk
    rng = random.Random(7)
    det = Detector()
    out = []
    for t in range(40000):
        walking = 10000 <= t < 30000
        amp = 14 if walking and t % 500 < 200 else 6
        if 20000 <= t < 20100:
            amp = 200
        det.emg(rng.randint(-amp, amp))
        if t % 10 == 9:
            swing = int(300 * math.sin(2 * math.pi * 2 * t / 1000.0)) if walking else 0
            det.acc(swing + rng.randint(-3, 3), rng.randint(-3, 3), 1000 + rng.randint(-3, 3))
        r = det.pop()
        while r is not None:
            out.append(r)
            r = det.pop()
    evs = [r for r in out if r[0] == "event"]
    assert len(evs) == 1 and evs[0][3] == 1, evs  # one event, a jerk
    assert abs(evs[0][1] - 20000) <= 30 and evs[0][4] == 3, evs  # at its rise, severe
