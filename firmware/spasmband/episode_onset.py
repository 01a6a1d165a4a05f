"""When the quiet signal between episodes opens one, and where its rise began.

Three paths, frame by frame (10 ms): the detection envelope 20 ms above the
onset level, or 50 ms above the midpoint of onset and offset (faint but
lasting activity); the slow envelope held above 1.2x the baseline for 80 ms
(a tonic spasm's slow rise shows there first); activation summed over 80 ms
above 1.2x (a faint jerk, or the first sign of a slow rise). The episode
starts where the activation last stood below the offset level.

MicroPython-compatible: a few integers, no allocation.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# The slow envelope's level (tenths of the baseline) and frames held ...
_SLOW_ON = const(12)
_SLOW_FRAMES = const(8)
# ... and the 80 ms activation sum (tenths x 8) that open an episode; the
# detector also counts the frames an open episode holds it (public: imported).
MID_ON = const(96)


class EpisodeOnset:
    def __init__(self, emg, ctx, on, off):
        self._emg = emg  # EmgFeatures: act_slow, mid
        self._ctx = ctx  # ActivityContext: after (the tail of an episode)
        self._on = on
        self._off = off
        self.t_rise = 0  # ms: where the rise began
        self._above = 0
        self._above_low = 0
        self._above_slow = 0

    def frame(self, t, act, source):
        """One frame with no episode open; True when one opens now (at t_rise).
        source: 1 EMG, 2 accelerometer alone."""
        emg = self._emg
        # a slow rise (tonic spasms rise over up to 2 s) shows first on the
        # slow envelope, which is quiet enough to be trusted at a lower level
        # (not in the tail of an episode, where it still holds the last one)
        if source == 1 and emg.act_slow >= _SLOW_ON and not self._ctx.after:
            self._above_slow += 1
        else:
            self._above_slow = 0
        if act < self._off:
            self.t_rise = t
            self._above = 0
            self._above_low = 0
            if self._above_slow < _SLOW_FRAMES and (source != 1 or emg.mid < MID_ON):
                return False
        if act >= self._on:
            self._above += 1
        if act * 2 >= self._on + self._off:
            self._above_low += 1
        else:
            self._above_low = 0
        return (
            self._above >= 2
            or self._above_low >= 5
            or self._above_slow >= _SLOW_FRAMES
            or (source == 1 and emg.mid >= MID_ON)
        )

    def opened(self):
        self._above = 0
        self._above_low = 0
        self._above_slow = 0

    def restart(self, t):
        """The open episode ended (closed, or dropped on a fault or a source
        change): a rise starts afresh at t."""
        self.t_rise = t
        self._above = 0
        self._above_low = 0
