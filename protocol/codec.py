"""The wire codec shared by the band (MicroPython) and the host (CPython).

One source for the byte layout of every frame (see protocol/SPEC.md): encode
and decode frames, and the CRC-16/CCITT-FALSE; protocol/segmentation.py carries
a frame over notifications and writes of any ATT MTU. Plain
MicroPython-compatible Python: struct, const, bytes; no dataclasses, typing,
match or walrus.

Decoded frames are tuples ``(ftype, flags, seq, fields)`` where ``fields`` is a
dict of the type's named fields in wire units (integers; strings for keys and
text; a list of tuples for signal samples). Every failure raises FrameError (or
one of its subclasses), never IndexError or struct.error, on any input: encode
checks every argument's type and range, and decode refuses what encode would
not build.
"""

import struct

from protocol import utf8

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION_MAJOR = const(1)
VERSION_MINOR = const(0)
VERSION = const(0x10)  # high nibble major, low nibble minor

HEADER_LEN = const(7)  # version, type, flags, seq
CRC_LEN = const(2)
MIN_FRAME = const(9)
MAX_FRAME = const(512)

# Band -> host
EVENT = const(0x01)
ONSET = const(0x02)
MARKER = const(0x03)
FAULT = const(0x04)
STATUS = const(0x05)
SIGNAL = const(0x06)
CONFIG_VALUE = const(0x07)
ERROR = const(0x0F)
# Host -> band
ACK = const(0x40)
TIME_SYNC = const(0x41)
REPLAY = const(0x42)
CONFIG_GET = const(0x43)
CONFIG_SET = const(0x44)
STREAM = const(0x45)
REBOOT = const(0x46)

# Flags
FLAG_REPLAY = const(0x01)  # a logged record re-sent in answer to REPLAY
FLAGS_KNOWN = const(0x01)  # the bits this minor version defines

# Error codes, shared by FrameError.code and the ERROR frame
E_CRC = const(1)
E_LENGTH = const(2)
E_VERSION = const(3)
E_TYPE = const(4)
E_RANGE = const(5)
E_KEY = const(6)
E_AUTH = const(7)
E_BUSY = const(8)
E_INTERNAL = const(9)
E_SEGMENT = const(10)

# Config value type tags
V_INT = const(0)
V_FLOAT = const(1)
V_STR = const(2)
V_BOOL = const(3)

MAX_TEXT = const(64)
# The largest finite f32 (float literal: const() takes integers only). Checked
# explicitly: CPython's struct raises OverflowError beyond it, MicroPython packs inf.
F32_MAX = 3.4028234663852886e38
MAX_SAMPLES = const(32)
SAMPLE_FMT = "<Hhhh"  # EMG envelope uV, acceleration x, y, z in mg
SAMPLE_LEN = const(8)

KINDS = ("", "myoclonic", "clonic", "tonic")
FAULTS = ("", "lead_off", "saturation", "flatline", "acc_dropout")
TYPE_NAMES = {
    EVENT: "event",
    ONSET: "onset",
    MARKER: "marker",
    FAULT: "fault",
    STATUS: "status",
    SIGNAL: "signal",
    CONFIG_VALUE: "config_value",
    ERROR: "error",
    ACK: "ack",
    TIME_SYNC: "time_sync",
    REPLAY: "replay",
    CONFIG_GET: "config_get",
    CONFIG_SET: "config_set",
    STREAM: "stream",
    REBOOT: "reboot",
}
LOGGED = (EVENT, MARKER, FAULT)  # stored in band flash, acked, replayed

_U8 = (0, 0xFF)
_U16 = (0, 0xFFFF)
_U32 = (0, 0xFFFFFFFF)

