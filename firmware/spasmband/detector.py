"""The band's streaming spasm detector (the one detector: firmware, simulator and tools).

Feed it one EMG sample at a time (int microvolts, 1 kHz) and one accelerometer
sample per 10 ms (int mg, 100 Hz): 10 EMG samples, then the acc sample of the
same 10 ms. Pop results with `pop()`:

    ("onset", t_ms, kind, confidence, act_x10)      live announcement (kind 0: not known yet)
    ("event", t_ms, duration_ms, kind, severity, confidence,
              peak_act_x10, mean_act_x10, peak_acc_mg, freq_dhz, modalities)
    ("fault", t_ms, fault, duration_ms)              when the fault ends

Signal path. Per EMG sample only a few integer operations run: two one-pole
high-passes (~20 Hz, remove electrode drift and motion artefact), subtraction
of a running 100 ms mains template (100 ms holds whole periods of both 50 and
60 Hz, so hum and all its harmonics go; the template holds still during bursts
so they do not echo), rectification and a 10-sample sum. Everything else runs
on 10 ms frames: envelopes, an adaptive resting baseline (a median tracker,
nearly frozen during episodes and faults) and floor, onset and offset with
hysteresis, EMG-envelope and acc rhythm (clonus 3-8 Hz, gait 0.8-2.5 Hz),
movement and posture from the accelerometer (acc_features.py), sensor faults
(sensor_faults.py), and the verdict on each episode (spasm_episode.py).
Activation is the envelope relative to the resting baseline, in tenths.

Onsets. An episode opens on the detection envelope (20 ms above the onset
level, or 50 ms above the midpoint of onset and offset), on the slow envelope
held above 1.2x the baseline for 80 ms (a tonic spasm's slow rise shows there
first), or on activation summed over 80 ms above ~1.35x (a faint jerk). Its
onset is announced 30 ms after the rise began, whatever the context: a live
alert must be early, and an announcement that no event follows costs nothing
but a notification (the verdict on the whole episode decides the event).
Episodes that open on the quieter paths and never reach the onset level must
reach 1.45x on the 80 ms sum to count.

Pieces. An episode that opens within 1.5 s of the last one's end continues it
(weak clonus waxes and wanes, a weak tonic spasm dips below the offset level):
it keeps the start the first piece was announced with, and when an earlier
piece made an event, the two become one event. So each event is held back
until 1.5 s of quiet have passed (pop order is unchanged; the live onset is
not delayed).

With EMG absent the accelerometer drives detection alone (jerks and clonus
only; a tonic spasm barely moves the band) at lower confidence. While a
configured EMG input is faulted nothing is detected (only the fault is
reported): movement alone raised too many false alarms to stand in for it.

MicroPython-compatible: integers only on the hot path, fixed memory (one
100-entry array and a few dozen attributes), no allocation per sample.
"""

from array import array

from spasmband.acc_features import AccFeatures
from spasmband.sensor_faults import (
    ACC_DROPOUT,
    FLAT_P2P_UV,
    FLATLINE,
    LEAD_OFF,
    LEAD_OFF_P2P_UV,
    SAT_UV,
    SATURATION,
    FaultMonitor,
)
from spasmband.spasm_episode import Episode

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


EMG_HZ = 1000
ACC_HZ = 100

# name: (default, min, max). Integers; the band's config validates with these.
PARAMS = {
    # envelope / resting baseline (tenths) that opens an episode
    "onset_ratio_x10": (17, 12, 100),
    # envelope / resting baseline (tenths) below which an episode is quiet
    "offset_ratio_x10": (13, 11, 80),
    # shorter episodes are dropped
    "min_event_ms": (40, 10, 500),
    # quiet time that ends an episode (bridges the gaps between clonic beats)
    "merge_gap_ms": (300, 50, 1000),
    # dynamic acceleration that opens an episode when EMG is absent
    "acc_jerk_mg": (60, 20, 4000),
    # movement before a sustained contraction that marks it voluntary
    "move_reject_mg": (120, 20, 2000),
    # activation (tenths) above which an episode counts whatever the context
    "strong_x10": (150, 30, 1000),
}

