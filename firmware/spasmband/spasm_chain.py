"""The pieces of one spasm made one event, and the event held back until quiet.

A weak clonus waxes and wanes and a weak tonic spasm dips below the offset
level, so the detector closes an episode that is only a piece of a spasm. An
episode that opens within 1.5 s of the last one's end continues it, unless the
last one was judged a burst of ordinary use (a step, a key press): it keeps the
start the first piece was announced with, and when an earlier piece made an
event, the two become one event, with the features of the stronger piece. A
chain spans at most 20 s, except while the limb swings at 3-8 Hz (one long
weak clonus, its EMG in and out of the noise).

So each event is held back until 1.5 s of quiet have passed and the swing has
stopped (pop order is unchanged; the live onset is not delayed). A faint jerk
that bursts keep following meanwhile is dropped: typing resumed after a
pause. A reported event is final.

Amid typing, bursts chain too, and a chain would swallow the spasms in it.
So a step or key press after a clear spasm (twice the onset level) joins it
but does not keep the chain open (the 1.5 s still run from the spasm's end),
and a piece that rises to three times every earlier piece of its chain, 3 s
or more after the chain began, is a spasm of its own: it is announced anew,
its event starts at its own rise, and what was held back is reported as it
stood. (Within 3 s it may be a tonic spasm's own slow rise after a faint first
piece, which stays one event.)

MicroPython-compatible: a few attributes, no allocation but the event tuple a
merge builds.
"""

from spasmband.spasm_episode import MYOCLONIC

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# An episode opening this soon (ms) after the last one closed continues it.
_CHAIN_MS = const(1500)
_CHAIN_SPAN_MS = const(20000)  # but a chain of pieces spans no more than this
# A faint jerk (below twice the onset level) that this many bursts follow
# while it is held back is the first burst of a bout of hand use.
_AFTER_BURSTS = const(3)
# A piece that rises this many times above every earlier piece of its chain
# (and to twice the onset level) this long (ms) after the chain began is a
# spasm of its own, not one more piece (sooner: a tonic spasm's own rise).
_APART_X = const(3)
_APART_AFTER_MS = const(3000)


class SpasmChain:
    """`out`: the detector's output list; `on_x10`: its onset level."""

    def __init__(self, out, on_x10):
        self._out = out
        self._on = on_x10
        self.end = -(1 << 29)  # when the last closed episode ended (ms)
        self.start = -1  # the start it was announced with (-1: nothing to join)
        self._told = False  # its onset was announced
        self._jump = 0  # its largest one-frame rise of movement (mg) and peak (mg)
        self._acc = 0
        self.pending = None  # the last event, held back while a continuation may follow
        self._bursts = 0  # the EMG front end's burst count when it closed
        self._peak = 0  # the largest peak activation of the chain's pieces
        self.apart = 0  # the open piece's peak that makes it a spasm of its own (0: none)

    def cut(self):
        """The next episode starts a chain of its own."""
        self.start = -1

    def join(self, ep, swing_ms):
        """Make `ep`, just opened, a piece of the last episode when it is one.

        `swing_ms`: how long the limb has swung at 3-8 Hz (0: not now)."""
        tr = ep.t_start
        self.apart = 0  # (every episode opens through here: set for it alone)
        if self.start < 0:
            return
        swings = swing_ms >= tr - self.end  # it swung since the last piece ended
        if tr - self.end > _CHAIN_MS and not swings:
            return
        if tr - self.start > _CHAIN_SPAN_MS and not swings:
            return
        ep.t_out = self.start
        ep.announced = True
        ep.told = self._told
        ep.follows = self.pending is not None
        if tr - self.start >= _APART_AFTER_MS:
            self.apart = _APART_X * self._peak
            if self.apart < 2 * self._on:
                self.apart = 2 * self._on
        if self._jump > ep.jump:
            # a piece keeps the movement that came with the chain's start: the
            # ringing after a knock on the band stays the knock
            ep.jump = self._jump
            if self._acc > ep.peak_acc:
                ep.peak_acc = self._acc

    def stands_apart(self, ep):
        """`ep`, joined to the chain, rose far above all its pieces (a strong
        spasm amid typing, after its faint bursts chained): it starts its own
        event, announced anew, and what is held back is reported as it stands."""
        self.apart = 0
        ep.t_out = ep.t_start
        ep.told = False
        ep.announced = False
        ep.follows = False
        if self.pending is not None:
            self._out.append(self.pending)
            self.pending = None

    def closed(self, ep, ev, bursts):
        """The episode `ep` closed with the verdict `ev` (an event tuple or None);
        `bursts`: the EMG front end's burst count now."""
        p = self.pending
        w = ep.why
        use = w == "busy" or w == "hand_use" or w == "gait"  # a step, a key press
        if ep.t_out == ep.t_start or ep.peak > self._peak:
            self._peak = ep.peak  # (a chain of its own, or its strongest piece so far)
        if not (use and ev is None and p is not None and ep.follows and p[6] >= 2 * self._on):
            # (steps and key presses after a clear spasm do not keep its chain
            # open: the next jerk amid them is a spasm of its own)
            self.end = ep.t_last
        self._told = ep.told
        self._jump = ep.jump
        self._acc = ep.peak_acc
        self.start = -1
        if ep.announced and not ep.split_level:
            if p is not None or not use:
                # a burst of ordinary activity starts no chain that the next
                # burst (a jerk amid them) would join
                self.start = ep.t_out
        if ev is not None and ev[1] != ep.t_start:
            # the event is a clonus found inside a longer episode (a walk): it
            # has its own start and joins no other piece
            if p is not None:
                self._out.append(p)
        elif ep.follows and p is not None:
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
        self.pending = ev
        self._bursts = bursts

    def flush(self, t, open_, bursts, swinging):
        """Per frame while an event is held back: report it once no piece can
        follow (`open_`: an episode is open; `swinging`: the limb swings now)."""
        p = self.pending
        if p is None:
            return
        if (
            p[3] == MYOCLONIC
            and p[6] < 2 * self._on
            and ((bursts - self._bursts) & 0xFFFF) >= _AFTER_BURSTS
        ):
            # a faint jerk that bursts keep following is the first of a bout of
            # hand use (typing starts after a pause), not a spasm
            self.pending = None
            self.start = -1
            return
        if not open_ and t - self.end > _CHAIN_MS and not swinging:
            self._out.append(p)
            self.pending = None
            # a reported event is final: a piece that rose before this but opens
            # after it starts an event of its own (never a second one at this start)
            self.start = -1

    def finish(self):
        """End of input: report what is held back as if quiet followed."""
        if self.pending is not None:
            self._out.append(self.pending)
            self.pending = None
            self.start = -1
