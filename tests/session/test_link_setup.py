"""Band sessions: link set-up, replay, stamping and acks, on the simulator's virtual radio.

What a session does with a band that behaves: the commands of its link set-up in order,
the replay of what the band logged while no host was around (from where the spool ends,
past what the band's wrapped log no longer has), stamping records with the band's clock,
acking only what is spooled (nothing while the spool is full), and a command round trip.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from host.records import BandError, ConfigValue, Marker
from host.session import CommandError
from host.spool import SpoolFull
from protocol import codec, segmentation
from tests.e2e_chain import FleetProc, TestBandProc, until
from tests.session.rig import Rig, event

TRUTH_MS = 50  # a stamp within this of the wall time of the button press


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
                await rig.spool.add([event("zz", seq + i) for i in range(size)])
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
