"""The virtual radio through bleak's public API, against bands in another process.

A simulator process (``python -m simulator.radio``: the air plus echo bands) is
started once for the module; each test uses its own band so that links, bonds
and faults of one test do not leak into another.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import hci

from protocol import gatt
from simulator.radio.client import VirtualBleakClient
from simulator.radio.control import request
from simulator.radio.host_stack import RadioAddressError, close_stacks, get_stack, parse_radio
from simulator.radio.scanner import VirtualBleakScanner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BANDS = [f"c0ffe{i:x}" for i in range(12)]


class Sim:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.radio: str = info["radio"]
        self.control: int = info["control"]
        self.bands: dict[str, str] = info["bands"]

    def ctl(self, **cmd: Any) -> dict[str, Any]:
        return request(self.control, cmd)

    async def actl(self, **cmd: Any) -> dict[str, Any]:
        """ctl without blocking the test's event loop (for long commands)."""
        return await asyncio.to_thread(self.ctl, **cmd)

    def state(self, band: str) -> dict[str, Any]:
        return self.ctl(cmd="state", band=band)


def start_sim(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.radio", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("simulator did not start")
    return proc, json.loads(line)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    proc, info = start_sim(["--ids", ",".join(BANDS)])
    # the way a host process is pointed at the air (the bridge does the same)
    old = os.environ.get("SPASM_RADIO")
    os.environ["SPASM_RADIO"] = info["radio"]
    try:
        yield Sim(proc, info)
    finally:
        if old is None:
            os.environ.pop("SPASM_RADIO", None)
        else:
            os.environ["SPASM_RADIO"] = old
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
async def _fresh_stack() -> Any:
    yield
    await close_stacks()


async def wait_for(pred: Any, what: str, tries: int = 500) -> None:
    """Poll ``pred`` (bounded: 500 x 10 ms); fail naming ``what``."""
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def client(sim: Sim, band: str, **kw: Any) -> BleakClient:
    return BleakClient(sim.bands[band], backend=VirtualBleakClient, **kw)


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


# ---------------------------------------------------------------- disconnects


async def test_disconnect_detected_on_both_sides(sim: Sim) -> None:
    band = BANDS[6]
    lost: list[BleakClient] = []
    c = client(sim, band, disconnected_callback=lost.append)
    await c.connect()
    n = sim.state(band)["disconnects"]
    # the band ends the link: the host's callback fires
    sim.ctl(cmd="disconnect", band=band)
    await wait_for(lambda: lost == [c], "host disconnect callback")
    assert not c.is_connected
    assert sim.state(band)["disconnects"] == n + 1
    # the host ends the link: the band sees it (no callback for a solicited disconnect)
    await c.connect()
    await c.disconnect()
    await wait_for(lambda: sim.state(band)["disconnects"] == n + 2, "band sees disconnect")
    assert lost == [c]
    # the host process goes away: the band's link times out
    await c.connect()
    await close_stacks()
    await wait_for(lambda: sim.state(band)["disconnects"] == n + 3, "band sees host vanish")
    await wait_for(lambda: not c.is_connected or lost == [c, c], "host side closed")


async def test_simulator_process_dying_disconnects_the_host(sim: Sim) -> None:
    proc, info = start_sim(["--ids", "dead01"])
    try:
        lost: list[BleakClient] = []
        c = BleakClient(
            info["bands"]["dead01"],
            backend=VirtualBleakClient,
            radio=info["radio"],
            disconnected_callback=lost.append,
        )
        await c.connect()
        proc.kill()
        await wait_for(lambda: lost == [c], "disconnect when the simulator dies")
        assert not c.is_connected
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- faults


async def test_fault_drop_link(sim: Sim) -> None:
    band = BANDS[7]
    lost: list[BleakClient] = []
    async with client(sim, band, disconnected_callback=lost.append) as c:
        assert sim.ctl(cmd="drop", band=band) == {"ok": True, "dropped": 1}
        await wait_for(lambda: lost == [c], "host sees the drop")
        await wait_for(lambda: not sim.state(band)["connected"], "band sees the drop")
        with pytest.raises(BleakError):
            await c.read_gatt_char(gatt.STATUS)
    # the band advertises again and takes a new connection
    async with client(sim, band) as c:
        assert c.is_connected


async def test_fault_refuse_connections(sim: Sim) -> None:
    band = BANDS[7]
    assert sim.ctl(cmd="refuse", band=band, on=True)["ok"]
    try:
        with pytest.raises(BleakError):
            await client(sim, band, timeout=5).connect()
        assert sim.state(band)["connected"] is False
    finally:
        sim.ctl(cmd="refuse", band=band, on=False)
    async with client(sim, band) as c:
        assert c.is_connected


async def test_fault_delay(sim: Sim) -> None:
    band = BANDS[8]
    loop = asyncio.get_running_loop()
    async with client(sim, band) as c:
        t0 = loop.time()
        await c.read_gatt_char(gatt.STATUS)
        fast = loop.time() - t0
        assert sim.ctl(cmd="delay", band=band, ms=300)["ok"]
        try:
            t0 = loop.time()
            await c.read_gatt_char(gatt.BATTERY_LEVEL)
            slow = loop.time() - t0
            got: list[bytes] = []
            await c.start_notify(gatt.CONTROL, lambda _ch, d: got.append(bytes(d)))
            for i in range(10):
                await c.write_gatt_char(gatt.CONTROL, bytes([i]), response=False)
            await wait_for(lambda: len(got) == 10, "delayed echoes")
            assert got == [bytes([i]) for i in range(10)]
        finally:
            sim.ctl(cmd="delay", band=band, ms=0)
    # request and response each cross the air once: at least twice the delay
    assert slow >= 0.6 > fast


async def test_fault_out_of_range(sim: Sim) -> None:
    band = BANDS[8]
    lost: list[BleakClient] = []
    async with client(sim, band, disconnected_callback=lost.append) as c:
        assert sim.ctl(cmd="out_of_range", band=band, seconds=1.5)["ok"]
        await wait_for(lambda: lost == [c], "link lost out of range")
        # unreachable: neither heard in a scan nor connectable
        found = await BleakScanner.discover(
            0.3, backend=VirtualBleakScanner, service_uuids=[gatt.SERVICE]
        )
        assert sim.bands[band] not in {d.address for d in found}
        with pytest.raises(BleakError):
            await client(sim, band, timeout=0.3).connect()
    # back in range: found again (bounded wait, well past the 1.5 s)
    device = await BleakScanner.find_device_by_address(
        sim.bands[band], timeout=10, backend=VirtualBleakScanner
    )
    assert device is not None
    async with client(sim, band) as c:
        assert c.is_connected


async def test_connect_to_a_bonded_band_out_of_range_ends_within_its_timeout(sim: Sim) -> None:
    """Once bonded, the host knows the band's IRK; bumble then scanned for the band with
    no time limit before its connect timeout even started, so a connect to an absent
    bonded band never ended by itself (the chaos run's stuck links)."""
    band = BANDS[9]
    async with client(sim, band, pair=True):
        assert sim.state(band)["secure"] is True
    await wait_for(lambda: not sim.state(band)["connected"], "band sees disconnect")
    assert sim.ctl(cmd="out_of_range", band=band, seconds=3.0)["ok"]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BleakDeviceNotFoundError):
        await asyncio.wait_for(client(sim, band, timeout=0.5).connect(), 2.5)
    assert loop.time() - t0 < 2.0
    await asyncio.sleep(max(0.0, 3.2 - (loop.time() - t0)))  # back in range
    async with client(sim, band, timeout=5) as c:
        assert c.is_connected
        await wait_for(lambda: sim.state(band)["secure"], "re-encrypted with the bond")


