"""Rhythm of an episode: intervals between rhythmic upward crossings.

Rhythm is measured as intervals between upward crossings of a fast envelope
over a slower one (EMG) or of the dynamic acceleration over a hysteresis band
(acc), counted in 10 ms frames: clonus is 3-8 Hz, i.e. intervals of 12-33
frames; gait is 0.8-2.5 Hz, intervals of 40-125 frames. Runs of steady EMG
beats (consecutive clonus-range intervals, each within 25 % of the last) find
a clonus that merged with the step bursts of a walk into one long episode:
gait alone never makes such a run. Runs of the limb's 3-8 Hz swing
(oscillation.py) find a clonus amid a walk whose EMG beats the step bursts
hide. Integers only, a few attributes each.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Clonus interval window in frames (3-8 Hz, with a little slack).
CLONUS_MIN = const(12)
CLONUS_MAX = const(36)
CLONUS_RUN = const(4)  # steady beats in a row that make a clonus whatever came around them
_MAX_CV = const(18)  # largest spread of a rhythm's intervals (% of their mean)
# Frames of a run of the swing that make a clonus of its own, and that make
# its live onset; a break this long ends a run (amid a walk each heel strike
# can bring back a moment of the rhythm the reading remembers); and the swing
# began ~0.7 s before a run's first frame (the reading needs that much of it).
SWING_RUN = const(150)
SWING_TELL = const(25)
_SWING_BREAK = const(60)
SWING_LEAD_MS = const(700)


class Rhythm:
    """Intervals between rhythmic upward crossings: count, sum, sum of squares."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n = 0  # intervals
        self.skipped = 0  # crossings that fitted no rhythm (stray or after a pause)
        self.last = -1  # frame index of the last crossing
        self.s = 0
        self.ss = 0

    def cross(self, frame):
        if self.last >= 0:
            d = frame - self.last
            if self.n >= 3:
                if d * self.n * 10 < 6 * self.s:
                    self.skipped += 1
                    return  # a stray crossing inside a beat: wait for the real one
                if d * self.n * 10 > 16 * self.s:
                    self.skipped += 1
                    self.last = frame  # a pause or a missed beat: not an interval
                    return
            if d < 200:
                self.n += 1
                self.s += d
                self.ss += d * d
        self.last = frame

    def regular(self, lo, hi, need, frames):
        """At least `need` intervals with mean in [lo, hi] and spread below _MAX_CV %,
        covering at least half of the episode's `frames`."""
        n = self.n
        if n < need or self.s * 2 < frames:
            return False
        m10 = self.s * 10 // n  # mean interval x10
        if m10 < lo * 10 or m10 > hi * 10:
            return False
        var100 = self.ss * 100 // n - m10 * m10  # variance x100
        # std/mean < 0.18: clonus and gait keep time (the beats jitter by 3-8 %, the
        # crossings of a noisy envelope add some); hand use does not (~40 %)
        return var100 * 10000 < _MAX_CV * _MAX_CV * m10 * m10

    def cv100(self):
        """Spread of the intervals in % of their mean (diagnostics)."""
        if not self.n:
            return 0
        m10 = self.s * 10 // self.n
        var100 = self.ss * 100 // self.n - m10 * m10
        return int((var100 if var100 > 0 else 0) ** 0.5 * 100) // (m10 or 1)

    def mean_x10(self):
        return self.s * 10 // self.n if self.n else 0


class BeatRuns(Rhythm):
    """A Rhythm that also finds runs of steady beats among all its crossings,
    unfiltered: consecutive clonus-range intervals, each within 25 % of the last."""

    def reset(self):
        Rhythm.reset(self)
        self.raw_last = -1  # frame of the last crossing
        self.raw_d = 0  # the interval before it
        self.run = 0  # steady intervals in the current run
        self.run_first = 0  # frame of the crossing that began the run
        self.best_run = 0  # the longest run, from frame best_first to best_last
        self.best_first = 0
        self.best_last = 0

    def cross(self, frame):
        if self.raw_last >= 0:
            d = frame - self.raw_last
            if CLONUS_MIN <= d <= CLONUS_MAX:
                pd = self.raw_d
                if self.run and (d - pd if d > pd else pd - d) * 4 <= pd:
                    self.run += 1
                else:
                    self.run = 1
                    self.run_first = self.raw_last
                if self.run > self.best_run:
                    self.best_run = self.run
                    self.best_first = self.run_first
                    self.best_last = frame
            else:
                self.run = 0
            self.raw_d = d
        self.raw_last = frame
        Rhythm.cross(self, frame)


class SwingRuns:
    """Runs of frames in which the limb swung at 3-8 Hz (oscillation.py)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n = 0  # frames of the current run, which began at frame `first`
        self.first = 0
        self.last = 0  # its last frame of swing
        self.best = 0  # the longest run, from frame best_first to best_last
        self.best_first = 0
        self.best_last = 0
        self.ended = False  # a run of SWING_RUN frames or more has just ended

    def frame(self, frame, steady, lag_x10):
        """The limb swings now (`steady`), or the reading is in a short break
        (a weak swing's comes and goes) or has ended (`lag_x10`, the period
        oscillation.py holds, is 0)."""
        if steady:
            if not self.n:
                self.first = frame
            self.n += 1
            self.last = frame
            if self.n > self.best:
                self.best = self.n
                self.best_first = self.first
                self.best_last = frame
        elif self.n and (not lag_x10 or frame - self.last > _SWING_BREAK):
            if self.n >= SWING_RUN:
                self.ended = True
            self.n = 0
