"""Fuzz harness for the band's control handler (firmware/spasmband/link.py).

Runs in both interpreters: in the MicroPython VM (``import fuzz_band``, used by
tests/vm/mp_test_fuzz_control.py) and under CPython (``from tests.vm import
fuzz_band``, used by tests/test_fuzz_control.py and tests/bench/fuzz_long.py).
Not a test module itself (no ``mp_test_`` prefix).

``FuzzBand`` is the firmware's own ``App`` on a ``VirtualBoard`` with a
``LoopbackRadio`` that never reports TX full. Its tasks are not started: a
write goes to the radio, then ``link.poll()`` (what the link task runs every
20 ms) handles it at once, so a million writes take seconds, not hours.

``Oracle`` says what the band must answer, from the same bytes fed to a
reassembler and decoder of its own (protocol/SPEC.md): nothing for a partial
frame; one ERROR with the decoder's code for a broken segment or frame;
E_AUTH for any readable frame on a link that is not bonded; E_TYPE for a
band-to-host type; otherwise the frame is a real command ("command").

``Gen`` makes hostile segments from a 32-bit xorshift state (same sequence in
both interpreters): random bytes, whole frames of noise, mutated valid
commands, frames with a correct CRC around garbage, out-of-order segments.
"""

import struct

from protocol import codec, segmentation
from simulator.virtual_board import LoopbackRadio, VirtualBoard, VirtualClock

BAND_ID = "f0a2b1"
UTC = 1700000000000  # 2023-11-14
HOST_TYPES = (
    codec.ACK,
    codec.TIME_SYNC,
    codec.REPLAY,
    codec.CONFIG_GET,
    codec.CONFIG_SET,
    codec.STREAM,
    codec.REBOOT,
)
# outcome classes, also the keys of the counts the long fuzz run prints
ERROR_NAMES = {
    codec.E_CRC: "E_CRC",
    codec.E_LENGTH: "E_LENGTH",
    codec.E_VERSION: "E_VERSION",
    codec.E_TYPE: "E_TYPE",
    codec.E_RANGE: "E_RANGE",
    codec.E_KEY: "E_KEY",
    codec.E_AUTH: "E_AUTH",
    codec.E_BUSY: "E_BUSY",
    codec.E_INTERNAL: "E_INTERNAL",
    codec.E_SEGMENT: "E_SEGMENT",
}


def frame_bytes(ftype, seq, payload, version=codec.VERSION, flags=0):
    """A frame with a correct CRC around an arbitrary payload."""
    body = struct.pack("<BBBI", version, ftype, flags, seq) + payload
    return body + struct.pack("<H", codec.crc16(body))


class FuzzBand:
    """The firmware App on a virtual board, driven one write at a time."""

    def __init__(self, flash_dir, secure=True, mtu=23, records=3):
        from spasmband.app import App

        self.radio = LoopbackRadio(None)  # no clock: the TX buffer never fills
        self.board = VirtualBoard(
            BAND_ID,
            flash_dir,
            lambda i: 0,
            lambda i: (0, 0, 1000),
            self.radio,
            VirtualClock(),
        )
        app = App(self.board)
        self.board.app = app
        app.setup()
        app._start_radio()
        self.app = app
        self.link = app.link
        for i in range(records):  # a log with something in it, so ACK/REPLAY have a range
            app.log_marker(1000 * (i + 1))
        self.radio.connect(mtu=mtu, secure=True)
        self.link.poll()
        self._cmd(codec.TIME_SYNC, {"utc_ms": UTC})
        if records > 1:
            self._cmd(codec.ACK, {"upto": 1})
        self.radio.drop()
        self.link.poll()
        self.radio.connect(mtu=mtu, secure=secure)
        self.link.poll()
        self.secure = secure
        self.mtu = mtu
        self.drain()

    def _cmd(self, ftype, fields):
        self.radio.command(ftype, 1, fields)
        self.link.poll()

    def drain(self):
        for c in ("control", "events", "status", "signal"):
            self.radio.frames(c)

    def write(self, seg):
        """Write one segment; returns the control frames the band answered with."""
        self.radio.write(seg)
        self.link.poll()
        return self.radio.frames("control")

    def snapshot(self):
        """What garbage must never change: config, log, acks, time, streaming."""
        app = self.app
        return (
            sorted(app.config.values.items()),
            app.log.last_seq(),
            app.log.acked_seq,
            app.timebase.synced(),
            app.signal.on,
            app._reboot,
        )

    def flash(self):
        """Every file on the band's flash with its contents."""
        out = []
        b = self.board
        for name in b.listdir():
            try:
                f = b.open(name, "rb")
            except OSError:
                continue  # a directory
            try:
                out.append((name, f.read()))
            finally:
                f.close()
        return out


class Oracle:
    """What the band must answer to a written segment (see the module docstring)."""

    def __init__(self, secure=True):
        self.secure = secure
        self.reasm = segmentation.Reassembler()

    def expect(self, seg):
        """("none",) | ("error", code) | ("command", ftype, fields)."""
        try:
            frame = self.reasm.feed(seg)
        except codec.SegmentError as e:
            return ("error", e.code)
        if frame is None:
            return ("none",)
        try:
            ftype, _flags, _seq, fields = codec.decode(bytes(frame))
        except codec.FrameError as e:
            return ("error", e.code)
        if not self.secure:
            return ("error", codec.E_AUTH)
        if ftype not in HOST_TYPES:
            return ("error", codec.E_TYPE)
        return ("command", ftype, fields)


