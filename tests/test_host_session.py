"""Band sessions through bleak's public API, on the simulator's virtual radio (bumble).

The bands are real parts: the unmodified firmware in a ``python -m simulator.fleet
run`` process (real time, at rest; its marker button, pressed through the control
port, logs records at known wall times). Misbehaving peers, which no firmware
would be, are test bands of ``python -m simulator.radio`` told to misbehave
(simulator/radio/testband.py: never answer, hang writes, send garbage, floods and
oversized notifications). Each test takes its own band of the module's processes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice

from host.async_spool import AsyncSpool
from host.config import BleSection
from host.records import BandError, ConfigValue, Event, Marker, Status
from host.session import BandSession, ClockMap, CommandError, backoff_delay
from host.spool import Spool, SpoolFull
from host.stats import Stats
from protocol import codec, segmentation
from simulator.radio.client import VirtualBleakClient
from tests.e2e_chain import FleetProc, SimProc, TestBandProc, until

TRUTH_MS = 50  # a stamp within this of the wall time of the button press


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetProc]:
    proc = FleetProc(tmp_path_factory.mktemp("fleet"), 9, speed=1, seed=41, scenario="rest")
    proc.launch()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def testbands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBandProc]:
    proc = TestBandProc(tmp_path_factory.mktemp("testbands"), 4)
    proc.launch()
    for band in proc.bands:  # quiet: an echo of our own commands is garbage of its own
        proc.control_sync({"cmd": "mode", "band": band, "echo": False})
    yield proc
    proc.stop()


def cfg(sim: SimProc, **kw: Any) -> BleSection:
    base: dict[str, Any] = {
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "stable_link_s": 0.0,
        "options": {"radio": sim.radio, **kw.pop("options", {})},
    }
    base.update(kw)
    return BleSection(**base)


class Rig:
    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.spool = AsyncSpool(Spool(tmp / "spool.db", **kw))
        self.stats = Stats()
        self.tasks: list[asyncio.Task[None]] = []
        self.sessions: dict[str, BandSession] = {}

    def start(self, sim: SimProc, band: str, **kw: Any) -> BandSession:
        s = BandSession(band, cfg(sim, **kw), VirtualBleakClient, self.spool, self.stats)
        s.offer(BLEDevice(sim.address(band), "SB-" + band, None))
        self.tasks.append(asyncio.create_task(s.run()))
        self.sessions[band] = s
        return s

    def logged(self, band: str) -> list[Any]:
        return [r for _, r in self.spool.spool.read("check", 100_000) if r.band == band and
                r.logged]  # fmt: skip

    def seqs(self, band: str) -> list[int]:
        return [r.seq for r in self.logged(band)]

    def statuses(self, band: str) -> list[Status]:
        return [r for _, r in self.spool.spool.read("check", 100_000)
                if isinstance(r, Status) and r.band == band]  # fmt: skip

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.spool.close()


def commands(writes: list[str]) -> list[tuple[int, int, dict[str, Any]]]:
    """The host commands a test band received, decoded with the codec."""
    joiner = segmentation.Reassembler()
    out = []
    for w in writes:
        frame = joiner.feed(bytes.fromhex(w))
        if frame is not None:
            ftype, _flags, seq, fields = codec.decode(frame)
            out.append((ftype, seq, fields))
    return out


def notifications(frame: bytes, mtu: int = 247) -> list[str]:
    return [seg.hex() for seg in segmentation.segments(frame, mtu)]


async def test_sync_replay_stamp_and_ack_after_spooling(tmp_path: Path, fleet: FleetProc) -> None:
    band = fleet.bands[0]
    pressed = await fleet.presses(band, 3)  # logged while no host was around: unsynced
    rig = Rig(tmp_path)
    s = rig.start(fleet, band)
    await until(lambda: rig.seqs(band) == [1, 2, 3], "the replayed markers spooled")
    await until(lambda: rig.stats.acked >= 1, "an ACK after spooling")
    pressed += await fleet.presses(band, 2)  # live now: the band stamps them itself
    await until(lambda: rig.seqs(band) == [1, 2, 3, 4, 5], "live markers spooled")
    marks = rig.logged(band)
    assert all(isinstance(m, Marker) for m in marks)
    # Stamped with the band's synced clock: close to when the button was pressed.
    errors = [m.utc_ms - w for m, w in zip(marks, pressed, strict=True)]
    assert all(abs(e) <= TRUTH_MS for e in errors), errors
    # The band freed what was acked: ask for a STATUS (STREAM off answers with one).
    n = len(rig.statuses(band))
    await s.command(codec.STREAM, {"on": 0, "rate_hz": 1})
    await until(lambda: len(rig.statuses(band)) > n, "a STATUS after STREAM")
    st = rig.statuses(band)[-1]
    assert (st.last_seq, st.acked_seq, st.log_used) == (5, 5, 0)
    assert st.state & codec.STATE_SYNCED
    await rig.close()


async def test_link_setup_commands_in_order_and_a_band_that_never_answers(
    tmp_path: Path, testbands: TestBandProc
) -> None:
    band = testbands.bands[0]  # takes every write, answers nothing, has no STATUS value
    rig = Rig(tmp_path)
    s = rig.start(testbands, band, command_timeout_s=0.5)
    await until(lambda: s.connected, "linked")
    with pytest.raises(CommandError, match="did not answer"):
        await s.command(codec.CONFIG_GET, {"key": "status_s"})
    state = await testbands.control({"cmd": "state", "band": band})
    cmds = commands(state["writes"])
    assert [t for t, _, _ in cmds] == [codec.TIME_SYNC, codec.REPLAY, codec.CONFIG_GET]
    assert cmds[1][2] == {"from_seq": 1}  # a band's first seq
    seqs = [q for _, q, _ in cmds]  # command seqs count up per session
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert rig.stats.dropped["bad_status_read"] == 1
    assert state["secure"]  # paired before anything was written
    await rig.close()


async def test_link_drop_mid_stream_loses_nothing_and_doubles_nothing(
    tmp_path: Path, fleet: FleetProc
) -> None:
    band = fleet.bands[1]
    await fleet.presses(band, 2)
    rig = Rig(tmp_path)
    s = rig.start(fleet, band)
    await until(lambda: rig.seqs(band) == [1, 2], "first markers")
    assert (await fleet.control({"cmd": "drop", "band": band}))["dropped"] == 1
    await until(lambda: s.links == 2 and s.connected, "relinked after the drop")
    await fleet.control({"cmd": "out_of_range", "band": band, "seconds": 1.5})
    await until(lambda: not s.connected, "link lost out of range")
    await fleet.presses(band, 2)  # logged while out of range
    await until(lambda: s.links == 3 and rig.seqs(band) == [1, 2, 3, 4], "replay after relink")
    await fleet.presses(band, 1)
    await until(lambda: rig.seqs(band) == [1, 2, 3, 4, 5], "live again")
    assert rig.stats.reconnects >= 2
    await rig.close()


async def test_replay_after_restart_starts_after_the_spool(
    tmp_path: Path, fleet: FleetProc, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "spasm.session")
    band = fleet.bands[2]
    await fleet.presses(band, 2)
    rig = Rig(tmp_path)
    rig.start(fleet, band)
    await until(lambda: rig.seqs(band) == [1, 2] and rig.stats.acked >= 1, "first acks")
    await rig.close()
    await fleet.presses(band, 2)  # logged while no bridge runs
    rig2 = Rig(tmp_path)
    rig2.start(fleet, band)
    await until(lambda: rig2.seqs(band) == [1, 2, 3, 4], "the rest after a restart")
    assert any(f"band {band}: linked" in m and "replay from 3)" in m for m in caplog.messages)
    await rig2.close()


async def test_overwritten_band_log_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A band whose log wrapped (its oldest unacked records overwritten): filled here by
    the firmware's own EventLog on the band's flash folder, then served by the fleet."""
    from spasmband.event_log import EventLog

    from simulator.virtual_board import VirtualBoard

    band = "0ff1ce"
    flash = tmp_path / "flash"
    elog = EventLog(VirtualBoard(band, str(flash / band)))
    elog.open()
    for i in range(elog.segments * elog.per_segment + 100):  # an older boot, never synced
        elog.append(codec.MARKER, 7, 1000 + i, (1,))
    first, last = elog.first_seq(), elog.last_seq()
    elog.close()
    assert first > 6
    fleet = FleetProc(tmp_path, 1, speed=1, seed=1, scenario="rest", ids=[band], flash=flash)
    await fleet.start()
    try:
        rig = Rig(tmp_path)
        await rig.spool.raise_contig(band, 5)  # a host had seqs up to 5 before
        rig.start(fleet, band)
        await until(lambda: rig.stats.acked >= 1 and rig.seqs(band)[-1:] == [last], "replayed")
        assert rig.seqs(band) == list(range(first, last + 1))
        assert any(f"no longer has seq 6..{first - 1}" in m for m in caplog.messages)
        await rig.close()
    finally:
        fleet.stop()