_PERIOD = const(100)  # mains template length: 5 periods of 50 Hz, 6 of 60 Hz
_WARMUP = const(300)  # frames before detection starts (filters and baseline settle)
_GUARD = const(100)  # frames of EMG ignored after an EMG fault clears
_ANNOUNCE_MS = const(30)  # episode age before a live onset is announced
_MAX_EPISODE_MS = const(120000)
_MIN_BASE = const(16)  # baseline floor: 1 uV (x16)
# An episode opening this soon after the last one closed continues it: weak
# clonus and weak tonic spasms dip below the offset threshold and come back.
_CHAIN_MS = const(1500)
_CHAIN_SPAN_MS = const(45000)  # but a chain of pieces spans no more than this
# Two quieter ways to open an episode than the detection envelope's onset level:
# the slow envelope held above 1.2x the baseline (a tonic spasm's slow rise) ...
_SLOW_ON = const(12)
_SLOW_FRAMES = const(8)
# ... and activation summed over 80 ms above 1.35x (tenths x 8; a faint jerk).
_MID_ON = const(108)
# An open episode older than this (ms) is split by a burst above this many
# times its mean activation.
_SPLIT_AGE_MS = const(1000)
_SPLIT_X = const(4)
# Hysteresis (tenths of the slow envelope) of the beat tracker for clonus.
_BEAT_UP = const(12)
_BEAT_DOWN = const(9)


def _check_params(params):
    p = {}
    for name in PARAMS:
        p[name] = PARAMS[name][0]
    if params:
        for name in params:
            if name not in PARAMS:
                raise ValueError("unknown detector parameter %s" % name)
            v = params[name]
            lo = PARAMS[name][1]
            hi = PARAMS[name][2]
            if not isinstance(v, int) or v < lo or v > hi:
                raise ValueError("detector parameter %s=%r outside %d..%d" % (name, v, lo, hi))
            p[name] = v
    if p["offset_ratio_x10"] >= p["onset_ratio_x10"]:
        raise ValueError("detector parameter offset_ratio_x10 must be below onset_ratio_x10")
    return p


# Public name for the band's config: validates a dict of overrides, returns all values.
check_params = _check_params


