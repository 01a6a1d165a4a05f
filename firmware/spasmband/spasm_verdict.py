"""The verdict on a closed episode: the event it reports, or why it is ordinary life.

`verdict()` reads the features an Episode gathered (spasm_episode.py) and
returns the event tuple of the detector interface, or None with the reason
left in `ep.why` (diagnostics): walking rhythm, typing-like bursts, a knock, a
voluntary movement. A clonus found inside a longer episode (a walk) is
reported from its own run of beats or swing, not the episode.
"""

from spasmband.rhythm import CLONUS_MAX, CLONUS_MIN, CLONUS_RUN
from spasmband.spasm_episode import CLONIC, GAIT_MAX, GAIT_MIN, MID_EVENT, MYOCLONIC, TONIC

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_KNOCK_MAX_MS = const(2000)  # longest episode an impact on the band explains
# Bursts in the ~20 s before an episode that mark a bout of hand use (typing
# runs at 3-7 bursts per second; a resting limb makes none).
_HAND_USE_BURSTS = const(20)
# A tap stands this many times above the episode's mean movement.
_TAP_X = const(4)
# A swing that began this many frames into an episode is a clonus inside it
# (a walk), even when it swung through half of it.
_SWING_LATE = const(300)
# A live onset announced for a clonus inside an episode up to this long before
# the start its run gives is its start still (the event keeps the onset's).
_TOLD_BEFORE_MS = const(3000)


def verdict(ep, params, emg_used):
    """The event tuple for this episode, or None when it is ordinary life."""
    duration = ep.t_last - ep.t_start + 10
    kind = ep.kind(duration)
    start = ep.t_start
    run = 0
    e = ep.emg_rhythm
    beats = e.best_run >= CLONUS_RUN
    swing = ep.swing_run()
    # (a swing that began 3 s or more into the episode is a clonus inside
    # it, even when it swung through half of it)
    w = ep.swing_runs
    late = swing and w.best_first - ep.f_start >= _SWING_LATE
    if (kind != CLONIC or (late and not ep.clonus_beats())) and (
        swing or (beats and ep.walking(params))
    ):
        # a clonus amid the step bursts of a walk, which merged with them
        # into one long episode (gait never beats or swings at 3-8 Hz): the
        # event is the clonus, from its longer reading. A run of steady EMG
        # beats, from its first beat to one beat past its last; or the limb
        # swinging at 3-8 Hz, where step bursts hide a clonus's beats.
        kind = CLONIC
        if swing:
            start = ep.swing_start(w.best_first)
            end = ep.ms_at(w.best_last) + 10
        if beats and (not swing or (e.best_last - e.best_first) * 10 > end - start):
            run = e.best_run
            start = ep.ms_at(e.best_first)
            end = ep.ms_at(e.best_last)
            end += (end - start) // run
        if start < ep.t_start:
            start = ep.t_start
        if start - _TOLD_BEFORE_MS <= ep.run_t0 < end:
            start = ep.run_t0  # the start its live onset was announced with
        if end > ep.t_last + 10:
            end = ep.t_last + 10
        duration = end - start
    ep.why = ordinary_life(ep, kind, duration, params, start != ep.t_start)
    if ep.why is not None:
        return None
    peak = ep.peak if ep.peak < 65535 else 65535
    mean = ep.total // ep.frames if ep.frames else 0
    if mean > 65535:
        mean = 65535
    freq = 0
    if kind == CLONIC:
        # from the rhythm that made it a clonus: interval in frames x10
        m10 = 0
        if run:
            m10 = (e.best_last - e.best_first) * 10 // run
        elif e.regular(CLONUS_MIN, CLONUS_MAX, 5, ep.frames):
            m10 = e.mean_x10()
        elif (ep.swings() or swing) and ep.osc_dhz:
            freq = ep.osc_dhz  # the movement's own period
        elif ep.acc_clonus():
            m10 = ep.acc_rhythm.mean_x10()
        else:
            m10 = ep.beat.mean_x10()
        if m10:
            freq = 10000 // m10  # tenths of Hz
        if freq > 255:
            freq = 255
    modalities = (1 if emg_used else 0) | (2 if ep.acc_seen else 0)
    if modalities == 0:
        modalities = 2
    ratio = peak // 10 if ep.source == 1 else peak // 30
    severity = 1 if ratio < 4 else (2 if ratio < 12 else 3)
    if kind == TONIC and duration >= 20000 and severity < 3:
        severity += 1
    conf = confidence(ep, kind, modalities)
    acc = ep.peak_acc if ep.peak_acc < 65535 else 65535
    return (
        "event",
        start,
        duration,
        kind,
        severity,
        conf,
        peak,
        mean,
        acc,
        freq,
        modalities,
    )


