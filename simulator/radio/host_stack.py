"""The host process's own bumble stack, shared by every scanner and client in it.

A host process (the bridge, a test) reaches the virtual air over TCP: it opens
one bumble ``Device`` on the air's port (HCI H4 over TCP) and uses it as a
central, like one Bluetooth adapter serving several BleakClients. The stack is
created on first use per event loop and per air address.

Where the air is: the ``radio=`` keyword given to BleakScanner/BleakClient, or
the environment variable ``SPASM_RADIO`` (``tcp:127.0.0.1:PORT``).

Bonds (LTKs) live in one key store per process, so a client that reconnects
(even through a new stack, on a new loop) re-encrypts with its bond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.device import Advertisement, Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import StreamPacketSink, StreamPacketSource

log = logging.getLogger(__name__)

ENV = "SPASM_RADIO"
HOST_MTU = 517  # what the host asks for in the MTU exchange (BlueZ's default)


class RadioAddressError(ValueError):
    """The radio address (``radio=`` or SPASM_RADIO) is missing or malformed."""


def parse_radio(spec: str | None) -> tuple[str, int]:
    """``tcp:HOST:PORT`` (from the argument or SPASM_RADIO) as (host, port)."""
    text = spec if spec is not None else os.environ.get(ENV)
    if not text:
        raise RadioAddressError(
            f"no virtual radio address: set {ENV}=tcp:127.0.0.1:PORT or pass radio="
        )
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != "tcp" or not parts[1]:
        raise RadioAddressError(f"{ENV}: expected tcp:HOST:PORT, got {text!r}")
    try:
        port = int(parts[2])
    except ValueError:
        raise RadioAddressError(f"{ENV}: port is not a number in {text!r}") from None
    if not 0 < port < 65536:
        raise RadioAddressError(f"{ENV}: port out of range in {text!r}")
    return parts[1], port


def _random_static_address() -> hci.Address:
    raw = bytearray(secrets.token_bytes(6))
    raw[0] |= 0xC0
    return hci.Address(":".join(f"{b:02X}" for b in raw), hci.Address.RANDOM_DEVICE_ADDRESS)


# One identity and one key store per process: the "adapter" of this host.
_ADDRESS = _random_static_address()
_KEYSTORE = MemoryKeyStore()
ABANDON_S = 5.0  # how long an abandoned connection attempt may take to wind down


class _HostDevice(Device):
    """bumble's Device with two fixes for a central whose connect() may be abandoned."""

    async def find_peer_by_identity_address(self, identity_address: hci.Address) -> hci.Address:
        # Bands advertise with their identity address (random static), never with a
        # resolvable one: there is nothing to resolve. bumble's version scans for the
        # peer with no time limit before its connect timeout even starts, so once a
        # band was bonded (its IRK known) a connect to an absent band never ended.
        return identity_address

    def on_le_connection(
        self,
        connection_handle: int,
        peer_address: hci.Address,
        self_resolvable_address: hci.Address | None,
        peer_resolvable_address: hci.Address | None,
        role: hci.Role,
        *args: Any,
    ) -> None:
        if role != hci.Role.CENTRAL or self.connect_own_address_type is not None:
            super().on_le_connection(
                connection_handle,
                peer_address,
                self_resolvable_address,
                peer_resolvable_address,
                role,
                *args,
            )
            return
        # A connection completed after its connect() was given up: bumble would fail
        # an assertion and leave the link up with no owner, the band linked to nobody
        # and no longer advertising. Take it and hang up.
        log.warning("%s: late connection with no connect() waiting; disconnecting", peer_address)
        self.connect_own_address_type = hci.OwnAddressType.RANDOM
        try:
            super().on_le_connection(
                connection_handle,
                peer_address,
                self_resolvable_address,
                peer_resolvable_address,
                role,
                *args,
            )
        finally:
            self.connect_own_address_type = None
        orphan = self.connections.get(connection_handle)
        if orphan is not None:
            asyncio.get_running_loop().create_task(hang_up(orphan))


async def hang_up(connection: Connection) -> None:
    """Disconnect, ignoring a link that is already gone."""
    with contextlib.suppress(Exception):
        await connection.disconnect()


