"""The band's streaming spasm detector (the one detector: firmware, simulator and tools).

Feed it EMG samples (int microvolts, 1 kHz) one at a time with `emg(uv)` or
as a run with `emg_samples(buf, start, stop)` (the band's way: no call per
sample), and one accelerometer sample per 10 ms with `acc(x, y, z)` (int mg,
100 Hz): 10 EMG samples, then the acc sample of the same 10 ms. Pop results
with `pop()`:

    ("onset", t_ms, kind, confidence, act_x10)      live announcement (kind 0: not known yet)
    ("event", t_ms, duration_ms, kind, severity, confidence,
              peak_act_x10, mean_act_x10, peak_acc_mg, freq_dhz, modalities)
    ("fault", t_ms, fault, duration_ms)              when the fault ends

This module runs the frames: opening and closing episodes with hysteresis,
splitting, live announcements and signal quality; each other job has a module
of its own (firmware/DETECTOR.md lists them).
Activation is the envelope relative to the resting baseline, in tenths.

Onsets. An episode opens on the detection envelope (20 ms above the onset
level, or 50 ms above the midpoint of onset and offset), on the slow envelope
held above 1.2x the baseline for 80 ms (a tonic spasm's slow rise shows there
first), or on activation summed over 80 ms above 1.2x (a faint jerk): see
episode_onset.py. Its onset is announced 30 ms after the rise began when the
limb was at rest or the rise stands out of what it was doing (twice the
recent activity level), and otherwise as soon as it does, turns strong or
beats like a clonus; a faint rise waits until it reaches ~1.4x on the 80 ms
sum or holds 1.2x for 150 ms, a knock until it is no longer one. A live
alert must be early, but not one per step of a walk, per burst of typing or
per blip of noise (the verdict on the whole episode decides the event; an
announced onset that no event follows is a withdrawn alert, which the
benchmark counts per hour).
Episodes that open on the quieter paths and never reach the onset level must
reach ~1.4x on the 80 ms sum to count; one that closes without doing so
counts as no activity for the context of the next; and a sharp burst (twice
the onset level, doubled within 30 ms) in such a faint episode starts a new
one at the burst.

Pieces. An episode that opens within 1.5 s of the last one's end continues it
(spasm_chain.py), so each event is held back until 1.5 s of quiet have passed
(pop order is unchanged; the live onset is not delayed). A spasm's own
bursts (clonus beats) are taken back out of the hand-use counts when it is
judged a spasm, so that the next jerk is not judged against them. `finish()`
at the end of the input (the end of a recording, a reboot, new parameters)
reports the open episode at once.

A swinging limb. While the limb swings at 3-8 Hz (oscillation.py) an
episode that swung through half its frames or more is a clonus, however faint
its EMG, and its pieces stay one event: neither the chain's gap nor its span
limits hold while the swing goes on, and the held-back event waits for it to
stop. A weak clonus's bursts sink into the noise and come back for seconds;
its swing does not.

Clonus amid a walk. Step bursts and clonus beats merge into one long episode.
Two readings find the clonus inside it. Four steady EMG beats in a row that
start a second or more into it, the limb moving; or the limb swinging at
3-8 Hz (oscillation.py band-passes the walk away) for half a second, which is
announced, and for 1.5 s, which makes the event. The clonus is announced as
an onset of kind clonic at its start, and the event reports it from the
longer of the two runs, not the walk. When a long enough swing ends, the
episode is closed there and the walk goes on as a new one, so that each
clonus in a long walk is an event of its own.

With EMG absent the accelerometer drives detection alone (jerks and clonus
only; a tonic spasm barely moves the band) at lower confidence. While a
configured EMG input is faulted nothing is detected (only the fault is
reported): movement alone raised too many false alarms to stand in for it.

MicroPython-compatible: integers only on the hot path, fixed memory (int
arrays of 100, 38, 24, 19, 8, 3 and 3 entries and a few dozen attributes;
~5 KB in all), no allocation per sample.
"""

from spasmband.acc_features import AccFeatures
from spasmband.activity_context import ActivityContext
from spasmband.config import DETECTOR_PARAMS, check_detector_params
from spasmband.emg_features import WARMUP, EmgFeatures
from spasmband.episode_onset import MID_ON, EpisodeOnset
from spasmband.oscillation import Oscillation
from spasmband.rhythm import CLONUS_RUN
from spasmband.sensor_faults import ACC_DROPOUT, FaultMonitor
from spasmband.spasm_chain import SpasmChain
from spasmband.spasm_episode import CLONIC, Episode
from spasmband.spasm_verdict import confidence, verdict

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


EMG_HZ = 1000
ACC_HZ = 100

