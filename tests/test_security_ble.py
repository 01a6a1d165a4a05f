"""Control writes need an encrypted, bonded link: the firmware band on the virtual radio.

A simulator process runs the firmware app on bumble virtual controllers
(`python -m simulator.fleet run`); this process connects through bleak with
the virtual backend, as the bridge does. An unbonded client may read status
and events, but every command it writes is answered with ERROR E_AUTH and
changes nothing on the band (config, time sync, acks, streaming, boot). The
same client after pairing (LE Secure Connections, bonding) is obeyed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from bleak import BleakClient

from protocol import codec, gatt
from simulator.radio.client import VirtualBleakClient
from simulator.radio.host_stack import close_stacks
from tests.test_fleet import FleetProc, Frames, radio_fleet, send, until


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetProc]:
    flash = str(tmp_path_factory.mktemp("flash"))
    args = ["--bands", "1", "--scenario", "myoclonic", "--speed", "5", "--seed", "23"]
    with radio_fleet(args, flash) as f:
        yield f


@pytest.fixture(autouse=True)
async def _fresh_stack() -> Any:
    yield
    await close_stacks()  # this process forgets its bonds: a new "adapter" per test


async def _status(c: BleakClient) -> dict[str, Any]:
    st = codec.decode(bytes(await c.read_gatt_char(gatt.STATUS)))
    assert st[0] == codec.STATUS
    return dict(st[3])


async def _ask(c: BleakClient, got: Frames, ftype: int, seq: int, fields: Any) -> tuple[Any, ...]:
    """Send one command; wait for the reply (ERROR or CONFIG_VALUE) that names it."""
    n = len(got.of(codec.ERROR)) + len(got.of(codec.CONFIG_VALUE))
    await send(c, ftype, seq, fields)
    await until(
        lambda: len(got.of(codec.ERROR)) + len(got.of(codec.CONFIG_VALUE)) > n, f"reply to {seq}"
    )
    replies = [f for _c, f in got.frames if f[0] in (codec.ERROR, codec.CONFIG_VALUE)]
    return tuple(replies[n])


async def test_unbonded_client_is_refused_and_bonded_client_accepted(fleet: FleetProc) -> None:
    band = next(iter(fleet.info["bands"]))
    address = fleet.info["bands"][band]
    now = int(time.time() * 1000)
    commands: list[tuple[int, Any]] = [
        (codec.CONFIG_SET, {"key": "status_s", "value": 30}),
        (codec.CONFIG_GET, {"key": "status_s"}),
        (codec.TIME_SYNC, {"utc_ms": now}),
        (codec.STREAM, {"on": 1, "rate_hz": 10}),
        (codec.REPLAY, {"from_seq": 0}),
        (codec.ACK, {"upto": 0}),
        (codec.REBOOT, {}),
    ]

    # 1. no pairing: readable, but every command is refused with E_AUTH
    got = Frames()
    async with BleakClient(address, backend=VirtualBleakClient, timeout=10) as c:
        assert fleet.ctl(cmd="stats")["bands"][band]["secure"] is False
        await c.start_notify(gatt.CONTROL, got.handler("control"))
        await c.start_notify(gatt.EVENTS, got.handler("events"))
        await c.start_notify(gatt.STATUS, got.handler("status"))
        before = await _status(c)
        commands.append((codec.ACK, {"upto": before["last_seq"]}))
        for i, (ftype, fields) in enumerate(commands):
            reply = await _ask(c, got, ftype, 100 + i, fields)
            assert reply[0] == codec.ERROR, reply
            assert reply[3]["code"] == codec.E_AUTH and reply[3]["ref_type"] == ftype, reply
            assert reply[3]["ref_seq"] == 100 + i
        assert got.bad == []
    assert not got.of(codec.CONFIG_VALUE) and not got.of(codec.SIGNAL)
    assert len(got.of(codec.ERROR)) == len(commands)
    flags = codec.STATE_SYNCED | codec.STATE_STREAMING | codec.STATE_BONDED
    assert all(f[3]["state"] & flags == 0 for f in got.of(codec.STATUS)), got.of(codec.STATUS)

    # 2. the same host after pairing (LESC, bonded): obeyed
    await until(lambda: not fleet.ctl(cmd="stats")["bands"][band]["connected"], "unlinked")
    got = Frames()
    async with BleakClient(address, backend=VirtualBleakClient, pair=True, timeout=10) as c:
        await until(lambda: fleet.ctl(cmd="stats")["bands"][band]["secure"], "secure link")
        await c.start_notify(gatt.CONTROL, got.handler("control"))
        await c.start_notify(gatt.STATUS, got.handler("status"))
        # the STATUS sent at connect: nothing the unbonded client asked for happened
        await until(lambda: got.of(codec.STATUS), "the STATUS sent at connect")
        after = got.of(codec.STATUS)[0][3]
        assert after["boot"] == before["boot"]  # no reboot
        assert after["acked_seq"] == before["acked_seq"]  # no ack
        assert after["state"] & (codec.STATE_SYNCED | codec.STATE_STREAMING) == 0
        # the refused CONFIG_SET above did not reach the config: still the default
        reply = await _ask(c, got, codec.CONFIG_GET, 1, {"key": "status_s"})
        assert reply[0] == codec.CONFIG_VALUE and reply[3]["value"] == 60, reply
        reply = await _ask(c, got, codec.CONFIG_SET, 2, {"key": "status_s", "value": 30})
        assert reply[0] == codec.CONFIG_VALUE and reply[3]["value"] == 30, reply
        await send(c, codec.TIME_SYNC, 3, {"utc_ms": now})
        await until(
            lambda: any(f[3]["state"] & codec.STATE_SYNCED for f in got.of(codec.STATUS)),
            "a STATUS with the time synced",
        )
        assert not got.of(codec.ERROR), got.of(codec.ERROR)
