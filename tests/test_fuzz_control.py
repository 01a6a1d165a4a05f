"""Hostile control writes against the band's own firmware (link.py), under CPython.

The firmware App runs on a VirtualBoard (tests/vm/fuzz_band.py); hypothesis
writes garbage segments to the Control characteristic. The property, from
protocol/SPEC.md: every write that completes a broken segment or frame is
answered with exactly one ERROR carrying the decoder's code (E_AUTH for any
readable frame on an unbonded link), a partial frame is answered with nothing,
nothing raises, and the band's state (config, log, acked seq, time sync,
streaming, flash files) is unchanged unless the bytes were a real command.
The same harness runs in the MicroPython VM (tests/vm/mp_test_fuzz_control.py)
and for a million inputs in `make fuzz` (tests/bench/fuzz_long.py).
"""

from __future__ import annotations

import math
import struct
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, segmentation
from tests.vm import fuzz_band

MTUS = st.sampled_from([23, 23, 64, 247])


def _band(secure: bool, mtu: int) -> tuple[fuzz_band.FuzzBand, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory(prefix="fuzzband-")
    return fuzz_band.FuzzBand(tmp.name, secure=secure, mtu=mtu), tmp


def _feed(secure: bool, mtu: int, segments: list[bytes]) -> dict[str, int]:
    band, tmp = _band(secure, mtu)
    try:
        oracle = fuzz_band.Oracle(secure)
        before = band.snapshot()
        flash = band.flash()
        counts: dict[str, int] = {}
        for seg in segments:
            seg = seg[: mtu - 3]
            exp = oracle.expect(seg)
            replies = band.write(seg)
            after = band.snapshot()
            c = fuzz_band.check_reply(exp, replies, before, after)
            counts[c] = counts.get(c, 0) + 1
            before = after
        if "ok" not in counts:
            assert band.flash() == flash, "flash changed with no accepted command"
        assert band.link.rx_dropped == 0
        return counts
    finally:
        tmp.cleanup()


host_type = st.sampled_from(fuzz_band.HOST_TYPES)
any_type = st.one_of(host_type, st.integers(0, 255))
version = st.one_of(st.just(codec.VERSION), st.integers(0, 255))


@st.composite
def crc_ok_frames(draw: st.DrawFn) -> bytes:
    """A frame with a correct CRC around garbage: the decoder's field checks must catch it."""
    return fuzz_band.frame_bytes(
        draw(any_type), draw(st.integers(0, 0xFFFFFFFF)), draw(st.binary(max_size=80)),
        draw(version), draw(st.integers(0, 255)),
    )  # fmt: skip


@st.composite
def mutated_commands(draw: st.DrawFn) -> bytes:
    gen = fuzz_band.Gen(draw(st.integers(0, 2**32 - 1)))
    raw = bytearray(gen.valid_command())
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "extend", "set_fix_crc"]))
        if not raw:
            break
        if op == "flip":
            raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            raw = raw[: draw(st.integers(0, len(raw) - 1))]
        elif op == "extend":
            raw += draw(st.binary(min_size=1, max_size=30))
        elif len(raw) > 2:
            raw[draw(st.integers(0, len(raw) - 3))] = draw(st.integers(0, 255))
            raw[-2:] = struct.pack("<H", codec.crc16(bytes(raw[:-2])))
    return bytes(raw)


def _segmented(frames: list[bytes], mtu: int) -> list[bytes]:
    out: list[bytes] = []
    for f in frames:
        out += segmentation.segments(f, mtu) if f else [b""]
    return out


@settings(max_examples=150)
@given(st.booleans(), MTUS, st.lists(st.binary(max_size=244), max_size=12))
def test_random_segments(secure: bool, mtu: int, segments: list[bytes]) -> None:
    _feed(secure, mtu, segments)


@settings(max_examples=150)
@given(st.booleans(), MTUS, st.lists(st.one_of(crc_ok_frames(), mutated_commands()), max_size=6))
def test_broken_frames_in_proper_segments(secure: bool, mtu: int, frames: list[bytes]) -> None:
    counts = _feed(secure, mtu, _segmented(frames, mtu))
    if not secure:
        assert "ok" not in counts and not any(k.startswith("refused") for k in counts)


@settings(max_examples=100)
@given(
    st.booleans(),
    st.lists(st.one_of(crc_ok_frames(), mutated_commands()), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_segments_out_of_order(secure: bool, frames: list[bytes], rnd: Any) -> None:
    segs = _segmented(frames, 23)
    rnd.shuffle(segs)
    if len(segs) > 2:
        del segs[rnd.randrange(len(segs))]
    _feed(secure, 23, segs)


def test_an_unbonded_link_changes_nothing_even_with_valid_commands() -> None:
    gen = fuzz_band.Gen(7)
    frames = [gen.valid_command() for _ in range(200)]
    counts = _feed(False, 23, _segmented(frames, 23))
    assert counts.get("E_AUTH") == 200, counts


def test_generated_inputs_bonded_and_unbonded() -> None:
    """The long fuzz run's generator, 3,000 inputs per link kind (make fuzz runs a million)."""
    for secure in (True, False):
        band, tmp = _band(secure, 23)
        try:
            counts: dict[str, int] = {}
            fuzz_band.run(
                band,
                fuzz_band.Oracle(secure),
                fuzz_band.Gen(11),
                3000,
                counts,
                check_flash_every=100,
            )
            # every class of refusal was reached, so the property was tested on each
            for name in ("E_CRC", "E_LENGTH", "E_VERSION", "E_TYPE", "E_RANGE", "E_SEGMENT"):
                assert counts.get(name, 0) > 10, (secure, counts)
            if secure:
                assert counts.get("ok", 0) > 10 and counts.get("refused:E_KEY", 0) > 0, counts
            else:
                assert counts.get("E_AUTH", 0) > 100 and "ok" not in counts, counts
            assert band.app._crashed is None
        finally:
            tmp.cleanup()


NON_FINITE = [math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_config_values_are_refused_and_change_nothing(value: float) -> None:
    band, tmp = _band(True, 247)
    try:
        before, flash = band.snapshot(), band.flash()
        for key in ("status_s", "min_event_ms", "led"):
            band.radio.send(codec.encode(codec.CONFIG_SET, 9, {"key": key, "value": value}))
            band.link.poll()
            replies = band.radio.frames("control")
            assert len(replies) == 1 and replies[0][0] == codec.ERROR, replies
            assert replies[0][3]["ref_seq"] == 9
        assert band.snapshot() == before and band.flash() == flash
    finally:
        tmp.cleanup()


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_value_for_an_integer_key_is_e_range(value: float) -> None:
    band, tmp = _band(True, 247)
    try:
        band.radio.send(codec.encode(codec.CONFIG_SET, 9, {"key": "status_s", "value": value}))
        band.link.poll()
        reply = band.radio.frames("control")[0][3]
        assert reply["code"] == codec.E_RANGE and reply["text"].startswith("status_s"), reply
    finally:
        tmp.cleanup()
