"""bleak client backend for the virtual air: ``BleakClient(addr, backend=VirtualBleakClient)``.

Everything goes through the host process's bumble stack (host_stack): an LE
connection to the band's address, an ATT MTU exchange (the host asks for 517,
the band answers with its own maximum), full GATT discovery into bleak's
service collection, CCCD writes for notifications, ATT writes with and
without response, reads, SMP pairing with bonding (LE Secure Connections) and
re-encryption with the stored bond on later connections, as BlueZ does.

Extra keyword arguments (through ``BleakClient(..., **kwargs)``):
``radio="tcp:127.0.0.1:PORT"`` (else SPASM_RADIO) and ``mtu=N`` (the MTU to
request; 23 skips the exchange).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.device import Connection, Peer
from bumble.gatt import Characteristic

from simulator.radio.host_stack import HOST_MTU, HostStack, get_stack, hang_up
from simulator.radio.scanner import VirtualBleakScanner, bleak_uuid

# The scanner lives next to the client, so "simulator.radio.client" alone names both.
__all__ = ["VirtualBleakClient", "VirtualBleakScanner"]

log = logging.getLogger(__name__)

_PROPS = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


class VirtualBleakClient(BaseBleakClient):
    """A GATT client on the virtual air of a simulator process."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        services: set[str] | None = None,
        radio: str | None = None,
        mtu: int = HOST_MTU,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, **kwargs)
        self._device_name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._radio = radio
        self._want_mtu = mtu
        self._service_filter = services
        self._stack: HostStack | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # ------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        return self._device_name or self.address

    @property
    def mtu_size(self) -> int:
        c = self._connection
        return int(c.att_mtu) if c is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # ------------------------------------------------------------ connection

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        stack = await get_stack(self._radio)
        self._stack = stack
        timeout = float(kwargs.get("timeout", self._timeout))
        address = hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
        deadline = asyncio.get_running_loop().time() + timeout
        async with stack.connect_lock:
            # The wait for the adapter counts: connect() ends within its timeout.
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise BleakDeviceNotFoundError(
                    self.address, f"device {self.address}: adapter busy for {timeout:.1f} s"
                )
            try:
                connection = await stack.connect(address, left)
            except (TimeoutError, core.TimeoutError):
                raise BleakDeviceNotFoundError(
                    self.address, f"device {self.address} not reachable in {timeout:.1f} s"
                ) from None
            except core.ConnectionError as e:
                raise BleakError(f"connection to {self.address} failed: {e}") from e
        if connection.peer_address != address:
            # bumble hands a connect() the next connection that completes, whoever it is
            # to; a stray one (an attempt given up earlier) is not ours.
            await hang_up(connection)
            raise BleakError(f"connection to {self.address} failed: a stray link completed")
        self._connection = connection
        self._closing = False
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            await self._set_up(connection, pair)
        except BaseException:
            if self._connection is connection:
                self._connection = None
                try:
                    await connection.disconnect()
                except Exception:
                    pass
            raise

    async def _set_up(self, connection: Connection, pair: bool) -> None:
        stack = self._stack
        assert stack is not None
        # A bonded peer: encrypt with the stored key first, as BlueZ does
        peer_key = str(connection.peer_address)
        if await stack.keystore.get(peer_key) is not None:
            try:
                await _att(connection.encrypt(), connection)
            except BleakError:
                if self._connection is not connection:
                    raise
                # The band lost the bond (its flash was erased): forget ours too,
                # and pair afresh if asked to, as after BlueZ's "bond lost".
                log.warning("%s: stored bond refused by the band; forgetting it", self.address)
                await stack.keystore.delete(peer_key)
                if pair:
                    await _att(connection.pair(), connection)
        elif pair:
            await _att(connection.pair(), connection)
        peer = Peer(connection)
        self._peer = peer
        if self._want_mtu > att.ATT_DEFAULT_MTU:
            await _att(peer.request_mtu(self._want_mtu), connection)
        await _att(peer.discover_services(), connection)
        for service in peer.services:
            await _att(service.discover_characteristics(), connection)
            for characteristic in service.characteristics:
                await _att(characteristic.discover_descriptors(), connection)
        if self._connection is not connection:
            raise BleakError(f"{self.address} disconnected during service discovery")
        self.services = self._collect(peer)

    def _collect(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            service_uuid = bleak_uuid(service.uuid)
            if self._service_filter is not None and service_uuid not in self._service_filter:
                continue
            bservice = BleakGATTService(service, service.handle, service_uuid)
            collection.add_service(bservice)
            for char in service.characteristics:
                props = [n for flag, n in _PROPS if char.properties & flag]
                bchar = BleakGATTCharacteristic(
                    char,
                    char.handle,
                    bleak_uuid(char.uuid),
                    props,  # type: ignore[arg-type]
                    lambda: self.mtu_size - 3,
                    bservice,
                )
                collection.add_characteristic(bchar)
                for desc in char.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, bleak_uuid(desc.type), bchar)
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        solicited = self._closing
        log.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        if not solicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        c = self._connection
        if c is None:
            return
        self._closing = True
        try:
            await c.disconnect()
        except Exception as e:  # already gone
            log.debug("disconnect: %r", e)
        self._connection = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        c = self._require()
        await _att(c.pair(), c)

    async def unpair(self) -> None:
        stack = self._stack or await get_stack(self._radio)
        peer = str(hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS))
        if await stack.keystore.get(peer) is not None:
            await stack.keystore.delete(peer)
        await self.disconnect()

    # ------------------------------------------------------------ GATT

    def _require(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        c = self._require()
        return bytearray(await _att(characteristic.obj.read_value(), c))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        c = self._require()
        return bytearray(await _att(descriptor.obj.read_value(), c))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        c = self._require()
        payload = bytes(data)
        if not response and len(payload) > c.att_mtu - 3:
            raise BleakError(
                f"write without response of {len(payload)} bytes exceeds MTU {c.att_mtu} - 3"
            )
        await _att(characteristic.obj.write_value(payload, with_response=response), c)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        c = self._require()
        await _att(descriptor.obj.write_value(bytes(data), with_response=True), c)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        c = self._require()

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        await _att(characteristic.obj.subscribe(deliver, prefer_notify=True), c)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        c = self._require()
        deliver = self._subscribers.pop(characteristic.handle, None)
        await _att(characteristic.obj.unsubscribe(deliver), c)


async def _att(awaitable: Any, connection: Connection) -> Any:
    """Await a bumble operation on ``connection``, raising bleak's exceptions.

    A link that drops meanwhile ends the wait at once with BleakError (bumble
    would otherwise wait for its ATT timeout).
    """
    task = asyncio.ensure_future(awaitable)
    gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_disconnection(reason: int) -> None:
        if not gone.done():
            gone.set_result(reason)

    connection.on(connection.EVENT_DISCONNECTION, on_disconnection)
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        connection.remove_listener(connection.EVENT_DISCONNECTION, on_disconnection)
    if not task.done():
        task.cancel()
        raise BleakError(f"disconnected (reason 0x{gone.result():02X}) during a GATT operation")
    try:
        return task.result()
    except att.ATT_Error as e:
        raise BleakGATTProtocolError(int(e.error_code)) from e
    except core.BaseBumbleError as e:
        raise BleakError(repr(e)) from e
    except asyncio.CancelledError:
        raise BleakError("GATT operation aborted: link lost") from None
