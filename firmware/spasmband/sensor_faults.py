"""Sensor fault monitor for the detector: lead-off, saturation, flatline, acc dropout.

Works on 10 ms frames (the detector's 100 Hz rate), not on single samples, so it
costs nothing per EMG sample beyond the raw min/max the detector keeps anyway.
A fault becomes active after a run of bad frames and ends after a run of good
ones; it is reported once, when it ends, as ("fault", t_ms, fault, duration_ms).
Plain MicroPython-compatible Python: integers only, no allocation per frame.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


LEAD_OFF = const(1)
SATURATION = const(2)
FLATLINE = const(3)
ACC_DROPOUT = const(4)

# The band's EMG front end spans +-10 mV; a sample at 99 % of that is clipped.
EMG_FULL_SCALE_UV = const(10000)
SAT_UV = const(9900)
# A floating electrode picks up mains hum of millivolts: no muscle gives a
# 20 ms peak-to-peak this large at the skin under the band.
LEAD_OFF_P2P_UV = const(2000)
# Live electrodes always show some noise; a 10 ms block this flat is a dead input.
FLAT_P2P_UV = const(1)

# Bad frames needed to raise each fault, good frames needed to clear it.
_RAISE = (0, 4, 2, 20, 50)
_CLEAR = const(20)


class FaultMonitor:
    """Counts bad and good frames per fault and queues ended faults."""

    def __init__(self, out):
        self._out = out  # list the detector pops from
        self.active = 0  # bitmask 1 << (fault - 1)
        self._bad = [0, 0, 0, 0, 0]
        self._good = [0, 0, 0, 0, 0]
        self._start = [0, 0, 0, 0, 0]
        self._end = [0, 0, 0, 0, 0]
        self._run = [0, 0, 0, 0, 0]  # start time of the current bad run

    def frame(self, fault, bad, t):
        """One 10 ms frame ending at t (ms) was bad (True) or good for `fault`."""
        bit = 1 << (fault - 1)
        if bad:
            self._good[fault] = 0
            if self._bad[fault] == 0:
                self._run[fault] = t - 10
            self._bad[fault] += 1
            if not (self.active & bit) and self._bad[fault] >= _RAISE[fault]:
                self.active |= bit
                self._start[fault] = self._run[fault]
            return
        self._bad[fault] = 0
        if self.active & bit:
            if self._good[fault] == 0:
                self._end[fault] = t - 10
            self._good[fault] += 1
            if self._good[fault] >= _CLEAR:
                self._ended(fault, bit, self._end[fault])

    def finish(self, t):
        """End of input at t (ms): report the faults still active as ending there."""
        for fault in range(1, 5):
            bit = 1 << (fault - 1)
            if self.active & bit:
                self._ended(fault, bit, t)

    def _ended(self, fault, bit, end):
        self.active &= ~bit
        self._bad[fault] = 0
        self._good[fault] = 0
        start = self._start[fault]
        self._out.append(("fault", start, fault, end - start))

    def emg_bad(self):
        """True while any EMG fault (lead-off, saturation, flatline) is active."""
        return (self.active & 7) != 0

    def acc_bad(self):
        return (self.active & 8) != 0