async def test_garbage_peer_is_counted_and_dropped_others_unaffected(
    tmp_path: Path, fleet: FleetProc, testbands: TestBandProc
) -> None:
    bad, good = testbands.bands[1], fleet.bands[3]
    await fleet.presses(good, 2)
    rig = Rig(tmp_path)
    sb, sg = rig.start(testbands, bad, max_bad_frames=3), rig.start(fleet, good)
    await until(lambda: sb.connected and sg.connected, "links")
    frame = bytearray(
        codec.encode(codec.MARKER, 1, {"boot": 1, "t_ms": 5, "utc_ms": 0, "source": 1})
    )
    frame[-1] ^= 0xFF
    garbage = [
        *notifications(bytes(frame)),  # bad CRC
        "0501",  # a middle segment out of nowhere
        "c0" + "00" * 8,  # a one-segment frame of zeros
    ]
    await testbands.control({"cmd": "send", "band": bad, "char": "events", "hex": garbage})
    await until(lambda: sum(rig.stats.disconnects.values()) >= 1, "garbage peer dropped")
    assert rig.stats.dropped["crc"] == 1 and rig.stats.dropped["segment"] == 1
    assert list(rig.stats.disconnects) == ["bad_frames:length"]
    await until(lambda: rig.seqs(good) == [1, 2] and sg.connected, "good band served")
    assert rig.logged(bad) == []
    state = await testbands.control({"cmd": "state", "band": bad})
    await until(lambda: sb.links >= 2, "garbage peer retried with backoff")
    assert state["connects"] >= 1
    await rig.close()