# Fixed part of each payload: struct format, field names, (min, max) per field.
# A type whose payload also has a variable tail (samples, strings) lists it in
# _TAIL and is handled by the tail functions below.
_SCHEMA = {
    EVENT: (
        "<HIQBBBIHHHBB",
        (
            "boot",
            "t_ms",
            "utc_ms",
            "kind",
            "severity",
            "confidence",
            "duration_ms",
            "peak_act_x10",
            "mean_act_x10",
            "peak_acc_mg",
            "freq_dhz",
            "modalities",
        ),
        (_U16, _U32, None, (1, 3), (1, 3), (0, 100), _U32, _U16, _U16, _U16, _U8, (1, 3)),
    ),
    ONSET: (
        "<HIQBBH",
        ("boot", "t_ms", "utc_ms", "kind", "confidence", "act_x10"),
        (_U16, _U32, None, (0, 3), (0, 100), _U16),
    ),
    MARKER: ("<HIQB", ("boot", "t_ms", "utc_ms", "source"), (_U16, _U32, None, (1, 2))),
    FAULT: (
        "<HIQBI",
        ("boot", "t_ms", "utc_ms", "fault", "duration_ms"),
        (_U16, _U32, None, (1, 4), _U32),
    ),
    STATUS: (
        "<HIBHBBHHIIIBBBB",
        (
            "boot",
            "uptime_ms",
            "battery_pct",
            "battery_mv",
            "quality",
            "faults",
            "log_used",
            "log_capacity",
            "log_overwritten",
            "last_seq",
            "acked_seq",
            "state",
            "fw_major",
            "fw_minor",
            "fw_patch",
        ),
        (
            _U16,
            _U32,
            (0, 100),
            _U16,
            (0, 100),
            (0, 15),
            _U16,
            _U16,
            _U32,
            _U32,
            _U32,
            (0, 7),  # bits 0-2
            _U8,
            _U8,
            _U8,
        ),
    ),
    SIGNAL: (
        "<HIBB",
        ("boot", "t_ms", "rate_hz", "count"),
        (_U16, _U32, (1, 50), (1, MAX_SAMPLES)),
    ),
    CONFIG_VALUE: ("<B", ("status",), ((0, 0),)),
    ERROR: ("<BBI", ("code", "ref_type", "ref_seq"), ((E_CRC, E_SEGMENT), _U8, _U32)),
    ACK: ("<I", ("upto",), (_U32,)),
    TIME_SYNC: ("<Q", ("utc_ms",), (None,)),
    REPLAY: ("<I", ("from_seq",), (_U32,)),
    CONFIG_GET: ("", (), ()),
    CONFIG_SET: ("", (), ()),
    STREAM: ("<BB", ("on", "rate_hz"), ((0, 1), (1, 50))),
    REBOOT: ("", (), ()),
}
# Types with a variable tail after the fixed part: "samples", "key", "keyval", "text"
_TAIL = {
    SIGNAL: "samples",
    CONFIG_VALUE: "keyval",
    ERROR: "text",
    CONFIG_GET: "key",
    CONFIG_SET: "keyval",
}
# Ranges a frame of a newer minor version may exceed: it may add error codes.
_NEWER_RANGES = {ERROR: ((1, 0xFF), _U8, _U32)}
_SIZES = {}
for _t in _SCHEMA:
    _SIZES[_t] = struct.calcsize(_SCHEMA[_t][0]) if _SCHEMA[_t][0] else 0
# State bits in STATUS.state
STATE_SYNCED = const(0x01)
STATE_STREAMING = const(0x02)
STATE_BONDED = const(0x04)


class FrameError(ValueError):
    """A frame that cannot be accepted. ``code`` is one of the E_* codes."""

    code = E_INTERNAL

    def __init__(self, detail, ftype=0, seq=0):
        super().__init__(detail)
        self.detail = detail
        self.ftype = ftype
        self.seq = seq


class CrcError(FrameError):
    code = E_CRC


class LengthError(FrameError):
    code = E_LENGTH


class VersionError(FrameError):
    code = E_VERSION


class UnknownTypeError(FrameError):
    code = E_TYPE


class RangeError(FrameError):
    code = E_RANGE


class SegmentError(FrameError):
    code = E_SEGMENT


def _make_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return tuple(t)


