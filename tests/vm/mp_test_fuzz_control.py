"""Hostile control writes against the band's firmware, in the MicroPython VM.

The same harness as tests/test_fuzz_control.py (tests/vm/fuzz_band.py), here
with the interpreter the band runs: generated garbage (random bytes, noise
frames, mutated commands, frames with a correct CRC around garbage, segments
out of order) on a bonded and on an unbonded link. Every completed write is
answered with one ERROR of the decoder's code or is a real command; nothing
raises; config, log, acks and flash are unchanged by anything refused.
"""

import fuzz_band


def _go(secure, mtu, seed, n):
    band = fuzz_band.FuzzBand("/flash_fuzz/%s_%d_%d" % (secure, mtu, seed), secure=secure, mtu=mtu)
    counts = {}
    fuzz_band.run(band, fuzz_band.Oracle(secure), fuzz_band.Gen(seed, mtu), n, counts, 50)
    assert band.app._crashed is None
    assert band.link.rx_dropped == 0
    return counts


def test_bonded_link_garbage():
    counts = _go(True, 23, 3, 1500)
    for name in ("E_CRC", "E_LENGTH", "E_TYPE", "E_SEGMENT"):
        assert counts.get(name, 0) > 5, counts
    assert counts.get("ok", 0) > 0, counts


def test_unbonded_link_garbage():
    counts = _go(False, 23, 4, 1500)
    assert counts.get("E_AUTH", 0) > 20 and "ok" not in counts, counts


def test_large_mtu_garbage():
    counts = _go(True, 247, 5, 600)
    assert counts.get("E_CRC", 0) > 5, counts
