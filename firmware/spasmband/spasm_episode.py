"""One candidate spasm episode: features gathered frame by frame, then a verdict.

The detector opens an Episode when activation rises above the onset threshold
and closes it after the offset hold. Features are plain integers updated in
place (no allocation per frame); spasm_verdict.py turns them into the event
tuple of the detector interface, or None when the episode looks like ordinary
life (walking rhythm, typing-like bursts, voluntary movement) rather than a
spasm.

Rhythm (clonus, gait, the limb's swing) comes from rhythm.py.
"""

from spasmband.rhythm import (
    CLONUS_MAX,
    CLONUS_MIN,
    SWING_LEAD_MS,
    SWING_RUN,
    SWING_TELL,
    BeatRuns,
    Rhythm,
    SwingRuns,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MYOCLONIC = const(1)
CLONIC = const(2)
TONIC = const(3)

# Longest burst still called a jerk (ms); longer non-rhythmic episodes are tonic.
_JERK_MAX_MS = const(1000)
# ... or whose activation stayed above half its peak for at most this long
# (ms) when the peak is this many times the onset level: a jerk with a tail.
_JERK_MAIN_MS = const(300)
_JERK_TAIL = const(3)
# Gait interval window in frames (0.8-2.5 Hz, with a little slack).
GAIT_MIN = const(38)
GAIT_MAX = const(130)
# A faint episode (below the onset level) counts when its activation summed over
# 80 ms reaches this (tenths x 8: ~1.4x the baseline): a faint jerk, not noise.
MID_EVENT = const(110)
# Frames a faint episode's 80 ms sum must hold at 1.2x before its live onset
# is announced (a slow rise holds there; a blip of noise does not).
_FAINT_HOLD = const(15)
# Least movement (mg per activation tenth, x10) of a clonus judged on its movement.
_CLONUS_ACC = const(8)
# Frames the limb must swing at 3-8 Hz (and through half the episode or more)
# for its movement alone to make a clonus.
_SWING_MIN = const(10)


class Episode:
    """Features of the open candidate episode."""

    def __init__(self):
        self.emg_rhythm = BeatRuns()
        self.beat = Rhythm()  # finer EMG beats (weak clonus)
        self.acc_rhythm = Rhythm()
        self.swing_runs = SwingRuns()  # runs of the limb's 3-8 Hz swing (oscillation.py)
        self.open = False
        self.clear(0, 0)

    def clear(self, t, source):
        self.t_start = t
        self.f_start = 0  # the detector's frame number at t_start (rhythm crossings count frames)
        self.run_announced = False  # a clonus run inside the episode was looked at for an onset
        self.run_t0 = -1  # ... and announced, with this start (ms; -1: none)
        self.t_out = t  # start reported (an earlier piece's when this continues it)
        self.follows = False  # continues an episode whose event is held back (merged into it)
        self.t_last = t  # last frame above the offset threshold
        self.source = source  # 1 EMG-driven, 2 acc-driven
        self.frames = 0
        self.above = 0  # frames above the onset threshold
        self.held = 0  # frames above the offset threshold
        self.split_level = 0  # mean activation of the long episode this burst split from
        self.on_level = 0  # the detector's onset level (activation x10)
        self.t_main = t  # last frame above the onset level and half the peak so far
        self.peak = 0  # activation x10
        self.mid_peak = 0  # peak of activation summed over 80 ms (x10 x 8)
        self.mid_held = 0  # frames that sum stood at 1.2x or more
        self.total = 0
        self.peak_acc = 0
        self.move_sum = 0  # movement summed over the frames (mg)
        self.jump = 0  # largest rise of movement between two frames (mg)
        self.pre_move = 0  # recent movement before the onset (mg)
        self.busy = 0  # burst density before the onset
        self.busy_long = 0  # bursts in the last ~20 s
        self.context = 0  # peak activation of recent episodes (ordinary activity level)
        self.raised = 10  # baseline over resting floor (tenths): ongoing light activity
        self.cluster = 0  # episodes opened in the last ~20 s
        self.wobble = 0  # sum over frames of |fast - slow envelope| / slow envelope (%)
        self.gsx = 0  # gravity vector at the onset (mg x16)
        self.gsy = 0
        self.gsz = 0
        self.g_shift = 0  # largest change of the gravity vector in the first 3 s (mg, L1)
        self.osc = 0  # frames the limb swung at 3-8 Hz (oscillation.py)
        self.osc_dhz = 0  # at what frequency, last seen (tenths of Hz)
        self.acc_seen = False
        self.announced = False  # stood long enough to be a candidate (pieces chain to it)
        self.told = False  # its onset was announced live
        self.why = None  # why the last verdict was "not a spasm" (diagnostics)
        self.emg_rhythm.reset()
        self.beat.reset()
        self.acc_rhythm.reset()
        self.swing_runs.reset()

    def add(self, act_x10, dyn_mg, on_x10, off_x10, t, hold_x10):
        self.on_level = on_x10
        self.frames += 1
        self.total += act_x10
        if act_x10 > self.peak:
            self.peak = act_x10
        if act_x10 >= on_x10:
            self.above += 1
            if act_x10 * 2 >= self.peak:
                self.t_main = t
        if hold_x10 >= off_x10:
            self.t_last = t
            self.held += 1
        if dyn_mg > self.peak_acc:
            self.peak_acc = dyn_mg
        self.move_sum += dyn_mg

    def kind(self, duration):
        if self.clonus_beats() or self.acc_clonus():
            return CLONIC
        if duration <= _JERK_MAX_MS:
            return MYOCLONIC
        if self.t_main - self.t_start <= _JERK_MAIN_MS and self.peak >= _JERK_TAIL * self.on_level:
            # one strong burst and a long faint tail (the limb still swinging
            # and shaking the electrodes): a jerk
            return MYOCLONIC
        return TONIC

    def acc_clonus(self):
        """The limb oscillates at 3-8 Hz: clonus, unless it is a stiff limb's tremor.

        A tonic spasm's tremor (8-12 Hz, with missed crossings) can look the same;
        it skips many crossings and moves the band little for its activation
        (clonus swings the limb by ~12 mg per unit of SNR, tremor by ~3).
        """
        r = self.acc_rhythm
        if not self.swings():
            if not r.regular(CLONUS_MIN, CLONUS_MAX, 5, self.frames):
                return False
            if r.skipped * 2 >= r.n:
                return False
        return self.source != 1 or self.peak_acc * 10 >= _CLONUS_ACC * self.peak

    def swing_run(self):
        """One run of the 3-8 Hz swing lasted long enough to be a clonus of its own."""
        return self.swing_runs.best >= SWING_RUN

    def swing_told(self):
        """The current run of the swing is sure enough for a live onset (its
        event needs the longer run of swing_run())."""
        return self.swing_runs.n >= SWING_TELL

    def swing_start(self, first):
        """When a run of the swing whose first frame of reading is `first` began (ms)."""
        return self.ms_at(first) - SWING_LEAD_MS

    def swings(self):
        """The limb swung at 3-8 Hz through most of the episode (oscillation.py)."""
        return self.osc >= _SWING_MIN and self.osc * 2 >= self.frames

    def features(self):
        """A snapshot for diagnostics (the detector's `trace`): allocates, not on the band."""
        return (
            self.t_start,
            self.t_last,
            self.why,
            self.peak,
            self.busy,
            self.context,
            self.pre_move,
            self.g_shift,
            self.peak_acc,
            self.jump,
            self.raised,
            self.cluster,
            self.wobble // (self.frames or 1),
            (self.emg_rhythm.n, self.emg_rhythm.skipped, self.emg_rhythm.cv100()),
            (self.acc_rhythm.n, self.acc_rhythm.skipped, self.acc_rhythm.cv100()),
            self.kind(self.t_last - self.t_start + 10),
            self.busy_long,
            self.move_sum // (self.frames or 1),
            (self.beat.n, self.beat.skipped, self.beat.cv100()),
        )

    def clonus_beats(self):
        """Its EMG bursts, or else its finer beats, keep time at 3-8 Hz."""
        if self.emg_rhythm.regular(CLONUS_MIN, CLONUS_MAX, 5, self.frames):
            return True
        # finer beats alone: more of them (hand use has bursts too)
        return self.beat.regular(CLONUS_MIN, CLONUS_MAX, 8, self.frames)

    def beating(self):
        """Its EMG beats at 3-8 Hz (a clonus so far, or a run of steady beats now)."""
        return self.emg_rhythm.run >= 2 or self.clonus_beats()

    def run_start(self):
        """When the current run of steady beats began (ms)."""
        return self.ms_at(self.emg_rhythm.run_first)

    def ms_at(self, frame):
        """The time (ms) of the detector's frame number `frame` in this episode."""
        return self.t_start + (frame - self.f_start) * 10

    def walking(self, params):
        """The limb moved throughout the episode, or steps beat in its movement."""
        if self.move_sum >= params["move_reject_mg"] * self.frames:
            return True
        return self.acc_rhythm.regular(GAIT_MIN, GAIT_MAX, 3, self.frames)

    def plausible(self, params):
        """Worth a live onset now (the verdict at the end may still say otherwise):
        the limb was at rest, or this stands out of what it was doing, or it
        beats like a clonus. Not one more step of a walk or burst of typing,
        not a knock's ringing, not a faint blip of the resting noise."""
        if self.source != 1 or self.peak >= params["strong_x10"]:
            return True
        if self.knock_rise(params, 9):
            return False  # a knock on the band so far
        if self.osc >= _SWING_MIN:
            return True  # the limb swings at 3-8 Hz: a clonus, however faint its EMG
        if self.peak < params["onset_ratio_x10"] and self.mid_peak < MID_EVENT:
            if self.mid_held < _FAINT_HOLD:
                return False  # too faint to count yet, and no slow rise that holds
        if self.peak >= 2 * self.context:
            return True
        if self.busy < 4 and self.pre_move < params["move_reject_mg"]:
            return True
        return self.beating()

    def ordinary_now(self, params):
        """Not above the recent activity level, amid other activity (hand use, gait)."""
        if self.source != 1:
            return False
        if self.cluster >= 3 and self.peak < 40:
            return True  # the fourth weak burst within ~20 s: a pattern of use, not a jerk
        if self.peak >= 2 * self.context:
            return False
        moving = self.pre_move >= params["move_reject_mg"]
        return self.busy >= 4 or moving or self.raised >= 14

    def impact(self, params, moving):
        """A knock on the band: movement rises to (nearly) its peak within one frame.

        A limb jerk swings at 3-10 Hz, so its acceleration takes two frames or
        more (25 ms or more) to build up; an impact arrives within one. A fast
        jerk (10 Hz) gets 70-90 % of the way in one frame, so there the EMG
        decides: a jerk carries ~1 activation tenth per 1-2 mg of movement, a
        knock's electrode artefact far less. A rise of 90 % or more within one
        frame is a knock whatever the EMG (its artefact can be large too),
        except amid a walk: heel strikes come with every step, and a strong
        burst (which counts whatever the context) beside one is no knock.
        """
        if not self.knock_rise(params, 7):
            return False
        if moving and self.source == 1 and self.peak >= params["strong_x10"]:
            return False  # heel strikes come with every step: a walk's are no knock
        if self.jump * 10 >= self.peak_acc * 9:
            return True
        return self.source != 1 or self.peak * 8 < self.peak_acc

    def knock_rise(self, params, tenths):
        """The band's movement was large and rose this many tenths of its peak within one frame."""
        return (
            self.peak_acc >= 4 * params["acc_jerk_mg"] and self.jump * 10 >= self.peak_acc * tenths
        )
