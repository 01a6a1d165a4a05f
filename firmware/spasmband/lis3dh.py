"""LIS3DH accelerometer driver (I2C): the second supported accelerometer.

Set-up: 100 Hz output data rate, all axes, high-resolution 12-bit mode,
block data update, full scale +-4 g (2 mg per digit). ``sample_into(arr, i)``
reads the three axes in one 6-byte burst (register auto-increment) and stores
them in mg without allocating.
"""

ADDRESSES = (0x18, 0x19)
_WHO_AM_I = 0x0F
_CTRL_REG1 = 0x20
_CTRL_REG4 = 0x23
_OUT_X_L = 0x28
_AUTO_INC = 0x80


class LIS3DH:
    name = "LIS3DH"

    def __init__(self, i2c, addr=0x18):
        self.i2c = i2c
        self.addr = addr
        self._b = bytearray(6)
        self._one = bytearray(1)
        who = i2c.readfrom_mem(addr, _WHO_AM_I, 1)[0]
        if who != 0x33:
            raise OSError("no LIS3DH at 0x%02x (WHO_AM_I 0x%02x)" % (addr, who))
        self._w(_CTRL_REG1, 0x57)  # 100 Hz, normal power, X/Y/Z on
        self._w(_CTRL_REG4, 0x98)  # BDU, +-4 g, high resolution

    def _w(self, reg, val):
        self._one[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def sample_into(self, arr, i):
        b = self._b
        self.i2c.readfrom_mem_into(self.addr, _OUT_X_L | _AUTO_INC, b)
        for k in range(3):
            v = b[2 * k] | (b[2 * k + 1] << 8)
            if v & 0x8000:
                v -= 0x10000
            arr[i + k] = (v >> 4) * 2  # 12-bit left-justified, 2 mg/digit at +-4 g

    def sleep(self):
        self._w(_CTRL_REG1, 0x00)


def probe(i2c):
    found = i2c.scan()
    for a in ADDRESSES:
        if a in found:
            try:
                return LIS3DH(i2c, a)
            except OSError:
                pass
    return None
