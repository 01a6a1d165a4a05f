"""The pieces of one spasm made one event (firmware/spasmband/spasm_chain.py), on its own.

Episodes are set up by hand as the detector would close them: when they
started and ended, whether their onset was announced, and the verdict.
"""

from __future__ import annotations

from spasmband.spasm_chain import SpasmChain
from spasmband.spasm_episode import CLONIC, MYOCLONIC, TONIC, Episode

ON = 17  # the detector's default onset level (tenths)


def _event(start: int, dur: int, kind: int, peak: int) -> tuple:
    return ("event", start, dur, kind, 2, 80, peak, peak // 2, 100, 0, 3)


class Run:
    """A chain and a clock: open and close episodes, step frames."""

    def __init__(self) -> None:
        self.out: list[tuple] = []
        self.chain = SpasmChain(self.out, ON)
        self.t = 0
        self.bursts = 0

    def episode(
        self,
        start: int,
        end: int,
        verdict: tuple | None,
        why: str | None = None,
        swing_ms: int = 0,
        peak: int | None = None,
    ) -> Episode:
        """An episode from `start` to `end` (ms) judged `verdict` (its `why` if
        None), whose activation peaks at `peak` (the verdict's peak if None)."""
        self.until(start, swing_ms)
        ep = Episode()
        ep.clear(start, 1)
        self.chain.join(ep, swing_ms)
        ep.peak = peak if peak is not None else (verdict[6] if verdict else 0)
        if self.chain.apart and ep.peak >= self.chain.apart:
            self.chain.stands_apart(ep)  # as the detector does when the peak gets there
        ep.announced = True
        ep.told = True
        self.until(end, swing_ms, open_=True)
        ep.t_last = end
        ep.why = why
        self.chain.closed(ep, verdict, self.bursts)
        return ep

    def until(self, t: int, swing_ms: int = 0, open_: bool = False) -> None:
        while self.t < t:
            self.t += 10
            if self.chain.pending is not None:
                self.chain.flush(self.t, open_, self.bursts, swing_ms)

    def events(self) -> list[tuple[int, int, int, int]]:
        return [(e[1], e[2], e[3], e[6]) for e in self.out if e[0] == "event"]


def test_pieces_within_the_gap_make_one_event_with_the_strongest_pieces_features() -> None:
    r = Run()
    r.episode(1000, 1990, _event(1000, 1000, TONIC, 30))
    second = r.episode(3000, 4990, _event(3000, 2000, TONIC, 45))
    assert second.t_out == 1000 and second.follows
    assert r.out == []  # held back while a third piece may come
    r.until(6490)
    assert r.out == []  # 1.5 s of quiet not yet over
    r.until(6600)
    assert r.events() == [(1000, 4000, TONIC, 45)]


def test_a_gap_over_one_and_a_half_seconds_starts_a_new_event() -> None:
    r = Run()
    r.episode(1000, 1190, _event(1000, 200, MYOCLONIC, 60))
    later = r.episode(2800, 2990, _event(2800, 200, MYOCLONIC, 50))
    assert later.t_out == 2800 and not later.follows
    r.until(5000)
    assert r.events() == [(1000, 200, MYOCLONIC, 60), (2800, 200, MYOCLONIC, 50)]


def test_a_piece_that_alone_is_no_spasm_does_not_stretch_the_event() -> None:
    r = Run()
    r.episode(1000, 1990, _event(1000, 1000, TONIC, 40))
    r.episode(2500, 2990, None, why="patchy")
    r.until(6000)
    assert r.events() == [(1000, 1000, TONIC, 40)]


def test_a_burst_of_ordinary_use_starts_no_chain() -> None:
    r = Run()
    r.episode(1000, 1190, None, why="busy")  # a step
    jerk = r.episode(1600, 1790, _event(1600, 200, MYOCLONIC, 40))
    assert jerk.t_out == 1600  # its own start, not the step's
    r.until(4000)
    assert r.events() == [(1600, 200, MYOCLONIC, 40)]


def test_steps_after_a_clear_spasm_do_not_keep_its_chain_open() -> None:
    r = Run()
    r.episode(1000, 1190, _event(1000, 200, MYOCLONIC, 60))
    for t in (2000, 3000, 4000):
        r.episode(t, t + 90, None, why="busy")  # key presses, each within 1.5 s of the last
    assert r.events() == [(1000, 200, MYOCLONIC, 60)]  # reported 1.5 s after the jerk
    second = r.episode(4600, 4790, _event(4600, 200, MYOCLONIC, 50))
    assert second.t_out == 4600  # a jerk of its own, not a piece of the first
    r.until(7000)
    assert r.events() == [(1000, 200, MYOCLONIC, 60), (4600, 200, MYOCLONIC, 50)]


def test_a_piece_far_above_a_long_chain_is_a_spasm_of_its_own() -> None:
    def strong_piece_at(t: int) -> list[tuple[int, int, int, int]]:
        r = Run()
        r.episode(1000, 1990, _event(1000, 1000, TONIC, 30))  # faint bursts amid typing ...
        r.episode(2500, t - 500, None, why="patchy", peak=30)
        r.episode(t, t + 9490, _event(t, 9500, TONIC, 3 * 30))  # ... then a spasm
        r.until(t + 20000)
        return r.events()

    # 3.5 s after the chain began, three times all its pieces: its own event, from its
    # own start; what was held back is reported as it stood
    assert strong_piece_at(4500) == [(1000, 1000, TONIC, 30), (4500, 9500, TONIC, 90)]
    # within 3 s of the chain's start it is a spasm's own slow rise: one event
    assert strong_piece_at(3900) == [(1000, 12400, TONIC, 90)]


def test_a_piece_below_three_times_the_chain_stays_a_piece() -> None:
    r = Run()
    r.episode(1000, 1990, _event(1000, 1000, TONIC, 30))
    r.episode(2500, 3990, None, why="patchy", peak=30)
    r.episode(4500, 9990, _event(4500, 5500, TONIC, 3 * 30 - 1))
    r.until(20000)
    assert r.events() == [(1000, 9000, TONIC, 89)]


def test_a_chain_spans_twenty_seconds_unless_the_limb_swings() -> None:
    def chain_of_pieces(swing_ms: int) -> list[tuple[int, int, int, int]]:
        r = Run()
        for k in range(25):
            t = 1000 + k * 1000
            r.episode(t, t + 490, _event(t, 500, CLONIC, 30), swing_ms=swing_ms)
        r.until(40000)
        return r.events()

    still = chain_of_pieces(0)
    assert len(still) == 2 and still[0][0] == 1000 and still[1][0] == 22000
    swinging = chain_of_pieces(60000)
    assert swinging == [(1000, 24500, CLONIC, 30)]


def test_a_swinging_limb_holds_the_event_back() -> None:
    r = Run()
    r.episode(1000, 2990, _event(1000, 2000, CLONIC, 25), swing_ms=3000)
    r.until(8000, swing_ms=5000)
    assert r.out == []
    r.until(8100)
    assert r.events() == [(1000, 2000, CLONIC, 25)]


def test_a_faint_jerk_that_bursts_follow_is_dropped_a_strong_one_is_not() -> None:
    for peak, kept in ((2 * ON - 1, False), (2 * ON, True)):
        r = Run()
        r.episode(1000, 1090, _event(1000, 100, MYOCLONIC, peak))
        r.bursts += 3  # typing resumes
        r.until(4000)
        assert (r.events() == [(1000, 100, MYOCLONIC, peak)]) is kept
        assert r.chain.start == -1


def test_finish_reports_what_is_held_back() -> None:
    r = Run()
    r.episode(1000, 1990, _event(1000, 1000, TONIC, 40))
    r.chain.finish()
    assert r.events() == [(1000, 1000, TONIC, 40)]
    r.chain.finish()
    assert len(r.out) == 1
