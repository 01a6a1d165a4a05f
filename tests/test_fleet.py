"""Virtual bands running the firmware app, reached from this process through bleak.

``python -m simulator.fleet run`` (the same code as ``spasm-sim run``) runs in a
subprocess; the test finds its bands by service UUID, pairs, and reads event
frames that decode with protocol.codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner

from protocol import codec, gatt, segmentation
from simulator.fleet import band_ids
from simulator.fleet_signals import ScenarioSignals
from simulator.radio.client import VirtualBleakClient
from simulator.radio.control import request
from simulator.radio.host_stack import close_stacks
from simulator.radio.scanner import VirtualBleakScanner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fleet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "simulator.fleet", "run", *args]


class FleetProc:
    def __init__(self, args: list[str], flash: str) -> None:
        self.proc = subprocess.Popen(
            fleet_cmd(
                *args,
                "--flash",
                flash,
                "--stats-every",
                "0",
                "--log-level",
                "WARNING",
                "--stop-on-stdin-eof",
            ),
            cwd=ROOT,
            stdin=subprocess.PIPE,  # if this test process dies, the fleet stops too
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("fleet did not start")
        self.info = json.loads(line)

    def ctl(self, **cmd: Any) -> dict[str, Any]:
        return request(self.info["control"], cmd)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return -9


@contextlib.contextmanager
def radio_fleet(args: list[str], flash: str) -> Iterator[FleetProc]:
    """A fleet process whose virtual radio this process's bleak backend reaches."""
    f = FleetProc(args, flash)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SPASM_RADIO", f.info["radio"])
            yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetProc]:
    flash = str(tmp_path_factory.mktemp("flash"))
    # accelerated: jerks start a few band-seconds in
    args = ["--bands", "2", "--scenario", "myoclonic", "--speed", "10", "--seed", "7"]
    with radio_fleet(args, flash) as f:
        yield f


@pytest.fixture(autouse=True)
async def _fresh_stack() -> Any:
    yield
    await close_stacks()