class Detector:
    def __init__(self, params=None, emg=True, acc=True):
        if not emg and not acc:
            raise ValueError("the detector needs EMG or acc")
        self.params = _check_params(params)
        self._on = self.params["onset_ratio_x10"]
        self._off = self.params["offset_ratio_x10"]
        self._gap = self.params["merge_gap_ms"]
        self._emg_on = emg
        self._acc_on = acc
        self._out = []  # type: list
        self._faults = FaultMonitor(self._out)
        self._ep = Episode()
        # per-sample EMG front end (x16 fixed point)
        self._ring = array("i", [0] * _PERIOD)
        self._ri = 0
        self._tshift = 1  # template averaging: fast at start, then ~4 periods
        self._held = 0  # frames the template has been held during activity
        self._quiet = 0
        self._l1 = 0
        self._l2 = 0
        self._sum = 0
        self._n = 0
        self._hi = -(1 << 29)
        self._lo = 1 << 29
        self._first = True
        self._phi = 0  # previous frame's raw max and min
        self._plo = 0
        # frame state
        self._t = 0
        self._frame_no = 0
        self._guard = 0
        self._ef = 0  # fast envelope (uV x16), ~15 ms
        self._ed = 0  # detection envelope, ~35 ms
        self._act = 0  # activation: detection envelope / baseline (tenths)
        self._act_slow = 0  # the same on the slow envelope
        self._mid_ring = array("i", [0] * 8)
        self._mid = 0  # sum of the last 8 activations
        self._cluster = 0  # leaky count of episodes (x65536), fading over ~20 s
        self._em = 0  # rhythm reference envelope, ~160 ms
        self._base = 0  # resting baseline (uV x16) << 8: median of the envelope
        self._floor = 0  # resting floor (uV x16) << 8: low quantile of the envelope
        self._burst_hi = False
        self._beat_hi = False
        self._act_hi = False
        self._busy = 0  # leaky count of recent bursts (x65536), fading over ~2.5 s
        self._busy_long = 0  # the same fading over ~20 s: hand use comes in bouts
        self._recent_peak = 0  # peak activation outside episodes, fading over ~5 s
        self._after = 0  # frames left in the tail of the last episode
        self._rp_hist = [0, 0, 0, 0]
        self._rp_before = 0
        self._above = 0
        self._above_low = 0
        self._above_slow = 0
        self._t_rise = 0
        self._below_ms = 0
        # the last closed episode: when it ended, the start it was announced
        # with (-1: not announced) and whether it was reported as an event
        self._prev_end = -(1 << 29)
        self._prev_start = -1
        self._prev_jump = 0  # its largest one-frame rise of movement (mg) and peak (mg)
        self._prev_acc = 0
        self._pending = None  # the last event, held back while a continuation may follow
        # acc state (mg x16)
        self._ax = 0
        self._ay = 0
        self._az = 0
        self._acc_new = False
        self._accf = AccFeatures()
        self.envelope_uv = 0
        self.quality = 100
        self.trace = None  # a list here collects every closed episode (diagnostics)

    @property
    def faults(self):
        return self._faults.active

    def pop(self):
        if self._out:
            return self._out.pop(0)
        return None

    # -- per sample ---------------------------------------------------------

    def emg(self, uv):
        if uv > self._hi:
            self._hi = uv
        if uv < self._lo:
            self._lo = uv
        x = uv << 4
        l1 = self._l1
        if self._first:
            # start the high-passes on the first sample, not on zero
            l1 = x
            self._l2 = 0
            self._first = False
        l1 += (x - l1) >> 3
        self._l1 = l1
        h = x - l1
        l2 = self._l2 + ((h - self._l2) >> 3)
        self._l2 = l2
        h -= l2
        # mains: subtract a running template of the last 100 ms periods
        i = self._ri
        r = self._ring
        d = h - r[i]
        r[i] += d >> self._tshift
        i += 1
        if i == _PERIOD:
            i = 0
        self._ri = i
        if d < 0:
            d = -d
        self._sum += d
        n = self._n + 1
        self._n = n
        if n >= 10:
            if n >= 20 or not self._acc_on or self._acc_new:
                self._frame()

    def acc(self, x_mg, y_mg, z_mg):
        self._ax = x_mg
        self._ay = y_mg
        self._az = z_mg
        self._acc_new = True
        if self._emg_on and self._n < 10:
            return  # fed before its 10 EMG samples: the 10th one completes the frame
        self._frame()

    # -- per 10 ms frame ----------------------------------------------------

    def _frame(self):
        n = self._n
        self._frame_no += 1
        fno = self._frame_no
        if self._emg_on:
            self._t += n if n else 10
        else:
            self._t += 10
        t = self._t
        emg_ok = False
        act = 0
        if self._emg_on and n:
            emg_ok = self._emg_frame(t, fno, n)
            act = self._act
        elif self._emg_on:
            self._n = 0
        acc_ok = False
        dyn = 0
        if self._acc_on and self._acc_new:
            self._acc_new = False
            acc_ok = self._acc_frame(t, fno)
            dyn = self._accf.dyn
        self._update_quality()
        if self._pending is not None:
            self._flush(t)
        if emg_ok:
            self._step(t, act, dyn, 1, acc_ok)
        elif acc_ok and fno > _WARMUP and not self._emg_on:
            aact = (self._accf.mv * 10) // (self.params["acc_jerk_mg"] << 4)
            self._step(t, aact * self._on // 10, dyn, 2, acc_ok)
        elif self._ep.open and (self._guard or not acc_ok):
            self._drop()
        self._busy -= self._busy >> 8
        self._busy_long -= self._busy_long >> 11
        self._cluster -= self._cluster >> 11
        # activity level outside episodes (their tails excluded), fading over ~5 s
        rp = self._recent_peak  # x256 so that the fading works on small integers
        rp -= rp >> 9
        if self._ep.open:
            self._after = 50
        elif self._after:
            self._after -= 1
        elif act << 8 > rp and emg_ok:
            rp = act << 8  # (not the junk of a fault or of the frames after one)
        self._recent_peak = rp
        # the level as it was 40 ms ago, before the rise that opens an episode
        h = self._rp_hist
        i = fno & 3
        self._rp_before = h[i]
        h[i] = rp >> 8

    def _emg_frame(self, t, fno, n):
        """Envelopes, baseline, activation and EMG faults for one frame; True if usable."""
        faults = self._faults
        hi = self._hi
        lo = self._lo
        s = self._sum
        if n != 10:
            s = s * 10 // n
        self._sum = 0
        self._n = 0
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
        if fno <= 100 or self._guard:
            self._tshift = 1
            self._held = 0
        elif self._act >= self._off:
            self._held += 1
            self._quiet = 0
            self._tshift = 24 if self._held < 35 else 2
        else:
            self._quiet += 1
            if self._quiet >= 30:
                self._held = 0  # a new hold only after 300 ms of quiet
            self._tshift = 2
        if sat or flat or loose or faults.emg_bad():
            # suspect from the first bad frame: an episode this young is the fault itself
            if self._ep.open and self._ep.source == 1 and t - self._ep.t_start < 500:
                self._drop()
            self._guard = _GUARD
        elif self._guard:
            self._guard -= 1
        # envelope in uV x16: mean |x| / 0.8 for noise-like EMG ~ sum / 8
        e = s >> 3
        self._ef += (e - self._ef) >> 1
        self._ed += (e - self._ed) >> 2
        self._em += (e - self._em) >> 4
        self.envelope_uv = self._ed >> 4
        self._track_baseline(fno)
        base = self._base >> 8
        if base < _MIN_BASE:
            base = _MIN_BASE
        self._act = self._ed * 10 // base
        self._act_slow = self._em * 10 // base
        # activation summed over the last 80 ms: a matched filter for faint jerks
        i = fno & 7
        self._mid += self._act - self._mid_ring[i]
        self._mid_ring[i] = self._act
        self._emg_rhythm(fno)
        if self._ep.open and self._em:
            w = self._ef - self._em
            self._ep.wobble += (w if w > 0 else -w) * 100 // self._em
        return self._guard == 0 and fno > _WARMUP

    def _track_baseline(self, fno):
        ed = self._ed << 8
        fl = self._floor
        # resting floor: a low quantile, slow to rise (minutes), quick to fall
        if fno <= 20 or fl == 0 or ed < fl:
            self._floor = ed if fno <= 20 or fl == 0 else fl - (fl >> 6) - 1
        elif not self._guard:
            self._floor = fl + (fl >> 14) + 1
        b = self._base
        if fno <= 20 or b == 0:
            self._base = ed
        elif fno <= _WARMUP:
            self._base = b + ((ed - b) >> 4)
        elif self._guard:
            return
        elif self._ep.open:
            if ed > b:
                self._base = b + (b >> 15) + 1  # long activity is absorbed over minutes
        elif ed > b:
            self._base = b + (b >> 10) + 1  # a median tracker: ~10 s either way
        else:
            self._base = b - (b >> 10) - 1

    def _emg_rhythm(self, fno):
        """Bursts: the fast envelope swings well above the slow one and back.

        Steady contraction only wobbles by 20-30 %; clonic beats and hand-use
        bursts swing on and off, so the hysteresis is wide (1.5x up, 0.75x down).
        """
        ef = self._ef
        em = self._em
        # activity: every rise of the fast envelope to 1.5x the baseline counts
        base = self._base >> 8
        if self._act_hi:
            if ef * 10 < base * 11:
                self._act_hi = False
        elif ef * 10 > base * 15:
            self._act_hi = True
            self._busy += 65536
            self._busy_long += 65536
        # beats: a finer swing of the fast envelope about the slow one (weak clonus
        # swings by a third or less); only its regularity is used
        if self._beat_hi:
            if ef * 10 < em * _BEAT_DOWN:
                self._beat_hi = False
        elif ef * 10 > em * _BEAT_UP and ef * 10 > base * self._off:
            self._beat_hi = True
            if self._ep.open:
                self._ep.beat.cross(fno)
        if self._burst_hi:
            if ef * 4 < em * 3:
                self._burst_hi = False
        elif ef * 2 > em * 3:
            base = self._base >> 8
            if ef * 10 > base * self._off:
                self._burst_hi = True
                if self._ep.open:
                    self._ep.emg_rhythm.cross(fno)

    def _acc_frame(self, t, fno):
        a = self._accf
        dead = a.frame(self._ax, self._ay, self._az)
        self._faults.frame(ACC_DROPOUT, dead, t)
        if self._faults.acc_bad():
            return False
        ep = self._ep
        if ep.open:
            if a.crossed:
                ep.acc_rhythm.cross(fno)
            if a.jump > ep.jump:
                ep.jump = a.jump
            if t - ep.t_start < 3000:
                shift = a.shift_from(ep.gsx, ep.gsy, ep.gsz)
                if shift > ep.g_shift:
                    ep.g_shift = shift
        return True

    def _update_quality(self):
        a = self._faults.active
        if a & 7:
            q = 0 if self._emg_on else 100
        else:
            q = 100
            noise = self._base >> 12  # uV
            if noise > 10:
                q -= (noise - 10) * 2
        if a & 8:
            q -= 30
        if q < 0:
            q = 0
        self.quality = q

    # -- episodes -----------------------------------------------------------

    def _step(self, t, act, dyn, source, acc_ok):
        ep = self._ep
        on = self._on
        if ep.open and ep.source != source:
            self._drop()
        if not ep.open:
            # a slow rise (tonic spasms rise over up to 2 s) shows first on the
            # slow envelope, which is quiet enough to be trusted at a lower level
            # (not in the tail of an episode, where it still holds the last one)
            if source == 1 and self._act_slow >= _SLOW_ON and not self._after:
                self._above_slow += 1
            else:
                self._above_slow = 0
            if act < self._off:
                self._t_rise = t
                self._above = 0
                self._above_low = 0
                if self._above_slow < _SLOW_FRAMES and (source != 1 or self._mid < _MID_ON):
                    return
            # open on 20 ms above the onset threshold, or on 50 ms above the
            # midpoint of onset and offset (faint but lasting activity)
            if act >= on:
                self._above += 1
            if act * 2 >= on + self._off:
                self._above_low += 1
            else:
                self._above_low = 0
            if (
                self._above < 2
                and self._above_low < 5
                and self._above_slow < _SLOW_FRAMES
                and (source != 1 or self._mid < _MID_ON)
            ):
                return
            self._open(t, source)
            ep = self._ep
        elif (
            source == 1
            and act >= 2 * on
            and t - ep.t_start >= _SPLIT_AGE_MS
            and act * ep.frames >= _SPLIT_X * ep.total
            and act >= 2 * self._mid_ring[(self._frame_no - 3) & 7]
        ):
            # a sharp burst (doubling within 30 ms) far above the episode's own
            # level (a jerk amid the step bursts of a walk that merged into one
            # long episode) is an episode of its own, not a piece of this one
            level = ep.total // ep.frames
            self._close()
            if self._pending is None:
                self._prev_start = -1  # (when the long episode made an event, this extends it)
            self._t_rise = t - 10
            self._open(t, source)
            ep = self._ep
            ep.split_level = level
        if acc_ok:
            ep.acc_seen = True
        # an episode ends when activation falls below the offset threshold or a
        # quarter of its peak, whichever is higher (residual hum after a strong burst)
        age = t - ep.t_start
        off = ep.peak >> 2 if age < 500 else 0
        if off < self._off:
            off = self._off
        if off < 2 * ep.split_level:
            off = 2 * ep.split_level  # it ends when it sinks back into what it rose from
        # after a second a held contraction is judged on the slower envelope, so
        # that its fluctuations do not cut it into pieces
        hold = act
        if source == 1 and age >= 1000 and self._act_slow > act:
            hold = self._act_slow
        ep.add(act, dyn, on, off, t, hold)
        if source == 1 and self._mid > ep.mid_peak:
            ep.mid_peak = self._mid
        if not ep.announced and age >= _ANNOUNCE_MS and not self._faults.emg_bad():
            self._announce(ep, age)
        if hold < off:
            if t - ep.t_last >= self._gap or t - ep.t_start >= _MAX_EPISODE_MS:
                self._close()
        elif t - ep.t_start >= _MAX_EPISODE_MS:
            self._close()

    def _open(self, t, source):
        ep = self._ep
        ep.clear(self._t_rise, source)
        ep.open = True
        tr = self._t_rise
        chained = False
        if (
            self._prev_start >= 0
            and tr - self._prev_end <= _CHAIN_MS
            and tr - self._prev_start <= _CHAIN_SPAN_MS
        ):
            # a piece of the same spasm: keep the start it was announced with, and
            # when the last piece made an event (held back), extend that one
            ep.t_out = self._prev_start
            ep.announced = True
            ep.follows = self._pending is not None
            chained = True
        a = self._accf
        ep.pre_move = a.mvs >> 4
        ep.busy = self._busy >> 16
        ep.busy_long = self._busy_long >> 16
        ep.cluster = self._cluster >> 16
        self._cluster += 65536
        ep.context = self._rp_before
        ep.raised = (self._base >> 8) * 10 // ((self._floor >> 8) + 1)
        ep.jump = a.recent_jump
        ep.peak_acc = a.recent_dyn
        if chained and self._prev_jump > ep.jump:
            # a piece of a chain keeps the movement that came with its start: the
            # ringing after a knock on the band stays the knock
            ep.jump = self._prev_jump
            if self._prev_acc > ep.peak_acc:
                ep.peak_acc = self._prev_acc
        ep.gsx = a.gx
        ep.gsy = a.gy
        ep.gsz = a.gz
        self._above = 0
        self._above_low = 0
        self._above_slow = 0

    def _announce(self, ep, age):
        ep.announced = True
        conf = ep.confidence(0, 3 if (ep.source == 1 and ep.acc_seen) else 1)
        act = ep.peak if ep.peak < 65535 else 65535
        self._out.append(("onset", ep.t_start, 0, conf, act))

    def _drop(self):
        self._ep.open = False
        self._prev_start = -1
        self._t_rise = self._t
        self._above = 0
        self._above_low = 0

    def _close(self):
        ep = self._ep
        ep.open = False
        self._t_rise = self._t
        if ep.peak << 8 > self._recent_peak:
            self._recent_peak = ep.peak << 8
        ev = ep.verdict(self.params, ep.source == 1)
        if self.trace is not None:
            self.trace.append(ep.features())
        self._prev_end = ep.t_last
        self._prev_jump = ep.jump
        self._prev_acc = ep.peak_acc
        self._prev_start = ep.t_out if ep.announced and not ep.split_level else -1
        p = self._pending
        if ep.follows and p is not None:
            # one spasm in pieces: one event over all of them, with the features
            # of its strongest piece
            if ev is None:
                ev = p  # a piece that alone is no spasm does not stretch the event
            else:
                if ev[6] <= p[6]:
                    ev = p
                ev = ("event", p[1], ep.t_last + 10 - p[1]) + ev[3:]
        elif ev is not None and ep.t_out != ep.t_start:
            ev = ("event", ep.t_out, ev[2] + ep.t_start - ep.t_out) + ev[3:]
        elif p is not None:
            self._out.append(p)
        self._pending = ev

    def _flush(self, t):
        # no continuation came: report the held-back event
        if self._pending is not None and not self._ep.open and t - self._prev_end > _CHAIN_MS:
            self._out.append(self._pending)
            self._pending = None
            # a reported event is final: a piece that rose before this but opens
            # after it starts an event of its own (never a second one at this start)
            self._prev_start = -1