_CRC_TABLE = _make_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out)."""
    tab = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ tab[((crc >> 8) ^ b) & 0xFF]
    return crc


def _check_flags(ftype, flags, strict, seq=0):
    # REPLAY marks a logged record only; bits a newer minor version defines are
    # ignored in its frames (see SPEC.md, Versioning), refused in our own.
    if flags & FLAG_REPLAY and ftype not in LOGGED:
        raise RangeError("flags: REPLAY on a type that is not logged", ftype, seq)
    if strict and flags & ~FLAGS_KNOWN:
        raise RangeError("flags: unknown bits 0x%02x" % (flags & ~FLAGS_KNOWN), ftype, seq)


# ---------------------------------------------------------------- encoding


def _check(ftype, names, ranges, values):
    for i in range(len(names)):
        r = ranges[i]
        v = values[i]
        if not isinstance(v, int):
            raise RangeError(names[i] + ": not an integer", ftype)
        if r is None:
            if v < 0 or v > 0xFFFFFFFFFFFFFFFF:
                raise RangeError(names[i] + ": out of range", ftype)
        elif v < r[0] or v > r[1]:
            raise RangeError(names[i] + ": out of range", ftype)


def _text_bytes(s, name, ftype):
    if not isinstance(s, str):
        raise RangeError(name + ": not a string", ftype)
    try:
        b = s.encode()
    except UnicodeError:  # CPython: a lone surrogate
        b = None
    if b is not None and len(b) > MAX_TEXT:
        raise RangeError(name + ": too long", ftype)
    # MicroPython encodes a lone surrogate; decode would refuse it
    if b is None or not utf8.valid(b, 0, len(b)):
        raise RangeError(name + ": not UTF-8", ftype)
    return bytes((len(b),)) + b


def _value_bytes(v, ftype):
    # bool before int: bool is an int subclass on CPython
    if v is True or v is False:
        return bytes((V_BOOL, 1 if v else 0))
    if isinstance(v, int):
        if v < -0x80000000 or v > 0x7FFFFFFF:
            raise RangeError("value: out of range", ftype)
        return struct.pack("<Bi", V_INT, v)
    if isinstance(v, float):
        finite = v - v == 0  # False for inf and NaN
        if finite and not -F32_MAX <= v <= F32_MAX:
            raise RangeError("value: beyond f32", ftype)
        # the band's config holds finite values; a CONFIG_SET of inf or NaN
        # reaches the band, which refuses it naming the key
        if not finite and ftype == CONFIG_VALUE:
            raise RangeError("value: not finite", ftype)
        return struct.pack("<Bf", V_FLOAT, v)
    if isinstance(v, str):
        return bytes((V_STR,)) + _text_bytes(v, "value", ftype)
    raise RangeError("value: unsupported type", ftype)


def _encode_tail(ftype, kind, fields):
    if kind == "samples":
        samples = fields["samples"]
        if not isinstance(samples, (list, tuple)) or len(samples) != fields["count"]:
            raise RangeError("count: does not match samples", ftype)
        out = bytearray()
        for s in samples:
            if not isinstance(s, (list, tuple)) or len(s) != 4:
                raise RangeError("samples: need 4 values", ftype)
            _check(
                ftype,
                ("emg", "ax", "ay", "az"),
                (_U16, (-32768, 32767), (-32768, 32767), (-32768, 32767)),
                s,
            )
            out.extend(struct.pack(SAMPLE_FMT, s[0], s[1], s[2], s[3]))
        return bytes(out)
    if kind == "text":
        return _text_bytes(fields["text"], "text", ftype)
    if kind == "key":
        return _text_bytes(fields["key"], "key", ftype)
    # keyval
    tail = _text_bytes(fields["key"], "key", ftype)
    v = fields.get("value")
    if v is None:
        if ftype == CONFIG_VALUE:  # a CONFIG_SET without one is the band's to refuse
            raise RangeError("missing field value", ftype)
        return tail
    return tail + _value_bytes(v, ftype)


def encode(ftype, seq, fields=None, flags=0):
    """Return the frame bytes for ``ftype`` with ``seq`` and its ``fields``."""
    if not isinstance(ftype, int):
        raise UnknownTypeError("type: not an integer", 0, seq)
    schema = _SCHEMA.get(ftype)
    if schema is None:
        raise UnknownTypeError("unknown type 0x%02x" % (ftype & 0xFF), ftype, seq)
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise RangeError("fields: not a dict", ftype)
    fmt, names, ranges = schema
    try:
        values = [fields[n] for n in names]
    except KeyError as e:
        raise RangeError("missing field " + str(e.args[0]), ftype, seq)
    _check(ftype, names, ranges, values)
    if not isinstance(seq, int) or seq < 0 or seq > 0xFFFFFFFF:
        raise RangeError("seq: out of range", ftype)
    if not isinstance(flags, int) or flags < 0 or flags > 0xFF:
        raise RangeError("flags: out of range", ftype)
    _check_flags(ftype, flags, True)
    out = bytearray(struct.pack("<BBBI", VERSION, ftype, flags, seq))
    if fmt:
        out.extend(struct.pack(fmt, *values))
    kind = _TAIL.get(ftype)
    if kind is not None:
        try:
            out.extend(_encode_tail(ftype, kind, fields))
        except KeyError as e:
            raise RangeError("missing field " + str(e.args[0]), ftype, seq)
    if len(out) + CRC_LEN > MAX_FRAME:
        raise LengthError("frame too long", ftype, seq)
    out.extend(struct.pack("<H", crc16(out)))
    return bytes(out)


# ---------------------------------------------------------------- decoding


def _read_text(buf, pos, end, name, ftype, seq):
    if pos >= end:
        raise LengthError(name + ": missing", ftype, seq)
    n = buf[pos]
    pos += 1
    if n > MAX_TEXT or pos + n > end:
        raise LengthError(name + ": bad length", ftype, seq)
    if not utf8.valid(buf, pos, pos + n):
        raise RangeError(name + ": not UTF-8", ftype, seq)
    try:
        s = str(bytes(buf[pos : pos + n]), "utf-8")
    except (UnicodeError, ValueError):
        raise RangeError(name + ": not UTF-8", ftype, seq)
    return s, pos + n


def _read_value(buf, pos, end, ftype, seq):
    tag = buf[pos]
    pos += 1
    if tag == V_INT or tag == V_FLOAT:
        if pos + 4 > end:
            raise LengthError("value: short", ftype, seq)
        v = struct.unpack_from("<i" if tag == V_INT else "<f", buf, pos)[0]
        # only a finite float is in the f32 range (NaN fails both comparisons)
        if ftype == CONFIG_VALUE and tag == V_FLOAT and not -F32_MAX <= v <= F32_MAX:
            raise RangeError("value: not finite", ftype, seq)
        return v, pos + 4
    if tag == V_BOOL:
        if pos >= end:
            raise LengthError("value: short", ftype, seq)
        if buf[pos] > 1:
            raise RangeError("value: bad bool", ftype, seq)
        return buf[pos] == 1, pos + 1
    if tag == V_STR:
        return _read_text(buf, pos, end, "value", ftype, seq)
    raise RangeError("value: unknown type tag", ftype, seq)


def _decode_tail(buf, pos, end, ftype, seq, kind, fields):
    if kind == "samples":
        n = fields["count"]
        if pos + n * SAMPLE_LEN > end:
            raise LengthError("samples: short", ftype, seq)
        samples = []
        for _ in range(n):
            samples.append(struct.unpack_from(SAMPLE_FMT, buf, pos))
            pos += SAMPLE_LEN
        fields["samples"] = samples
    elif kind == "text":
        fields["text"], pos = _read_text(buf, pos, end, "text", ftype, seq)
    else:
        fields["key"], pos = _read_text(buf, pos, end, "key", ftype, seq)
        if kind == "keyval":
            if pos < end:
                fields["value"], pos = _read_value(buf, pos, end, ftype, seq)
            elif ftype == CONFIG_VALUE:
                raise LengthError("value: missing", ftype, seq)
            else:
                fields["value"] = None  # CONFIG_SET: the band refuses it naming the key
    return pos


def decode(buf):
    """Decode one whole frame; return ``(ftype, flags, seq, fields)``."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise FrameError("frame: not bytes")  # E_INTERNAL: a caller's bug, not the peer's
    n = len(buf)
    if n < MIN_FRAME:
        raise LengthError("short frame (%d bytes)" % n)
    if n > MAX_FRAME:
        raise LengthError("long frame (%d bytes)" % n)
    end = n - CRC_LEN
    if crc16(memoryview(buf)[:end]) != (buf[end] | (buf[end + 1] << 8)):
        raise CrcError("bad CRC")
    ver, ftype, flags, seq = struct.unpack_from("<BBBI", buf, 0)
    if ver >> 4 != VERSION_MAJOR:
        raise VersionError("unknown version %d.%d" % (ver >> 4, ver & 15), ftype, seq)
    schema = _SCHEMA.get(ftype)
    if schema is None:
        raise UnknownTypeError("unknown type 0x%02x" % ftype, ftype, seq)
    # A newer minor version may append fields: tolerate trailing bytes then.
    strict = (ver & 15) <= VERSION_MINOR
    _check_flags(ftype, flags, strict, seq)
    fmt, names, ranges = schema
    if not strict:
        ranges = _NEWER_RANGES.get(ftype, ranges)
    pos = HEADER_LEN
    size = _SIZES[ftype]
    if pos + size > end:
        raise LengthError("short payload", ftype, seq)
    fields = {}
    if size:
        values = struct.unpack_from(fmt, buf, pos)
        for i in range(len(names)):
            fields[names[i]] = values[i]
        try:
            _check(ftype, names, ranges, values)
        except RangeError as e:
            raise RangeError(e.detail, ftype, seq)
        pos += size
    kind = _TAIL.get(ftype)
    if kind is not None:
        pos = _decode_tail(buf, pos, end, ftype, seq, kind, fields)
    if strict and pos != end:
        raise LengthError("long payload (%d extra bytes)" % (end - pos), ftype, seq)
    return ftype, flags, seq, fields
