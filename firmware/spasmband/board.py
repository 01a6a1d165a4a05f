"""The real hardware seam: the ESP32 band (see firmware/README.md for the wiring).

The only firmware module (with its drivers mpu6050.py, lis3dh.py and the radio
in esp32_radio.py) that imports machine, bluetooth, time or os; the simulator
replaces it with simulator/virtual_board.py. Interface: firmware/README.md ("The hardware seam").

Sampling: one hardware timer at 1 kHz. Its callback (a soft IRQ on the ESP32
port: it runs between bytecodes, may allocate but must be short) reads the EMG
ADC into a preallocated ring and, every 10th tick, the accelerometer over I2C
into a second ring. Nothing allocates per sample. The app drains the rings
every 20 ms (``read_emg``/``read_acc``); each ring holds 0.5 s, and a sample
that finds its ring full is dropped and counted in ``overruns``, as is a timer
tick the scheduler lost (detected from ``ticks_us``).

EMG: the front end's analog output (mid-rail biased, gain ``EMG_GAIN``) on an
ADC1 pin at 11 dB attenuation; samples are converted to microvolts at the
electrodes when drained. Accelerometer: an MPU-6050 (or a LIS3DH) on I2C at
400 kHz, +-4 g; without one the band runs on EMG alone (``has_acc`` False).
"""

import os
import time
from array import array

import machine

from spasmband import mpu6050
from spasmband.esp32_radio import Radio

try:
    import asyncio
except ImportError:  # older firmware
    import uasyncio as asyncio

FW_VERSION = (1, 0, 0)

# Pins (firmware/README.md has the wiring table)
PIN_EMG = 36  # ADC1_CH0 (VP)
PIN_BATTERY = 35  # ADC1_CH7, behind a 100k/100k divider
PIN_SDA = 21
PIN_SCL = 22
PIN_BUTTON = 27  # to GND, internal pull-up
PIN_LED = 2  # through 330 ohm to GND (DevKitC on-board LED)
I2C_HZ = 400000

EMG_GAIN = 1000  # front-end gain from electrodes to ADC pin (calibrate for your front end)
ADC_FULL_MV = 3300  # read_u16() full scale at 11 dB attenuation (uncalibrated)
EMG_MID_UV = 1650000  # mid-rail bias of the front end output
BATTERY_DIVIDER = 2

_EMG_RING = 512
_ACC_RING = 50  # triples


class Board:
    def __init__(self):
        uid = machine.unique_id()
        self.band_id = "%02x%02x%02x" % (uid[-3], uid[-2], uid[-1])
        self.fw_version = FW_VERSION
        self.overruns = 0
        self.radio = Radio(self)
        self._adc = machine.ADC(machine.Pin(PIN_EMG))
        self._adc.atten(machine.ADC.ATTN_11DB)
        self._bat = machine.ADC(machine.Pin(PIN_BATTERY))
        self._bat.atten(machine.ADC.ATTN_11DB)
        self._button = machine.Pin(PIN_BUTTON, machine.Pin.IN, machine.Pin.PULL_UP)
        self._led = machine.Pin(PIN_LED, machine.Pin.OUT, value=0)
        self._i2c = machine.I2C(0, sda=machine.Pin(PIN_SDA), scl=machine.Pin(PIN_SCL), freq=I2C_HZ)
        self.acc = None
        try:
            self.acc = mpu6050.probe(self._i2c)
            if self.acc is None:
                from spasmband import lis3dh  # only when fitted: its code costs heap

                self.acc = lis3dh.probe(self._i2c)
        except OSError:
            self.acc = None
        self.has_emg = True
        self.has_acc = self.acc is not None
        self.acc_errors = 0
        # rings: written by the timer callback, drained by the app
        self._emg = array("H", bytes(2 * _EMG_RING))
        self._ew = 0
        self._er = 0
        self._acc = array("h", bytes(6 * _ACC_RING))
        self._aw = 0
        self._ar = 0
        self._tick = 0
        self._acc_every = 10
        self._last_us = 0
        self._timer = None
        self._cb = self._sample  # bind once: no allocation per tick
        self.log("board: %s, accelerometer %s" % (
            self.band_id, self.acc.name if self.acc else "absent"))

    # ---------------------------------------------------------------- time

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)

    # ---------------------------------------------------------------- sampling

    def start_sampling(self, emg_hz, acc_hz):
        if self._timer is not None:
            self._timer.deinit()
        self._acc_every = emg_hz // acc_hz if acc_hz else 0
        self._last_us = time.ticks_us()
        self._period_us = 1000000 // emg_hz
        self._timer = machine.Timer(0)
        self._timer.init(freq=emg_hz, mode=machine.Timer.PERIODIC, callback=self._cb)

    def _sample(self, _t):
        now = time.ticks_us()
        late = time.ticks_diff(now, self._last_us) - self._period_us
        self._last_us = now
        if late > self._period_us:  # the scheduler lost ticks
            self.overruns += late // self._period_us
        w = self._ew
        nxt = (w + 1) % _EMG_RING
        if nxt == self._er:
            self.overruns += 1
        else:
            self._emg[w] = self._adc.read_u16()
            self._ew = nxt
        if self._acc_every and self.acc is not None:
            self._tick += 1
            if self._tick >= self._acc_every:
                self._tick = 0
                w = self._aw
                nxt = (w + 1) % _ACC_RING
                if nxt == self._ar:
                    self.overruns += 1
                    return
                try:
                    self.acc.sample_into(self._acc, w * 3)
                except OSError:
                    self.acc_errors += 1  # the detector sees the gap as acc dropout
                    return
                self._aw = nxt

    def read_emg(self, buf):
        r = self._er
        w = self._ew
        n = 0
        cap = len(buf)
        ring = self._emg
        while r != w and n < cap:
            raw = ring[r]
            # uV at the pin: raw * 3300000 / 65535 = raw * 50.354 (kept below 2**30: no bigints)
            pin_uv = raw * 50 + raw * 354 // 1000
            buf[n] = (pin_uv - EMG_MID_UV) // EMG_GAIN
            n += 1
            r = (r + 1) % _EMG_RING
        self._er = r
        return n

    def read_acc(self, buf):
        r = self._ar
        w = self._aw
        n = 0
        cap = len(buf) // 3
        ring = self._acc
        while r != w and n < cap:
            k = r * 3
            buf[3 * n] = ring[k]
            buf[3 * n + 1] = ring[k + 1]
            buf[3 * n + 2] = ring[k + 2]
            n += 1
            r = (r + 1) % _ACC_RING
        self._ar = r
        return n

    # ---------------------------------------------------------------- peripherals

    def battery_mv(self):
        try:
            return self._bat.read_uv() * BATTERY_DIVIDER // 1000
        except AttributeError:  # firmware without read_uv
            return self._bat.read_u16() * ADC_FULL_MV * BATTERY_DIVIDER // 65535

    def button(self):
        return self._button.value() == 0

    def led(self, on):
        self._led.value(1 if on else 0)

    # ---------------------------------------------------------------- flash

    def open(self, name, mode="r"):
        return open("/" + name, mode)

    def remove(self, name):
        os.remove("/" + name)

    def rename(self, old, new):
        os.rename("/" + old, "/" + new)

    def exists(self, name):
        try:
            os.stat("/" + name)
            return True
        except OSError:
            return False

    # ---------------------------------------------------------------- system

    def reset(self):
        if self._timer is not None:
            self._timer.deinit()
        time.sleep_ms(100)  # let the log line and the last notification go out
        machine.reset()

    def log(self, msg):
        print("%d %s" % (time.ticks_ms(), msg))