def ordinary_life(ep, kind, duration, params, inside=False):
    """Why this episode is not a spasm (a short reason) or None; `inside`:
    the spasm is a clonus found inside it (a walk), not the episode itself."""
    if duration < params["min_event_ms"]:
        return "short"
    if (
        ep.source == 1
        and ep.peak < params["onset_ratio_x10"]
        and ep.mid_peak < MID_EVENT
        and not (kind == CLONIC and ep.swings())
    ):
        return "faint"  # opened on a quieter path and never reached the onset level
    f = ep.frames
    # gait: a step rhythm in the movement, or in the EMG of an arm already swinging
    moving = inside or ep.pre_move >= params["move_reject_mg"]
    gait = ep.acc_rhythm.regular(GAIT_MIN, GAIT_MAX, 3, f) or (
        moving and ep.emg_rhythm.regular(GAIT_MIN, GAIT_MAX, 3, f)
    )
    if gait and kind != CLONIC:
        return "gait"
    strong = ep.source == 1 and ep.peak >= params["strong_x10"]
    if kind == MYOCLONIC and not strong and ep.ordinary_now(params):
        return "busy"
    if kind == MYOCLONIC and not strong and ep.busy_long >= _HAND_USE_BURSTS:
        if ep.peak < 2 * params["onset_ratio_x10"]:
            return "hand_use"  # a faint burst amid a bout of bursts (typing pauses too)
    if kind == CLONIC and not strong and ep.acc_seen and ep.busy_long >= _HAND_USE_BURSTS:
        if (ep.emg_rhythm.n < 12 or ep.acc_rhythm.n < 3) and not (
            ep.acc_clonus() or ep.swing_run()
        ):
            return "hand_use"  # a few regular bursts amid hand use, the limb not swinging
    if kind != CLONIC and duration < _KNOCK_MAX_MS and ep.impact(params, moving):
        # a knock: the movement arrived at once, and its electrode artefact
        # can ring for a second, long enough to pass for a short tonic spasm
        return "impact"
    if kind == MYOCLONIC and ep.g_shift * 5 >= params["move_reject_mg"]:
        if ep.peak < 2 * params["onset_ratio_x10"]:
            return "posture"  # a faint burst while the band turns: shifting position
    if ep.g_shift >= 3 * params["move_reject_mg"]:
        # (a jerk is no reach; and while the arm swings, as in walking, the
        # gravity estimate swings with it)
        if not ((kind == MYOCLONIC or kind == CLONIC) and (strong or moving)):
            return "turn"  # the band turned through a large angle: a voluntary movement
    if kind == TONIC and not strong:
        bursts = ep.emg_rhythm.n + ep.emg_rhythm.skipped
        if bursts >= 3 and bursts * 1000 >= 16 * duration // 10:
            return "bursty"  # irregular bursts at >= 1.8 per second: hand use
        if ep.held * 10 < ep.frames * 7:
            return "patchy"  # a spasm holds; this came and went
        if (
            ep.acc_seen
            and ep.peak_acc * ep.frames >= _TAP_X * ep.move_sum
            and ep.jump * 4 >= ep.peak_acc * 3
        ):
            # the band's largest movement stood out of the rest and came
            # (three quarters of it) within one frame: taps of hand use (a
            # stiff limb's tremor builds up over frames; at rest the largest
            # movement is noise)
            return "taps"
        if ep.pre_move >= params["move_reject_mg"]:
            return "voluntary"
        if ep.move_sum >= params["move_reject_mg"] * ep.frames:
            return "moving"  # a spasm holds the limb still; this moved throughout (gait)
    if ep.source == 2:
        # Without EMG a long non-rhythmic movement is ordinary motion.
        if kind == TONIC:
            return "acc_only_tonic"
        if kind == MYOCLONIC and ep.above < 3:
            return "impact"
        if kind == MYOCLONIC and not moving and ep.g_shift >= params["move_reject_mg"]:
            # the band ended up turned: a jerk swings the limb and back, a
            # change of position (or a tonic spasm's drift, which the
            # movement alone cannot tell from one) leaves it turned
            return "posture"
    return None


def confidence(ep, kind, modalities):
    c = 50 + ep.peak // 4
    if c > 95:
        c = 95
    if kind == CLONIC and ep.emg_rhythm.n >= 6:
        c += 4
    if modalities != 3:
        c = c * 7 // 10  # one modality: less sure
    return c