async def test_flood_and_oversized_notifications_drop_the_peer(
    tmp_path: Path, testbands: TestBandProc
) -> None:
    band = testbands.bands[2]
    rig = Rig(tmp_path)
    s = rig.start(
        testbands, band, max_notifications_per_s=50, max_bad_frames=2, options={"mtu": 23}
    )
    await until(lambda: s.connected, "link")
    assert s._mtu == 23  # noqa: SLF001 (no MTU exchange asked for)
    big = "c0" + "01" * 40  # longer than MTU 23 - 3: only a broken stack sends it
    await testbands.control(
        {"cmd": "send", "band": band, "char": "signal", "hex": [big, big], "oversized": True}
    )
    await until(lambda: rig.stats.disconnects["bad_frames:oversized"] == 1, "oversized kick")
    assert rig.stats.dropped["oversized"] == 2
    await until(lambda: s.connected and s.links == 2, "relink")
    status = codec.encode(codec.STATUS, 1, {
        "boot": 1, "uptime_ms": 1000, "battery_pct": 80, "battery_mv": 3900, "quality": 90,
        "faults": 0, "log_used": 0, "log_capacity": 1000, "log_overwritten": 0, "last_seq": 0,
        "acked_seq": 0, "state": 0, "fw_major": 1, "fw_minor": 0, "fw_patch": 0,
    })  # fmt: skip
    await testbands.control({"cmd": "send", "band": band, "char": "status",
                             "hex": notifications(status, 23), "repeat": 200})  # fmt: skip
    await until(lambda: rig.stats.disconnects["flood"] == 1, "flood kick")
    assert rig.stats.dropped.get("crc", 0) == 0  # well-formed frames: a flood, not garbage
    await rig.close()


