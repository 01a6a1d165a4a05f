"""The wire codec under CPython: vectors, CRC, property tests for robustness and round-trips."""

from __future__ import annotations

import binascii
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, segmentation, utf8
from tests import mpvm
from tests.vm import protocol_vectors

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors.json"

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
i16 = st.integers(-32768, 32767)
text = st.text(max_size=20).filter(lambda s: len(s.encode()) <= codec.MAX_TEXT)
value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(width=32, allow_nan=False),
    text,
)
# a CONFIG_VALUE always carries a value, and a float one is finite
reply_value = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    text,
)
stamp = {"boot": u16, "t_ms": u32, "utc_ms": u64}

FIELDS: dict[int, dict[str, st.SearchStrategy[Any]]] = {
    codec.EVENT: stamp
    | {
        "kind": st.integers(1, 3),
        "severity": st.integers(1, 3),
        "confidence": st.integers(0, 100),
        "duration_ms": u32,
        "peak_act_x10": u16,
        "mean_act_x10": u16,
        "peak_acc_mg": u16,
        "freq_dhz": u8,
        "modalities": st.integers(1, 3),
    },
    codec.ONSET: stamp
    | {"kind": st.integers(0, 3), "confidence": st.integers(0, 100), "act_x10": u16},
    codec.MARKER: stamp | {"source": st.integers(1, 2)},
    codec.FAULT: stamp | {"fault": st.integers(1, 4), "duration_ms": u32},
    codec.STATUS: {
        "boot": u16,
        "uptime_ms": u32,
        "battery_pct": st.integers(0, 100),
        "battery_mv": u16,
        "quality": st.integers(0, 100),
        "faults": st.integers(0, 15),
        "log_used": u16,
        "log_capacity": u16,
        "log_overwritten": u32,
        "last_seq": u32,
        "acked_seq": u32,
        "state": st.integers(0, 7),
        "fw_major": u8,
        "fw_minor": u8,
        "fw_patch": u8,
    },
    codec.CONFIG_VALUE: {"status": st.just(0), "key": text, "value": reply_value},
    codec.ERROR: {
        "code": st.integers(codec.E_CRC, codec.E_SEGMENT),
        "ref_type": u8,
        "ref_seq": u32,
        "text": text,
    },
    codec.ACK: {"upto": u32},
    codec.TIME_SYNC: {"utc_ms": u64},
    codec.REPLAY: {"from_seq": u32},
    codec.CONFIG_GET: {"key": text},
    codec.CONFIG_SET: {"key": text, "value": value},
    codec.STREAM: {"on": st.integers(0, 1), "rate_hz": st.integers(1, 50)},
    codec.REBOOT: {},
}


@st.composite
def signal_fields(draw: st.DrawFn) -> dict[str, Any]:
    samples = draw(st.lists(st.tuples(u16, i16, i16, i16), min_size=1, max_size=codec.MAX_SAMPLES))
    return {
        "boot": draw(u16),
        "t_ms": draw(u32),
        "rate_hz": draw(st.integers(1, 50)),
        "count": len(samples),
        "samples": samples,
    }


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, int, int, dict[str, Any]]:
    ftype = draw(st.sampled_from(sorted(codec.TYPE_NAMES)))
    fields = (
        draw(signal_fields())
        if ftype == codec.SIGNAL
        else draw(st.fixed_dictionaries(FIELDS[ftype]))
    )
    flags = draw(st.sampled_from([0, codec.FLAG_REPLAY])) if ftype in codec.LOGGED else 0
    return ftype, flags, draw(u32), fields


def test_every_frame_type_has_a_strategy() -> None:
    assert set(FIELDS) | {codec.SIGNAL} == set(codec.TYPE_NAMES)


def test_vectors_under_cpython() -> None:
    assert protocol_vectors.check(str(VECTORS)) >= 40


def test_crc_check_value() -> None:
    assert codec.crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=300))
def test_crc_matches_an_independent_implementation(data: bytes) -> None:
    # binascii.crc_hqx is CRC-16 poly 0x1021, unreflected: with init 0xFFFF it is CCITT-FALSE
    assert codec.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


