"""Control writes over the radio seam (firmware/spasmband/link.py), in the MicroPython VM.

Valid commands and garbage: wrong length, unknown command, bad CRC, bad
version, out-of-range values, band-to-host types, broken segments, random
bytes, an unbonded link. Every bad write is answered with one ERROR frame,
changes nothing (config, log, acks, streaming) and the band keeps running.
"""

import struct

from band_sim import UTC, Band, check_error, of_type

from protocol import codec, segmentation


def _frame(ftype, seq, payload, version=codec.VERSION):
    """A frame with a valid CRC around an arbitrary payload."""
    body = struct.pack("<BBBI", version, ftype, 0, seq) + payload
    return body + struct.pack("<H", codec.crc16(body))


def _snapshot(app):
    return (
        dict(app.config.values),
        app.log.last_seq(),
        app.log.acked_seq,
        app.signal.on,
        app.timebase.synced(),
        app.sampler.det.params,
    )


async def _band():
    band = Band()
    await band.boot(500)
    band.connect()
    await band.run(200)
    await band.press()
    band.events()
    return band


async def test_config_get_and_set():
    band = await _band()
    r = await band.command(codec.CONFIG_GET, {"key": "min_event_ms"})
    assert [f[3] for f in r] == [{"status": 0, "key": "min_event_ms", "value": 40}]
    det_before = band.app.sampler.det
    r = await band.command(codec.CONFIG_SET, {"key": "min_event_ms", "value": 60})
    assert r[0][0] == codec.CONFIG_VALUE and r[0][3]["value"] == 60
    assert band.app.config.get("min_event_ms") == 60
    assert band.app.sampler.det is not det_before  # the detector runs with the new value
    assert band.app.sampler.det.params["min_event_ms"] == 60
    r = await band.command(codec.CONFIG_SET, {"key": "led", "value": False})
    assert r[0][3]["value"] is False
    r = await band.command(codec.CONFIG_GET, {"key": "*"})
    keys = [f[3]["key"] for f in r]
    assert keys == band.app.config.keys() and len(keys) >= 10
    await band.shutdown()


async def test_bad_config_values_are_refused_with_the_key():
    band = await _band()
    before = _snapshot(band.app)
    cases = (
        ({"key": "min_event_ms", "value": 5}, codec.E_RANGE, "min_event_ms: outside"),
        ({"key": "min_event_ms", "value": 99999}, codec.E_RANGE, "min_event_ms"),
        ({"key": "min_event_ms", "value": "fast"}, codec.E_RANGE, "min_event_ms: must be"),
        ({"key": "min_event_ms", "value": 12.5}, codec.E_RANGE, "min_event_ms"),
        ({"key": "led", "value": 3}, codec.E_RANGE, "led"),
        ({"key": "nope", "value": 1}, codec.E_KEY, "nope: unknown key"),
        ({"key": "status_s"}, codec.E_RANGE, "status_s: missing value"),
        ({"key": "nope"}, codec.E_KEY, "nope: unknown key"),  # the key first
        (
            {"key": "onset_ratio_x10", "value": 12},
            codec.E_RANGE,
            "onset_ratio_x10: must be above offset_ratio_x10 (13)",
        ),
        ({"key": "\u20ac" * 21, "value": 1}, codec.E_KEY, "...: unknown key"),
        ({"key": "\u20ac" * 21}, codec.E_KEY, "...: unknown key"),
        ({"key": "offset_ratio_x10", "value": 80}, codec.E_RANGE, "offset_ratio_x10"),
    )
    for fields, code, text in cases:
        r = await band.command(codec.CONFIG_SET, fields)
        f = check_error(r, code, text)
        assert f["ref_type"] == codec.CONFIG_SET and f["ref_seq"] == band._cmd
    r = await band.command(codec.CONFIG_GET, {"key": "missing"})
    check_error(r, codec.E_KEY, "missing")
    assert _snapshot(band.app) == before
    await band.shutdown()


