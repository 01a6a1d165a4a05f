"""The context a candidate spasm is judged in: what the limb was doing before it.

Ordinary life comes in bouts (typing, walking, a busy hand); spasms stand out of
rest. Per 10 ms frame this keeps the recent activity level outside episodes
(their tails excluded, fading over ~5 s, read as it was 40 ms ago, before the
rise that opens an episode), a leaky count of episodes (fading over ~20 s) and
the tail after the last episode. When an episode opens it stamps these, with the
EMG front end's burst counts and raised baseline, on the Episode. When it
closes, a spasm or a faint rise that came to nothing is kept out of them, so
that the next jerk is judged against ordinary activity only.
Integers only, fixed memory.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_TAIL_FRAMES = const(50)  # frames after an episode that are still its tail


class ActivityContext:
    """`emg`: the detector's EmgFeatures (burst counts and baseline are read and,
    after a spasm, reset)."""

    def __init__(self, emg):
        self._emg = emg
        self.cluster = 0  # leaky count of episodes (x65536)
        self.recent_peak = 0  # peak activation outside episodes (x256, so that it fades smoothly)
        self.after = 0  # frames left in the tail of the last episode
        self._hist = [0, 0, 0, 0]
        self._before = 0  # the activity level 40 ms ago
        self._busy = 0  # the front end's burst counts when the episode opened
        self._busy_long = 0

    def frame(self, fno, act, emg_ok, ep_open):
        self.cluster -= self.cluster >> 11
        rp = self.recent_peak
        rp -= rp >> 9
        if ep_open:
            self.after = _TAIL_FRAMES
        elif self.after:
            self.after -= 1
        elif act << 8 > rp and emg_ok:
            rp = act << 8  # (not the junk of a fault or of the frames after one)
        self.recent_peak = rp
        h = self._hist
        i = fno & 3
        self._before = h[i]
        h[i] = rp >> 8

    def opened(self, ep):
        fe = self._emg
        ep.busy = fe.busy >> 16
        ep.busy_long = fe.busy_long >> 16
        self._busy = fe.busy
        self._busy_long = fe.busy_long
        ep.cluster = self.cluster >> 16
        self.cluster += 65536
        ep.context = self._before
        ep.raised = (fe.base >> 8) * 10 // ((fe.floor >> 8) + 1)

    def closed(self, ep, spasm, on_x10):
        if not spasm and ep.peak < on_x10 and (ep.why == "faint" or ep.why == "short"):
            # a faint rise that came to nothing (opened early on the quiet
            # paths) is no episode of use, and no activity level to judge by
            if self.cluster >= 65536:
                self.cluster -= 65536
        elif ep.peak << 8 > self.recent_peak:
            self.recent_peak = ep.peak << 8
        if spasm:
            # a spasm is no ordinary activity: its own bursts (clonus beats) do
            # not make the next jerk look like hand use
            fe = self._emg
            if fe.busy > self._busy:
                fe.busy = self._busy
            if fe.busy_long > self._busy_long:
                fe.busy_long = self._busy_long
