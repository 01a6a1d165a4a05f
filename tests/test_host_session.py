"""Band sessions through bleak's public API, against scripted bands (tests/host_fakeband.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice

from host.config import BleSection
from host.records import ConfigValue, Event
from host.session import BandSession, ClockMap, backoff_delay
from host.spool import AsyncSpool, Spool, SpoolFull
from host.stats import Stats
from protocol import codec, gatt
from tests.host_fakeband import REGISTRY, FakeBand, FakeClient


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    REGISTRY.clear()
    yield
    REGISTRY.clear()


async def until(cond: Callable[[], bool], what: str, tries: int = 500) -> None:
    """Wait (bounded) for ``cond``; a liveness bound, not a speed assertion."""
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def last_ack(band: FakeBand) -> int:
    acks = band.acks()
    return acks[-1] if acks else -1


def cfg(**kw: Any) -> BleSection:
    base: dict[str, Any] = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1, "stable_link_s": 0.0}
    base.update(kw)
    return BleSection(**base)


class Rig:
    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.spool = AsyncSpool(Spool(tmp / "spool.db", **kw))
        self.stats = Stats()
        self.tasks: list[asyncio.Task[None]] = []
        self.sessions: dict[str, BandSession] = {}

    def start(self, band: FakeBand, **kw: Any) -> BandSession:
        s = BandSession(band.band_id, cfg(**kw), FakeClient, self.spool, self.stats)
        s.offer(BLEDevice(band.address, "SB-" + band.band_id, None))
        self.tasks.append(asyncio.create_task(s.run()))
        self.sessions[band.band_id] = s
        return s

    def events(self, band: str) -> list[Event]:
        return [
            r
            for _, r in self.spool.spool.read("check", 100_000)
            if isinstance(r, Event) and r.band == band
        ]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.spool.close()


async def test_sync_replay_stamp_and_ack_after_spooling(tmp_path: Path) -> None:
    band = FakeBand("a1", mtu=23)
    band.log_event(5)  # logged while no host was around: utc_ms 0 (band not synced)
    rig = Rig(tmp_path)
    rig.start(band)
    await until(lambda: last_ack(band) == 4, "ack of the replayed events")
    kinds = [t for t, _, _ in band.commands]
    assert kinds[:2] == [codec.TIME_SYNC, codec.REPLAY]
    assert band.commands[1][2] == {"from_seq": 0}
    assert band.log == {}  # the band erased only what the bridge acked
    got = rig.events("a1")
    assert [e.seq for e in got] == [0, 1, 2, 3, 4]
    # Stamped by the bridge through this link's sync: close to the band's truth.
    assert all(abs(e.utc_ms - band.truth[e.seq]) <= 50 for e in got)
    band.log_event(3)  # live now; the band stamps them itself
    await until(lambda: last_ack(band) == 7, "ack of live events")
    assert [e.utc_ms for e in rig.events("a1")][5:] == [band.truth[s] for s in (5, 6, 7)]
    # Command seqs count up per link.
    seqs = [s for _, s, _ in band.commands]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    await rig.close()


async def test_link_drop_mid_stream_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    band = FakeBand("b2", mtu=40)
    rig = Rig(tmp_path)
    s = rig.start(band)
    await until(lambda: s.connected, "link")
    band.log_event(10)
    band.drop_link()
    band.log_event(10)  # logged while out of range
    await until(lambda: band.connects == 2 and last_ack(band) == 19, "replay after reconnect")
    band.log_event(5)
    band.drop_link()
    await until(lambda: band.connects == 3 and last_ack(band) == 24, "second reconnect")
    assert [e.seq for e in rig.events("b2")] == list(range(25))
    assert rig.stats.reconnects >= 2
    await rig.close()


async def test_replay_after_restart_starts_after_the_spool(tmp_path: Path) -> None:
    band = FakeBand("c3")
    rig = Rig(tmp_path)
    rig.start(band)
    band.log_event(4)
    await until(lambda: last_ack(band) == 3, "first acks")
    await rig.close()
    band.drop_link()
    band.acked = 0  # the band lost the ack (say it rebooted): it replays everything
    band.log = {}
    band.log_event(2)
    rig2 = Rig(tmp_path)
    rig2.start(band)
    await until(lambda: last_ack(band) == 5, "acks after restart")
    replays = [f for t, _, f in band.commands if t == codec.REPLAY]
    assert replays[-1] == {"from_seq": 4}
    assert [e.seq for e in rig2.events("c3")] == list(range(6))
    await rig2.close()


async def test_overwritten_band_log_is_skipped(tmp_path: Path) -> None:
    band = FakeBand("d4", first_seq=100)  # seqs below 100 were overwritten on the band
    band.log_event(3)
    rig = Rig(tmp_path)
    rig.start(band)
    await until(lambda: last_ack(band) == 102, "acks past the gap")
    assert [e.seq for e in rig.events("d4")] == [100, 101, 102]
    await rig.close()


async def test_garbage_peer_is_counted_and_dropped_others_unaffected(tmp_path: Path) -> None:
    bad, good = FakeBand("e5"), FakeBand("f6")
    rig = Rig(tmp_path)
    sb, sg = rig.start(bad, max_bad_frames=3), rig.start(good)
    await until(lambda: sb.connected and sg.connected, "links")
    frame = bytearray(
        codec.encode(codec.MARKER, 1, {"boot": 1, "t_ms": 5, "utc_ms": 0, "source": 1})
    )
    frame[-1] ^= 0xFF
    bad.send(gatt.EVENTS, bytes(frame))  # bad CRC
    bad.send_raw(gatt.EVENTS, b"\x05\x01")  # a middle segment out of nowhere
    bad.send_raw(gatt.EVENTS, b"\xc0" + b"\x00" * 8)  # one-segment frame of zeros
    good.log_event(3)
    await until(
        lambda: (
            rig.stats.disconnects.get("bad_frames:length", 0) >= 1
            or sum(rig.stats.disconnects.values()) >= 1
        ),
        "garbage peer dropped",
    )
    assert rig.stats.dropped["crc"] == 1 and rig.stats.dropped["segment"] == 1
    await until(lambda: last_ack(good) == 2, "good band served")
    assert [e.seq for e in rig.events("f6")] == [0, 1, 2]
    assert rig.events("e5") == []
    await until(lambda: bad.connects >= 2, "garbage peer retried with backoff")
    await rig.close()


async def test_flood_and_oversized_notifications_drop_the_peer(tmp_path: Path) -> None:
    band = FakeBand("a7")
    rig = Rig(tmp_path)
    s = rig.start(band, max_notifications_per_s=50, max_bad_frames=2)
    await until(lambda: s.connected, "link")
    for _ in range(2):
        band.send_raw(gatt.SIGNAL, b"\xc0" + b"\x01" * 40)  # longer than MTU 23 - 3
    await until(lambda: rig.stats.disconnects["bad_frames:oversized"] == 1, "oversized kick")
    assert rig.stats.dropped["oversized"] == 2
    await until(lambda: s.connected and band.connects == 2, "relink")
    for _ in range(200):
        if band.client is None:
            break
        band.send(gatt.STATUS, band.status_frame())
    await until(lambda: rig.stats.disconnects["flood"] == 1, "flood kick")
    await rig.close()


async def test_full_spool_acks_nothing_and_replays_when_space_returns(tmp_path: Path) -> None:
    band = FakeBand("b8", mtu=185)
    rig = Rig(tmp_path, max_mb=0.1, keep_hours=0)
    sp = rig.spool.spool
    seq = 0
    for size in (50, 1):  # fill the spool with another band's events (bounded by 0.1 MB)
        while True:
            try:
                sp.add(
                    [
                        Event(
                            band="zz",
                            seq=seq + i,
                            boot=1,
                            t_ms=0,
                            kind=1,
                            severity=1,
                            confidence=1,
                            duration_ms=1,
                            peak_act_x10=1,
                            mean_act_x10=1,
                            peak_acc_mg=1,
                            freq_dhz=1,
                            modalities=1,
                        )
                        for i in range(size)
                    ]
                )
                seq += size
            except SpoolFull:
                break
    rig.start(band)
    band.log_event(5)
    await until(lambda: rig.stats.dropped["spool_full"] >= 5, "intake paused")
    assert band.acks() == [] and len(band.log) == 5
    sp.register("s")
    sp.commit("s", sp.last_id())
    sp.prune(["s"])  # the sinks caught up: space again
    band.log_event(1)
    await until(lambda: last_ack(band) == 5, "replayed and acked")
    assert sorted(e.seq for e in rig.events("b8")) == list(range(6))  # 5 came live, first
    await rig.close()


async def test_a_stalled_band_never_stalls_the_others(tmp_path: Path) -> None:
    slow, fast = FakeBand("5a"), FakeBand("fa")
    slow.hold_writes = asyncio.Event()  # its writes hang: the session is stuck in TIME_SYNC
    rig = Rig(tmp_path)
    rig.start(slow)
    sf = rig.start(fast)
    await until(lambda: sf.connected, "fast band linked")
    fast.log_event(20)
    await until(lambda: last_ack(fast) == 19, "fast band served")
    assert [e.seq for e in rig.events("fa")] == list(range(20))
    assert slow.commands == [] and not rig.sessions["5a"].connected
    slow.hold_writes.set()
    await until(lambda: rig.sessions["5a"].connected, "slow band linked at last")
    await rig.close()


async def test_config_get_command_round_trip(tmp_path: Path) -> None:
    band = FakeBand("c9")
    rig = Rig(tmp_path)
    s = rig.start(band)
    await until(lambda: s.connected, "link")
    reply = await s.command(codec.CONFIG_GET, {"key": "threshold"})
    assert isinstance(reply, ConfigValue) and reply.value == 42 and reply.key == "threshold"
    await rig.close()


def test_clock_map_and_backoff() -> None:
    import random

    c = ClockMap()
    c.observe(3, 1000, 51_000)
    c.observe(3, 2000, 52_500)  # later and slower: ignored
    c.observe(3, 3000, 52_990)  # earlier arrival: the better estimate
    assert c.utc_at_boot == 49_990
    e = Event(
        band="x",
        seq=1,
        boot=3,
        t_ms=10,
        kind=1,
        severity=1,
        confidence=1,
        duration_ms=1,
        peak_act_x10=1,
        mean_act_x10=1,
        peak_acc_mg=1,
        freq_dhz=1,
        modalities=1,
    )
    assert c.stamp(e, 7) == 50_000
    assert c.stamp(Event(**{**e.__dict__, "boot": 2}), 7) == 7  # other boot: receive time
    assert c.stamp(Event(**{**e.__dict__, "utc_ms": 123}), 7) == 123  # band's own stamp
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(30.0 <= d <= 60.0 for d in delays[8:])
    assert len({round(d, 6) for d in delays[8:]}) == 4  # jittered, not in lock-step
