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