def test_header_layout_is_little_endian() -> None:
    marker = {"boot": 0x0A0B, "t_ms": 0x0A0B0C0D, "utc_ms": 5, "source": 1}
    frame = codec.encode(codec.MARKER, 0x01020304, marker, flags=codec.FLAG_REPLAY)
    ver, ftype, flags, seq, boot, t_ms, _utc, _src, crc = struct.unpack("<BBBIHIQBH", frame)
    assert (ver, ftype, flags, seq) == (0x10, 0x03, 0x01, 0x01020304)
    assert (boot, t_ms) == (0x0A0B, 0x0A0B0C0D)
    assert crc == binascii.crc_hqx(frame[:-2], 0xFFFF)


@settings(max_examples=400)
@given(frames())
def test_round_trip(frame: tuple[int, int, int, dict[str, Any]]) -> None:
    ftype, flags, seq, fields = frame
    raw = codec.encode(ftype, seq, fields, flags)
    got = codec.decode(raw)
    assert got[:3] == (ftype, flags, seq)
    want = dict(fields)
    if ftype in (codec.CONFIG_SET, codec.CONFIG_VALUE) and isinstance(want["value"], float):
        want["value"] = struct.unpack("<f", struct.pack("<f", want["value"]))[0]
    assert got[3] == want


@settings(max_examples=1000)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_frame_errors(data: bytes) -> None:
    try:
        codec.decode(data)
    except codec.FrameError:
        pass


