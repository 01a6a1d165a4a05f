"""The simulated hardware seam: a Board for the band's unmodified firmware.

MicroPython-compatible (it runs in the VM tests and under CPython in the
simulator): no typing imports at run time, no dataclasses, annotations only on
functions and with built-in types.

    clock = VirtualClock()                    # virtual time: moves only in advance()
    radio = LoopbackRadio(clock)              # or the bumble-backed Radio of simulator/radio
    board = VirtualBoard("a1b2c3", "/tmp/band-a1b2c3", emg_source=f_emg,
                         acc_source=f_acc, radio=radio, clock=clock)
    board.power_on()                          # runs App(board).run(), again after each reset
    await clock.advance(60_000)               # one simulated minute, as fast as the CPU goes

- ``VirtualClock(speed=None)``: virtual time. Every ``board.sleep_ms`` waits
  on the clock; ``await clock.advance(ms)`` runs all due sleepers, then jumps to
  the next wake-up, until ``ms`` have passed: a test runs simulated hours in
  seconds. ``VirtualClock(speed=1.0)`` (or 10.0, ...) is real time times
  ``speed``: sleeps are real ``asyncio.sleep``s, for the simulator with a real
  radio and host. One clock may drive many boards.
- Flash: files in ``flash_dir`` (a directory on the host, or in the VM's
  filesystem), created if missing; a second VirtualBoard on the same directory
  is the same band after a power cycle. ``power_cut(after_bytes)`` lets the
  next writes put ``after_bytes`` more bytes on flash, then the board dies in
  the middle of that write (a torn record) and every task stops at its next
  wait; ``power_on()`` boots the app again on the same flash.
- ``reset()`` (called by the app for REBOOT) raises ``Reset`` out of
  ``App.run()``; ``power_on``'s loop then boots a new App, on the same flash.
- Sensors: ``emg_source`` and ``acc_source`` are None (sensor absent), a
  callable (sample index -> int uV, or -> (x, y, z) mg), a sequence (cycled;
  EMG values, or acc triples), or an object with ``fill(buf, start, n)``
  writing samples start..start+n-1 into buf (acc: 3n values x, y, z). Samples
  become due with the clock at the rates passed to ``start_sampling``; a ring of
  ``ring_ms`` ms per sensor models the board's ring: anything older is lost and
  counted in ``overruns``.
- ``button_level``, ``battery`` (mV), ``led_on``/``led_changes``, ``logs``.

Beyond firmware/README.md ("The hardware seam"): the board has ``has_emg``/``has_acc`` (False when
a source is None; the app reads them with getattr, default True), and calls
``radio.band_reset()`` (if the radio has it) when the band reboots or loses
power, so the radio can drop its link and GATT server.

The clock lives in virtual_clock.py and the loopback radio in
loopback_radio.py; both are importable from here too, as the examples above
import them.
"""

import asyncio
import os

from simulator.loopback_radio import LoopbackRadio
from simulator.virtual_clock import TICKS_PERIOD, VirtualClock

__all__ = ["TICKS_PERIOD", "LoopbackRadio", "PowerCut", "Reset", "VirtualBoard", "VirtualClock"]

_TICKS_MASK = TICKS_PERIOD - 1
_TICKS_HALF = TICKS_PERIOD // 2


class PowerCut(BaseException):
    """The board lost power: raised by the seam in every task of the app."""


class Reset(BaseException):
    """board.reset(): the app ends and power_on() boots a new one."""


def _is_dir(path: str) -> bool:
    try:
        return (os.stat(path)[0] & 0x4000) != 0
    except OSError:
        return False


def _makedirs(path: str) -> None:
    cur = ""
    for part in path.split("/"):
        if not part:
            continue
        if cur or path.startswith("/"):
            cur = cur + "/" + part
        else:
            cur = part
        if not _is_dir(cur):
            os.mkdir(cur)


