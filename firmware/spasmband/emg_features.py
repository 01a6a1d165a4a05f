"""EMG features for the detector: the per-sample front end and the 10 ms frame.

Per EMG sample only a few integer operations run: two one-pole high-passes
(~20 Hz, remove electrode drift and motion artefact), subtraction of a running
100 ms mains template (100 ms holds whole periods of both 50 and 60 Hz, so hum
and all its harmonics go; the template holds still during bursts, and one
sample moves it by at most 4x the resting envelope, so bursts do not echo),
rectification and a 10-sample sum, and the raw min/max for the fault
checks. When a frame is complete it calls the detector back (`on_frame`).

Per frame: the EMG faults (lead-off, saturation, flatline) into the fault
monitor, three envelopes (fast ~15 ms, detection ~35 ms, slow ~160 ms), an
adaptive resting baseline (a median tracker, nearly frozen during episodes and
faults) and floor, activation (envelope / baseline, in tenths) and its sum over
80 ms, and the bursts and beats that the episode's rhythm trackers and the
hand-use counters need. Integers only, fixed memory (two small arrays).
"""

from array import array

from spasmband.sensor_faults import (
    FLAT_P2P_UV,
    FLATLINE,
    LEAD_OFF,
    LEAD_OFF_P2P_UV,
    SAT_UV,
    SATURATION,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PERIOD = const(100)  # mains template length: 5 periods of 50 Hz, 6 of 60 Hz
WARMUP = const(100)  # frames before detection starts (filters and baseline settle)
_LEARN = const(50)  # frames the mains template learns fast; the baseline starts after them
GUARD = const(100)  # frames of EMG ignored after an EMG fault clears
MIN_BASE = const(16)  # baseline floor: 1 uV (x16)
# Hysteresis (tenths of the slow envelope) of the beat tracker for clonus.
_BEAT_UP = const(12)
_BEAT_DOWN = const(9)


class EmgFeatures:
    """`faults`: the FaultMonitor; `ep`: the detector's Episode (read, and fed
    with rhythm crossings and wobble); `off_x10`: the offset level; `on_frame`:
    the detector's frame handler."""

    def __init__(self, faults, ep, off_x10, acc_on, on_frame):
        self._faults = faults
        self._ep = ep
        self._off = off_x10
        self.acc_on = acc_on
        self.acc_new = False  # set by the detector when an acc sample is waiting
        self.on_frame = on_frame
        # per-sample front end (x16 fixed point)
        self._ring = array("i", [0] * PERIOD)
        self._one = [0]  # `sample` feeds `samples` through it
        self._ri = 0
        self._tshift = 1  # template averaging: fast at start, then ~4 periods
        self._lim = 1 << 29  # largest step the template learns from one sample (x16)
        self._held = 0  # frames the template has been held during activity
        self._quiet = 0
        self._l1 = 0
        self._l2 = 0
        self._sum = 0
        self.n = 0  # samples in the frame so far
        self._hi = -(1 << 29)
        self._lo = 1 << 29
        self._first = True
        self._phi = 0  # previous frame's raw max and min
        self._plo = 0
        # frame state
        self.guard = 0  # frames left in the guard after an EMG fault
        self.drop = False  # an EMG fault began while a young EMG episode was open
        self._ef = 0  # fast envelope (uV x16), ~15 ms
        self._ed = 0  # detection envelope, ~35 ms
        self._em = 0  # rhythm reference envelope, ~160 ms
        self.act = 0  # activation: detection envelope / baseline (tenths)
        self.act_slow = 0  # the same on the slow envelope
        self.mid_ring = array("i", [0] * 8)  # the last 8 activations
        self.mid = 0  # their sum
        self.base = 0  # resting baseline (uV x16) << 8: median of the envelope
        self.floor = 0  # resting floor (uV x16) << 8: low quantile of the envelope
        self._burst_hi = False
        self._beat_hi = False
        self._act_hi = False
        self.busy = 0  # leaky count of recent bursts (x65536), fading over ~2.5 s
        self.busy_long = 0  # the same fading over ~20 s: hand use comes in bouts
        self.bursts = 0  # every burst so far (wraps harmlessly: only differences are used)
        self.envelope_uv = 0

    def sample(self, uv):
        """One EMG sample (int microvolts, 1 kHz)."""
        one = self._one
        one[0] = uv
        self.samples(one, 0, 1)

    def samples(self, buf, start, stop):
        """EMG samples buf[start:stop] (int microvolts, 1 kHz), in order: the hot path.

        The front end's state lives in locals through the loop (an attribute is
        a dictionary lookup in MicroPython) and goes back to the object only
        around the frame handler, which reads and resets it.
        """
        if start >= stop:
            return
        l1 = self._l1
        l2 = self._l2
        if self._first:
            # start the high-passes on the first sample, not on zero
            l1 = buf[start] << 4
            l2 = 0
            self._first = False
        hi = self._hi
        lo = self._lo
        r = self._ring
        ri = self._ri
        lim = self._lim
        nlim = -lim
        ts = self._tshift
        s = self._sum
        n = self.n
        for k in range(start, stop):
            uv = buf[k]
            if uv > hi:
                hi = uv
            if uv < lo:
                lo = uv
            x = uv << 4
            l1 += (x - l1) >> 3
            h = x - l1
            l2 += (h - l2) >> 3
            h -= l2
            # mains: subtract a running template of the last 100 ms periods
            d = h - r[ri]
            if d > lim:
                r[ri] += lim >> ts
            elif d < nlim:
                r[ri] += nlim >> ts
            else:
                r[ri] += d >> ts
            ri += 1
            if ri == PERIOD:
                ri = 0
            if d < 0:
                d = -d
            s += d
            n += 1
            if n >= 10 and (n >= 20 or not self.acc_on or self.acc_new):
                self._hi = hi
                self._lo = lo
                self._sum = s
                self.n = n
                self.on_frame()
                # the frame handler reset the sums and set the template's learning
                hi = self._hi
                lo = self._lo
                s = self._sum
                n = self.n
                lim = self._lim
                nlim = -lim
                ts = self._tshift
        self._l1 = l1
        self._l2 = l2
        self._ri = ri
        self._hi = hi
        self._lo = lo
        self._sum = s
        self.n = n

    def fade(self):
        """Once per frame, with or without EMG: the burst counts fade."""
        self.busy -= self.busy >> 8
        self.busy_long -= self.busy_long >> 11

    def frame(self, t, fno):
        """Envelopes, baseline, activation and EMG faults for one frame; True if usable."""
        faults = self._faults
        n = self.n
        hi = self._hi
        lo = self._lo
        s = self._sum
        if n != 10:
            s = s * 10 // n
        self._sum = 0
        self.n = 0
        self._hi = -(1 << 29)
        self._lo = 1 << 29
        p2p = hi - lo
        # mains pickup is judged over 20 ms (a whole 50 Hz period): a 10 ms
        # window can catch a sine near its zero crossing only
        hi2 = hi if hi > self._phi else self._phi
        lo2 = lo if lo < self._plo else self._plo
        self._phi = hi
        self._plo = lo
        sat = hi >= SAT_UV or lo <= -SAT_UV
        flat = (not sat) and p2p <= FLAT_P2P_UV
        loose = (not sat) and hi2 - lo2 >= LEAD_OFF_P2P_UV
        faults.frame(SATURATION, sat, t)
        faults.frame(FLATLINE, flat, t)
        faults.frame(LEAD_OFF, loose, t)
        # The mains template re-learns fast after a fault (which filled it with
        # junk) and holds still during a burst, which would otherwise leak into
        # it and echo every 100 ms; it cannot hold long (mains frequency drifts
        # by hundredths of a Hz, the hum then leaks out), so after 350 ms it learns again.
        # A burst's first samples, learned before the frame that notices the
        # burst, would echo every 100 ms for most of a second: once the template
        # is learned, one sample moves it by at most 4x the resting envelope.
        self._lim = (self.base >> 6) + 16
        if fno <= _LEARN or self.guard:
            self._lim = 1 << 29  # (still learning: no limit)
            self._tshift = 1
            self._held = 0
        elif fno <= WARMUP:
            self._tshift = 2  # no holding still while it is still being learned
        elif self.act >= self._off:
            self._held += 1
            self._quiet = 0
            self._tshift = 24 if self._held < 35 else 2
        else:
            self._quiet += 1
            if self._quiet >= 30:
                self._held = 0  # a new hold only after 300 ms of quiet
            self._tshift = 2
        ep = self._ep
        if sat or flat or loose or faults.emg_bad():
            # suspect from the first bad frame: an episode this young is the fault itself
            if ep.open and ep.source == 1 and t - ep.t_start < 500:
                self.drop = True
            self.guard = GUARD
        elif self.guard:
            self.guard -= 1
        # envelope in uV x16: mean |x| / 0.8 for noise-like EMG ~ sum / 8
        e = s >> 3
        self._ef += (e - self._ef) >> 1
        self._ed += (e - self._ed) >> 2
        self._em += (e - self._em) >> 4
        self.envelope_uv = self._ed >> 4
        self._track_baseline(fno)
        base = self.base >> 8
        if base < MIN_BASE:
            base = MIN_BASE
        act = self._ed * 10 // base
        self.act = act
        self.act_slow = self._em * 10 // base
        # activation summed over the last 80 ms: a matched filter for faint jerks
        i = fno & 7
        self.mid += act - self.mid_ring[i]
        self.mid_ring[i] = act
        self._rhythm(fno)
        if ep.open and self._em:
            w = self._ef - self._em
            ep.wobble += (w if w > 0 else -w) * 100 // self._em
        return self.guard == 0 and fno > WARMUP

    def _track_baseline(self, fno):
        ed = self._ed << 8
        fl = self.floor
        # resting floor: a low quantile, slow to rise (minutes), quick to fall
        if fno <= 20 or fl == 0 or ed < fl:
            self.floor = ed if fno <= 20 or fl == 0 else fl - (fl >> 6) - 1
        elif not self.guard:
            self.floor = fl + (fl >> 14) + 1
        b = self.base
        if fno <= _LEARN or b == 0:
            self.base = ed
            return
        # a median tracker: ~10 s either way; in the warm-up with large steps,
        # so that a jerk in it lifts the baseline by a few, not to its own level
        step = 5
        if fno > WARMUP:
            if self.guard:
                return
            if self._ep.open:
                if ed > b:
                    self.base = b + (b >> 15) + 1  # long activity is absorbed over minutes
                return
            step = 10
        if ed > b:
            self.base = b + (b >> step) + 1
        else:
            self.base = b - (b >> step) - 1

    def _rhythm(self, fno):
        """Bursts: the fast envelope swings well above the slow one and back.

        Steady contraction only wobbles by 20-30 %; clonic beats and hand-use
        bursts swing on and off, so the hysteresis is wide (1.5x up, 0.75x down).
        """
        ef = self._ef
        em = self._em
        ep = self._ep
        # activity: every rise of the fast envelope to 1.5x the baseline counts
        base = self.base >> 8
        if self._act_hi:
            if ef * 10 < base * 11:
                self._act_hi = False
        elif ef * 10 > base * 15:
            self._act_hi = True
            self.busy += 65536
            self.busy_long += 65536
            self.bursts = (self.bursts + 1) & 0xFFFF
        # beats: a finer swing of the fast envelope about the slow one (weak clonus
        # swings by a third or less); only its regularity is used
        if self._beat_hi:
            if ef * 10 < em * _BEAT_DOWN:
                self._beat_hi = False
        elif ef * 10 > em * _BEAT_UP and ef * 10 > base * self._off:
            self._beat_hi = True
            if ep.open:
                ep.beat.cross(fno)
        if self._burst_hi:
            if ef * 4 < em * 3:
                self._burst_hi = False
        elif ef * 2 > em * 3:
            if ef * 10 > base * self._off:
                self._burst_hi = True
                if ep.open:
                    ep.emg_rhythm.cross(fno)
