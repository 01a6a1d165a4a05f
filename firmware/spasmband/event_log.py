"""The band's event log: fixed-size records in a ring of segment files on flash.

Every EVENT, MARKER and FAULT the band produces is written here before it goes
on the radio, and stays until a host acknowledges it (ACK upto). Layout:

- ``SEGMENTS`` files ``log00.bin`` .. ``logNN.bin``, each holding up to
  ``PER_SEGMENT`` records of ``RECORD_LEN`` (32) bytes, written append-only and
  used round-robin. The ring is split into segment files because littlefs (the
  ESP32 port's default filesystem) rewrites a file from the write position to
  its end on an in-place write, while an append costs one block: the ring stays
  cheap to write for weeks. Recycling a segment truncates one small file.
- ``logstate.json``: the acked seq, the count of overwritten unacknowledged
  records, and a floor for the next seq (written on ack and on recycling, via a
  temporary file and a rename).

Record: magic 0xA5, type u8, seq u32, boot u16, t_ms u32, 18 bytes of payload
(the type's fields in wire units, zero padded), CRC-16/CCITT-FALSE (codec.crc16)
over the first 30 bytes.

Guarantees:
- A power cut in the middle of an append leaves at most one torn record (short
  or with a bad CRC); opening the log pads a short tail to a whole slot and every
  reader skips a slot whose CRC fails. The torn record was never sent (records
  go on the radio only after they are written), so its seq is given to the next
  record: seqs stay contiguous.
- seq starts at 1 and only grows, across reboots too: records are not erased when
  acked, so the newest one always tells the next seq (the state file keeps a floor
  as a second source).
- Capacity: ``(SEGMENTS - 1) * PER_SEGMENT`` records are always kept
  ((17 - 1) x 128 = 2048 records; the 17 segments of 128 take 68 KB of flash).
  When the log is full, appending
  recycles the oldest segment: its records are lost, and those not yet acked are
  added to ``overwritten`` (reported in STATUS). An append never waits and never
  fails for lack of room: sampling never blocks on the log.
"""

import struct

from protocol import codec
from spasmband import json_file

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


RECORD_LEN = const(32)
_BODY = const(30)  # bytes covered by the CRC
_MAGIC = const(0xA5)
_HEAD = "<BBIHI"  # magic, type, seq, boot, t_ms
_HEAD_LEN = const(12)
SEGMENTS = const(17)
PER_SEGMENT = const(128)
STATE_FILE = "logstate.json"

# Payload layout per logged type (wire units, same order as codec's field names
# after the stamp).
PAYLOAD = {
    codec.EVENT: ("<BBBIHHHBB", ("kind", "severity", "confidence", "duration_ms",
                                 "peak_act_x10", "mean_act_x10", "peak_acc_mg",
                                 "freq_dhz", "modalities")),
    codec.MARKER: ("<B", ("source",)),
    codec.FAULT: ("<BI", ("fault", "duration_ms")),
}


def segment_name(i):
    return "log%02d.bin" % i



def _state_ok(d):
    for k in ("acked", "overwritten", "floor"):
        v = d.get(k, 0)
        if not isinstance(v, int) or v < 0:
            return False
    return True

