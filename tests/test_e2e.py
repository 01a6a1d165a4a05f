"""End to end, every part real: firmware bands -> virtual radio -> bridge -> MQTT + VictoriaMetrics.

The bands are the unmodified firmware in a ``python -m simulator.fleet run`` process
(time accelerated, except where UTC is checked against the simulation clock); the
bridge is ``spasm-bridge run`` (and ``spasm-bridge ingest``) in processes of its
own, reaching the bands through bleak with ``ble.backend = "simulator.radio.client"``;
mosquitto and VictoriaMetrics (``-dedup.minScrapeInterval=1ms``: a rewritten point
is one point, as in InfluxDB) run on free loopback ports (tests/servers.py).

Ground truth is the bands' own flash, read after the run with the firmware's
EventLog (tests/e2e_chain.py), and the fleet's control-port stats. Every event
carries its seq as a numeric field, so the tests count points per (band, seq).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from protocol import codec
from tests.e2e_chain import BridgeProc, FleetProc, acked_seq, flash_records, until, write_config
from tests.e2e_delivery import (
    MqttTap,
    check_acked,
    check_exactly_once,
    deliver_snapshot,
    logged_total,
    vm_points,
    vm_until,
)
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401

SPEED = 20  # band seconds per real second where UTC is not compared with the wall


def _all_linked(stats: dict[str, dict[str, int]], links: int = 1) -> bool:
    return all(s["secure"] and s["connects"] >= links for s in stats.values())


async def _linked(fleet: FleetProc, links: int = 1) -> None:
    stats: dict[str, dict[str, int]] = {}

    async def poll() -> None:
        nonlocal stats
        stats = await fleet.stats()

    for _ in range(300):  # bounded: 30 s
        await poll()
        if _all_linked(stats, links):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"bands never linked {links} time(s): {stats}")


async def _logged(fleet: FleetProc, band_events: int, seconds: float = 60, total: int = 0) -> None:
    """Wait (bounded) until every band has logged ``band_events`` events, and all
    bands ``total`` together."""
    stats: dict[str, dict[str, int]] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        stats = await fleet.stats()
        n = [s["events"] for s in stats.values()]
        if min(n) >= band_events and sum(n) >= total:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"bands never logged {band_events} events each, {total} in all: {stats}")


async def _finish(
    fleet: FleetProc,
    tap: MqttTap,
    vm: Victoria,
    bridges: list[BridgeProc],
    workers: tuple[BridgeProc, ...] = (),
    check_ack: bool = True,
) -> tuple[set[tuple[str, int]], dict[str, dict[str, int]], dict[str, int]]:
    """Snapshot, wait for delivery, stop everything, check against the flash."""
    snap = await deliver_snapshot(fleet, tap)
    for b in bridges:
        assert b.stop() == 0, f"{b.argv[1]} did not stop cleanly: {b.text()[-2000:]}"
    fleet.stop()
    bands = fleet.bands
    flash = {b: flash_records(fleet.flash, b) for b in bands}
    acked = {b: acked_seq(fleet.flash, b) for b in bands}
    mqtt = tap.events(bands)
    events = {(b, r[1]) for b, recs in flash.items() for r in recs if r[0] == codec.EVENT}
    must = {(b, s) for b, s in events if s <= logged_total(snap[b])}
    points = await vm_until(vm, bands, must | set(mqtt))
    for w in workers:  # after everything reached the time-series server
        assert w.stop() == 0, f"{w.argv[1]} did not stop cleanly: {w.text()[-2000:]}"
    checked = check_exactly_once(flash, snap, mqtt, points)
    if check_ack:
        check_acked(acked, snap)
    return checked, snap, acked


async def test_every_logged_event_arrives_once_with_its_true_utc(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    """Real time (speed 1), so the band's clock and the wall clock run alike: each event
    arrives once on MQTT and in VictoriaMetrics, stamped within 50 ms of the simulated
    truth. The truth maps band time to UTC through the simulation clock, calibrated
    without the radio: the test presses each band's marker button (control port) at a
    known wall time, and the marker's band time in flash fixes when that boot began
    (to within the button's 20 ms poll, always early, as the band's own sync is late)."""
    fleet = FleetProc(tmp_path, bands=2, speed=1, seed=31)  # (about 1 event per 10 s)
    await fleet.start()
    tap = await MqttTap(mosquitto.port).start()
    cfg = write_config(tmp_path / "bridge.toml", fleet.bands, tmp_path / "spool.db", mosquitto,
                       victoria)  # fmt: skip
    bridge = BridgeProc(cfg, fleet.radio, tmp_path / "bridge.log").start()
    try:
        await _linked(fleet)
        presses: dict[str, list[int]] = {b: [] for b in fleet.bands}
        for _ in range(3):
            for b in fleet.bands:
                presses[b].append(await fleet.press(b))
        await _logged(fleet, 0, seconds=45, total=2)
        # (acks: test_a_band_met_with_an_empty_log_gets_its_records_acked)
        await _finish(fleet, tap, victoria, [bridge], check_ack=False)
    finally:
        bridge.stop()
        fleet.stop()
        await tap.close()
    points = await asyncio.to_thread(vm_points, victoria, fleet.bands)
    for band in fleet.bands:
        recs = flash_records(fleet.flash, band)
        markers = [r for r in recs if r[0] == codec.MARKER]
        assert len(markers) == len(presses[band]), (band, markers, presses[band])
        assert len({r[2] for r in recs}) == 1, "one boot per band in this run"
        # wall UTC at band time 0 of this boot: at or after the latest estimate
        boot_utc = max(w - m[3] for w, m in zip(presses[band], markers, strict=True))
        events = [r for r in recs if r[0] == codec.EVENT]
        assert events, f"band {band} logged no event"
        for _t, seq, _boot, t_ms in events:
            truth = boot_utc + t_ms
            (stamp,) = points[(band, seq)]
            assert set(tap.copies["event"][(band, seq)]) == {stamp}
            assert abs(stamp - truth) <= 50, (band, seq, stamp - truth)


async def test_link_drop_mid_stream_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    """The radio drops one band's link mid-stream and takes the other out of range for a
    while (the fleet's fault injection); both come back, replay, and every event still
    arrives exactly once."""
    fleet = FleetProc(tmp_path, bands=2, speed=SPEED, seed=32)
    await fleet.start()
    tap = await MqttTap(mosquitto.port).start()
    cfg = write_config(tmp_path / "bridge.toml", fleet.bands, tmp_path / "spool.db", mosquitto,
                       victoria)  # fmt: skip
    bridge = BridgeProc(cfg, fleet.radio, tmp_path / "bridge.log").start()
    a, b = fleet.bands
    try:
        await _linked(fleet)
        await _logged(fleet, 2)
        before = await deliver_snapshot(fleet, tap)
        assert (await fleet.control({"cmd": "drop", "band": a}))["dropped"] == 1
        await fleet.control({"cmd": "out_of_range", "band": b, "seconds": 1.5})
        await _linked(fleet, links=2)
        after = await fleet.stats()
        await _logged(fleet, max(s["events"] for s in after.values()) + 1)
        checked, _snap, _acked = await _finish(fleet, tap, victoria, [bridge])
    finally:
        bridge.stop()
        fleet.stop()
        await tap.close()
    for band in (a, b):  # events on both sides of the fault were checked
        seqs = [s for k, s in checked if k == band]
        n = before[band]["events"] + before[band]["markers"] + before[band]["faults"]
        assert min(seqs) <= n < max(seqs), (band, n, seqs)
    assert len(re.findall(r"band \w+: linked", bridge.text())) >= 4


async def test_bridge_killed_with_sigkill_resumes_from_its_spool(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    """SIGKILL the bridge mid-stream, let the bands log on, start it again on the same
    spool: it replays from what the spool holds, nothing is lost, and no event gets a
    second point (a re-stamped rewrite would be one) or a second stamp on MQTT."""
    fleet = FleetProc(tmp_path, bands=2, speed=SPEED, seed=33)
    await fleet.start()
    tap = await MqttTap(mosquitto.port).start()
    cfg = write_config(tmp_path / "bridge.toml", fleet.bands, tmp_path / "spool.db", mosquitto,
                       victoria)  # fmt: skip
    first = BridgeProc(cfg, fleet.radio, tmp_path / "bridge1.log").start()
    second = BridgeProc(cfg, fleet.radio, tmp_path / "bridge2.log")
    try:
        await _linked(fleet)
        await _logged(fleet, 2)
        await until(lambda: len(tap.events(fleet.bands)) >= 3, "3 events on MQTT")
        first.kill()
        at_kill = await fleet.stats()
        await _logged(fleet, max(s["events"] for s in at_kill.values()) + 1)
        second.start()
        await _linked(fleet, links=2)
        checked, _snap, _acked = await _finish(fleet, tap, victoria, [second])
    finally:
        second.stop() if second.proc else None
        first.stop()
        fleet.stop()
        await tap.close()
    replays = [int(n) for n in re.findall(r"linked \(.*replay from (\d+)\)", second.text())]
    assert replays and max(replays) > 1, f"the restarted bridge did not resume: {replays}"
    for band, s in at_kill.items():  # events logged while no bridge ran arrived too
        assert any(seq > s["events"] + s["markers"] + s["faults"] for b, seq in checked
                   if b == band), (band, s)  # fmt: skip


async def test_two_ingest_workers_write_every_event_once_between_them(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    """The bridge publishes to MQTT only; two `spasm-bridge ingest` workers on one shared
    subscription write VictoriaMetrics: every event once, and each worker took a share."""
    fleet = FleetProc(tmp_path, bands=2, speed=SPEED, seed=34)
    await fleet.start()
    tap = await MqttTap(mosquitto.port).start()
    spool = tmp_path / "spool.db"
    cfg = write_config(tmp_path / "bridge.toml", fleet.bands, spool, mosquitto, None)
    wcfg = write_config(tmp_path / "ingest.toml", fleet.bands, spool, mosquitto, victoria)
    workers = [
        BridgeProc(wcfg, fleet.radio, tmp_path / f"ingest-{w}.log", "ingest", "--worker-id", w)
        for w in ("w1", "w2")
    ]
    bridge = BridgeProc(cfg, fleet.radio, tmp_path / "bridge.log")
    try:
        for w in workers:
            w.start()
        await until(lambda: all("subscribed to" in w.text() for w in workers), "workers subscribed")
        bridge.start()
        await _linked(fleet)
        await _logged(fleet, 4)
        checked, _snap, _acked = await _finish(fleet, tap, victoria, [bridge], tuple(workers))
    finally:
        for p in (bridge, *workers):
            p.stop() if p.proc else None
        fleet.stop()
        await tap.close()
    written = []
    for w in workers:
        m = re.search(r"ingest \S+: wrote (\d+) records", w.text())
        assert m, f"no summary line from {w.argv[-1]}: {w.text()[-1000:]}"
        written.append(int(m.group(1)))
    assert all(n > 0 for n in written), f"one worker took everything: {written}"
    # each MQTT event went to one worker only: between them, each written once
    assert sum(written) == len(tap.events(fleet.bands)) >= len(checked), written


async def test_a_band_met_with_an_empty_log_gets_its_records_acked(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A band's log seqs start at 1 (protocol/SPEC.md). A band the bridge meets for the
    first time with nothing to replay sends its first records live (flag 0); the spool's
    contiguous seq for a new band is 0, so seq 1 moves it and the bridge ACKs. (Once the
    spool waited for a seq 0 that never comes, and the band's log was never freed.) Here:
    a band at rest (no spasms), linked, then the marker button pressed twice: both markers
    reach MQTT and the band's flash says they were acked."""
    fleet = FleetProc(tmp_path, bands=1, speed=1, seed=35, scenario="rest")
    await fleet.start()
    tap = await MqttTap(mosquitto.port).start()
    cfg = write_config(tmp_path / "bridge.toml", fleet.bands, tmp_path / "spool.db", mosquitto,
                       None)  # fmt: skip
    bridge = BridgeProc(cfg, fleet.radio, tmp_path / "bridge.log").start()
    (band,) = fleet.bands
    try:
        await _linked(fleet)
        await asyncio.sleep(0.5)  # the link is set up (REPLAY answered): the next are live
        for _ in range(2):
            await fleet.press(band)
            await asyncio.sleep(0.2)  # released long enough to debounce (3 polls of 20 ms)
        await until(lambda: tap.has(band, {1, 2}, "marker"), "both markers on MQTT")
        await asyncio.sleep(1.0)  # time for the ACK (the bridge acks right after spooling)
        assert bridge.stop() == 0
    finally:
        bridge.stop()
        fleet.stop()
        await tap.close()
    assert [r[:2] for r in flash_records(fleet.flash, band)] == [
        (codec.MARKER, 1),
        (codec.MARKER, 2),
    ]
    assert acked_seq(fleet.flash, band) == 2, "the bridge delivered seqs 1-2 but never acked them"