@settings(max_examples=1000)
@given(frames(), st.data())
def test_mutated_frames_raise_only_frame_errors(frame: Any, data: st.DataObject) -> None:
    ftype, flags, seq, fields = frame
    raw = bytearray(codec.encode(ftype, seq, fields, flags))
    op = data.draw(st.sampled_from(["flip", "cut", "extend", "fixcrc"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=30))
    else:
        # garbage inside a frame whose CRC is right: the field checks must catch it
        i = data.draw(st.integers(0, len(raw) - 3))
        raw[i] = data.draw(u8)
        raw[-2:] = struct.pack("<H", codec.crc16(bytes(raw[:-2])))
    try:
        codec.decode(bytes(raw))
    except codec.FrameError:
        pass


@settings(max_examples=300)
@given(frames(), st.integers(23, 517))
def test_segments_fit_the_mtu_and_reassemble(frame: Any, mtu: int) -> None:
    ftype, flags, seq, fields = frame
    raw = codec.encode(ftype, seq, fields, flags)
    segs = segmentation.segments(raw, mtu)
    assert all(2 <= len(s) <= mtu - 3 for s in segs)
    r = segmentation.Reassembler()
    out = [r.feed(s) for s in segs]
    assert all(o is None for o in out[:-1])
    last = out[-1]
    assert last is not None and bytes(last) == raw


@given(st.lists(st.binary(max_size=30), max_size=20))
def test_reassembler_garbage_raises_only_segment_errors(chunks: list[bytes]) -> None:
    r = segmentation.Reassembler()
    for c in chunks:
        try:
            r.feed(c)
        except codec.SegmentError:
            pass


@pytest.mark.parametrize(
    "ftype, fields, detail",
    [
        (codec.EVENT, {"kind": 9}, "missing field"),
        (codec.STREAM, {"on": 1, "rate_hz": 51}, "rate_hz: out of range"),
        (codec.ACK, {"upto": -1}, "upto: out of range"),
        (codec.ACK, {"upto": "1"}, "upto: not an integer"),
        (codec.CONFIG_GET, {"key": "k" * 65}, "key: too long"),
        (codec.CONFIG_SET, {"key": "k", "value": [1]}, "value: unsupported type"),
        (codec.CONFIG_SET, {"key": "k", "value": 2**40}, "value: out of range"),
        (0x30, {}, "unknown type 0x30"),
        # a finite float past f32: CPython's struct raised OverflowError, MicroPython packs inf
        (codec.CONFIG_SET, {"key": "k", "value": 1e40}, "value: beyond f32"),
        (codec.CONFIG_SET, {"key": "k", "value": -3.5e38}, "value: beyond f32"),
        (codec.CONFIG_VALUE, {"status": 0, "key": "k", "value": math.inf}, "value: not finite"),
        (codec.CONFIG_VALUE, {"status": 0, "key": "k", "value": math.nan}, "value: not finite"),
        (codec.CONFIG_VALUE, {"status": 0, "key": "k"}, "missing field value"),
        (codec.CONFIG_VALUE, {"status": 9, "key": "k", "value": 1}, "status: out of range"),
        (codec.ERROR, {"code": 11, "ref_type": 0, "ref_seq": 0, "text": ""}, "code: out of range"),
        (codec.CONFIG_GET, {"key": "\ud800"}, "key: not UTF-8"),  # was UnicodeEncodeError
        (
            codec.SIGNAL,
            {"boot": 1, "t_ms": 1, "rate_hz": 1, "count": 1, "samples": [5]},
            "samples: need 4 values",
        ),
        (
            codec.SIGNAL,
            {"boot": 1, "t_ms": 1, "rate_hz": 1, "count": 1, "samples": 5},
            "count: does not match",
        ),
    ],
)
def test_encode_refuses_bad_fields(ftype: int, fields: dict[str, Any], detail: str) -> None:
    with pytest.raises(codec.FrameError, match=detail):
        codec.encode(ftype, 1, fields)


def test_encode_refuses_a_state_bit_the_version_does_not_define() -> None:
    fields = {n: 0 for n in codec._SCHEMA[codec.STATUS][1]} | {"state": 8}
    with pytest.raises(codec.RangeError, match="state: out of range"):
        codec.encode(codec.STATUS, 1, fields)


@pytest.mark.parametrize(
    "ftype, flags, detail",
    [
        (codec.ONSET, codec.FLAG_REPLAY, "REPLAY on a type that is not logged"),
        (codec.ACK, codec.FLAG_REPLAY, "REPLAY on a type that is not logged"),
        (codec.EVENT, 0x02, "unknown bits 0x02"),
        (codec.MARKER, 0xFF, "unknown bits 0xfe"),
    ],
)
def test_encode_refuses_flags_the_spec_does_not_allow(ftype: int, flags: int, detail: str) -> None:
    fields = {n: 1 for n in codec._SCHEMA[ftype][1]} | {"utc_ms": 0}
    with pytest.raises(codec.RangeError, match=detail):
        codec.encode(ftype, 1, fields, flags)


@pytest.mark.parametrize("ftype", ["x", None, 1.0, [1]])
def test_encode_refuses_a_type_that_is_not_an_integer(ftype: Any) -> None:
    with pytest.raises(codec.UnknownTypeError, match="type: not an integer"):
        codec.encode(ftype, 1, {})


def test_encode_refuses_fields_that_are_not_a_dict() -> None:
    with pytest.raises(codec.RangeError, match="fields: not a dict"):
        codec.encode(codec.ACK, 1, [1])


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=70),
    st.binary(max_size=4),
    st.lists(st.integers(-5, 5), max_size=5),
    st.lists(st.tuples(u16, i16, i16, i16), max_size=3),
)
names = sorted({n for t in codec._SCHEMA for n in codec._SCHEMA[t][1]} | {"key", "value", "text"})


@settings(max_examples=1500)
@given(
    st.one_of(st.sampled_from(sorted(codec.TYPE_NAMES)), junk),
    st.one_of(u32, junk),
    st.one_of(st.dictionaries(st.sampled_from(names + ["samples"]), junk), junk),
    st.one_of(st.sampled_from([0, 1, 2, 0x80]), junk),
)
def test_encode_raises_only_frame_errors_and_builds_only_what_decode_takes(
    ftype: Any, seq: Any, fields: Any, flags: Any
) -> None:
    try:
        raw = codec.encode(ftype, seq, fields, flags)
    except codec.FrameError:
        return
    got = codec.decode(raw)  # must not raise: encode built it
    assert got[:3] == (ftype, flags, seq)


