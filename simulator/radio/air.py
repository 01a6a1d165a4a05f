"""The virtual air: bumble virtual controllers on one link, with faults.

One ``Air`` lives in the simulator process. Every virtual band gets its own
bumble ``Controller`` on it; every host process that connects to the air's TCP
port gets a fresh controller too (one per TCP connection), so any number of
host processes (the bridge, a ``scan`` command, a test) share the same air.
Between controllers the link carries real LL PDUs: advertising, connection
requests, ACL data (ATT, SMP) and LL control (encryption, termination).

Faults are properties of a band's position in the air, applied here rather
than in the band or the host, so both ends see what a real radio would show:

- ``drop``: the link is lost (both ends get a supervision timeout, 0x08);
- ``refuse``: connection requests to the band fail to be established (0x3E);
- ``delay``: every ACL PDU to or from the band arrives ``ms`` later, in order;
- ``out_of_range``: for ``seconds`` the band is unreachable: its link drops,
  its advertisements and connection requests to it are lost.

Cost with many bands: bumble's LocalLink hands every advertising PDU to every
other controller and finds a PDU's destination by scanning every controller and
connection, so N advertising bands cost O(N^2) per advertising interval and each
ACL PDU O(N). Here an advertisement goes only to the controllers that can hear
it (host controllers: bands are peripherals and never scan or initiate), a
CONNECT_IND only to the band it names, and destinations are looked up in a
cache (checked on every hit, rebuilt by bumble's scan on a miss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bumble import core, hci, ll
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSink, StreamPacketSource

log = logging.getLogger(__name__)

# HCI reasons the ends see, as a real controller would report them
REASON_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
REASON_NOT_ESTABLISHED = hci.HCI_ErrorCode.CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR


def key(address: hci.Address) -> str:
    """The address as "AA:BB:CC:DD:EE:FF", whatever its type."""
    return str(address.to_string(False))


class BandFaults:
    """The fault state of one band's radio position."""

    def __init__(self) -> None:
        self.refuse = False
        self.delay_s = 0.0
        self.unreachable_until = 0.0  # time.monotonic() deadline
        self.last_delivery: dict[int, float] = {}  # id(controller) -> last delivery time

    def unreachable(self) -> bool:
        return time.monotonic() < self.unreachable_until


