"""The virtual radio through bleak's public API: setting up and using a link.

Discovery by scan, GATT (services, MTU, notifications, writes, reads), bonding,
and many bands linked at once, against bands in a simulator process started once
for the module (see tests/radio/sim.py). Faults and lost links are in
tests/radio/test_faults.py.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError

from protocol import gatt
from simulator.radio.client import VirtualBleakClient
from simulator.radio.scanner import VirtualBleakScanner
from tests.radio.sim import BANDS, Sim, client, wait_for

# ---------------------------------------------------------------- discovery


async def test_discovery_by_service_uuid_and_name(sim: Sim) -> None:
    found = await BleakScanner.discover(
        0.5, return_adv=True, backend=VirtualBleakScanner, service_uuids=[gatt.SERVICE]
    )
    names = {adv.local_name: addr for addr, (_d, adv) in found.items()}
    for band in BANDS:
        assert names["SB-" + band] == sim.bands[band]
    for _d, adv in found.values():
        assert gatt.SERVICE in adv.service_uuids
    other = await BleakScanner.discover(
        0.3, backend=VirtualBleakScanner, service_uuids=["0000feed-0000-1000-8000-00805f9b34fb"]
    )
    assert other == []


async def test_find_by_name_then_connect_with_ble_device(sim: Sim) -> None:
    device = await BleakScanner.find_device_by_name(
        "SB-" + BANDS[0], timeout=5, backend=VirtualBleakScanner
    )
    assert isinstance(device, BLEDevice)
    async with BleakClient(device, backend=VirtualBleakClient, radio=sim.radio) as c:
        assert c.is_connected
        assert c.name == "SB-" + BANDS[0]


# ---------------------------------------------------------------- GATT


async def test_connect_discovers_services_and_exchanges_mtu(sim: Sim) -> None:
    band = BANDS[1]
    async with client(sim, band) as c:
        uuids = {s.uuid for s in c.services}
        assert {gatt.SERVICE, gatt.BATTERY_SERVICE, gatt.DEVICE_INFO_SERVICE} <= uuids
        control = c.services.get_characteristic(gatt.CONTROL)
        assert control is not None
        assert set(control.properties) == {"write", "write-without-response", "notify"}
        status = c.services.get_characteristic(gatt.STATUS)
        assert status is not None and set(status.properties) == {"read", "notify"}
        # host asks 517, the band offers 247: both ends agree on 247
        assert c.mtu_size == 247
        assert control.max_write_without_response_size == 244
        assert sim.state(band)["mtu"] == 247
        assert sim.state(band)["connected"] is True
    async with client(sim, band, mtu=23) as c:
        assert c.mtu_size == 23
        assert sim.state(band)["mtu"] == 23


async def test_notifications_arrive_in_order(sim: Sim) -> None:
    band = BANDS[2]
    got: list[bytes] = []
    async with client(sim, band) as c:
        await c.start_notify(gatt.SIGNAL, lambda _ch, data: got.append(bytes(data)))
        await wait_for(lambda: sim.state(band)["subscribed"]["signal"], "subscription")
        answer = await sim.actl(cmd="notify", band=band, char="signal", count=2000, size=244)
        assert answer["sent"] == 2000
        await wait_for(lambda: len(got) >= 2000, "2000 notifications")
        assert [struct.unpack_from("<I", g)[0] for g in got] == list(range(2000))
        assert all(len(g) == 244 for g in got)
        await c.stop_notify(gatt.SIGNAL)
        await wait_for(lambda: not sim.state(band)["subscribed"]["signal"], "unsubscribe")
        # not subscribed: the band's notify() reports False, nothing is sent
        assert sim.ctl(cmd="notify", band=band, char="signal", count=1, size=8)["sent"] == 0


async def test_notify_is_false_when_not_subscribed_or_not_connected(sim: Sim) -> None:
    band = BANDS[2]
    assert sim.ctl(cmd="notify", band=band, char="events", count=1, size=8)["sent"] == 0
    async with client(sim, band):
        assert sim.ctl(cmd="notify", band=band, char="events", count=1, size=8)["sent"] == 0


async def test_writes_with_and_without_response_in_order(sim: Sim) -> None:
    band = BANDS[3]
    echoed: list[bytes] = []
    before = len(sim.state(band)["writes"])
    async with client(sim, band) as c:
        await c.start_notify(gatt.CONTROL, lambda _ch, data: echoed.append(bytes(data)))
        sent = []
        for i in range(60):
            data = bytes([i]) * (1 + i % 20)
            sent.append(data)
            await c.write_gatt_char(gatt.CONTROL, data, response=(i % 3 == 0))
        await wait_for(lambda: len(echoed) >= 60, "60 echoes")
        assert echoed == sent
        assert [bytes.fromhex(w) for w in sim.state(band)["writes"][before:]] == sent
        # a write without response must fit one ATT packet
        with pytest.raises(BleakError):
            await c.write_gatt_char(gatt.CONTROL, bytes(c.mtu_size - 2), response=False)


async def test_reads(sim: Sim) -> None:
    band = BANDS[3]
    assert sim.ctl(cmd="set_value", band=band, char="status", hex="0102ff")["ok"]
    async with client(sim, band) as c:
        assert await c.read_gatt_char(gatt.STATUS) == bytearray(b"\x01\x02\xff")
        assert await c.read_gatt_char(gatt.BATTERY_LEVEL) == bytearray([87])
        assert await c.read_gatt_char(gatt.MANUFACTURER_NAME) == bytearray(b"spasm-band project")
        assert await c.read_gatt_char(gatt.MODEL_NUMBER) == bytearray(b"virtual")
        assert await c.read_gatt_char(gatt.FIRMWARE_REVISION) == bytearray(b"0.1.0")
        sim.ctl(cmd="set_value", band=band, char="status", hex="05")
        assert await c.read_gatt_char(gatt.STATUS) == bytearray(b"\x05")


# ---------------------------------------------------------------- bonding


async def test_bonding_secures_the_link_and_survives_reconnect(sim: Sim) -> None:
    band = BANDS[4]
    async with client(sim, band) as c:
        assert sim.state(band)["secure"] is False
        await c.pair()
        await wait_for(lambda: sim.state(band)["secure"], "secure after pairing")
    await wait_for(lambda: not sim.state(band)["connected"], "band sees disconnect")
    # the same host process reconnects: the link is encrypted with the bond, no pairing
    async with client(sim, band) as c:
        await wait_for(lambda: sim.state(band)["secure"], "secure after reconnect")
    # unpair: the host forgets the bond, so the next link is not encrypted
    async with client(sim, band) as c:
        await c.unpair()
        assert not c.is_connected
    await wait_for(lambda: not sim.state(band)["connected"], "band sees unpair disconnect")
    async with client(sim, band) as c:
        assert sim.state(band)["secure"] is False
    # pair=True on connect pairs before discovery
    band2 = BANDS[5]
    async with client(sim, band2, pair=True) as c:
        assert c.is_connected
        assert sim.state(band2)["secure"] is True


async def test_bond_lost_on_the_band_is_forgotten_and_paired_again(sim: Sim) -> None:
    band = BANDS[5]
    async with client(sim, band, pair=True):
        assert sim.state(band)["secure"] is True
    await wait_for(lambda: not sim.state(band)["connected"], "band sees disconnect")
    assert sim.ctl(cmd="forget_bonds", band=band)["ok"]
    # the host's stored key is refused: it forgets it and pairs afresh
    async with client(sim, band, pair=True) as c:
        assert c.is_connected
        assert sim.state(band)["secure"] is True
    # without pair=True it would simply connect unencrypted
    assert sim.ctl(cmd="forget_bonds", band=band)["ok"]
    async with client(sim, band) as c:
        assert c.is_connected
        assert sim.state(band)["secure"] is False


async def test_many_bands_at_once_while_scanning(sim: Sim) -> None:
    bands = [BANDS[0], BANDS[1], BANDS[3]]
    got: dict[str, list[int]] = {b: [] for b in bands}
    async with BleakScanner(backend=VirtualBleakScanner, service_uuids=[gatt.SERVICE]):
        clients = [client(sim, b) for b in bands]
        await asyncio.gather(*(c.connect() for c in clients))
        try:
            for b, c in zip(bands, clients, strict=True):

                def on(_ch: Any, d: bytearray, into: list[int] = got[b]) -> None:
                    into.append(struct.unpack_from("<I", d)[0])

                await c.start_notify(gatt.EVENTS, on)
            await asyncio.gather(
                *(sim.actl(cmd="notify", band=b, char="events", count=300, size=40) for b in bands)
            )
            await wait_for(lambda: all(len(v) >= 300 for v in got.values()), "300 per band")
            assert all(v == list(range(300)) for v in got.values())
        finally:
            await asyncio.gather(*(c.disconnect() for c in clients))