async def test_a_connect_given_up_while_connecting_leaves_the_band_free(sim: Sim) -> None:
    """A caller's timeout around connect() that fires while the controller is still
    connecting must cancel that in the controller: else the connection completes when
    the band is back, with nobody on the host side to use or end it, and the band, linked
    to nobody, stops advertising for good."""
    band = BANDS[10]
    assert sim.ctl(cmd="out_of_range", band=band, seconds=1.0)["ok"]
    task = asyncio.ensure_future(client(sim, band, timeout=10).connect())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.2)  # the band is back in range and advertising
    assert sim.state(band)["connected"] is False
    async with client(sim, band, timeout=5) as c:
        assert c.is_connected


async def test_a_late_connection_nobody_waits_for_is_hung_up(sim: Sim) -> None:
    """The stack's last line of defence: a connection that completes after bumble's own
    connect() was cancelled (no LE Create Connection Cancel sent) is taken and ended, so
    the band advertises again, instead of failing an assertion inside bumble and leaving
    the band linked to nobody."""
    band = BANDS[11]
    stack = await get_stack()
    assert sim.ctl(cmd="out_of_range", band=band, seconds=0.8)["ok"]
    address = hci.Address(sim.bands[band], hci.Address.RANDOM_DEVICE_ADDRESS)
    raw = asyncio.ensure_future(stack.device.connect(address, timeout=10))
    await asyncio.sleep(0.3)
    raw.cancel()  # bumble's connect alone: the controller keeps connecting
    with pytest.raises(asyncio.CancelledError):
        await raw
    await wait_for(lambda: sim.state(band)["connects"] >= 1, "the late connection")
    await wait_for(lambda: not sim.state(band)["connected"], "the late connection hung up")
    async with client(sim, band, timeout=5) as c:
        assert c.is_connected


