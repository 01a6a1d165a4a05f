"""An in-process model of the band's GATT server, with a central side for tests.

MicroPython-compatible (it runs in the VM tests and under CPython in the
simulator). ``LoopbackRadio`` is the Radio of the hardware seam
(firmware/README.md, "The hardware seam"): the band's app drives it as it
would the ESP32's, and a test connects with an MTU and a bonded or plain link,
writes control segments and collects decoded notifications. The bumble-backed
Radio of simulator/radio/ is the same seam over a virtual BLE controller.
"""

from protocol import codec, segmentation
from simulator.virtual_clock import VirtualClock


class LoopbackRadio:
    """The Radio of the seam (firmware/README.md), in process, with a central side for tests.

    Band side: start/advertise/connected/mtu/secure/notify/set_value/disconnect,
    as the ESP32 Radio behaves: notify returns False when no central is connected,
    the characteristic is not subscribed, or the TX buffer is full (``tx_slots``
    notifications, drained at ``per_ms`` per ms of clock time); a segment longer
    than mtu-3 raises ValueError (a bug in the band). Handlers are called
    synchronously, as from the BLE IRQ.

    Central side: ``connect(mtu, secure)``, ``drop()``, ``write(segment)``,
    ``send(frame)``, ``command(ftype, seq, fields)``, ``frames(char)`` (decoded
    frames received on a characteristic since the last call), ``read(char)``.
    """

    CHARS = ("events", "signal", "control", "status", "battery")

    def __init__(
        self, clock: VirtualClock | None = None, tx_slots: int = 10, per_ms: float = 1.0
    ) -> None:
        self.clock = clock
        self.tx_slots = tx_slots
        self.per_ms = per_ms
        self._credits = float(tx_slots)
        self._refill_at = 0
        self.name = ""
        self.handler: object = None
        self.advertising = False
        self._connected = False
        self._mtu = segmentation.MIN_MTU
        self._secure = False
        self.subscribed: set = set()
        self.values: dict = {}
        self.rejected = 0  # notifies refused for TX full
        self._reasm: dict = {}
        self._frames: dict = {}
        self.raw: dict = {}
        self.tx_blocked = False  # tests: make every notify report TX full
        for c in self.CHARS:
            self._frames[c] = []
            self.raw[c] = []

    # ------------------------------------------------------------ band side

    def start(self, name: str, handler: object) -> None:
        self.name = name
        self.handler = handler

    def advertise(self, on: bool) -> None:
        self.advertising = bool(on)

    def connected(self) -> bool:
        return self._connected

    def mtu(self) -> int:
        return self._mtu if self._connected else segmentation.MIN_MTU

    def secure(self) -> bool:
        return self._connected and self._secure

    def notify(self, char: str, data: bytes) -> bool:
        if char not in self.CHARS:
            raise ValueError(f"unknown characteristic {char!r}")
        if not self._connected or char not in self.subscribed:
            return False
        if len(data) > self._mtu - 3:
            raise ValueError(f"notification of {len(data)} bytes over MTU {self._mtu}")
        if self.tx_blocked or not self._take_credit():
            self.rejected += 1
            return False
        self._deliver(char, bytes(data))
        return True

    def set_value(self, char: str, data: bytes) -> None:
        self.values[char] = bytes(data)

    def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self.handler.on_disconnect()  # type: ignore[attr-defined]

    def _take_credit(self) -> bool:
        if self.clock is None:
            return True
        now = self.clock.now_ms()
        if now > self._refill_at:
            self._credits = min(
                float(self.tx_slots), self._credits + (now - self._refill_at) * self.per_ms
            )
        self._refill_at = now
        if self._credits < 1:
            return False
        self._credits -= 1
        return True

    def _deliver(self, char: str, seg: bytes) -> None:
        self.raw[char].append(seg)
        if char == "battery":
            self._frames[char].append(seg)
            return
        r = self._reasm.get(char)
        if r is None:
            r = segmentation.Reassembler()
            self._reasm[char] = r
        try:
            frame = r.feed(seg)
            if frame is not None:
                self._frames[char].append(codec.decode(bytes(frame)))
        except codec.FrameError as e:
            self._frames[char].append(("bad", e.code, e.detail))

    def band_reset(self) -> None:
        """The band rebooted or lost power: the link drops, the GATT server is gone."""
        self._connected = False
        self.advertising = False
        self.handler = None

    # ------------------------------------------------------------ central side

    def connect(self, mtu: int = 23, secure: bool = True, subscribe: tuple | None = None) -> None:
        if self.handler is None or not self.advertising:
            raise OSError("band not advertising")
        self._connected = True
        self._mtu = mtu
        self._secure = secure
        self.subscribed = set(subscribe if subscribe is not None else self.CHARS)
        self._credits = float(self.tx_slots)
        self._reasm = {}
        self.advertising = False
        self.handler.on_connect()  # type: ignore[attr-defined]

    def drop(self) -> None:
        """The link is lost (out of range)."""
        self.disconnect()

    def write(self, data: bytes) -> None:
        if not self._connected:
            raise OSError("not connected")
        if len(data) > self._mtu - 3:
            raise ValueError(f"write of {len(data)} bytes over MTU {self._mtu}")
        self.handler.on_write("control", bytes(data))  # type: ignore[attr-defined]

    def send(self, frame: bytes) -> None:
        for seg in segmentation.segments(frame, self._mtu):
            self.write(seg)

    def command(self, ftype: int, seq: int, fields: dict | None = None) -> None:
        self.send(codec.encode(ftype, seq, fields))

    def frames(self, char: str) -> list:
        out = self._frames[char]
        self._frames[char] = []
        return out

    def read(self, char: str) -> bytes | None:
        return self.values.get(char)
