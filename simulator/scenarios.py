"""Named, seeded scenarios: a timeline of episodes drawn on a `Body`.

`record(name, seed, minutes)` returns a `Recording` (signals and labels); the
same name, seed and length always give the same recording. `SCENARIOS` maps
each name to a one-line description: `spasm-sim scenarios` prints them and
simulator/RECORDINGS.md shows the same text (tests/test_signal_model.py checks).
Spasm amplitude classes are drawn evenly from weak, moderate and strong.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator import episodes as ep
from simulator.signal_model import AMPLITUDE_CLASSES, SPASM_KINDS, Body, Recording

Filler = Callable[[Body], None]

SCENARIOS: dict[str, str] = {
    "rest": "sitting or lying awake: resting EMG, small posture shifts every 10-90 s",
    "sleep": "night sleep: low activity with body turns every 2-15 minutes",
    "walking": "walking bouts of 1-8 minutes (arm swing, heel strikes, EMG with each step)",
    "typing": "typing and fine hand use in bouts of 0.5-5 minutes: irregular small EMG bursts",
    "lifting": "lifts and holds every 20-90 s: reach, sustained voluntary contraction, release",
    "bumps": "taps and knocks on the band every 5-40 s: acc impacts, little EMG",
    "daily": "a mix of rest, walking, typing, lifting and bumps",
    "myoclonic": "myoclonic jerks at rest, 4-20 s apart, all amplitude classes",
    "clonic": "clonus episodes at rest, 4-20 s apart, all amplitude classes",
    "tonic": "tonic spasms at rest, 4-20 s apart, all amplitude classes",
    "spasms": "all three spasm kinds at rest, 4-20 s apart, all amplitude classes",
    "spasms_in_motion": "jerks and clonus while walking or typing, tonic spasms while typing",
    "night": (
        "sleep with turns and spasms of all three kinds "
        "(each spasm tonic with odds 1/2, clonic 1/4, myoclonic 1/4)"
    ),
    "faults": "rest with lead-off, saturation, flatline and acc dropout, and a few spasms",
    "everything": (
        "one of each spasm kind (and a weak jerk), walking, typing, lifting, a bump, "
        "a sleep turn and each fault, 4 s apart (4 minutes hold them all); "
        "no rest or sleep bout"
    ),
}


def _klass(body: Body) -> str:
    return str(body.rng.choice(list(AMPLITUDE_CLASSES)))


def _rest_until(body: Body, t0: int, t1: int) -> None:
    """Label [t0, t1) as rest and sprinkle small posture shifts in it."""
    t1 = min(t1, body.n)
    if t1 - t0 < 1000:
        return
    t = t0 + int(body.u(5000, 60000))
    while t < t1 - 2000:
        ep.posture_shift(body, t)
        t += int(body.u(10000, 90000))
    body.label(t0, t1, "rest")


def _spasm_train(body: Body, kinds: tuple[str, ...], during: str = "rest") -> None:
    t = int(body.u(2000, 4000))
    while t < body.n - 35000:
        kind = str(body.rng.choice(list(kinds)))
        end = ep.SPASMS[kind](body, t, _klass(body), during)
        t = end + int(body.u(4000, 20000))
    _rest_until(body, 0, body.n)


def _bouts(body: Body, activity: Callable[[Body, int, float], int], lo: float, hi: float) -> None:
    t = 0
    while t < body.n - 5000:
        gap = int(body.u(10000, 60000))
        _rest_until(body, t, t + gap)
        t += gap
        seconds = min(body.u(lo, hi), (body.n - t) / 1000.0)
        if seconds < 5:
            break
        t = activity(body, t, seconds)
    _rest_until(body, t, body.n)


def _events(body: Body, one: Callable[[Body, int], int], lo: float, hi: float) -> None:
    t = int(body.u(1000, lo * 1000))
    last = 0
    while t < body.n - 25000:
        _rest_until(body, last, t)
        last = one(body, t)
        t = last + int(body.u(lo * 1000, hi * 1000))
    _rest_until(body, last, body.n)


def _sleep(body: Body) -> None:
    body.sigma0 *= 0.8
    _events(body, ep.sleep_turn, 120, 900)
    body.labels = [lb for lb in body.labels if lb.kind != "rest"]
    body.label(0, body.n, "sleep")


def _daily(body: Body) -> None:
    t = 0
    while t < body.n - 30000:
        what = body.rng.choice(["rest", "walking", "typing", "lifting", "bumps"])
        seg = int(body.u(30000, 240000))
        seg = min(seg, body.n - t)
        if what == "rest":
            _rest_until(body, t, t + seg)
            t += seg
        elif what == "walking":
            t = ep.walking(body, t, seg / 1000.0)
        elif what == "typing":
            t = ep.typing(body, t, seg / 1000.0)
        elif what == "lifting":
            t = ep.lifting(body, t)
        else:
            t = ep.bump(body, t) + int(body.u(2000, 10000))
    _rest_until(body, t, body.n)


def _in_motion(body: Body) -> None:
    t = 0
    while t < body.n - 40000:
        walk = body.rng.random() < 0.5
        seconds = min(body.u(40, 120), (body.n - t - 5000) / 1000.0)
        start = t
        t = (ep.walking if walk else ep.typing)(body, t, seconds)
        s = start + int(body.u(3000, 8000))
        kinds = ("myoclonic", "clonic") if walk else SPASM_KINDS
        while s < t - 35000:
            kind = str(body.rng.choice(list(kinds)))
            end = ep.SPASMS[kind](body, s, _klass(body), "walking" if walk else "typing")
            s = end + int(body.u(5000, 15000))
        t += int(body.u(5000, 15000))
    body.labels = [lb for lb in body.labels if lb.kind != "rest"]


def _night(body: Body) -> None:
    body.sigma0 *= 0.8
    t = int(body.u(5000, 30000))
    while t < body.n - 70000:
        if body.rng.random() < 0.3:
            t = ep.sleep_turn(body, t)
        else:
            kind = str(body.rng.choice(["tonic", "tonic", "clonic", "myoclonic"]))
            t = ep.SPASMS[kind](body, t, _klass(body), "sleep")
        t += int(body.u(8000, 60000))
    body.label(0, body.n, "sleep")


def _faults(body: Body) -> None:
    t = int(body.u(3000, 8000))
    kinds = ["lead_off", "saturation", "flatline", "acc_dropout", "spasm"]
    while t < body.n - 40000:
        what = str(body.rng.choice(kinds))
        if what == "spasm":
            kind = str(body.rng.choice(list(SPASM_KINDS)))
            t = ep.SPASMS[kind](body, t, _klass(body))
        else:
            dur = int(body.u(200, 5000) if what == "saturation" else body.u(1000, 20000))
            body.fault(t, dur, what)
            t += dur
        t += int(body.u(5000, 20000))
    _rest_until(body, 0, body.n)


def _everything(body: Body) -> None:
    """Each spasm kind, confounder and fault once, in a fixed order, spaced out."""
    t = 5000
    steps: list[Callable[[int], int]] = [
        lambda t: ep.myoclonic(body, t, "strong"),
        lambda t: ep.clonic(body, t, "moderate"),
        lambda t: ep.tonic(body, t, "moderate"),
        lambda t: ep.walking(body, t, 12),
        lambda t: ep.typing(body, t, 8),
        lambda t: ep.lifting(body, t),
        lambda t: ep.bump(body, t),
        lambda t: ep.sleep_turn(body, t),
        lambda t: ep.myoclonic(body, t, "weak"),
        lambda t: body.fault(t, 3000, "lead_off"),
        lambda t: body.fault(t, 1000, "saturation"),
        lambda t: body.fault(t, 3000, "flatline"),
        lambda t: body.fault(t, 3000, "acc_dropout"),
    ]
    for step in steps:
        if t >= body.n - 5000:
            break
        t = step(t) + 4000


FILLERS: dict[str, Filler] = {
    "rest": lambda b: _rest_until(b, 0, b.n),
    "sleep": _sleep,
    "walking": lambda b: _bouts(b, ep.walking, 60, 480),
    "typing": lambda b: _bouts(b, ep.typing, 30, 300),
    "lifting": lambda b: _events(b, ep.lifting, 20, 90),
    "bumps": lambda b: _events(b, ep.bump, 5, 40),
    "daily": _daily,
    "myoclonic": lambda b: _spasm_train(b, ("myoclonic",)),
    "clonic": lambda b: _spasm_train(b, ("clonic",)),
    "tonic": lambda b: _spasm_train(b, ("tonic",)),
    "spasms": lambda b: _spasm_train(b, SPASM_KINDS),
    "spasms_in_motion": _in_motion,
    "night": _night,
    "faults": _faults,
    "everything": _everything,
}


def record(name: str, seed: int, minutes: float) -> Recording:
    """The recording of scenario `name` for this seed and length."""
    if name not in FILLERS:
        raise KeyError(name)
    rng = np.random.default_rng([seed, sorted(FILLERS).index(name)])
    body = Body(rng, minutes * 60.0)
    FILLERS[name](body)
    return body.render()
