"""MPU-6050 accelerometer driver (I2C), for the board's 100 Hz sampling.

Set-up: wake from sleep, digital low-pass at 44 Hz (no aliasing at 100 Hz),
full scale +-4 g (8192 LSB/g). ``sample_into(arr, i)`` reads the three axes in
one burst of 6 bytes and stores them in mg at arr[i], arr[i+1], arr[i+2]
without allocating, so it can run from the board's timer callback.
"""

ADDRESSES = (0x68, 0x69)
_WHO_AM_I = 0x75
_PWR_MGMT_1 = 0x6B
_SMPLRT_DIV = 0x19
_CONFIG = 0x1A
_ACCEL_CONFIG = 0x1C
_ACCEL_XOUT_H = 0x3B


class MPU6050:
    name = "MPU-6050"

    def __init__(self, i2c, addr=0x68):
        self.i2c = i2c
        self.addr = addr
        self._b = bytearray(6)
        self._one = bytearray(1)
        who = i2c.readfrom_mem(addr, _WHO_AM_I, 1)[0]
        if who not in (0x68, 0x70, 0x72, 0x98):  # MPU-6050, -6500, -9250 families
            raise OSError("no MPU-6050 at 0x%02x (WHO_AM_I 0x%02x)" % (addr, who))
        self._w(_PWR_MGMT_1, 0x01)  # wake, clock from the X gyro PLL
        self._w(_CONFIG, 0x03)  # DLPF 44 Hz
        self._w(_SMPLRT_DIV, 0x09)  # 1 kHz / (1 + 9) = 100 Hz internal rate
        self._w(_ACCEL_CONFIG, 0x08)  # +-4 g

    def _w(self, reg, val):
        self._one[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def sample_into(self, arr, i):
        b = self._b
        self.i2c.readfrom_mem_into(self.addr, _ACCEL_XOUT_H, b)
        for k in range(3):
            v = (b[2 * k] << 8) | b[2 * k + 1]
            if v & 0x8000:
                v -= 0x10000
            arr[i + k] = (v * 1000) >> 13  # 8192 LSB per g

    def sleep(self):
        self._w(_PWR_MGMT_1, 0x40)


def probe(i2c):
    """The first MPU-6050 answering on the bus, or None."""
    found = i2c.scan()
    for a in ADDRESSES:
        if a in found:
            try:
                return MPU6050(i2c, a)
            except OSError:
                pass
    return None