class Frames:
    """Decoded frames per characteristic, joined from notifications."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, tuple[Any, ...]]] = []
        self.bad: list[str] = []
        self._r: dict[str, segmentation.Reassembler] = {}

    def handler(self, char: str) -> Any:
        r = self._r.setdefault(char, segmentation.Reassembler())

        def on(_sender: Any, data: bytearray) -> None:
            try:
                frame = r.feed(bytes(data))
                if frame is not None:
                    self.frames.append((char, codec.decode(bytes(frame))))
            except codec.FrameError as e:
                self.bad.append(repr(e))

        return on

    def of(self, ftype: int) -> list[tuple[Any, ...]]:
        return [f for _c, f in self.frames if f[0] == ftype]


async def send(c: BleakClient, ftype: int, seq: int, fields: dict[str, Any]) -> None:
    for seg in segmentation.segments(codec.encode(ftype, seq, fields), c.mtu_size):
        await c.write_gatt_char(gatt.CONTROL, seg, response=True)


async def until(pred: Any, what: str, tries: int = 1500) -> None:
    for _ in range(tries):  # bounded: 1500 x 20 ms
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


async def test_firmware_band_is_found_and_notifies_event_frames(fleet: FleetProc) -> None:
    found = await BleakScanner.discover(
        1.0, return_adv=True, backend=VirtualBleakScanner, service_uuids=[gatt.SERVICE]
    )
    names = {adv.local_name for _d, adv in found.values()}
    ids = list(fleet.info["bands"])
    assert ids == band_ids(2, 7)
    assert {"SB-" + i for i in ids} <= names
    band = ids[0]
    # let the band log a few events first (bounded wait on the band's own counter)
    await until(lambda: fleet.ctl(cmd="stats")["bands"][band]["events"] >= 2, "logged events")
    got = Frames()
    async with BleakClient(
        fleet.info["bands"][band], backend=VirtualBleakClient, pair=True, timeout=10
    ) as c:
        assert c.mtu_size == 247
        for uuid, char in ((gatt.EVENTS, "events"), (gatt.CONTROL, "control")):
            await c.start_notify(uuid, got.handler(char))
        status = codec.decode(bytes(await c.read_gatt_char(gatt.STATUS)))
        assert status[0] == codec.STATUS
        assert await c.read_gatt_char(gatt.MODEL_NUMBER) == bytearray(b"SB-1")
        await send(c, codec.TIME_SYNC, 1, {"utc_ms": int(time.time() * 1000)})
        await send(c, codec.REPLAY, 2, {"from_seq": 1})
        await until(lambda: len(got.of(codec.EVENT)) >= 2, "two event frames")
        assert got.bad == []
        assert not got.of(codec.ERROR), got.of(codec.ERROR)
        events = got.of(codec.EVENT)
        for _t, flags, _seq, fields in events:
            assert fields["kind"] in (1, 2, 3)
            assert 1 <= fields["severity"] <= 3
            if flags & codec.FLAG_REPLAY:  # sent after the sync: mapped to UTC
                assert fields["utc_ms"] > 1_600_000_000_000
        # the replay sends the log from seq 1, in order, flagged; a live record
        # may come before it (and again in it): delivery is at-least-once
        replayed = [
            f[2] for _c, f in got.frames if f[0] in codec.LOGGED and f[1] & codec.FLAG_REPLAY
        ]
        assert replayed == list(range(1, len(replayed) + 1))
        assert any(f[1] & codec.FLAG_REPLAY for f in events)
    # after the link ends the band advertises again (the app and the radio both ask)
    await until(lambda: not fleet.ctl(cmd="stats")["bands"][band]["connected"], "band unlinked")
    again = await BleakScanner.find_device_by_address(
        fleet.info["bands"][band], timeout=10, backend=VirtualBleakScanner
    )
    assert again is not None


async def test_unpaired_host_gets_e_auth_for_commands(fleet: FleetProc) -> None:
    band = list(fleet.info["bands"])[1]
    got = Frames()
    async with BleakClient(fleet.info["bands"][band], backend=VirtualBleakClient) as c:
        await c.start_notify(gatt.CONTROL, got.handler("control"))
        await send(c, codec.ACK, 1, {"upto": 1})
        await until(lambda: got.of(codec.ERROR), "an ERROR reply")
        assert got.of(codec.ERROR)[0][3]["code"] == codec.E_AUTH


def test_signals_are_continuous_across_chunks() -> None:
    from array import array

    s = ScenarioSignals("myoclonic", 3, chunk_minutes=0.01)  # 600 EMG samples per chunk
    whole = array("i", bytes(4 * 1500))
    s.emg.fill(whole, 0, 1500)
    parts = array("i", bytes(4 * 1500))
    for start in range(0, 1500, 70):
        n = min(70, 1500 - start)
        buf = array("i", bytes(4 * 70))
        s.emg.fill(buf, start, n)
        parts[start : start + n] = buf[:n]
    assert whole == parts
    acc = array("h", bytes(2 * 3 * 20))
    s.acc.fill(acc, 0, 20)
    # gravity: about 1 g in total on the three axes
    x, y, z = acc[0], acc[1], acc[2]
    assert 800 < (x * x + y * y + z * z) ** 0.5 < 1200


@pytest.mark.parametrize(
    "args, word",
    [
        (["--bands", "0", "--scenario", "rest"], "--bands"),
        (["--bands", "x", "--scenario", "rest"], "--bands"),
        (["--scenario", "nope"], "--scenario"),
        (["--scenario", "rest", "--speed", "0"], "--speed"),
        (["--scenario", "rest", "--speed", "fast"], "--speed"),
        (["--scenario", "rest", "--ids", "zz,12"], "--ids"),
        (["--scenario", "rest", "--ids", "ab,ab"], "--ids"),
        (["--scenario", "rest", "--radio-port", "70000"], "--radio-port"),
        (["--scenario", "rest", "--duration", "-1"], "--duration"),
        (["--scenario", "rest", "--seed", "-3"], "argument --seed: -3 is outside 0..4294967295"),
        (["--bands", "1"], "--scenario"),
    ],
)
def test_run_rejects_bad_arguments(args: list[str], word: str) -> None:
    r = subprocess.run(fleet_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert word in r.stderr


def test_run_rejects_a_bad_fault_schedule(tmp_path: Any) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"at": 1, "cmd": "drop",\n "band": }]')
    not_list = tmp_path / "obj.json"
    not_list.write_text('{"cmd": "drop"}')
    no_at = tmp_path / "noat.json"
    no_at.write_text('[{"cmd": "drop", "band": "*"}]')
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    # each command is checked at load as the run would take it: name, fields, band
    bad_cmds = [
        [{"at": 1, "cmd": "bogus"}],
        [{"at": 1, "cmd": "drop", "band": "*"}, {"at": 2, "cmd": "delay", "band": "*", "ms": "x"}],
        [{"at": 1, "cmd": "out_of_range", "band": "ffffff", "seconds": 1}],
        [{"at": 1, "cmd": "power_cut", "band": "abc123", "off_s": -1}],
    ]
    for i, cmds in enumerate(bad_cmds):
        (tmp_path / f"cmd{i}.json").write_text(json.dumps(cmds))
    for path, word in (
        (bad_json, "bad.json:2:"),
        (not_list, "JSON list"),
        (no_at, "item 0: at: missing"),
        (tmp_path / "missing.json", "missing.json"),
        (binary, "bin.csv: not JSON text (byte 0 is not UTF-8)"),
        (tmp_path / "cmd0.json", "cmd0.json: item 0: cmd: unknown command 'bogus'"),
        (tmp_path / "cmd1.json", "cmd1.json: item 1: ms: not a number"),
        (tmp_path / "cmd2.json", "cmd2.json: item 0: band: unknown band id 'ffffff'"),
        (tmp_path / "cmd3.json", "cmd3.json: item 0: off_s: expected seconds 0..3600"),
    ):
        r = subprocess.run(
            fleet_cmd("--ids", "abc123", "--scenario", "rest", "--faults", str(path)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"spasm-sim run: --faults {path}:"), r.stderr
        assert word in r.stderr and r.stderr.count("\n") == 1, r.stderr  # no traceback


def test_run_help_says_faults_takes_a_file() -> None:
    r = subprocess.run(fleet_cmd("--help"), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "--faults FILE" in r.stdout and "fault schedule file" in r.stdout


def test_run_with_duration_and_fault_schedule_stops_by_itself(tmp_path: Any) -> None:
    schedule = tmp_path / "faults.json"
    schedule.write_text(json.dumps([{"at": 0.2, "cmd": "out_of_range", "band": "*", "seconds": 1}]))
    r = subprocess.run(
        fleet_cmd(
            "--ids",
            "abc123",
            "--scenario",
            "rest",
            "--duration",
            "1.5",
            "--faults",
            str(schedule),
            "--stats-every",
            "0.5",
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    ready = json.loads(r.stdout.splitlines()[0])
    assert list(ready["bands"]) == ["abc123"]
    assert "stats t=" in r.stderr
    assert '"cmd": "out_of_range"' in r.stderr and "'ok': True" in r.stderr


async def test_air_hands_advertisements_to_listeners_and_a_connect_to_its_band_only() -> None:
    """The air's fan-out is O(listeners), not O(controllers): bands never scan."""
    from bumble import hci, ll
    from bumble.controller import Controller

    from simulator.radio.air import Air

    air = Air()
    addresses = [
        hci.Address(f"C0:00:00:00:00:0{i}", hci.Address.RANDOM_DEVICE_ADDRESS) for i in range(4)
    ]
    bands = [air.add_band(f"band{i}", a) for i, a in enumerate(addresses)]
    for c, a in zip(bands, addresses, strict=True):
        c.random_address = a
    host = Controller("host", link=air)
    host.random_address = hci.Address("C1:00:00:00:00:01", hci.Address.RANDOM_DEVICE_ADDRESS)
    heard: list[tuple[str, str]] = []
    for c in [*bands, host]:
        c.on_ll_advertising_pdu = (  # type: ignore[method-assign]
            lambda pdu, name=c.name: heard.append((name, type(pdu).__name__))
        )
    air.send_advertising_pdu(bands[0], ll.AdvInd(advertiser_address=addresses[0], data=b""))
    connect = ll.ConnectInd(
        initiator_address=host.random_address,
        advertiser_address=addresses[2],
        interval=10,
        latency=0,
        timeout=100,
    )
    air.send_advertising_pdu(host, connect)
    await asyncio.sleep(0)
    assert heard == [("host", "AdvInd"), ("band2", "ConnectInd")]
    # destinations: looked up once, then from the cache; a removed controller is gone
    assert air.find_le_controller(addresses[3]) is bands[3]
    assert air.find_le_controller(addresses[3]) is bands[3]
    assert air.find_le_controller(host.random_address) is host
    air.remove_controller(host)
    assert air.find_le_controller(host.random_address) is None
    heard.clear()
    air.send_advertising_pdu(bands[1], ll.AdvInd(advertiser_address=addresses[1], data=b""))
    await asyncio.sleep(0)
    assert heard == []