_ANNOUNCE_MS = const(30)  # episode age before a live onset is announced
_MAX_EPISODE_MS = const(120000)
# An open episode older than this (ms) is split by a burst above this many
# times its mean activation.
_SPLIT_AGE_MS = const(500)
_SPLIT_X = const(4)
# A run of steady beats starting this long (ms) after its episode opened is
# announced as a clonus of its own (amid a walk).
_RUN_LATE_MS = const(1000)


# The parameters live in the band's config (config.py); these names are the
# detector's interface to them.
PARAMS = DETECTOR_PARAMS
check_params = check_detector_params


class Detector:
    def __init__(self, params=None, emg=True, acc=True):
        if not emg and not acc:
            raise ValueError("the detector needs EMG or acc")
        self.params = check_detector_params(params)
        self._on = self.params["onset_ratio_x10"]
        self._off = self.params["offset_ratio_x10"]
        self._gap = self.params["merge_gap_ms"]
        self._emg_on = emg
        self._acc_on = acc
        self._out = []  # type: list
        self._faults = FaultMonitor(self._out)
        self._ep = Episode()
        self._emg = EmgFeatures(self._faults, self._ep, self._off, acc, self._frame)
        # the EMG entry points are the front end's own methods (no extra call):
        # `emg(uv)` for one sample, `emg_samples(buf, start, stop)` for a run of them
        self.emg = self._emg.sample
        self.emg_samples = self._emg.samples
        # frame state
        self._t = 0
        self._frame_no = 0
        self._ctx = ActivityContext(self._emg)
        self._episode_onset = EpisodeOnset(self._emg, self._ctx, self._on, self._off)
        self._chain = SpasmChain(self._out, self._on)  # the last episode, its event held back
        # acc state (mg x16)
        self._ax = 0
        self._ay = 0
        self._az = 0
        self._accf = AccFeatures()
        self._osc = Oscillation()
        self.quality = 100
        self.trace = None  # a list here collects every closed episode (diagnostics)

    @property
    def envelope_uv(self):
        """The detection envelope (uV), for the signal stream."""
        return self._emg.envelope_uv

    @property
    def faults(self):
        return self._faults.active

    def finish(self):
        """End of input (the end of a recording, the band about to stop): close
        the open episode, report what is held back as if quiet followed, and
        the sensor faults still active as ending now."""
        if self._ep.open:
            self._close()
        self._chain.finish()
        self._faults.finish(self._t)

    def pop(self):
        if self._out:
            return self._out.pop(0)
        return None

    # -- per sample ---------------------------------------------------------

    def acc(self, x_mg, y_mg, z_mg):
        self._ax = x_mg
        self._ay = y_mg
        self._az = z_mg
        self._emg.acc_new = True
        if self._emg_on and self._emg.n < 10:
            return  # fed before its 10 EMG samples: the 10th one completes the frame
        self._frame()

    # -- per 10 ms frame ----------------------------------------------------

    def _frame(self):
        fe = self._emg
        n = fe.n
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
            emg_ok = fe.frame(t, fno)
            if fe.drop:
                fe.drop = False
                self._drop()
            act = fe.act
        elif self._emg_on:
            fe.n = 0
        acc_ok = False
        dyn = 0
        if self._acc_on and fe.acc_new:
            fe.acc_new = False
            acc_ok = self._acc_frame(t, fno)
            dyn = self._accf.dyn
        self._update_quality()
        chain = self._chain
        if chain.pending is not None:
            chain.flush(t, self._ep.open, fe.bursts, self._osc.lag_x10)
        if emg_ok:
            self._step(t, act, dyn, 1, acc_ok)
        elif acc_ok and fno > WARMUP and not self._emg_on:
            aact = (self._accf.mv * 10) // (self.params["acc_jerk_mg"] << 4)
            self._step(t, aact * self._on // 10, dyn, 2, acc_ok)
        elif self._ep.open and (fe.guard or not acc_ok):
            self._drop()
        fe.fade()
        self._ctx.frame(fno, act, emg_ok, self._ep.open)

    def _acc_frame(self, t, fno):
        a = self._accf
        dead = a.frame(self._ax, self._ay, self._az)
        self._faults.frame(ACC_DROPOUT, dead, t)
        if self._faults.acc_bad():
            return False
        osc = self._osc
        osc.frame(a.dx, a.dy, a.dz)
        ep = self._ep
        if ep.open:
            if a.crossed:
                ep.acc_rhythm.cross(fno)
            if osc.steady:
                ep.osc += 1
                ep.osc_dhz = osc.freq_dhz()
            ep.swing_runs.frame(fno, osc.steady, osc.lag_x10)
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
            noise = self._emg.base >> 12  # uV
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
            if not self._episode_onset.frame(t, act, source):
                return
            self._open(t, source)
            ep = self._ep
        elif (
            source == 1
            and ep.peak < on
            and act >= 2 * on
            and act >= 2 * self._emg.mid_ring[(self._frame_no - 3) & 7]
        ):
            # a sharp burst in an episode that opened on a faint rise and never
            # reached the onset level: the rise was noise, the burst starts here
            self._drop()
            ep = self._reopen(t, source)
        elif (
            source == 1
            and act >= 2 * on
            and t - ep.t_start >= _SPLIT_AGE_MS
            and act * ep.frames >= _SPLIT_X * ep.total
            and act >= 2 * self._emg.mid_ring[(self._frame_no - 3) & 7]
            and not ep.clonus_beats()
        ):
            # a sharp burst (doubling within 30 ms) far above the episode's own
            # level (a jerk amid the step bursts of a walk that merged into one
            # long episode) is an episode of its own, not a piece of this one
            # (unless the episode beats like a clonus: its strong beats are its own)
            level = ep.total // ep.frames
            self._close()
            if self._chain.pending is None:
                self._chain.cut()  # (when the long episode made an event, this extends it)
            ep = self._reopen(t, source)
            ep.split_level = level
        elif ep.swing_runs.ended:
            ep.swing_runs.ended = False
            if not ep.clonus_beats():
                # a clonus's swing amid a walk has ended: its event ends here,
                # and the walk goes on as an episode of its own (the next
                # clonus in it is a spasm of its own)
                self._close()
                ep = self._reopen(t, source)
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
        if source == 1 and age >= 1000 and self._emg.act_slow > act:
            hold = self._emg.act_slow
        ep.add(act, dyn, on, off, t, hold)
        if source == 1:
            mid = self._emg.mid
            if mid > ep.mid_peak:
                ep.mid_peak = mid
            if mid >= MID_ON:
                ep.mid_held += 1
        chain = self._chain
        if chain.apart and ep.peak >= chain.apart:
            chain.stands_apart(ep)
        if not ep.told and age >= _ANNOUNCE_MS and not self._faults.emg_bad():
            ep.announced = True
            if ep.plausible(self.params):
                ep.told = True
                self._onset(ep, ep.t_out, 0)
        if (
            source == 1
            and ep.emg_rhythm.run >= CLONUS_RUN
            and not ep.run_announced
            and age >= _RUN_LATE_MS
        ):
            self._announce_run(ep, ep.run_start(), ep.walking(self.params))
        elif ep.swing_told() and not ep.run_announced:
            self._announce_run(ep, ep.swing_start(ep.swing_runs.first), True)
        if hold < off:
            if t - ep.t_last >= self._gap or t - ep.t_start >= _MAX_EPISODE_MS:
                self._close()
        elif t - ep.t_start >= _MAX_EPISODE_MS:
            self._close()

    def _open(self, t, source):
        ep = self._ep
        t_rise = self._episode_onset.t_rise
        ep.clear(t_rise, source)
        ep.f_start = self._frame_no - (self._t - t_rise) // 10
        ep.open = True
        a = self._accf
        ep.pre_move = a.mvs >> 4
        self._ctx.opened(ep)
        ep.jump = a.recent_jump
        ep.peak_acc = a.recent_dyn
        # a piece of the same spasm keeps the start the first was announced with
        self._chain.join(ep, self._osc.held_ms())
        ep.gsx = a.gx
        ep.gsy = a.gy
        ep.gsz = a.gz
        self._episode_onset.opened()

    def _reopen(self, t, source):
        # the episode just ended gives way to one of its own, from the frame
        # before this one (the burst, or the walk going on)
        self._episode_onset.t_rise = t - 10
        self._open(t, source)
        return self._ep

    def _onset(self, ep, t0, kind):
        conf = confidence(ep, kind, 3 if (ep.source == 1 and ep.acc_seen) else 1)
        act = ep.peak if ep.peak < 65535 else 65535
        self._out.append(("onset", t0, kind, conf, act))

    def _announce_run(self, ep, t0, sure):
        # steady beats (if the limb was moving) or a steady swing began inside
        # a long episode (a walk): a clonus of its own, whose event will start at t0
        ep.run_announced = True
        if t0 - ep.t_start >= _RUN_LATE_MS and sure:
            ep.run_t0 = t0
            self._onset(ep, t0, CLONIC)

    def _drop(self):
        self._ep.open = False
        self._chain.cut()
        self._episode_onset.restart(self._t)

    def _close(self):
        ep = self._ep
        ep.open = False
        self._episode_onset.restart(self._t)
        ev = verdict(ep, self.params, ep.source == 1)
        self._ctx.closed(ep, ev is not None, self._on)
        if self.trace is not None:
            self.trace.append(ep.features())
        self._chain.closed(ep, ev, self._emg.bursts)