async def test_full_spool_acks_nothing_and_replays_when_space_returns(
    tmp_path: Path, fleet: FleetProc
) -> None:
    """A full spool stores nothing, acks nothing, and has the band replay once it has room."""
    band = fleet.bands[4]
    await fleet.presses(band, 2)
    rig = Rig(tmp_path, max_mb=0.1, keep_hours=0)
    rig.start(fleet, band)
    await until(lambda: rig.seqs(band) == [1, 2] and rig.stats.acked >= 1, "linked and acked")
    seq = 0
    for size in (50, 1):  # fill the spool with another band's events (bounded by 0.1 MB)
        for _ in range(10_000):
            try:
                await rig.spool.add([_event("zz", seq + i) for i in range(size)])
                seq += size
            except SpoolFull:
                break
    acks = rig.stats.acked
    await fleet.presses(band, 3)
    await until(lambda: rig.stats.dropped["spool_full"] >= 3, "intake paused")
    assert rig.stats.acked == acks and rig.seqs(band) == [1, 2]  # nothing stored or acked
    await rig.spool.register("s")
    await rig.spool.commit("s", 10**9)
    await rig.spool.prune(["s"])  # the sinks caught up: space again
    await fleet.presses(band, 1)
    await until(lambda: sorted(rig.seqs(band)) == [3, 4, 5, 6], "replayed after space returned")
    await until(lambda: rig.stats.acked > acks, "acked again")
    assert await rig.spool.contig(band) == 6
    await rig.close()


async def test_a_stalled_band_never_stalls_the_others(
    tmp_path: Path, fleet: FleetProc, testbands: TestBandProc
) -> None:
    slow, fast = testbands.bands[3], fleet.bands[5]
    # the slow band holds the answer to the first write (TIME_SYNC) for 3 s
    await testbands.control({"cmd": "mode", "band": slow, "hang_writes_ms": 3000})
    await fleet.presses(fast, 3)
    rig = Rig(tmp_path)
    ss = rig.start(testbands, slow)
    await until(lambda: (testbands.control_sync({"cmd": "state", "band": slow})["writes"]
                         != []), "the slow band got its first write")  # fmt: skip
    sf = rig.start(fleet, fast)
    await until(lambda: sf.connected and rig.seqs(fast) == [1, 2, 3], "fast band served")
    await until(lambda: rig.stats.acked >= 1, "fast band acked")
    assert not ss.connected  # still stuck in its link set-up
    await until(lambda: ss.connected, "slow band linked at last")
    await rig.close()


async def test_config_get_command_round_trip(tmp_path: Path, fleet: FleetProc) -> None:
    from spasmband.config import BAND_PARAMS

    band = fleet.bands[6]
    rig = Rig(tmp_path)
    s = rig.start(fleet, band)
    await until(lambda: s.connected, "link")
    reply = await s.command(codec.CONFIG_GET, {"key": "status_s"})
    assert isinstance(reply, ConfigValue) and reply.key == "status_s"
    assert reply.value == BAND_PARAMS["status_s"][0]  # the firmware's default
    refused = await s.command(codec.CONFIG_GET, {"key": "no_such_key"})
    assert isinstance(refused, BandError) and "no_such_key" in refused.text
    await rig.close()


async def test_a_record_logged_during_link_set_up_is_stamped_near_its_truth(
    tmp_path: Path, fleet: FleetProc
) -> None:
    """A record the band logs after the link is up but before it has taken TIME_SYNC goes
    out live with utc_ms 0, and the bridge stamps it through the link's clock map. The
    readable STATUS value can be up to a second old, so the session holds such records
    until the STATUS that answers TIME_SYNC (a fresh observation) and stamps them then.
    The air delays this band's PDUs by 30 ms to hold the link set-up open long enough to
    press the button in it; the bound allows for that delay."""
    band = fleet.bands[7]
    await fleet.control({"cmd": "delay", "band": band, "ms": 30})
    rig = Rig(tmp_path)
    s = rig.start(fleet, band)
    for _ in range(500):  # bounded: until the link exists (its set-up takes a while)
        if (await fleet.stats())[band]["connected"]:
            break
        await asyncio.sleep(0.01)
    pressed = await fleet.press(band)
    await until(lambda: s.connected and rig.seqs(band) == [1], "the marker spooled")
    (mark,) = rig.logged(band)
    await fleet.control({"cmd": "delay", "band": band, "ms": 0})
    assert abs(mark.utc_ms - pressed) <= 100, f"stamped {mark.utc_ms - pressed} ms off"
    await rig.close()