# ---------------------------------------------------------------- bad input


def test_fault_commands_reject_garbage(sim: Sim) -> None:
    with socket.create_connection(("127.0.0.1", sim.control), timeout=10) as s:
        f = s.makefile("rb")
        for line, word in [
            (b"not json\n", "not JSON"),
            (b"[1, 2]\n", "not a JSON object"),
            (b'{"cmd": "explode"}\n', "cmd: unknown"),
            (b'{"cmd": "drop"}\n', "band: missing"),
            (b'{"cmd": "drop", "band": "nope"}\n', "band: unknown"),
            (b'{"cmd": "delay", "band": "c0ffe0", "ms": "x"}\n', "ms: not a number"),
            (b'{"cmd": "delay", "band": "c0ffe0", "ms": -5}\n', "ms: out of range"),
            (b'{"cmd": "refuse", "band": "c0ffe0", "on": 3}\n', "on: not true/false"),
            (b'{"cmd": "out_of_range", "band": "c0ffe0"}\n', "seconds: missing"),
            (b"\xff\xfe\n", "not JSON"),
        ]:
            s.sendall(line)
            answer = json.loads(f.readline())
            assert answer["ok"] is False
            assert word in answer["error"], (line, answer)
    assert sim.ctl(cmd="bands")["bands"] == sim.bands


def test_radio_address_garbage() -> None:
    assert parse_radio("tcp:127.0.0.1:1234") == ("127.0.0.1", 1234)
    for bad in ["", "udp:1.2.3.4:5", "tcp:127.0.0.1", "tcp:127.0.0.1:x", "tcp::5", "tcp:h:0"]:
        with pytest.raises(RadioAddressError):
            parse_radio(bad)
    old = os.environ.pop("SPASM_RADIO", None)
    try:
        with pytest.raises(RadioAddressError, match="SPASM_RADIO"):
            parse_radio(None)
        os.environ["SPASM_RADIO"] = "tcp:127.0.0.1:999"
        assert parse_radio(None) == ("127.0.0.1", 999)
    finally:
        os.environ.pop("SPASM_RADIO", None)
        if old is not None:
            os.environ["SPASM_RADIO"] = old


async def test_unreachable_radio_is_a_clear_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(ConnectionError, match="unreachable"):
        await BleakScanner(backend=VirtualBleakScanner, radio=f"tcp:127.0.0.1:{port}").start()


def test_testband_cli_rejects_bad_arguments() -> None:
    for args in (["--bands", "0"], ["--bands", "x"], ["--nope"]):
        r = subprocess.run(
            [sys.executable, "-m", "simulator.radio", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2
        assert "error" in r.stderr
