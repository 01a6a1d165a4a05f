"""Band sessions with bad peers: garbage, floods, oversized notifications and stalls.

Test bands of ``python -m simulator.radio`` misbehave as no firmware would; the session
counts what it drops, disconnects the peer (and retries it with backoff), and serves the
well-behaved firmware bands alongside it as if the bad one were not there.
"""

from __future__ import annotations

from pathlib import Path

from protocol import codec, segmentation
from tests.e2e_chain import FleetProc, TestBandProc, until
from tests.session.rig import Rig


def notifications(frame: bytes, mtu: int = 247) -> list[str]:
    return [seg.hex() for seg in segmentation.segments(frame, mtu)]


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