def check_reply(expected, replies, before, after):
    """Raise AssertionError unless ``replies`` and the state change fit ``expected``.

    Returns the outcome class for counting: "none", "E_xxx", "ok" or "refused:E_xxx"
    (a real command the band refused, e.g. ACK beyond the last seq).
    """
    for r in replies:
        assert r[0] in (codec.ERROR, codec.CONFIG_VALUE), "not a reply frame: %r" % (r,)
    kind = expected[0]
    if kind == "none":
        assert replies == [], "answered a partial frame: %r" % (replies,)
        assert after == before, "state changed on a partial frame"
        return "none"
    if kind == "error":
        assert len(replies) == 1, "expected one ERROR %d, got %r" % (expected[1], replies)
        assert replies[0][0] == codec.ERROR and replies[0][3]["code"] == expected[1], (
            "expected ERROR %d, got %r" % (expected[1], replies)
        )
        assert after == before, "state changed on a refused write"
        return ERROR_NAMES[expected[1]]
    # a readable command: at most one ERROR (and then nothing changed), or its answer
    errs = [r for r in replies if r[0] == codec.ERROR]
    if errs:
        assert len(replies) == 1, "an ERROR among other replies: %r" % (replies,)
        assert after == before, "state changed on a refused command"
        return "refused:" + ERROR_NAMES.get(errs[0][3]["code"], str(errs[0][3]["code"]))
    return "ok"


class Gen:
    """Hostile segments for a link of ``mtu`` from a xorshift32 seed (both interpreters)."""

    KINDS = ("bytes", "noise_frame", "mutated", "crc_ok", "segments")

    def __init__(self, seed, mtu=23):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
        self.mtu = mtu

    def u32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.u32() % n

    def blob(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.u32() & 0xFF
        return bytes(out)

    def valid_command(self):
        t = HOST_TYPES[self.below(len(HOST_TYPES))]
        seq = self.u32()
        if t == codec.ACK:
            f = {"upto": self.below(8)}
        elif t == codec.TIME_SYNC:
            f = {"utc_ms": UTC + self.below(100000)}
        elif t == codec.REPLAY:
            f = {"from_seq": self.below(8)}
        elif t == codec.CONFIG_GET:
            f = {"key": ("led", "status_s", "*", "min_event_ms", "zz")[self.below(5)]}
        elif t == codec.CONFIG_SET:
            key = ("led", "status_s", "min_event_ms", "nope")[self.below(4)]
            f = {"key": key, "value": (True, 3, 1e9, "x", -1, float("inf"))[self.below(6)]}
        elif t == codec.STREAM:
            f = {"on": self.below(2), "rate_hz": 1 + self.below(50)}
        else:
            f = {}
        return codec.encode(t, seq, f)

    def mutate(self, frame):
        raw = bytearray(frame)
        op = self.below(4)
        if op == 0:  # flip a bit
            i = self.below(len(raw))
            raw[i] ^= 1 << self.below(8)
        elif op == 1:  # cut
            raw = raw[: self.below(len(raw))]
        elif op == 2:  # extend
            raw += self.blob(1 + self.below(20))
        else:  # garbage inside, CRC fixed so the field checks must catch it
            i = self.below(len(raw) - 2)
            raw[i] = self.u32() & 0xFF
            raw[-2:] = struct.pack("<H", codec.crc16(bytes(raw[:-2])))
        return bytes(raw)

    def crc_ok_frame(self):
        ver = (codec.VERSION, codec.VERSION, codec.VERSION, 0x11, 0x20, self.u32() & 0xFF)
        v = ver[self.below(len(ver))]
        if self.below(2):
            t = HOST_TYPES[self.below(len(HOST_TYPES))]
        else:
            t = self.u32() & 0xFF
        return frame_bytes(t, self.u32(), self.blob(self.below(40)), v, self.u32() & 0xFF)

    def next(self):
        """(kind, list of segments to write in order)."""
        room = self.mtu - 3
        k = self.KINDS[self.below(len(self.KINDS))]
        if k == "bytes":
            return k, [self.blob(self.below(room + 1))]
        if k == "noise_frame":
            whole = segmentation.SEG_FIRST | segmentation.SEG_LAST
            return k, [bytes((whole,)) + self.blob(self.below(room))]
        if k == "mutated":
            frame = self.mutate(self.valid_command())
        elif k == "crc_ok":
            frame = self.crc_ok_frame()
        else:
            frame = self.valid_command() if self.below(2) else self.crc_ok_frame()
        if not frame:
            frame = b"\x10"
        segs = segmentation.segments(frame, self.mtu)
        if k == "segments" and len(segs) > 1:
            # drop, repeat or swap one segment
            i = self.below(len(segs))
            op = self.below(3)
            if op == 0:
                segs.pop(i)
            elif op == 1:
                segs.insert(i, segs[i])
            else:
                j = self.below(len(segs))
                segs[i], segs[j] = segs[j], segs[i]
        return k, segs


def run(band, oracle, gen, n, counts, check_flash_every=0):
    """Feed ``n`` generated inputs; add outcome classes to ``counts``; returns writes made.

    Every ``check_flash_every`` inputs (0 = never) the band's flash is compared
    with the last copy: it may change only if a real command was accepted since.
    """
    before = band.snapshot()
    flash = band.flash() if check_flash_every else None
    accepted = False
    writes = 0
    for i in range(n):
        _kind, segs = gen.next()
        for seg in segs:
            exp = oracle.expect(seg)
            replies = band.write(seg)
            after = band.snapshot()
            c = check_reply(exp, replies, before, after)
            counts[c] = counts.get(c, 0) + 1
            if c == "ok":
                accepted = True
            before = after
            writes += 1
        if check_flash_every and i % check_flash_every == check_flash_every - 1:
            now = band.flash()
            if now != flash and not accepted:
                raise AssertionError("flash changed with no accepted command")
            flash = now
            accepted = False
        band.drain()
    return writes
