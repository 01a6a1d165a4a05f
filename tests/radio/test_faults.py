"""The virtual radio through bleak's public API: lost links, faults and bad input.

Disconnects seen on both sides, the simulator process dying, the air's injected
faults (drop, refuse, delay, out of range), connects abandoned half-way, and
garbage given to the fault commands, the radio address and the simulator's CLI.
Bands live in a simulator process started once for the module (see
tests/radio/sim.py). Setting up and using a link is in tests/radio/test_link.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import hci

from protocol import gatt
from simulator.radio.client import VirtualBleakClient
from simulator.radio.host_stack import RadioAddressError, close_stacks, get_stack, parse_radio
from simulator.radio.scanner import VirtualBleakScanner
from tests.radio.sim import (
    BANDS,
    ROOT,
    Sim,
    client,
    start_sim,
    wait_for,
)

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
