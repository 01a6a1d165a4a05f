"""Shared set-up for the firmware's VM tests: sensor sources and a band on a virtual clock.

Not a test module itself (no ``mp_test_`` prefix). Everything here runs in the
MicroPython VM: deterministic sources built from small-integer LCGs (no bigints,
no allocation per sample), a ``Band`` bundling clock, radio and board on a
fresh flash directory, and helpers to talk to it as a host would.
"""

from protocol import codec
from simulator.virtual_board import LoopbackRadio, VirtualBoard, VirtualClock

UTC = 1700000000000  # 2023-11-14, a plausible TIME_SYNC
_count = [0]


class RestEmg:
    """Surface EMG at rest: +-20 uV of noise; ``bursts`` add muscle activity.

    bursts: list of (start_ms, duration_ms, gain): within a burst the noise is
    multiplied by gain (a tonic contraction of 20 * gain uV).
    """

    def __init__(self, seed=1, bursts=()):
        self.s = seed
        self.bursts = bursts

    def __call__(self, i):
        self.s = (self.s * 75 + 74) % 65537
        v = self.s % 41 - 20
        for b in self.bursts:
            if b[0] <= i < b[0] + b[1]:
                return v * b[2]
        return v


class RestAcc:
    """A resting wrist: gravity on z with a few mg of jitter (never stuck)."""

    def __init__(self, seed=7):
        self.s = seed

    def __call__(self, i):
        self.s = (self.s * 75 + 74) % 65537
        j = self.s % 7 - 3
        return (12 + j, -8 - j, 1000 + (self.s >> 8) % 5)


class Band:
    """One simulated band: ``clock``, ``radio`` (LoopbackRadio) and ``board``."""

    def __init__(self, name=None, emg=None, acc=None, flash=None, clock=None, **kw):
        _count[0] += 1
        self.name = name or "band%d" % _count[0]
        self.clock = clock or VirtualClock()
        self.radio = LoopbackRadio(self.clock)
        self.flash = flash or "/flash_t/" + self.name
        self.board = VirtualBoard(
            "a1b2c3",
            self.flash,
            emg if emg is not None else RestEmg(),
            acc if acc is not None else RestAcc(),
            self.radio,
            self.clock,
            **kw,
        )
        self._cmd = 0

    @property
    def app(self):
        return self.board.app

    async def boot(self, ms=500):
        self.board.power_on()
        await self.clock.advance(ms)

    async def run(self, ms):
        await self.clock.advance(ms)

    async def shutdown(self):
        await self.board.shutdown()

    def connect(self, mtu=23, secure=True):
        self.radio.connect(mtu=mtu, secure=secure)

    async def command(self, ftype, fields=None, ms=300):
        """Send one host command; returns the control frames received in the next ``ms``."""
        self._cmd += 1
        self.radio.command(ftype, self._cmd, fields)
        await self.clock.advance(ms)
        return self.radio.frames("control")

    async def write_raw(self, data, ms=200):
        """Write one raw segment to control (garbage tests)."""
        self.radio.write(data)
        await self.clock.advance(ms)
        return self.radio.frames("control")

    def events(self):
        return self.radio.frames("events")

    def status(self):
        """The fields of the last STATUS notified since the last call (None if none)."""
        st = None
        for f in self.radio.frames("status"):
            st = f[3]
        return st

    async def press(self, hold_ms=200, after_ms=200):
        self.board.button_level = True
        await self.clock.advance(hold_ms)
        self.board.button_level = False
        await self.clock.advance(after_ms)


def of_type(frames, ftype):
    return [f for f in frames if f[0] == ftype]


def check_error(frames, code, text=None):
    """The one ERROR frame in ``frames`` has ``code`` (and ``text`` in its text)."""
    errs = of_type(frames, codec.ERROR)
    assert len(errs) == 1, "expected one ERROR, got %r" % (frames,)
    f = errs[0][3]
    assert f["code"] == code, "expected code %d, got %r" % (code, f)
    if text is not None:
        assert text in f["text"], "expected %r in %r" % (text, f["text"])
    return f