class Air(LocalLink):
    """A bumble LocalLink with per-band faults and a TCP port for host processes."""

    def __init__(self) -> None:
        super().__init__()
        self._band_by_address: dict[str, BandFaults] = {}
        self._band_controllers: dict[str, Controller] = {}
        self._band_by_controller: dict[int, BandFaults] = {}
        self._server: asyncio.AbstractServer | None = None
        self._host_links: list[_HostLink] = []
        self.port = 0
        self._listeners: list[Controller] | None = None  # controllers that are not bands
        self._where: dict[hci.Address, Controller] = {}  # find_le_controller cache

    # ------------------------------------------------------------ controllers

    def add_controller(self, controller: Controller) -> None:
        super().add_controller(controller)
        self._listeners = None

    def remove_controller(self, controller: Controller) -> None:
        super().remove_controller(controller)
        self._listeners = None
        self._where = {a: c for a, c in self._where.items() if c is not controller}

    def listeners(self) -> list[Controller]:
        """Controllers that hear advertisements: every one that is not a band's."""
        if self._listeners is None:
            bands = self._band_by_controller
            self._listeners = [c for c in self.controllers if id(c) not in bands]
        return self._listeners

    def find_le_controller(self, address: hci.Address) -> Controller | None:
        c = self._where.get(address)
        if c is not None and c in self.controllers and _owns(c, address):
            return c
        found: Controller | None = super().find_le_controller(address)
        if found is not None:
            self._where[address] = found
        else:
            self._where.pop(address, None)
        return found

    # ------------------------------------------------------------ bands

    def add_band(self, name: str, address: hci.Address) -> Controller:
        """A controller for a band whose random static address is ``address``."""
        # No public address: the band's identity is its random static address.
        controller = Controller(name, link=self)
        faults = BandFaults()
        self._band_by_address[key(address)] = faults
        self._band_by_controller[id(controller)] = faults
        self._band_controllers[key(address)] = controller
        self._listeners = None
        return controller

    def faults(self, address: str) -> BandFaults:
        return self._band_by_address[address]

    def band_addresses(self) -> list[str]:
        return list(self._band_controllers)

    # ------------------------------------------------------------ faults

    def drop(self, address: str, reason: int = REASON_TIMEOUT) -> int:
        """Break every link of the band; returns how many were broken."""
        controller = self._band_controllers[address]
        broken = 0
        for connection in list(controller.le_connections.values()):
            peer = self.find_le_controller(connection.peer_address)
            if peer is not None:
                peer_connection = peer.le_connections.get(connection.self_address)
                if peer_connection is not None:
                    peer.on_le_disconnected(peer_connection, reason)
            controller.on_le_disconnected(connection, reason)
            broken += 1
        return broken

    def set_refuse(self, address: str, on: bool) -> None:
        self._band_by_address[address].refuse = on

    def set_delay(self, address: str, ms: float) -> None:
        self._band_by_address[address].delay_s = max(0.0, ms) / 1000.0

    def out_of_range(self, address: str, seconds: float) -> None:
        self._band_by_address[address].unreachable_until = time.monotonic() + seconds
        self.drop(address)

    # ------------------------------------------------------------ link overrides

    def _band_of(self, address: hci.Address | None) -> BandFaults | None:
        if address is None:
            return None
        return self._band_by_address.get(key(address))

    def send_advertising_pdu(self, sender_controller: Controller, packet: Any) -> None:
        sender = self._band_by_controller.get(id(sender_controller))
        if sender is not None and sender.unreachable():
            return  # nobody hears a band out of range
        loop = asyncio.get_running_loop()
        if isinstance(packet, ll.ConnectInd):
            target = self._band_of(packet.advertiser_address)
            if target is not None and (target.refuse or target.unreachable()):
                # The band never answers: the central's link fails to be established.
                central = sender_controller
                connection = central.le_connections.get(packet.advertiser_address)
                if connection is not None:
                    loop.call_later(0.01, self._fail_connection, central, connection)
                return
            band = self._band_controllers.get(key(packet.advertiser_address))
            if band is not None:  # only the advertiser it names takes a CONNECT_IND
                loop.call_soon(band.on_ll_advertising_pdu, packet)
                return
            super().send_advertising_pdu(sender_controller, packet)
            return
        # An advertisement: bands do not scan, so only the other controllers hear it.
        for c in self.listeners():
            if c is not sender_controller:
                loop.call_soon(c.on_ll_advertising_pdu, packet)

    def _fail_connection(self, central: Controller, connection: Any) -> None:
        current = central.le_connections.get(connection.peer_address)
        if current is not None and current is connection:
            central.on_le_disconnected(current, REASON_NOT_ESTABLISHED)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        band = self._band_by_controller.get(id(sender_controller)) or self._band_of(
            destination_address
        )
        if band is not None and band.unreachable():
            return
        if band is None or band.delay_s <= 0.0:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        # Delay, keeping order per sender: never deliver before the previous PDU.
        loop = asyncio.get_running_loop()
        now = loop.time()
        sender = id(sender_controller)
        when = max(now + band.delay_s, band.last_delivery.get(sender, 0.0) + 1e-6)
        band.last_delivery[sender] = when
        loop.call_at(
            when,
            super().send_acl_data,
            sender_controller,
            destination_address,
            transport,
            data,
        )

    # ------------------------------------------------------------ host processes

    async def serve_hosts(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Accept host processes on a TCP port (HCI H4 over TCP); returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HostLink(self), host, port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    def host_detached(self, controller: Controller) -> None:
        """A host process went away: its links time out on the bands' side."""
        for connection in list(controller.le_connections.values()):
            band = self._band_controllers.get(key(connection.peer_address))
            if band is None:
                continue
            band_connection = band.le_connections.get(connection.self_address)
            if band_connection is not None:
                band.on_le_disconnected(band_connection, REASON_TIMEOUT)
        if controller in self.controllers:
            self.remove_controller(controller)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for link in list(self._host_links):
                link.close()
            await self._server.wait_closed()
            self._server = None


def _owns(controller: Controller, address: hci.Address) -> bool:
    """``address`` is still one of the controller's own (its address or a link's)."""
    if controller.random_address == address or controller.public_address == address:
        return True
    return any(c.self_address == address for c in controller.le_connections.values())


class HostController(Controller):
    """A host process's controller; bumble's own ignores LE Create Connection Cancel.

    Per the spec (Vol 4, Part E, 7.8.13) a cancel ends the pending connection
    with an LE Connection Complete event of status Unknown Connection
    Identifier; without it a host that gave up connecting would be connected
    later, whenever the band next advertised.
    """

    def on_hci_le_create_connection_cancel_command(self, _command: Any) -> Any:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class _BatchingSink(StreamPacketSink):
    """HCI packets to a host process, written once per event-loop pass, in order.

    bumble's StreamPacketSink writes each packet on its own (a send() each: with 200
    bands streaming, thousands a second, a seventh of the simulator's CPU); packets
    queued in the same pass of the loop go out in one write, without waiting longer.
    """

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        super().__init__(transport)
        self._queued: list[bytes] = []

    def on_packet(self, packet: bytes) -> None:
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued.append(packet)

    def _flush(self) -> None:
        data, self._queued = b"".join(self._queued), []
        if not self.transport.is_closing():
            self.transport.write(data)


class _HostLink(asyncio.Protocol):
    """One host process attached over TCP: a controller of its own on the air."""

    _count = 0

    def __init__(self, air: Air) -> None:
        self.air = air
        self.source = StreamPacketSource()
        self.controller: Controller | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _HostLink._count += 1
        self.controller = HostController(
            f"host{_HostLink._count}",
            host_source=self.source,
            host_sink=_BatchingSink(transport),
            link=self.air,
        )
        self.air._host_links.append(self)
        log.info("host attached: %s", transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        self.source.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.air._host_links:
            self.air._host_links.remove(self)
        if self.controller is not None:
            self.controller.host = None
            self.air.host_detached(self.controller)
        log.info("host detached")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
