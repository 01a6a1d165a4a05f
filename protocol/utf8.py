"""Strict UTF-8 validation, the same on the band (MicroPython) and the host (CPython).

MicroPython's decoder accepts overlong forms (``c0 af`` -> ``/``), surrogates
(``ed a0 80``) and code points past U+10FFFF, which CPython refuses; the codec
checks keys and texts (at most 64 bytes) here first, so band and host accept
exactly the same bytes. Plain MicroPython-compatible Python, no allocation.
"""


def valid(buf, i, end):
    # type: (bytes | bytearray | memoryview, int, int) -> bool
    """True if ``buf[i:end]`` is UTF-8 exactly as CPython's strict decoder takes it."""
    while i < end:
        b = buf[i]
        i += 1
        if b < 0x80:
            continue
        if b < 0xC2 or b > 0xF4:  # a continuation byte, overlong C0/C1, past U+10FFFF
            return False
        # the second byte's allowed range; the later ones are always 80..BF
        lo, hi = 0x80, 0xBF
        if b < 0xE0:
            n = 1
        elif b < 0xF0:
            n = 2
            if b == 0xE0:
                lo = 0xA0  # overlong
            elif b == 0xED:
                hi = 0x9F  # surrogates D800..DFFF
        else:
            n = 3
            if b == 0xF0:
                lo = 0x90  # overlong
            elif b == 0xF4:
                hi = 0x8F  # past U+10FFFF
        if i + n > end or buf[i] < lo or buf[i] > hi:
            return False
        for k in range(i + 1, i + n):
            if buf[k] & 0xC0 != 0x80:
                return False
        i += n
    return True