async def test_garbage_frames_get_an_error_and_change_nothing():
    band = await _band()
    await band.command(codec.ACK, {"upto": 1})
    before = _snapshot(band.app)
    good = codec.encode(codec.STREAM, 77, {"on": 1, "rate_hz": 10})
    bad_crc = good[:-1] + bytes(((good[-1] + 1) & 0xFF,))
    cases = (
        (b"\x10\x45\x00", codec.E_LENGTH),  # shorter than any frame
        (good[:-3] + good[-2:], codec.E_CRC),  # a byte missing: the CRC no longer matches
        (bad_crc, codec.E_CRC),
        (_frame(0x7E, 5, b""), codec.E_TYPE),  # unknown command
        (_frame(codec.STREAM, 6, b"\x01"), codec.E_LENGTH),  # payload too short
        (_frame(codec.STREAM, 7, b"\x01\x0a\x00"), codec.E_LENGTH),  # too long
        (_frame(codec.STREAM, 8, b"\x01\x00"), codec.E_RANGE),  # rate 0
        (_frame(codec.STREAM, 9, b"\x02\x0a"), codec.E_RANGE),  # on = 2
        (_frame(codec.STREAM, 10, b"\x01\x33"), codec.E_RANGE),  # 51 Hz
        (_frame(codec.ACK, 11, struct.pack("<I", 999)), codec.E_RANGE),  # beyond last seq
        (_frame(codec.TIME_SYNC, 12, struct.pack("<Q", 0)), codec.E_RANGE),  # 1970
        (_frame(codec.TIME_SYNC, 13, struct.pack("<Q", 1 << 62)), codec.E_RANGE),
        (_frame(codec.STREAM, 14, b"\x01\x0a", version=0x20), codec.E_VERSION),
        (_frame(codec.EVENT, 15, bytes(29)), codec.E_RANGE),  # a band frame: kind 0
        (_frame(codec.STATUS, 16, bytes(31)), codec.E_TYPE),  # a band frame sent to the band
        (_frame(codec.CONFIG_GET, 17, b"\x05ab"), codec.E_LENGTH),  # key length past the end
        (_frame(codec.CONFIG_SET, 18, b"\x03led\x09\x01"), codec.E_RANGE),  # unknown value tag
        (_frame(codec.CONFIG_SET, 19, b"\x03led\x03\x07"), codec.E_RANGE),  # bool 7
        (_frame(codec.CONFIG_GET, 20, b"\x02\xff\xfe"), codec.E_RANGE),  # key not UTF-8
    )
    for data, code in cases:
        r = []
        for seg in segmentation.segments(data, 23):
            r += await band.write_raw(seg, ms=60)
        check_error(r, code)
    assert _snapshot(band.app) == before
    # the ERROR names the command when its header was readable
    r = []
    for seg in segmentation.segments(_frame(codec.STREAM, 4242, b"\x01\x00"), 23):
        r += await band.write_raw(seg, ms=60)
    f = check_error(r, codec.E_RANGE, "rate_hz")
    assert f["ref_type"] == codec.STREAM and f["ref_seq"] == 4242
    await band.shutdown()


async def test_broken_segments_get_an_error():
    band = await _band()
    before = _snapshot(band.app)
    frame = codec.encode(codec.CONFIG_GET, 3, {"key": "onset_ratio_x10"})
    segs = segmentation.segments(frame, 23)
    assert len(segs) == 2
    check_error(await band.write_raw(segs[1]), codec.E_SEGMENT)  # a middle without a start
    check_error(await band.write_raw(b"\x80"), codec.E_SEGMENT)  # empty segment
    # a first segment, then a new first segment: the partial frame is dropped
    assert await band.write_raw(segs[0]) == []
    assert await band.write_raw(segs[0]) == []
    r = await band.write_raw(segs[1])
    assert [f[0] for f in r] == [codec.CONFIG_VALUE]  # the second attempt completes
    # a frame longer than 512 bytes: the 27th segment of 19 bytes passes the limit
    r = []
    for i in range(27):
        h = i | (segmentation.SEG_FIRST if i == 0 else 0)
        r += await band.write_raw(bytes((h,)) + bytes(19), ms=20)
    check_error(r, codec.E_SEGMENT, "too long")
    assert _snapshot(band.app) == before
    await band.shutdown()


