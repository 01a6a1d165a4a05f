"""Band sessions that lose their link: relinking, long absences and the reconnect backoff.

A link dropped or out of range mid-stream relinks and loses or doubles nothing; a bonded
band away across several connect attempts links again when back; failed dials to a band
nobody hears do not grow the backoff. Also the units behind it: the clock map that stamps
records and the jittered backoff delay.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from host.records import Event
from host.session import BandSession, ClockMap, backoff_delay
from tests.e2e_chain import FleetProc, until
from tests.session.rig import Rig, event


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


def test_clock_map_and_backoff() -> None:
    c = ClockMap()
    c.observe(3, 1000, 51_000)
    c.observe(3, 2000, 52_500)  # later and slower: ignored
    c.observe(3, 3000, 52_990)  # earlier arrival: the better estimate
    assert c.utc_at_boot == 49_990
    e = event("x", 1)
    e = Event(**{**e.__dict__, "boot": 3, "t_ms": 10})
    assert c.stamp(e, 7) == 50_000
    assert c.stamp(Event(**{**e.__dict__, "boot": 2}), 7) == 7  # other boot: receive time
    assert c.stamp(Event(**{**e.__dict__, "utc_ms": 123}), 7) == 123  # band's own stamp
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(30.0 <= d <= 60.0 for d in delays[8:])
    assert len({round(d, 6) for d in delays[8:]}) == 4  # jittered, not in lock-step
