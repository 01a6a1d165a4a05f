"""The wire codec under CPython: vectors, CRC, property tests for robustness and round-trips."""

from __future__ import annotations

import binascii
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, segmentation
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
        "state": st.integers(0, 15),
        "fw_major": u8,
        "fw_minor": u8,
        "fw_patch": u8,
    },
    codec.CONFIG_VALUE: {"status": st.integers(0, 15), "key": text, "value": value},
    codec.ERROR: {
        "code": st.integers(1, 15),
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
    return ftype, draw(u8), draw(u32), fields


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
    frame = codec.encode(codec.ACK, 0x01020304, {"upto": 0x0A0B0C0D}, flags=0x01)
    ver, ftype, flags, seq, upto, crc = struct.unpack("<BBBIIH", frame)
    assert (ver, ftype, flags, seq, upto) == (0x10, 0x40, 0x01, 0x01020304, 0x0A0B0C0D)
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
    ],
)
def test_encode_refuses_bad_fields(ftype: int, fields: dict[str, Any], detail: str) -> None:
    with pytest.raises(codec.FrameError, match=detail):
        codec.encode(ftype, 1, fields)


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
