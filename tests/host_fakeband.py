"""A scripted band behind a bleak backend, for the bridge's own tests.

FakeClient/FakeScanner are BaseBleakClient/BaseBleakScanner subclasses: the
bridge reaches them through bleak's public BleakClient/BleakScanner with
``backend=``, exactly as it reaches the simulator's virtual radio or BlueZ. The
band side speaks the link protocol with protocol.codec (log with seq, TIME_SYNC,
REPLAY, ACK, CONFIG_GET) and can misbehave on purpose (garbage, floods, drops).
It runs in the test's process and loop; the simulator's virtual radio, not this,
is what the end-to-end tests use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str

from protocol import codec, gatt

REGISTRY: dict[str, FakeBand] = {}
CHARS = [
    (gatt.EVENTS, ["notify"]),
    (gatt.SIGNAL, ["notify"]),
    (gatt.CONTROL, ["write", "write-without-response", "notify"]),
    (gatt.STATUS, ["read", "notify"]),
]


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeBand:
    def __init__(self, band_id: str, mtu: int = 23, boot: int = 1, first_seq: int = 0) -> None:
        self.band_id = band_id
        self.address = "FA:KE:" + band_id
        self.mtu = mtu
        self.boot = boot
        self.boot_utc = now_ms() - 5000  # the truth: UTC when this boot started
        self.next_seq = first_seq
        self.last_t = 0
        self.log: dict[int, dict[str, Any]] = {}  # unacked logged events, by seq
        self.truth: dict[int, int] = {}  # seq -> true UTC of the event
        self.acked = 0
        self.synced = False
        self.live_seq = 0
        self.advertising = True
        self.refuse = False
        self.client: FakeClient | None = None
        self.subs: dict[str, Callable[[bytearray], None]] = {}
        self.chars: dict[str, BleakGATTCharacteristic] = {}
        self.joiner = codec.Reassembler()
        self.commands: list[tuple[int, int, dict[str, Any]]] = []  # (ftype, seq, fields)
        self.connects = 0
        self.hold_writes: asyncio.Event | None = None  # set: writes hang until it is set
        REGISTRY[self.address] = self

    # ------------------------------------------------------------ band behaviour

    def uptime(self) -> int:
        return now_ms() - self.boot_utc

    def log_event(self, n: int = 1) -> list[int]:
        """Log ``n`` events now; notify them when linked."""
        seqs = []
        for _ in range(n):
            # Events are at least a few ms apart, as a detector's are (they last).
            seq, t = self.next_seq, max(self.uptime(), self.last_t + 7)
            self.last_t = t
            self.next_seq += 1
            self.truth[seq] = self.boot_utc + t
            self.log[seq] = {
                "boot": self.boot,
                "t_ms": t,
                "kind": 2,
                "severity": 2,
                "confidence": 90,
                "duration_ms": 1200,
                "peak_act_x10": 80,
                "mean_act_x10": 40,
                "peak_acc_mg": 300,
                "freq_dhz": 40,
                "modalities": 3,
                "utc_ms": self.boot_utc + t if self.synced else 0,
            }
            self.send(gatt.EVENTS, codec.encode(codec.EVENT, seq, self.log[seq]))
            seqs.append(seq)
        return seqs

    def status_frame(self) -> bytes:
        self.live_seq += 1
        return codec.encode(
            codec.STATUS,
            self.live_seq,
            {
                "boot": self.boot,
                "uptime_ms": self.uptime(),
                "battery_pct": 80,
                "battery_mv": 3900,
                "quality": 90,
                "faults": 0,
                "log_used": len(self.log),
                "log_capacity": 1000,
                "log_overwritten": 0,
                "last_seq": max(self.next_seq - 1, 0),
                "acked_seq": self.acked,
                "state": 1 if self.synced else 0,
                "fw_major": 1,
                "fw_minor": 0,
                "fw_patch": 0,
            },
        )

    def send(self, uuid: str, frame: bytes) -> None:
        for seg in codec.segments(frame, self.mtu):
            self.send_raw(uuid, seg)

    def send_raw(self, uuid: str, data: bytes) -> None:
        cb = self.subs.get(normalize_uuid_str(uuid))
        if self.client is not None and cb is not None:
            cb(bytearray(data))  # bleak's wrapper adds the characteristic

    def on_write(self, data: bytes) -> None:
        frame = self.joiner.feed(data)
        if frame is None:
            return
        ftype, _flags, seq, fields = codec.decode(frame)
        self.commands.append((ftype, seq, fields))
        if ftype == codec.TIME_SYNC:
            self.synced = True
        elif ftype == codec.REPLAY:
            for s in sorted(self.log):
                if s >= fields["from_seq"]:
                    self.send(
                        gatt.EVENTS, codec.encode(codec.EVENT, s, self.log[s], codec.FLAG_REPLAY)
                    )
        elif ftype == codec.ACK:
            self.acked = max(self.acked, fields["upto"])
            for s in [s for s in self.log if s <= fields["upto"]]:
                del self.log[s]
        elif ftype == codec.CONFIG_GET:
            self.live_seq += 1
            self.send(
                gatt.CONTROL,
                codec.encode(
                    codec.CONFIG_VALUE,
                    self.live_seq,
                    {"status": 0, "key": fields["key"], "value": 42},
                ),
            )

    def acks(self) -> list[int]:
        return [f["upto"] for t, _, f in self.commands if t == codec.ACK]

    def drop_link(self) -> None:
        """The band goes out of range."""
        client = self.client
        if client is not None:
            client.detach()


class FakeClient(BaseBleakClient):
    def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, **kwargs)
        self.band: FakeBand | None = None

    @property
    def mtu_size(self) -> int:
        return self.band.mtu if self.band else 23

    @property
    def is_connected(self) -> bool:
        return self.band is not None

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        band = REGISTRY.get(self.address)
        if band is None or band.refuse or not band.advertising:
            raise BleakError(f"device {self.address} not found")
        if band.client is not None:
            raise BleakError("band already connected")
        coll = BleakGATTServiceCollection()
        svc = BleakGATTService(None, 1, normalize_uuid_str(gatt.SERVICE))
        coll.add_service(svc)
        band.chars = {}
        for i, (uuid, props) in enumerate(CHARS):
            ch = BleakGATTCharacteristic(
                None,
                2 + i * 2,
                normalize_uuid_str(uuid),
                props,  # type: ignore[arg-type]
                lambda: band.mtu - 3,
                svc,
            )
            coll.add_characteristic(ch)
            band.chars[ch.uuid] = ch
        self.services = coll
        band.client, band.subs, band.joiner = self, {}, codec.Reassembler()
        band.connects += 1
        self.band = band

    def detach(self) -> None:
        band, self.band = self.band, None
        if band is not None:
            band.client, band.subs = None, {}
            if self._disconnected_callback is not None:
                self._disconnected_callback()

    async def disconnect(self) -> None:
        self.detach()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def unpair(self) -> None:
        pass

    def _band(self) -> FakeBand:
        if self.band is None:
            raise BleakError("not connected")
        return self.band

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        await asyncio.sleep(0)
        return bytearray(self._band().status_frame())

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        raise BleakError("no descriptors")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        await asyncio.sleep(0)
        hold = self._band().hold_writes
        if hold is not None:
            await hold.wait()  # a slow band: the write has not been answered yet
        self._band().on_write(bytes(data))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("no descriptors")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: Any, **kwargs: Any
    ) -> None:
        self._band().subs[characteristic.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._band().subs.pop(characteristic.uuid, None)


class FakeScanner(BaseBleakScanner):
    def __init__(
        self, detection_callback: Any, service_uuids: Any, scanning_mode: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._task = asyncio.create_task(self._advertise())

    async def _advertise(self) -> None:
        while True:
            for band in list(REGISTRY.values()):
                if not band.advertising or band.client is not None:
                    continue
                adv = AdvertisementData(
                    local_name=gatt.NAME_PREFIX + band.band_id,
                    manufacturer_data={},
                    service_data={},
                    service_uuids=[gatt.SERVICE],
                    tx_power=None,
                    rssi=-50,
                    platform_data=(),
                )
                dev = self.create_or_update_device(
                    band.address, band.address, adv.local_name, None, adv
                )
                self.call_detection_callbacks(dev, adv)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