async def test_a_bonded_band_back_from_a_long_absence_links_again(
    tmp_path: Path, fleet: FleetProc, caplog: pytest.LogCaptureFixture
) -> None:
    """The chaos run's stuck link: a bonded band away across several connect attempts.
    Every attempt must end by the client's own timeout: one cut off by the session's
    guard (a TimeoutError) was left connecting in the controller, and the link that
    completed later had no owner, so the band stayed linked to nobody, stopped
    advertising, and never linked again while the bridge ran."""
    caplog.set_level(logging.INFO, "spasm.session")
    band = fleet.bands[8]
    rig = Rig(tmp_path)
    s = rig.start(fleet, band, connect_timeout_s=1.0)
    await until(lambda: s.connected, "first link (bonded from now on)")
    for away in (3.0, 2.3):  # ends at different points of an attempt
        links = s.links
        await fleet.control({"cmd": "out_of_range", "band": band, "seconds": away})
        await until(lambda: not s.connected, "link lost out of range")
        await until(relinked(s, links), "linked again", away + 6)
    failed = [m for m in caplog.messages if f"band {band}: link failed" in m]
    assert failed, "no connect attempt was made while the band was away"
    assert not [m for m in failed if "TimeoutError" in m], failed
    await rig.close()


async def test_dials_to_a_band_nobody_hears_do_not_grow_the_backoff(
    tmp_path: Path, fleet: FleetProc, caplog: pytest.LogCaptureFixture
) -> None:
    """While a band is away the session dials it only after waiting in vain for a sighting
    (ble.backoff_max_s); those dials fail, but they are no reason to wait longer and
    longer: the band is to link soon after it is back, not one grown backoff later."""
    caplog.set_level(logging.INFO, "spasm.session")
    band = fleet.bands[8]
    rig = Rig(tmp_path)
    s = rig.start(
        fleet, band, connect_timeout_s=0.5, backoff_initial_s=0.4, backoff_max_s=3.0,
        stable_link_s=0.0,
    )  # fmt: skip
    await until(lambda: s.connected, "first link")
    links = s.links
    caplog.clear()
    await fleet.control({"cmd": "out_of_range", "band": band, "seconds": 10.0})
    await until(relinked(s, links), "linked again after the absence", 25)
    failed = [m for m in caplog.messages if f"band {band}: link failed" in m]
    delays = [float(m.split()[-2]) for m in caplog.messages if "reconnecting in" in m]
    assert len(failed) >= 2, caplog.messages  # dials while it was away
    # 0.4 s doubled once (after the link that closed), never again: at most 0.8 s
    assert max(delays) <= 0.8, delays
    await rig.close()


def relinked(s: BandSession, links: int) -> Callable[[], bool]:
    return lambda: s.links > links and s.connected


def _event(band: str, seq: int) -> Event:
    return Event(band=band, seq=seq, boot=1, t_ms=0, kind=1, severity=1, confidence=1,
                 duration_ms=1, peak_act_x10=1, mean_act_x10=1, peak_acc_mg=1, freq_dhz=1,
                 modalities=1)  # fmt: skip


def test_clock_map_and_backoff() -> None:
    c = ClockMap()
    c.observe(3, 1000, 51_000)
    c.observe(3, 2000, 52_500)  # later and slower: ignored
    c.observe(3, 3000, 52_990)  # earlier arrival: the better estimate
    assert c.utc_at_boot == 49_990
    e = _event("x", 1)
    e = Event(**{**e.__dict__, "boot": 3, "t_ms": 10})
    assert c.stamp(e, 7) == 50_000
    assert c.stamp(Event(**{**e.__dict__, "boot": 2}), 7) == 7  # other boot: receive time
    assert c.stamp(Event(**{**e.__dict__, "utc_ms": 123}), 7) == 123  # band's own stamp
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(30.0 <= d <= 60.0 for d in delays[8:])
    assert len({round(d, 6) for d in delays[8:]}) == 4  # jittered, not in lock-step
