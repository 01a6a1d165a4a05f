"""Accelerometer features for the detector, one 10 ms frame at a time.

Gravity is tracked per axis by a slow low-pass (~0.3 s); what is left is
movement. From it: the movement magnitude (L1, mg) and its envelopes (~80 ms
for detection without EMG, ~1.3 s for "was the arm already moving"), the rise
of movement within one frame (impacts rise within one, limb jerks take two or
more), recent maxima (an episode opens a few frames after its EMG rises, and
the movement that came with it may come first), upward crossings of the signed
movement for rhythm (clonus, gait), the gravity vector for posture changes,
and the dropout check (a dead sensor repeats one value or reads ~0 g).
Integers only; the state is a dozen attributes.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


QUIET_MG = const(12)  # hysteresis band for rhythm crossings of the signed movement
DEAD_MG = const(200)  # |x| + |y| + |z| below this is no accelerometer on Earth


def main_axis(k, ex, ey, ez):
    """The axis (0-2) that moves most by the envelopes ex, ey, ez, staying with
    axis k unless another moves clearly more (25 %): on a near tie, flipping
    between two axes would make crossings and jumps of its own."""
    cur = ex if k == 0 else (ey if k == 1 else ez)
    top = ex if ex >= ey and ex >= ez else (ey if ey >= ez else ez)
    if cur * 5 < top * 4:
        return 0 if top == ex else (1 if top == ey else 2)
    return k


class AccFeatures:
    def __init__(self):
        self.gx = 0  # gravity per axis (mg x16)
        self.gy = 0
        self.gz = 0
        self.dyn = 0  # movement this frame (mg, L1)
        self.jump = 0  # rise of movement since the last frame (mg)
        self.recent_jump = 0  # fading maxima over ~50 ms
        self.recent_dyn = 0
        self.mv = 0  # movement envelope ~80 ms (mg x16)
        self.mvs = 0  # recent movement ~1.3 s (mg x16)
        self.crossed = False  # the signed movement crossed upward this frame
        self.sgn = 0  # signed movement on the axis that moves most (mg)
        self.dx = 0  # movement per axis (mg, signed)
        self.dy = 0
        self.dz = 0
        self._hi = False
        self._last = -1
        self._ex = 0  # movement envelope per axis (~0.3 s, mg x16): picks the axis for rhythm
        self._ey = 0
        self._ez = 0
        self._axis = 0  # the axis rhythm is read on

    def frame(self, x, y, z):
        """Update from one sample (mg); returns True when the sensor looks dead."""
        key = (x & 0x3FF) | ((y & 0x3FF) << 10) | ((z & 0x3FF) << 20)
        stuck = key == self._last
        self._last = key
        mag = (x if x > 0 else -x) + (y if y > 0 else -y) + (z if z > 0 else -z)
        if self.gx == 0 and self.gy == 0 and self.gz == 0:
            self.gx = x << 4
            self.gy = y << 4
            self.gz = z << 4
        self.gx += ((x << 4) - self.gx) >> 5
        self.gy += ((y << 4) - self.gy) >> 5
        self.gz += ((z << 4) - self.gz) >> 5
        dx = x - (self.gx >> 4)
        dy = y - (self.gy >> 4)
        dz = z - (self.gz >> 4)
        self.dx = dx
        self.dy = dy
        self.dz = dz
        # rhythm is read on the axis that moves most (a sum of the axes can
        # cancel out for some directions of swing)
        ax = dx if dx > 0 else -dx
        ay = dy if dy > 0 else -dy
        az = dz if dz > 0 else -dz
        self._ex += ((ax << 4) - self._ex) >> 5
        self._ey += ((ay << 4) - self._ey) >> 5
        self._ez += ((az << 4) - self._ez) >> 5
        k = main_axis(self._axis, self._ex, self._ey, self._ez)
        self._axis = k
        sgn = dx if k == 0 else (dy if k == 1 else dz)
        self.sgn = sgn
        dyn = ax + ay + az
        jump = dyn - self.dyn
        self.jump = jump
        rj = self.recent_jump - (self.recent_jump >> 2)
        self.recent_jump = jump if jump > rj else rj
        rd = self.recent_dyn - (self.recent_dyn >> 2)
        self.recent_dyn = dyn if dyn > rd else rd
        self.dyn = dyn
        self.mv += ((dyn << 4) - self.mv) >> 3
        self.mvs += ((dyn << 4) - self.mvs) >> 7
        self.crossed = False
        if self._hi:
            if sgn < -QUIET_MG:
                self._hi = False
        elif sgn > QUIET_MG:
            self._hi = True
            self.crossed = True
        return stuck or mag < DEAD_MG

    def shift_from(self, gx, gy, gz):
        """How far gravity has turned from (gx, gy, gz) (mg x16 each), in mg (L1)."""
        a = self.gx - gx
        b = self.gy - gy
        c = self.gz - gz
        return ((a if a > 0 else -a) + (b if b > 0 else -b) + (c if c > 0 else -c)) >> 4
