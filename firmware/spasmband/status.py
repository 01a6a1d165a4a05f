"""The STATUS frame and the battery level.

Battery: millivolts from the board (ADC behind a 1:2 divider on the real band),
mapped to percent with a piecewise-linear LiPo discharge curve, averaged over
the last readings so the level does not jitter with load.
"""

from protocol import codec

# (mV, percent) points of a 1-cell LiPo at light load, falling
_CURVE = ((4200, 100), (4100, 90), (3950, 75), (3850, 55), (3780, 40),
          (3700, 25), (3600, 10), (3450, 3), (3300, 0))
_AVG = 8


def battery_pct(mv):
    if mv >= _CURVE[0][0]:
        return 100
    for i in range(1, len(_CURVE)):
        v1, p1 = _CURVE[i]
        if mv >= v1:
            v0, p0 = _CURVE[i - 1]
            return p1 + (p0 - p1) * (mv - v1) // (v0 - v1)
    return 0


class Battery:
    def __init__(self):
        self._buf = [0] * _AVG
        self._n = 0
        self._i = 0
        self.mv = 0
        self.pct = 0

    def sample(self, mv):
        self._buf[self._i] = mv
        self._i = (self._i + 1) % _AVG
        if self._n < _AVG:
            self._n += 1
        s = 0
        for k in range(self._n):
            s += self._buf[k]
        self.mv = s // self._n
        self.pct = battery_pct(self.mv)
        return self.pct


def status_fields(app):
    """The STATUS field dict from the running app's state."""
    log = app.log
    det = app.sampler.det
    state = 0
    if app.timebase.synced():
        state |= codec.STATE_SYNCED
    if app.signal.on:
        state |= codec.STATE_STREAMING
    if app.board.radio.connected() and app.board.radio.secure():
        state |= codec.STATE_BONDED
    fw = app.board.fw_version
    return {
        "boot": app.timebase.boot,
        "uptime_ms": app.timebase.now() & 0xFFFFFFFF,
        "battery_pct": app.battery.pct,
        "battery_mv": min(app.battery.mv, 0xFFFF),
        "quality": max(0, min(100, det.quality)),
        "faults": det.faults & 15,
        "log_used": min(log.unacked(), 0xFFFF),
        "log_capacity": min(log.capacity, 0xFFFF),
        "log_overwritten": log.overwritten & 0xFFFFFFFF,
        "last_seq": log.last_seq(),
        "acked_seq": log.acked_seq,
        "state": state,
        "fw_major": fw[0],
        "fw_minor": fw[1],
        "fw_patch": fw[2],
    }
