"""The limb oscillating at 3-8 Hz, from the autocorrelation of its movement.

Clonus swings the limb at its beat frequency; even a weak clonus, whose EMG
bursts sink into the noise and whose crossings of a fixed movement level come
and go, moves the band by 20-40 mg against 2-6 mg of sensor noise. Summed over
a second or so, the movement's autocorrelation shows such a rhythm plainly:
high at one period (3-8 Hz), strongly negative at half of it. Noise, a
jerk's single damped swing, the ringing of a knock (15-30 Hz, gone in a few
frames), a stiff limb's tremor (8-12 Hz: its autocorrelation is high at half
the lag too) and gait (0.8-2.5 Hz) do not.

Fed with the movement on the three axes every 10 ms. It works on sums of two
samples (50 Hz is plenty below 8 Hz), band-passed to 2.7-9 Hz on each axis,
and reads the axis that moves most there. The band-pass is what finds a
clonus amid a walk: the arm's swing (0.8-2.2 Hz, up to 0.5 g) and its heel
strikes bury a moderate clonus's 20-100 mg on the raw movement, and a
clonus's own direction is seldom the swing's; 2.7-9 Hz keeps the clonus
and little of the walk. The filter rings near its lower edge for a second
after a large slow movement (a reach, a step), so periods are read from
3.1 Hz up (a 3.0 Hz clonus still beats in the EMG: rhythm.py), and when the
movement stops dead its memory is cleared with the sums. Amid a walk the
movement goes on when a clonus stops, so the reading also stops when the
band-passed power falls under half its mean over the sums.

Per 20 ms: three sections of a 6th-order filter on each axis and 19 leaky
products, integers only (clipped so that every sum stays a small int on the
band), five small arrays.
"""

from array import array

from spasmband.acc_features import main_axis

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


LAG_MIN = const(7)  # 50 Hz samples: 7.1 Hz
LAG_MAX = const(16)  # 3.1 Hz
_N = const(19)  # ring of the last samples (lags 0..LAG_MAX + 1)
_LEAK = const(6)  # the sums forget over 64 samples (~1.3 s)
_CLIP = const(1000)  # mg (of a sum of two samples): a knock must not swamp the sums
# The movement's power (64 x mean square of the pair sums, mg^2) below which
# no rhythm is read: ~8 mg RMS, the sensor noise.
_MIN_POWER = const(4096)
_HOLD = const(5)  # steps (20 ms) the rhythm must hold before it counts
_FILL = const(32)  # samples the sums need before they are read
_GRACE = const(50)  # ... and may fail before it ends (1 s)
_FADE = const(16)  # power now (8 samples) under half the sums' (64): the swing fades
# Band-pass 2.7-9 Hz at 50 Hz: scipy.signal.butter(3, [2.7, 9], "bandpass", fs=50,
# output="sos"), coefficients x4096; the sections' numerators are 0.0323 x
# (1 2 1), (1 0 -1) and (1 -2 1).
_G = const(132)
_A11 = const(-4645)
_A12 = const(1682)
_A21 = const(-3047)
_A22 = const(2397)
_A31 = const(-6951)
_A32 = const(3326)
_IN_CLIP = const(2000)  # mg (of a sum of two samples) into the filter: 4 g keeps it in small ints


