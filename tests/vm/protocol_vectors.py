"""Checks protocol/vectors.json against the codec; runs under CPython and MicroPython alike."""

import json

from protocol import codec, segmentation

_TYPES = {}
for _t in codec.TYPE_NAMES:
    _TYPES[codec.TYPE_NAMES[_t]] = _t


def _plain(x):
    # JSON has lists where the decoder returns tuples (signal samples)
    if isinstance(x, (list, tuple)):
        return [_plain(i) for i in x]
    if isinstance(x, dict):
        d = {}
        for k in x:
            d[k] = _plain(x[k])
        return d
    return x


def check(path):
    """Check every vector; return how many were checked. Raises AssertionError on a mismatch."""
    with open(path) as f:
        vec = json.load(f)
    n = 0
    for v in vec["valid"]:
        raw = bytes.fromhex(v["hex"])
        ftype, flags, seq, fields = codec.decode(raw)
        assert codec.TYPE_NAMES[ftype] == v["type"], v["name"]
        assert (flags, seq) == (v["flags"], v["seq"]), v["name"]
        assert _plain(fields) == _plain(v["fields"]), (v["name"], fields)
        if raw[0] == codec.VERSION:
            again = codec.encode(_TYPES[v["type"]], v["seq"], v["fields"], v["flags"])
            assert again == raw, v["name"]
        n += 1
    for v in vec["invalid"]:
        try:
            codec.decode(bytes.fromhex(v["hex"]))
        except codec.FrameError as e:
            got = type(e).__name__
            assert got == v["error"], (v["name"], got, e.detail)
        else:
            raise AssertionError(v["name"] + ": decoded")
        n += 1
    for v in vec["segments"]:
        frame = bytes.fromhex(v["frame"])
        segs = segmentation.segments(frame, v["mtu"])
        assert [s.hex() for s in segs] == v["segments"], v["mtu"]
        r = segmentation.Reassembler()
        out = None
        for s in segs:
            assert len(s) <= v["mtu"] - 3
            out = r.feed(s)
        assert out is not None and bytes(out) == frame
        n += 1
    return n