class _FlashFile:
    """A file on the virtual flash: writes count against an armed power cut."""

    def __init__(self, board: "VirtualBoard", f: object) -> None:
        self._b = board
        self._f: object = f

    def write(self, data: bytes) -> int:
        b = self._b
        if b.dead:
            raise PowerCut()
        f = self._f
        cut = b._cut
        if cut is not None:
            if len(data) > cut:
                if cut:
                    f.write(data[:cut])  # type: ignore[attr-defined]
                f.close()  # type: ignore[attr-defined]
                b._cut = None
                b._die()
                raise PowerCut()
            b._cut = cut - len(data)
        return f.write(data)  # type: ignore[attr-defined]

    def read(self, *args: int) -> bytes:
        return self._f.read(*args)  # type: ignore[attr-defined]

    def readinto(self, buf: bytearray) -> int:
        return self._f.readinto(buf)  # type: ignore[attr-defined]

    def seek(self, *args: int) -> int:
        return self._f.seek(*args)  # type: ignore[attr-defined]

    def tell(self) -> int:
        return self._f.tell()  # type: ignore[attr-defined]

    def flush(self) -> None:
        self._f.flush()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._f.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "_FlashFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Source:
    """One sensor's sample source and its ring of due samples."""

    def __init__(self, src: object, width: int, ring: int) -> None:
        self.src = src
        self.width = width  # 1 for EMG, 3 for acc
        self.ring = ring
        self.hz = 0
        self.start_ms = 0
        self.produced = 0  # index of the next sample to hand out
        self._fill = getattr(src, "fill", None)
        self._seq = None if (self._fill is not None or callable(src)) else src

    def start(self, hz: int, now_ms: int) -> None:
        self.hz = hz
        self.start_ms = now_ms
        self.produced = 0

    def read(self, buf: object, now_ms: int, board: "VirtualBoard") -> int:
        if self.src is None or self.hz <= 0:
            return 0
        due = (now_ms - self.start_ms) * self.hz // 1000
        pending = due - self.produced
        if pending > self.ring:
            board.overruns += pending - self.ring
            self.produced += pending - self.ring
            pending = self.ring
        w = self.width
        n = min(pending, len(buf) // w)  # type: ignore[arg-type]
        if n <= 0:
            return 0
        start = self.produced
        if self._fill is not None:
            self._fill(buf, start, n)
        elif self._seq is not None:
            seq = self._seq
            m = len(seq)  # type: ignore[arg-type]
            for i in range(n):
                v = seq[(start + i) % m]  # type: ignore[index]
                if w == 1:
                    buf[i] = v  # type: ignore[index]
                else:
                    buf[3 * i] = v[0]  # type: ignore[index]
                    buf[3 * i + 1] = v[1]  # type: ignore[index]
                    buf[3 * i + 2] = v[2]  # type: ignore[index]
        else:
            f = self.src
            for i in range(n):
                v = f(start + i)  # type: ignore[operator]
                if w == 1:
                    buf[i] = v  # type: ignore[index]
                else:
                    buf[3 * i] = v[0]  # type: ignore[index]
                    buf[3 * i + 1] = v[1]  # type: ignore[index]
                    buf[3 * i + 2] = v[2]  # type: ignore[index]
        self.produced = start + n
        return n


class VirtualBoard:
    """The Board of the hardware seam (firmware/README.md) over a clock, flash dir and Radio."""

    def __init__(
        self,
        band_id: str,
        flash_dir: str,
        emg_source: object = None,
        acc_source: object = None,
        radio: object = None,
        clock: VirtualClock | None = None,
        battery_mv: int = 3900,
        fw_version: tuple = (1, 0, 0),
        ring_ms: int = 500,
        ticks_offset: int = 0,
        echo: bool = False,
        app_kwargs: dict | None = None,
    ) -> None:
        self.band_id = band_id
        self.flash_dir = flash_dir.rstrip("/") or "/"
        _makedirs(self.flash_dir)
        self.clock = clock if clock is not None else VirtualClock()
        self.radio = radio if radio is not None else LoopbackRadio(self.clock)
        self.fw_version = fw_version
        self.battery = battery_mv
        self.button_level = False
        self.led_on = False
        self.led_changes = 0
        self.overruns = 0
        self.has_emg = emg_source is not None
        self.has_acc = acc_source is not None
        self._emg = _Source(emg_source, 1, ring_ms)
        self._acc = _Source(acc_source, 3, max(1, ring_ms // 10))
        self.ticks_offset = ticks_offset
        self.echo = echo
        self.logs: list = []
        self.dead = False
        self._cut: int | None = None
        self._boot_ms = self.clock.now_ms()
        self.boots = 0
        self.resets = 0
        self.app: object = None
        self.app_kwargs = app_kwargs or {}
        self.task: object = None

    # ---------------------------------------------------------------- time

    def ticks_ms(self) -> int:
        return (self.clock.now_ms() - self._boot_ms + self.ticks_offset) & _TICKS_MASK

    def ticks_diff(self, a: int, b: int) -> int:
        return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF

    async def sleep_ms(self, ms: int) -> None:
        if self.dead:
            raise PowerCut()
        await self.clock.sleep_ms(ms)
        if self.dead:
            raise PowerCut()

    # ---------------------------------------------------------------- sensors

    def start_sampling(self, emg_hz: int, acc_hz: int) -> None:
        now = self.clock.now_ms()
        self._emg.start(emg_hz, now)
        self._acc.start(acc_hz, now)

    def read_emg(self, buf: object) -> int:
        return self._emg.read(buf, self.clock.now_ms(), self)

    def read_acc(self, buf: object) -> int:
        return self._acc.read(buf, self.clock.now_ms(), self)

    def battery_mv(self) -> int:
        b = self.battery
        if callable(b):
            return int(b(self.clock.now_ms()))
        return int(b)

    def button(self) -> bool:
        return bool(self.button_level)

    def led(self, on: bool) -> None:
        on = bool(on)
        if on != self.led_on:
            self.led_changes += 1
        self.led_on = on

    # ---------------------------------------------------------------- flash

    def _path(self, name: str) -> str:
        if self.flash_dir == "/":
            return "/" + name
        return self.flash_dir + "/" + name

    def open(self, name: str, mode: str = "r") -> _FlashFile:
        if self.dead:
            raise PowerCut()
        return _FlashFile(self, open(self._path(name), mode))

    def remove(self, name: str) -> None:
        if self.dead:
            raise PowerCut()
        os.remove(self._path(name))

    def rename(self, old: str, new: str) -> None:
        if self.dead:
            raise PowerCut()
        os.rename(self._path(old), self._path(new))

    def exists(self, name: str) -> bool:
        try:
            os.stat(self._path(name))
            return True
        except OSError:
            return False

    def listdir(self) -> list:
        return sorted(os.listdir(self.flash_dir))

    # ---------------------------------------------------------------- power

    def log(self, msg: str) -> None:
        line = f"[{self.band_id} {self.clock.now_ms()}] {msg}"
        self.logs.append(line)
        if len(self.logs) > 500:
            self.logs.pop(0)
        if self.echo:
            print(line)

    def reset(self) -> None:
        self.resets += 1
        raise Reset()

    def power_cut(self, after_bytes: int = 0) -> None:
        """Arm a power cut: after ``after_bytes`` more bytes written to flash, the board dies."""
        self._cut = after_bytes

    def power_off(self) -> None:
        """Cut the power now (between writes)."""
        self._die()

    def _die(self) -> None:
        self.dead = True
        self.log("power lost")
        band_reset = getattr(self.radio, "band_reset", None)
        if band_reset is not None:
            band_reset()

    def power_on(self) -> object:
        """Start the app (again after a power cut); returns its asyncio task."""
        self.dead = False
        self._cut = None
        self.task = asyncio.create_task(self._life())
        return self.task

    def _boot_app(self) -> object:
        """The app of a new boot, its sensors started at band time 0."""
        from spasmband.app import App

        self._emg.start(0, self._boot_ms)
        self._acc.start(0, self._boot_ms)
        return App(self, **self.app_kwargs)

    async def _life(self) -> None:
        while True:
            self.dead = False
            self._boot_ms = self.clock.now_ms()
            self.boots += 1
            self.app = app = self._boot_app()
            try:
                await app.run()  # type: ignore[attr-defined]
                return
            except Reset:
                band_reset = getattr(self.radio, "band_reset", None)
                if band_reset is not None:
                    band_reset()
                continue
            except PowerCut:
                return

    async def shutdown(self) -> None:
        """Stop the app cleanly (no reboot) and wait for it."""
        app = self.app
        if app is not None:
            app.stop()  # type: ignore[attr-defined]
        for _ in range(100):
            t = self.task
            if t is None or t.done():  # type: ignore[attr-defined]
                return
            await self.clock.advance(100)