@pytest.mark.parametrize("buf", [None, "abc", 5, [16] * 9, 1.5])
def test_decode_refuses_what_is_not_bytes_with_a_frame_error(buf: Any) -> None:
    with pytest.raises(codec.FrameError, match="frame: not bytes") as e:
        codec.decode(buf)
    assert e.value.code == codec.E_INTERNAL


def test_decode_takes_bytearray_and_memoryview() -> None:
    raw = codec.encode(codec.ACK, 2, {"upto": 1})
    assert codec.decode(bytearray(raw)) == codec.decode(memoryview(raw)) == codec.decode(raw)


# ---------------------------------------------------------------- UTF-8, both interpreters


def _cpython_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


multibyte = st.lists(
    st.one_of(st.integers(0x80, 0xFF), st.sampled_from([0x41, 0xC2, 0xE0, 0xED, 0xF0, 0xF4])),
    max_size=12,
).map(bytes)


@settings(max_examples=2000)
@given(st.one_of(st.binary(max_size=64), multibyte, st.text(max_size=16).map(str.encode)))
def test_utf8_check_agrees_with_cpython(data: bytes) -> None:
    assert utf8.valid(data, 0, len(data)) == _cpython_utf8(data)


def _utf8_cases() -> list[bytes]:
    """Every lead byte 80..FF followed by the boundary bytes of each second-byte range."""
    second = (0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0)
    cases = [b"", b"abc", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf", b"a\xc0\xaf"]
    for b0 in range(0x80, 0x100):
        cases.append(bytes([b0]))
        for b1 in second:
            cases.append(bytes([b0, b1]))
            for b2 in (0x41, 0x80, 0xBF):
                cases.append(bytes([b0, b1, b2]))
                cases.extend(bytes([b0, b1, b2, b3]) for b3 in (0x80, 0xC0))
    return cases


# one letter per case: the error class's initial, or "o" if decoded to the same bytes
_VM_UTF8 = """
from protocol import codec
out = []
for line in open("/utf8_cases.txt"):
    key = bytes.fromhex(line.strip())
    frame = codec.encode(codec.CONFIG_GET, 1, {"key": ""})
    body = frame[:7] + bytes((len(key),)) + key
    try:
        f = codec.decode(body + codec.crc16(body).to_bytes(2, "little"))
        out.append("o" if f[3]["key"].encode() == key else "x")
    except codec.FrameError as e:
        out.append(type(e).__name__[0])
print("".join(out))
"""


def _outcomes(cases: list[bytes]) -> str:
    out = []
    for key in cases:
        body = codec.encode(codec.CONFIG_GET, 1, {"key": ""})[:7] + bytes((len(key),)) + key
        try:
            f = codec.decode(body + codec.crc16(body).to_bytes(2, "little"))
            out.append("o" if f[3]["key"].encode() == key else "x")
        except codec.FrameError as e:
            out.append(type(e).__name__[0])
    return "".join(out)


def test_keys_decode_the_same_under_cpython_and_micropython(tmp_path: Path) -> None:
    # MicroPython's own decoder takes c0 af as "/" and ed a0 80 as a surrogate
    cases = _utf8_cases()
    host = _outcomes(cases)
    assert host == "".join("o" if _cpython_utf8(c) else "R" for c in cases)
    src = tmp_path / "utf8_cases.txt"
    src.write_text("".join(c.hex() + "\n" for c in cases))
    band = mpvm.run(_VM_UTF8, files=[(src, "/utf8_cases.txt")], timeout=300).strip()
    diff = [(cases[i].hex(), host[i], band[i]) for i in range(len(cases)) if host[i] != band[i]]
    assert len(band) == len(cases) and not diff, diff[:10]


def test_error_codes_are_distinct_per_class() -> None:
    classes = [
        codec.CrcError,
        codec.LengthError,
        codec.VersionError,
        codec.UnknownTypeError,
        codec.RangeError,
        codec.SegmentError,
    ]
    assert len({c.code for c in classes}) == len(classes)