class Oscillation:
    """The swing's period while the limb oscillates at 3-8 Hz (`lag_x10`, `freq_dhz()`)."""

    def __init__(self):
        self._pair = array("i", [0] * 3)  # the first sample of each axis's pair
        self._bp = array("i", [0] * 24)  # filter state, 8 per axis
        self._env = array("i", [0] * 3)  # band-passed movement per axis (~0.3 s, mg x16)
        self._axis = 0  # the axis read
        self._ring = array("i", [0] * (2 * _N))
        self._r = array("i", [0] * _N)  # leaky autocorrelation at lags 0..LAG_MAX + 1
        self._i = 0
        self._odd = False
        self._run = 0
        self._miss = 0  # steps the rhythm has failed since it last held
        self._now = 0  # power over the last ~8 samples (x8): the swing goes on
        self._nowf = 0  # ... of the band-passed movement: the swing is as strong as it was
        self._fill = 0  # samples summed since the sums were last cleared
        self.lag_x10 = 0  # period in 50 Hz samples x10 while the rhythm holds, else 0
        self.steady = False  # it holds in this very step (read, and not in a break)

    def held_ms(self):
        """How long the rhythm has held without a break (ms; 0 while there is none)."""
        return self._run * 20 if self.lag_x10 else 0

    def frame(self, x, y, z):
        """One 10 ms movement sample (mg, signed, per axis, gravity removed)."""
        pair = self._pair
        if not self._odd:
            pair[0] = x
            pair[1] = y
            pair[2] = z
            self._odd = True
            return
        self._odd = False
        env = self._env
        x += pair[0]
        y += pair[1]
        z += pair[2]
        bx = self._band(0, x)
        by = self._band(8, y)
        bz = self._band(16, z)
        env[0] += (((bx if bx > 0 else -bx) << 4) - env[0]) >> 4
        env[1] += (((by if by > 0 else -by) << 4) - env[1]) >> 4
        env[2] += (((bz if bz > 0 else -bz) << 4) - env[2]) >> 4
        k = main_axis(self._axis, env[0], env[1], env[2])
        self._axis = k
        # the swing goes on while its axis moves at all: read on the movement
        # itself, not on the filter's output, which rings after a swing stops
        raw = x if k == 0 else (y if k == 1 else z)
        if raw > _CLIP:
            raw = _CLIP
        elif raw < -_CLIP:
            raw = -_CLIP
        x = bx if k == 0 else (by if k == 1 else bz)
        if x > _CLIP:
            x = _CLIP
        elif x < -_CLIP:
            x = -_CLIP
        ring = self._ring
        r = self._r
        i = self._i
        # each sample is stored twice, N apart: the lags read one straight run
        ring[i] = x
        ring[i + _N] = x
        now = self._now + raw * raw - (self._now >> 3)
        self._now = now
        self._nowf += x * x - (self._nowf >> 3)
        j = i + _N
        for lag in range(_N):
            r[lag] += x * ring[j - lag] - (r[lag] >> _LEAK)
        fill = self._fill
        if now * 32 < r[0] and r[0] >= _MIN_POWER:
            # the swing has stopped (sunk below a quarter of its power): forget
            # it, or the next movement would be read against its rhythm
            for lag in range(_N):
                r[lag] = 0
            bp = self._bp
            for n in range(24):
                bp[n] = 0  # (and the filter's memory of it, or its ringing reads as a swing)
            fill = 0
        elif fill < _FILL:
            fill += 1
        self._fill = fill
        i += 1
        if i == _N:
            i = 0
        self._i = i
        self._judge(r)

    def _band(self, i, x):
        """The band-pass on one axis (its state at self._bp[i:i + 8]); x: a pair sum (mg)."""
        if x > _IN_CLIP:
            x = _IN_CLIP
        elif x < -_IN_CLIP:
            x = -_IN_CLIP
        s = self._bp
        x1 = s[i]
        u1 = s[i + 2]
        u2 = s[i + 3]
        v1 = s[i + 4]
        v2 = s[i + 5]
        w1 = s[i + 6]
        u = ((x + 2 * x1 + s[i + 1]) * _G - _A11 * u1 - _A12 * u2 + 2048) >> 12
        v = ((u - u2) * 4096 - _A21 * v1 - _A22 * v2 + 2048) >> 12
        w = ((v - 2 * v1 + v2) * 4096 - _A31 * w1 - _A32 * s[i + 7] + 2048) >> 12
        s[i + 1] = x1
        s[i] = x
        s[i + 3] = u1
        s[i + 2] = u
        s[i + 5] = v1
        s[i + 4] = v
        s[i + 7] = w1
        s[i + 6] = w
        return w

    def _judge(self, r):
        r0 = r[0]
        # enough movement, summed long enough (frame() has cleared the sums
        # when the swing stopped, so they are never read past it)
        # (and as strong now as over the sums: amid a walk the movement goes
        # on when a clonus stops, and the sums remember its rhythm for a second)
        if r0 < _MIN_POWER or self._fill < _FILL or self._nowf * _FADE < r0:
            self._fail()  # (most of the time: at rest, nothing to read)
            return
        # the period: the first peak (half the power or more) after the
        # autocorrelation has gone negative. A tremor's (8-12 Hz) comes before
        # LAG_MIN; a later one is its second or third period. A true peak,
        # above the next lag: one still rising at LAG_MAX lies below 3.1 Hz,
        # near the band-pass's lower edge, where it rings for a second after
        # a reach or a step.
        best = 0
        neg = False
        for lag in range(2, LAG_MAX + 1):
            v = r[lag]
            if v < 0:
                neg = True
            elif neg and v * 2 >= r0 and v >= r[lag + 1]:
                best = lag
                break
        # clearly negative at half the period, as a swing is
        if best < LAG_MIN or r[best >> 1] * 5 > -r0 or r[(best + 1) >> 1] * 5 > -r0:
            self._fail()
            return
        self._run += 1
        self._miss = 0
        if self._run < _HOLD:
            return
        self.steady = True
        # the peak between samples: a parabola through the three around it
        rb = r[best]
        lo = r[best - 1]
        hi = r[best + 1]
        d = lo - 2 * rb + hi
        frac = 5 * (lo - hi) // d if d < 0 else 0
        self.lag_x10 = best * 10 + frac

    def _fail(self):
        self.steady = False
        if self.lag_x10 and self._miss < _GRACE:
            # a weak swing's reading comes and goes: a short break is no end
            self._miss += 1
            self._run += 1
        else:
            self._run = 0
            self.lag_x10 = 0

    def freq_dhz(self):
        """The rhythm's frequency in tenths of Hz (0 while there is none)."""
        lag = self.lag_x10
        return 5000 // lag if lag else 0
