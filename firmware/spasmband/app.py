"""The band application: asyncio wiring of the tasks around one Board.

``await App(board).run()`` is the one entry point, on the band (main.py builds
the real Board) and in the simulator (a VirtualBoard). Boot order: time base
(boot id), config, event log, detector/sampler, radio. Tasks, each waiting
only through ``board.sleep_ms``:

- sampler (every 20 ms): drains the sample rings, runs the detector, logs
  events and faults, queues onsets and signal chunks;
- link (every 20 ms while connected, 100 ms otherwise): commands in, frames out;
- ui (every 20 ms): marker button debounce, LED patterns;
- housekeeping (every 1 s): battery, status value, periodic STATUS.

A task that raises an Exception is logged and the band reboots (what a
watchdog would do); REBOOT from the host also ends in ``board.reset()``. A
BaseException in a task (Ctrl-C on the USB REPL, the simulator's power cut)
ends ``run()`` with that exception.
"""

import asyncio

from protocol import codec, gatt
from spasmband import detector
from spasmband.button import POLL_MS, Button
from spasmband.config import Config
from spasmband.event_log import EventLog
from spasmband.led import CONNECTED, EVENT, LOW_BATTERY, MARKER, Led
from spasmband.link import Link
from spasmband.sampler import PERIOD_MS, Sampler
from spasmband.signal_stream import SignalStream
from spasmband.status import Battery, status_fields
from spasmband.timebase import TimeBase

MANUFACTURER = "Spasm band project"
MODEL = "SB-1"
HOUSEKEEPING_MS = 1000
SUPERVISE_MS = 200  # how soon a reboot request or a crashed task is acted on


def _check_detector_params(values):
    # the detector validates combinations (e.g. offset below onset) itself
    p = {}
    for k in detector.PARAMS:
        p[k] = values[k]
    detector.check_params(p)


def _u(v, hi):
    # clamp a detector value into its unsigned log field
    v = int(v)
    if v < 0:
        return 0
    return hi if v > hi else v