class HostStack:
    """One bumble Device on the air, used as a central by scanners and clients."""

    def __init__(self, device: Device, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.connect_lock = asyncio.Lock()  # one LE connection attempt at a time
        self.loop = asyncio.get_running_loop()
        self._scan_listeners: dict[int, Callable[[Advertisement], None]] = {}
        self._scanners = 0
        self._next = 0
        self.closed = False
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)

    @property
    def keystore(self) -> MemoryKeyStore:
        return _KEYSTORE

    async def connect(self, address: hci.Address, timeout: float) -> Connection:
        """An LE connection to ``address`` within ``timeout``; call with connect_lock held.

        Safe to cancel: the attempt runs in a task of its own, and a caller that gives
        up (a timeout around connect()) cancels it in the controller (LE Create
        Connection Cancel) and disconnects a connection that completed anyway, so no
        band is left linked to a host that forgot it.
        """
        task = asyncio.ensure_future(self.device.connect(address, timeout=timeout))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await self._abandon(task)
            raise

    async def _abandon(self, task: asyncio.Future[Connection]) -> None:
        deadline = self.loop.time() + ABANDON_S
        while not task.done() and self.loop.time() < deadline:
            if self.device.is_le_connecting:
                with contextlib.suppress(Exception):
                    await self.device.cancel_connection()
            await asyncio.wait({task}, timeout=0.1)
        if not task.done():  # bounded: give up on a clean end
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
            return
        if task.cancelled() or task.exception() is not None:
            return
        await hang_up(task.result())

    def add_scan_listener(self, fn: Callable[[Advertisement], None]) -> int:
        self._next += 1
        self._scan_listeners[self._next] = fn
        return self._next

    def remove_scan_listener(self, token: int) -> None:
        self._scan_listeners.pop(token, None)

    async def scan_acquire(self) -> None:
        self._scanners += 1
        if not self.device.is_scanning:
            # Passive: the virtual controller has no separate scan responses
            await self.device.start_scanning(active=False, filter_duplicates=False)

    async def scan_release(self) -> None:
        self._scanners = max(0, self._scanners - 1)
        if self._scanners == 0 and self.device.is_scanning and not self.closed:
            await self.device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for fn in list(self._scan_listeners.values()):
            fn(advertisement)

    def transport_lost(self) -> None:
        """The air is gone (closed, or the simulator died): every link is lost."""
        self.closed = True
        for handle in list(self.device.connections):
            self.device.on_disconnection(handle, hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)

    def close(self) -> None:
        """Detach from the air at once (links drop on the bands' side)."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


_STACKS: dict[tuple[int, str, int], HostStack] = {}
_OPENING: dict[tuple[int, str, int], asyncio.Future[HostStack]] = {}


def _reap_stale() -> None:
    # Stacks of closed event loops (pytest runs one loop per test) would keep
    # their links up in the air: close their sockets.
    for k, stack in list(_STACKS.items()):
        if stack.loop.is_closed() or stack.closed:
            stack.close()
            del _STACKS[k]


async def get_stack(radio: str | None = None) -> HostStack:
    """The stack of this process and loop for the air at ``radio`` (opened on first use)."""
    host, port = parse_radio(radio)
    loop = asyncio.get_running_loop()
    k = (id(loop), host, port)
    _reap_stale()
    stack = _STACKS.get(k)
    if stack is not None and stack.loop is loop:
        return stack
    pending = _OPENING.get(k)
    if pending is not None:
        return await asyncio.shield(pending)
    fut: asyncio.Future[HostStack] = loop.create_future()
    _OPENING[k] = fut
    try:
        stack = await _open(host, port)
        _STACKS[k] = stack
        fut.set_result(stack)
        return stack
    except BaseException as e:
        fut.set_exception(e)
        fut.exception()  # retrieved: waiters get it through shield
        raise
    finally:
        _OPENING.pop(k, None)


async def _open(host: str, port: int) -> HostStack:
    loop = asyncio.get_running_loop()
    try:
        transport, source = await loop.create_connection(_Source, host, port)
    except OSError as e:
        raise ConnectionError(f"virtual radio at {host}:{port} unreachable: {e}") from e
    sock = transport.get_extra_info("socket")
    sink = StreamPacketSink(transport)
    config = DeviceConfiguration()
    config.name = "spasm-host"
    config.address = _ADDRESS
    config.irk = bytes(_ADDRESS) * 2 + bytes(4)
    device = _HostDevice(config=config, host=Host(source, sink))
    device.keystore = _KEYSTORE
    device.pairing_config_factory = _pairing_config
    await device.power_on()
    stack = HostStack(device, _raw_socket(sock))
    source.lost = stack.transport_lost
    return stack


class _Source(StreamPacketSource):
    """HCI from the air; tells the stack when the TCP link to the air is gone."""

    lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_transport_lost()
        if self.lost is not None:
            self.lost()


def _raw_socket(sock: Any) -> socket.socket:
    # asyncio hands out a TransportSocket wrapper; keep something we can close
    # from any loop state: a dup'd fd would not close the connection, so shut
    # the original down instead.
    class _Closer:
        def __init__(self, s: Any) -> None:
            self.s = s

        def close(self) -> None:
            try:
                self.s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return _Closer(sock)  # type: ignore[return-value]


def _pairing_config(_connection: Any) -> PairingConfig:
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        identity_address_type=PairingConfig.AddressType.RANDOM,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )


async def close_stacks() -> None:
    """Close every stack of this process (tests; a bridge just exits)."""
    for k, stack in list(_STACKS.items()):
        stack.close()
        del _STACKS[k]