class EventLog:
    """The ring of records. ``open()`` before use; all methods are synchronous."""

    def __init__(self, board, segments=SEGMENTS, per_segment=PER_SEGMENT):
        self.board = board
        self.segments = segments
        self.per_segment = per_segment
        self.capacity = (segments - 1) * per_segment
        self._wbuf = bytearray(RECORD_LEN)
        self._rbuf = bytearray(RECORD_LEN)
        self._rmv = memoryview(self._rbuf)
        # Per segment: slots written (including torn ones), first and last valid seq (0: none)
        self._slots = [0] * segments
        self._first = [0] * segments
        self._last = [0] * segments
        self._head = 0  # segment being appended to
        self.next_seq = 1
        self.acked_seq = 0
        self.overwritten = 0
        self.torn = 0  # torn records found when opening
        self._rfile = None  # cached read handle (segment index, file)
        self._rseg = -1

    # ------------------------------------------------------------ opening

    def open(self):
        b = self.board
        state = self._load_state()
        self.acked_seq = state.get("acked", 0)
        self.overwritten = state.get("overwritten", 0)
        floor = state.get("floor", 1)
        best = -1
        for i in range(self.segments):
            self._scan(i)
            if self._last[i] and (best < 0 or self._last[i] > self._last[best]):
                best = i
        if best < 0:
            # empty log: continue after the last file written, if any slots exist
            best = 0
            for i in range(self.segments):
                if self._slots[i]:
                    best = i
        self._head = best
        last = self._last[best]
        self.next_seq = max(last + 1, floor, 1)
        if self.acked_seq >= self.next_seq:
            self.acked_seq = self.next_seq - 1
        b.log("log: %d records, seq %d..%d, acked %d, torn %d" % (
            self.used_total(), self.first_seq(), self.next_seq - 1, self.acked_seq, self.torn))

    def _scan(self, i):
        b = self.board
        name = segment_name(i)
        self._slots[i] = 0
        self._first[i] = 0
        self._last[i] = 0
        if not b.exists(name):
            return
        f = b.open(name, "rb")
        try:
            size = f.seek(0, 2)
            n = size // RECORD_LEN
            for k in range(n):
                s = self._read_slot(f, k)
                if s:
                    self._first[i] = s
                    break
                self.torn += 1
            for k in range(n - 1, -1, -1):
                s = self._read_slot(f, k)
                if s:
                    self._last[i] = s
                    break
        finally:
            f.close()
        if size % RECORD_LEN:
            # a torn append: pad the slot so it is whole (and fails its CRC)
            self.torn += 1
            pad = RECORD_LEN - size % RECORD_LEN
            f = b.open(name, "ab")
            try:
                f.write(b"\xff" * pad)
            finally:
                f.close()
            n += 1
        self._slots[i] = n

    def _read_slot(self, f, k):
        """seq of the valid record in slot k of open file f, else 0 (data in _rbuf)."""
        f.seek(k * RECORD_LEN)
        got = f.readinto(self._rbuf)
        if got != RECORD_LEN:
            return 0
        buf = self._rbuf
        if buf[0] != _MAGIC:
            return 0
        if codec.crc16(self._rmv[:_BODY]) != (buf[_BODY] | (buf[_BODY + 1] << 8)):
            return 0
        return struct.unpack_from("<I", buf, 2)[0]

    # ------------------------------------------------------------ state file

    def _load_state(self):
        d = json_file.load(self.board, STATE_FILE, _state_ok)
        return {} if d is None else d

    def _save_state(self):
        json_file.save(self.board, STATE_FILE, {
            "acked": self.acked_seq, "overwritten": self.overwritten, "floor": self.next_seq})

    # ------------------------------------------------------------ queries

    def last_seq(self):
        return self.next_seq - 1

    def first_seq(self):
        """Oldest seq still held (next_seq when the log holds nothing)."""
        first = self.next_seq
        for i in range(self.segments):
            s = self._first[i]
            if s and s < first:
                first = s
        return first

    def used_total(self):
        return self.next_seq - self.first_seq()

    def unacked(self):
        """Records held and not yet acknowledged (STATUS log_used)."""
        low = max(self.acked_seq + 1, self.first_seq())
        return max(0, self.next_seq - low)

    # ------------------------------------------------------------ writing

    def append(self, ftype, boot, t_ms, values):
        """Write one record; ``values`` are the type's payload fields in order. Returns its seq."""
        fmt = PAYLOAD[ftype][0]
        h = self._head
        if self._slots[h] >= self.per_segment:
            h = (h + 1) % self.segments
            self._recycle(h)
            self._head = h
        seq = self.next_seq
        buf = self._wbuf
        for i in range(RECORD_LEN):
            buf[i] = 0
        struct.pack_into(_HEAD, buf, 0, _MAGIC, ftype, seq, boot & 0xFFFF, t_ms & 0xFFFFFFFF)
        struct.pack_into(fmt, buf, _HEAD_LEN, *values)
        struct.pack_into("<H", buf, _BODY, codec.crc16(memoryview(buf)[:_BODY]))
        if self._rseg == h:
            self._close_reader()
        f = self.board.open(segment_name(h), "ab")
        try:
            f.write(buf)
        finally:
            f.close()
        self._slots[h] += 1
        if not self._first[h]:
            self._first[h] = seq
        self._last[h] = seq
        self.next_seq = seq + 1
        return seq

    def _recycle(self, i):
        first = self._first[i]
        last = self._last[i]
        if last and last > self.acked_seq:
            lost = last - max(first - 1, self.acked_seq)
            self.overwritten += lost
            self.board.log("log: full, overwrote %d unacked records" % lost)
        if self._rseg == i:
            self._close_reader()
        f = self.board.open(segment_name(i), "wb")  # truncate
        f.close()
        self._slots[i] = 0
        self._first[i] = 0
        self._last[i] = 0
        self._save_state()

    def ack(self, upto):
        """Free every record with seq <= upto. Returns False when upto is beyond the last seq."""
        if upto > self.next_seq - 1:
            return False
        if upto > self.acked_seq:
            self.acked_seq = upto
            self._save_state()
        return True

    # ------------------------------------------------------------ reading

    def _close_reader(self):
        if self._rfile is not None:
            self._rfile.close()
        self._rfile = None
        self._rseg = -1

    def close(self):
        self._close_reader()

    def read_from(self, seq):
        """The first held record with seq >= ``seq``: (ftype, seq, boot, t_ms, values), or None."""
        if seq < 1:
            seq = 1
        while seq < self.next_seq:
            # the segment holding seq: the one with the largest first seq <= seq
            seg = -1
            for i in range(self.segments):
                s = self._first[i]
                if s and s <= seq and (seg < 0 or s > self._first[seg]):
                    seg = i
            if seg < 0:
                seq = self.first_seq()
                if seq >= self.next_seq:
                    return None
                continue
            if self._last[seg] < seq:
                seq = self._last[seg] + 1
                continue
            if self._rseg != seg:
                self._close_reader()
                self._rfile = self.board.open(segment_name(seg), "rb")
                self._rseg = seg
            f = self._rfile
            # slots >= seq - first (torn slots only push records further)
            for k in range(seq - self._first[seg], self._slots[seg]):
                s = self._read_slot(f, k)
                if s >= seq:
                    return self._unpack(s)
            seq = self._last[seg] + 1
        return None

    def _unpack(self, seq):
        buf = self._rbuf
        _m, ftype, _s, boot, t_ms = struct.unpack_from(_HEAD, buf, 0)
        p = PAYLOAD.get(ftype)
        if p is None:
            return (0, seq, boot, t_ms, ())
        return (ftype, seq, boot, t_ms, struct.unpack_from(p[0], buf, _HEAD_LEN))


def record_fields(rec, utc_ms):
    """The codec field dict of a record from ``read_from`` (utc_ms computed by the caller)."""
    ftype, _seq, boot, t_ms, values = rec
    names = PAYLOAD[ftype][1]
    d = {"boot": boot, "t_ms": t_ms, "utc_ms": utc_ms}
    for i in range(len(names)):
        d[names[i]] = values[i]
    return d
