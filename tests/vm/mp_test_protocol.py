"""The wire codec inside the MicroPython VM: the same vectors as under CPython."""

import protocol_vectors

from protocol import codec, segmentation


def test_vectors():
    n = protocol_vectors.check("/flash/protocol/vectors.json")
    assert n >= 40, n


def test_crc_check_value():
    assert codec.crc16(b"123456789") == 0x29B1


def test_garbage_raises_only_frame_errors():
    # a cheap deterministic sweep; the random search runs under CPython (hypothesis)
    seed = 12345
    buf = bytearray(64)
    for trial in range(300):
        n = trial % 64
        for i in range(n):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = seed >> 16 & 0xFF
        if n > 2:
            buf[0] = 0x10
        try:
            codec.decode(bytes(buf[:n]))
        except codec.FrameError:
            pass


def test_reassembler_rejects_out_of_order():
    frame = codec.encode(codec.ACK, 1, {"upto": 3})
    segs = segmentation.segments(frame + bytes(40), 23)  # three segments
    r = segmentation.Reassembler()
    r.feed(segs[0])
    try:
        r.feed(segs[2])
    except codec.SegmentError:
        pass
    else:
        raise AssertionError("out-of-order segment accepted")


def _refused(ftype, fields, detail):
    try:
        codec.encode(ftype, 1, fields)
    except codec.RangeError as e:
        assert e.detail.startswith(detail), e.detail
    else:
        raise AssertionError("encoded: %r" % (fields,))


def test_encode_refuses_a_float_beyond_f32():
    # struct.pack('<f', 1e40) is inf here, OverflowError under CPython: both refuse it now
    _refused(codec.CONFIG_SET, {"key": "k", "value": 1e40}, "value: beyond f32")
    reply = {"status": 0, "key": "k", "value": float("inf")}
    _refused(codec.CONFIG_VALUE, reply, "value: not finite")


def test_encode_refuses_a_lone_surrogate():
    # MicroPython encodes "\ud800" as ed a0 80, which decode refuses
    _refused(codec.CONFIG_GET, {"key": "\ud800"}, "key: not UTF-8")


def test_decode_refuses_what_is_not_bytes():
    for buf in (None, "abc", 5):
        try:
            codec.decode(buf)
        except codec.FrameError as e:
            assert e.code == codec.E_INTERNAL
        else:
            raise AssertionError("decoded %r" % (buf,))