class App:
    def __init__(self, board, log_segments=None, log_per_segment=None):
        self.board = board
        self._log_shape = (log_segments, log_per_segment)
        self.running = False
        self._reboot = False
        self._crashed = None
        self._fatal = None
        self._tasks = []
        self.markers = 0
        self.events = 0
        self.onsets = 0
        self.faults_logged = 0

    # ------------------------------------------------------------ boot

    def setup(self):
        """Everything before the tasks start (also used by tests)."""
        b = self.board
        self.timebase = TimeBase(b)
        self.config = Config(b, detector.PARAMS, _check_detector_params)
        self.config.load()
        segs, per = self._log_shape
        if segs is None:
            self.log = EventLog(b)
        else:
            self.log = EventLog(b, segs, per)
        self.log.open()
        self.signal = SignalStream()
        self.battery = Battery()
        self.battery.sample(b.battery_mv())
        self.button = Button()
        self.led = Led(b)
        # has_emg/has_acc: optional board attributes (a sensor that is not fitted)
        self.sampler = Sampler(b, self.config.subset(detector.PARAMS), self._on_result,
                               self.signal, getattr(b, "has_emg", True),
                               getattr(b, "has_acc", True))
        self.link = Link(self)
        self._status_at = 0
        self._battery_pct_sent = -1
        b.log("app: band %s boot %d fw %d.%d.%d" % (
            b.band_id, self.timebase.boot, b.fw_version[0], b.fw_version[1], b.fw_version[2]))

    def _start_radio(self):
        b = self.board
        r = b.radio
        r.start(gatt.NAME_PREFIX + b.band_id, self.link)
        r.set_value("manufacturer", MANUFACTURER.encode())
        r.set_value("model", MODEL.encode())
        r.set_value("firmware", ("%d.%d.%d" % b.fw_version).encode())
        r.set_value("battery", bytes((self.battery.pct,)))
        r.set_value("status", self.status_frame())
        r.advertise(True)

    async def run(self):
        self.setup()
        b = self.board
        self.sampler.start(self.timebase.now())
        self._start_radio()
        self.running = True
        self._tasks = [
            asyncio.create_task(self._guard(self._sampler_task, "sampler")),
            asyncio.create_task(self._guard(self._link_task, "link")),
            asyncio.create_task(self._guard(self._ui_task, "ui")),
        ]
        try:
            next_hk = self.timebase.now()
            while self.running and not self._reboot and self._crashed is None:
                await b.sleep_ms(SUPERVISE_MS)
                if self._fatal is not None:
                    raise self._fatal
                if self.timebase.now() >= next_hk:
                    next_hk += HOUSEKEEPING_MS
                    self._housekeeping()
        finally:
            self.running = False
            for t in self._tasks:
                t.cancel()
            self._tasks = []
            if self._reboot:
                self.sampler.finish()  # log a spasm going on now before the reset
            self.log.close()
        if self._crashed is not None:
            b.log("app: task %s crashed, rebooting" % self._crashed)
        if self._reboot or self._crashed is not None:
            b.radio.advertise(False)
            b.reset()

    def stop(self):
        """End run() without a reboot (tests, the simulator's shutdown)."""
        self.running = False

    def request_reboot(self):
        self._reboot = True

    async def _guard(self, fn, name):
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.board.log("app: %s: %r" % (name, e))
            self._crashed = name
        except BaseException as e:  # KeyboardInterrupt, power loss: end run() with it
            self._fatal = e

    # ------------------------------------------------------------ tasks

    async def _sampler_task(self):
        b = self.board
        s = self.sampler
        while self.running:
            s.poll()
            await b.sleep_ms(PERIOD_MS)

    async def _link_task(self):
        b = self.board
        link = self.link
        while self.running:
            link.poll()
            await b.sleep_ms(20 if link.connected else 100)

    async def _ui_task(self):
        b = self.board
        while self.running:
            now = self.timebase.now()
            t = self.button.poll(b.button(), now)
            if t is not None:
                self.log_marker(t)
            self.led.step(now)
            await b.sleep_ms(POLL_MS)

    def _housekeeping(self):
        b = self.board
        now = self.timebase.now()
        pct = self.battery.sample(b.battery_mv())
        r = b.radio
        if pct != self._battery_pct_sent:
            self._battery_pct_sent = pct
            r.set_value("battery", bytes((pct,)))
            if r.connected():
                r.notify("battery", bytes((pct,)))
        # the read value maps band time to UTC for a host that has just connected:
        # keep it at most a second old
        r.set_value("status", self.status_frame())
        if now // 1000 % 10 == 0:
            if self.battery.mv < self.config.values["battery_low_mv"]:
                self.led.play(LOW_BATTERY, now)
        if self.link.connected and now - self._status_at >= self.config.values["status_s"] * 1000:
            self._status_at = now
            self.link.status_due = True

    # ------------------------------------------------------------ events

    def status_frame(self):
        return codec.encode(codec.STATUS, self.link.next_live_seq(), status_fields(self))

    def _on_result(self, r, t0):
        tag = r[0]
        boot = self.timebase.boot
        t = (t0 + r[1]) & 0xFFFFFFFF
        if tag == "onset":
            self.onsets += 1
            self.link.queue_onset({"boot": boot, "t_ms": t, "utc_ms": self.timebase.utc(boot, t),
                                   "kind": r[2], "confidence": r[3], "act_x10": r[4]})
        elif tag == "event":
            self.events += 1
            # log payload order: kind, severity, confidence, duration, activations,
            # acc, freq, modalities
            self.log.append(codec.EVENT, boot, t, (
                _u(r[3], 0xFF), _u(r[4], 0xFF), _u(r[5], 0xFF), _u(r[2], 0xFFFFFFFF),
                _u(r[6], 0xFFFF), _u(r[7], 0xFFFF), _u(r[8], 0xFFFF), _u(r[9], 0xFF),
                _u(r[10], 0xFF)))
            if self.config.values["led"]:
                self.led.play(EVENT, self.timebase.now())
        elif tag == "fault":
            self.faults_logged += 1
            self.log.append(codec.FAULT, boot, t, (_u(r[2], 0xFF), _u(r[3], 0xFFFFFFFF)))

    def log_marker(self, t_ms):
        self.markers += 1
        self.log.append(codec.MARKER, self.timebase.boot, t_ms & 0xFFFFFFFF, (1,))
        self.led.play(MARKER, self.timebase.now())

    def config_set(self, key, value):
        v = self.config.set(key, value)
        if key in detector.PARAMS:
            self.sampler.set_params(self.config.subset(detector.PARAMS))
        return v

    def on_connect(self):
        self.board.log("app: host connected")
        self.board.radio.set_value("status", self.status_frame())
        self._status_at = self.timebase.now()
        if self.config.values["led"]:
            self.led.play(CONNECTED, self.timebase.now())

    def on_disconnect(self):
        self.board.log("app: host disconnected")
        self.board.radio.advertise(True)
