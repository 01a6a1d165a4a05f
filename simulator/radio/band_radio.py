"""The band side of the virtual radio: the Radio seam of interfaces.md on bumble.

``BandRadio(air, band_id)`` is what a virtual board hands the firmware as
``board.radio``. It is a real bumble Device (a host stack) on its own virtual
controller in the ``Air``: its GATT server, advertising, MTU exchange, SMP
pairing (LE Secure Connections, Just Works, bonding: the band has no display)
and link encryption are bumble's, so a host sees the same ATT traffic a real
band produces.

The seam is synchronous (on the ESP32 it is MicroPython's ``bluetooth``
module), so calls that need the stack start tasks on the running loop; calls
made before the stack is up are remembered and applied when it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from bumble import att, hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from protocol import gatt
from simulator.radio import gatt_db
from simulator.radio.air import Air, key

log = logging.getLogger(__name__)

DEFAULT_MTU = 23
BAND_MAX_MTU = 247  # what the band's stack offers in an MTU exchange (NimBLE's usual)
ADV_INTERVAL_MS = 100.0  # a band's usual connectable interval; discovery takes about this long
TX_BUDGET = 24  # ACL packets in flight before notify() reports "TX full"


def band_address(band_id: str) -> hci.Address:
    """A random static address derived from the band id (stable across restarts)."""
    digest = hashlib.sha256(band_id.encode()).digest()
    raw = bytearray(digest[:6])
    raw[0] |= 0xC0  # random static: the two top bits set
    text = ":".join(f"{b:02X}" for b in raw)
    return hci.Address(text, hci.Address.RANDOM_DEVICE_ADDRESS)


class BandRadio:
    """One band's radio (see the Radio seam in firmware/README.md ("The hardware seam"))."""

    def __init__(
        self,
        air: Air,
        band_id: str,
        *,
        max_mtu: int = BAND_MAX_MTU,
        tx_budget: int = TX_BUDGET,
    ) -> None:
        self.air = air
        self.band_id = band_id
        self.address = band_address(band_id)
        self.max_mtu = max_mtu
        self.tx_budget = tx_budget
        self._values: dict[str, bytes] = {}
        self._handler: Any = None
        self._name = ""
        self._advertise = False
        self._connection: Connection | None = None
        self._bonded: set[str] = set()
        self._device: Device | None = None
        self._chars: dict[str, Any] = {}
        self._ready = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._adv_lock = asyncio.Lock()
        self.stats = {"notified": 0, "tx_full": 0, "writes": 0, "connects": 0}

    # ------------------------------------------------------------ the seam

    def start(self, name: str, handler: Any) -> None:
        self._name = name
        self._handler = handler
        self._advertise = True
        if self._device is None:
            self._spawn(self._bring_up())
        else:
            # A restart of the app (board.reset): same stack, bonds kept, link dropped
            if self._connection is not None:
                self.disconnect()
            self._spawn(self._apply_advertising())

    def advertise(self, on: bool) -> None:
        self._advertise = bool(on)
        if self._ready:
            self._spawn(self._apply_advertising())

    def connected(self) -> bool:
        return self._connection is not None

    def mtu(self) -> int:
        c = self._connection
        return int(c.att_mtu) if c is not None else DEFAULT_MTU

    def secure(self) -> bool:
        c = self._connection
        return c is not None and c.is_encrypted and key(c.peer_address) in self._bonded

    def notify(self, char: str, data: bytes) -> bool:
        c = self._connection
        if c is None or self._device is None:
            return False
        if len(data) > c.att_mtu - 3:
            raise ValueError(f"notify: {len(data)} bytes do not fit MTU {c.att_mtu}")
        attribute = self._chars[char]
        server = self._device.gatt_server
        cccd = server.subscribers.get(c, {}).get(attribute.handle)
        if not cccd or not (cccd[0] & 0x01):
            return False
        queue = self._device.host.le_acl_packet_queue
        if queue is not None and queue.pending >= self.tx_budget:
            self.stats["tx_full"] += 1
            return False
        pdu = att.ATT_Handle_Value_Notification(
            attribute_handle=attribute.handle, attribute_value=bytes(data)
        )
        server.send_gatt_pdu(c, bytes(pdu))
        self.stats["notified"] += 1
        return True

    def set_value(self, char: str, data: bytes) -> None:
        if char not in gatt_db.READ_VALUES:
            raise ValueError(f"set_value: no readable characteristic {char!r}")
        self._values[char] = bytes(data)

    def disconnect(self) -> None:
        c = self._connection
        if c is not None:
            self._spawn(self._disconnect(c))

    # ------------------------------------------------------------ for the simulator

    def band_reset(self) -> None:
        """The band rebooted or lost power (VirtualBoard calls this): the link drops,
        advertising stops, the app's handler is gone; bonds survive (they are in
        the band's NVS on the ESP32). The next ``start()`` brings the band back."""
        self._handler = None
        self._advertise = False
        c = self._connection
        if c is not None:
            self._spawn(self._disconnect(c))
        if self._ready:
            self._spawn(self._apply_advertising())

    def is_subscribed(self, char: str) -> bool:
        c = self._connection
        if c is None or self._device is None:
            return False
        cccd = self._device.gatt_server.subscribers.get(c, {}).get(self._chars[char].handle)
        return bool(cccd and cccd[0] & 0x01)

    async def forget_bonds(self) -> None:
        """Erase every bond (the band's flash was wiped)."""
        self._bonded.clear()
        device = self._device
        if device is not None and device.keystore is not None:
            for name, _keys in await device.keystore.get_all():
                await device.keystore.delete(name)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the stack is up and advertising was applied (the app called start())."""
        for _ in range(int(timeout / 0.01)):
            if self._ready:
                return
            await asyncio.sleep(0.01)
        raise TimeoutError(f"band {self.band_id}: radio not started within {timeout:g} s")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._device is not None:
            try:
                await self._device.power_off()
            except Exception:  # the controller may already be gone
                pass

    # ------------------------------------------------------------ internals

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            log.error("band %s radio task failed: %r", self.band_id, e, exc_info=e)

    async def _bring_up(self) -> None:
        controller = self.air.add_band("band-" + self.band_id, self.address)
        config = DeviceConfiguration()
        config.name = self._name
        config.address = self.address
        config.irk = hashlib.sha256(b"irk" + self.band_id.encode()).digest()[:16]
        host = Host(controller, AsyncPipeSink(controller))
        device = Device(config=config, host=host)
        device.gatt_server.max_mtu = self.max_mtu
        device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            identity_address_type=PairingConfig.AddressType.RANDOM,
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
        )
        services, self._chars = gatt_db.build(self._values, self._on_write)
        device.add_services(services)
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self._device = device
        await device.power_on()
        self._ready = True
        await self._apply_advertising()

    def _adv_data(self) -> bytes:
        # The virtual controller has no scan responses, so UUID and name share the
        # 31-byte advertisement (18 + 11 bytes); flags are left out to make room.
        return bytes(
            AdvertisingData(
                [
                    (
                        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID(gatt.SERVICE).to_bytes(force_128=True)),
                    ),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self._name.encode()),
                ]
            )
        )

    async def _apply_advertising(self) -> None:
        device = self._device
        if device is None:
            return
        # One change at a time: the app's advertise(True) and our own re-advertising
        # after a disconnect would otherwise start the advertiser twice.
        async with self._adv_lock:
            want = self._advertise and self._connection is None
            if want and not device.is_advertising:
                await device.start_advertising(
                    advertising_data=self._adv_data(),
                    advertising_interval_min=ADV_INTERVAL_MS,
                    advertising_interval_max=ADV_INTERVAL_MS,
                )
            elif not want and device.is_advertising:
                await device.stop_advertising()

    async def _disconnect(self, connection: Connection) -> None:
        try:
            await connection.disconnect()
        except Exception as e:  # already gone
            log.debug("disconnect: %r", e)

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self.stats["connects"] += 1
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        connection.on(connection.EVENT_PAIRING, lambda _keys: self._on_pairing(connection))
        if self._handler is not None:
            self._handler.on_connect()

    def _on_pairing(self, connection: Connection) -> None:
        self._bonded.add(key(connection.peer_address))

    def _on_disconnection(self, _reason: int) -> None:
        self._connection = None
        if self._handler is not None:
            self._handler.on_disconnect()
        if self._ready:
            # The band is discoverable again whenever it is not connected, unless
            # the app turned advertising off.
            self._spawn(self._apply_advertising())

    def _on_write(self, char: str, data: bytes) -> None:
        self.stats["writes"] += 1
        if self._handler is not None:
            self._handler.on_write(char, data)
