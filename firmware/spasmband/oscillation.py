"""The limb oscillating at 3-8 Hz, from the autocorrelation of its movement.

Clonus swings the limb at its beat frequency; even a weak clonus, whose EMG
bursts sink into the noise and whose crossings of a fixed movement level come
and go, moves the band by 20-40 mg against 2-6 mg of sensor noise. Summed over
a second or so, the movement's autocorrelation shows such a rhythm plainly:
high at one period (3-8 Hz), strongly negative at half of it. Noise, a
jerk's single damped swing, the ringing of a knock (15-30 Hz, gone in a few
frames), a stiff limb's tremor (8-12 Hz: its autocorrelation is high at half
the lag too) and gait (0.8-2.5 Hz) do not.

Fed with the signed movement on the accelerometer's main axis every 10 ms; it
works on sums of two samples (50 Hz is plenty below 8 Hz): 18 leaky products
per 20 ms, integers only (clipped so that the sums stay small ints on the
band), two small arrays.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


LAG_MIN = const(7)  # 50 Hz samples: 7.1 Hz
LAG_MAX = const(17)  # 2.9 Hz
_N = const(18)  # ring of the last samples (LAG_MAX + 1)
_LEAK = const(6)  # the sums forget over 64 samples (~1.3 s)
_CLIP = const(1000)  # mg (of a sum of two samples): a knock must not swamp the sums
# The movement's power (64 x mean square of the pair sums, mg^2) below which
# no rhythm is read: ~8 mg RMS, the sensor noise.
_MIN_POWER = const(4096)
_HOLD = const(5)  # steps (20 ms) the rhythm must hold before it counts
_FILL = const(32)  # samples the sums need before they are read
_GRACE = const(50)  # ... and may fail before it ends (1 s)


class Oscillation:
    """The swing's period while the limb oscillates at 3-8 Hz (`lag_x10`, `freq_dhz()`)."""

    def __init__(self):
        self._ring = array("i", [0] * (2 * _N))
        self._r = array("i", [0] * _N)  # leaky autocorrelation at lags 0..LAG_MAX
        self._i = 0
        self._first = 0
        self._odd = False
        self._run = 0
        self._miss = 0  # steps the rhythm has failed since it last held
        self._now = 0  # power over the last ~8 samples (x8): the swing goes on
        self._fill = 0  # samples summed since the sums were last cleared
        self.lag_x10 = 0  # period in 50 Hz samples x10 while the rhythm holds, else 0
        self.steady = False  # it holds in this very step (read, and not in a break)

    def held_ms(self):
        """How long the rhythm has held without a break (ms; 0 while there is none)."""
        return self._run * 20 if self.lag_x10 else 0

    def frame(self, x):
        """One 10 ms movement sample (mg, signed, on the main axis)."""
        if not self._odd:
            self._first = x
            self._odd = True
            return
        self._odd = False
        x += self._first
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
        now = self._now + x * x - (self._now >> 3)
        self._now = now
        j = i + _N
        for lag in range(_N):
            r[lag] += x * ring[j - lag] - (r[lag] >> _LEAK)
        fill = self._fill
        if now * 32 < r[0] and r[0] >= _MIN_POWER:
            # the swing has stopped (sunk below a quarter of its power): forget
            # it, or the next movement would be read against its rhythm
            for lag in range(_N):
                r[lag] = 0
            fill = 0
        elif fill < _FILL:
            fill += 1
        self._fill = fill
        i += 1
        if i == _N:
            i = 0
        self._i = i
        self._judge(r)

    def _judge(self, r):
        r0 = r[0]
        # enough movement, summed long enough (frame() has cleared the sums
        # when the swing stopped, so they are never read past it)
        if r0 < _MIN_POWER or self._fill < _FILL:
            self._fail()  # (most of the time: at rest, nothing to read)
            return
        # the period: the first peak (half the power or more) after the
        # autocorrelation has gone negative. A tremor's (8-12 Hz) comes before
        # LAG_MIN; a later one is its second or third period.
        best = 0
        neg = False
        for lag in range(2, LAG_MAX + 1):
            v = r[lag]
            if v < 0:
                neg = True
            elif neg and v * 2 >= r0 and (lag == LAG_MAX or v >= r[lag + 1]):
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
        hi = r[best + 1] if best < LAG_MAX else rb
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
