"""Frames over BLE: the segments that carry a frame in notifications and writes.

A frame travels as one or more segments, each one notification or write of at
most (ATT MTU - 3) bytes: a one-byte segment header, then a slice of the frame
(protocol/SPEC.md, "Segments"). Shared by the band (MicroPython) and the host.
Errors are codec.SegmentError, a FrameError like every other wire error.
"""

from protocol.codec import MAX_FRAME, SegmentError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Header bits: 0x80 first, 0x40 last, 0x3F the segment's index in its frame.
SEG_FIRST = const(0x80)
SEG_LAST = const(0x40)
SEG_INDEX = const(0x3F)
MIN_MTU = const(23)  # the ATT default, before any MTU exchange


def segments(frame, mtu=MIN_MTU):
    """Split ``frame`` into the list of segments that fit ``mtu``."""
    room = mtu - 4  # 3 bytes of ATT header, 1 byte of segment header
    if room < 1:
        raise SegmentError("MTU too small")
    n = (len(frame) + room - 1) // room
    if n > SEG_INDEX + 1:
        raise SegmentError("frame needs too many segments for this MTU")
    out = []
    for i in range(n):
        h = i
        if i == 0:
            h |= SEG_FIRST
        if i == n - 1:
            h |= SEG_LAST
        out.append(bytes((h,)) + frame[i * room : (i + 1) * room])
    return out


class Reassembler:
    """Joins segments back into frames, in a buffer allocated once.

    ``feed(segment)`` returns the complete frame (a memoryview into the buffer,
    valid until the next feed) or None while a frame is incomplete. A segment
    out of order, or a frame longer than MAX_FRAME, raises SegmentError and
    drops the partial frame; the next first segment starts afresh.
    """

    def __init__(self, size=MAX_FRAME):
        self._buf = bytearray(size)
        self._mv = memoryview(self._buf)
        self._len = 0
        self._next = -1  # index expected next; -1 when waiting for a first segment

    def reset(self):
        self._len = 0
        self._next = -1

    def feed(self, seg):
        n = len(seg)
        if n < 2:
            self.reset()
            raise SegmentError("empty segment")
        h = seg[0]
        if h & SEG_FIRST:
            self._len = 0
            self._next = 0
        if self._next < 0 or (h & SEG_INDEX) != self._next:
            self.reset()
            raise SegmentError("segment out of order")
        if self._len + n - 1 > len(self._buf):
            self.reset()
            raise SegmentError("frame too long")
        self._mv[self._len : self._len + n - 1] = seg[1:]
        self._len += n - 1
        self._next = (self._next + 1) & SEG_INDEX
        if h & SEG_LAST:
            n = self._len
            self.reset()
            return self._mv[:n]
        return None