async def test_random_garbage_never_crashes_the_band():
    band = await _band()
    before = _snapshot(band.app)
    s = 12345
    answered = 0
    for n in range(300):
        s = (s * 75 + 74) % 65537
        length = 1 + s % 20
        data = bytearray(length)
        for i in range(length):
            s = (s * 75 + 74) % 65537
            data[i] = s & 0xFF
        if n % 3 == 0:
            data[0] = segmentation.SEG_FIRST | segmentation.SEG_LAST  # a whole frame of noise
        band.radio.write(bytes(data))
        if n % 8 == 7:
            await band.run(40)
            answered += len(of_type(band.radio.frames("control"), codec.ERROR))
    await band.run(500)
    answered += len(of_type(band.radio.frames("control"), codec.ERROR))
    assert answered >= 250, answered  # (the RX queue may drop a burst: counted, not crashed)
    assert band.app.running and band.app._crashed is None
    assert _snapshot(band.app) == before
    # and the band still works
    r = await band.command(codec.CONFIG_GET, {"key": "led"})
    assert r[0][0] == codec.CONFIG_VALUE
    await band.press()
    assert [f[2] for f in of_type(band.events(), codec.MARKER)] == [2]
    await band.shutdown()


async def test_control_needs_a_bonded_link():
    band = Band()
    await band.boot(500)
    band.connect(secure=False)
    await band.run(200)
    before = _snapshot(band.app)
    for ftype, fields in (
        (codec.CONFIG_SET, {"key": "led", "value": False}),
        (codec.TIME_SYNC, {"utc_ms": UTC}),
        (codec.STREAM, {"on": 1, "rate_hz": 10}),
        (codec.ACK, {"upto": 0}),
        (codec.REBOOT, None),
    ):
        f = check_error(await band.command(ftype, fields), codec.E_AUTH)
        assert f["ref_type"] == ftype
    assert _snapshot(band.app) == before and band.board.resets == 0
    # a write that is no readable command gets the decoder's answer on any link
    # (protocol/SPEC.md: "each command" is answered with E_AUTH): nothing secret
    good = codec.encode(codec.STREAM, 77, {"on": 1, "rate_hz": 10})
    r = []
    for seg in segmentation.segments(good[:-1] + bytes(((good[-1] + 1) & 0xFF,)), 23):
        r += await band.write_raw(seg, ms=60)
    check_error(r, codec.E_CRC)
    check_error(await band.write_raw(b"\x80"), codec.E_SEGMENT)  # empty segment
    r = []
    for seg in segmentation.segments(_frame(codec.STATUS, 5, bytes(31)), 23):
        r += await band.write_raw(seg, ms=60)
    f = check_error(r, codec.E_AUTH)  # readable, though no command: E_AUTH, not E_TYPE
    assert f["ref_type"] == codec.STATUS and f["ref_seq"] == 5
    assert _snapshot(band.app) == before and band.board.resets == 0
    # events still flow to an unbonded reader
    await band.press()
    assert len(of_type(band.events(), codec.MARKER)) == 1
    await band.shutdown()


async def test_every_error_text_fits_and_keeps_its_reason():
    band = await _band()
    before = _snapshot(band.app)
    cases = []
    for key in band.app.config.keys() + ["nope", "x" * 64, "\u20ac" * 21, "\U0001f600" * 16]:
        for value in (None, "x", 10**6, -1, 2.5):
            cases.append({"key": key, "value": value})
    n = 0
    for fields in cases:
        for f in of_type(await band.command(codec.CONFIG_SET, fields, ms=60), codec.ERROR):
            text = f[3]["text"]
            assert len(text.encode()) <= codec.MAX_TEXT, text
            reason = text.split(": ")[-1]
            assert (
                reason
                in (
                    "unknown key",
                    "missing value",
                    "must be a number",
                    "must be an integer",
                    "must be true or false",
                )
                or reason.startswith("outside ")
                or reason.startswith("must be ")
            ), text
            n += 1
    assert n > 40, n
    assert _snapshot(band.app) == before
    await band.shutdown()


async def test_time_sync_counts_from_the_writes_arrival():
    # The link task runs every 20 ms; UTC is true when the write arrived, not when
    # the task got to it, or the band's clock would be late by up to a poll.
    band = await _band()
    await band.run(7)  # between two polls
    band._cmd += 1
    band.radio.command(codec.TIME_SYNC, band._cmd, {"utc_ms": UTC})
    arrived = band.app.timebase.now()
    await band.run(100)
    tb = band.app.timebase
    assert tb.synced() and tb.now() >= arrived + 100
    assert tb.utc(tb.boot, arrived) == UTC, tb.utc(tb.boot, arrived) - UTC
    await band.shutdown()
