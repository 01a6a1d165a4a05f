"""The simulated seam under CPython, as the simulator and the bridge tests use it.

The same firmware runs here as in the VM tests (tests/vm/mp_test_app.py); this
checks the CPython side of simulator/virtual_board.py: a flash directory on
disk, virtual time, the real-time mode with a speed factor, and power cycles.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from protocol import codec
from simulator.virtual_board import LoopbackRadio, VirtualBoard, VirtualClock

UTC = 1_700_000_000_000


def _emg(i: int) -> int:
    return (i * 37) % 41 - 20


def _acc(i: int) -> tuple[int, int, int]:
    return (i % 5, -(i % 3), 1000 + i % 7)


async def test_virtual_time_runs_the_app_fast(tmp_path: Path) -> None:
    clock = VirtualClock()
    radio = LoopbackRadio(clock)
    board = VirtualBoard("c0ffee", str(tmp_path / "band"), _emg, _acc, radio, clock)
    board.power_on()
    await clock.advance(60_000)
    app = board.app
    assert app is not None
    assert app.sampler.emg_count >= 59_980 and board.overruns == 0  # type: ignore[attr-defined]
    radio.connect(mtu=247)
    radio.command(codec.TIME_SYNC, 1, {"utc_ms": UTC})
    await clock.advance(300)
    status = radio.frames("status")[-1]
    assert status[0] == codec.STATUS and status[3]["state"] & codec.STATE_SYNCED
    assert radio.name == "SB-c0ffee"
    # the flash is a real directory
    names = sorted(p.name for p in (tmp_path / "band").iterdir())
    assert "time.json" in names and "config.json" not in names
    await board.shutdown()
    assert board.task is not None and board.task.done()  # type: ignore[attr-defined]


async def test_power_cycle_keeps_the_log(tmp_path: Path) -> None:
    clock = VirtualClock()
    radio = LoopbackRadio(clock)
    flash = str(tmp_path / "band")
    board = VirtualBoard("c0ffee", flash, _emg, _acc, radio, clock)
    board.power_on()
    await clock.advance(500)
    for _ in range(3):
        board.button_level = True
        await clock.advance(200)
        board.button_level = False
        await clock.advance(200)
    board.power_off()
    await clock.advance(1000)
    assert board.task is not None and board.task.done()  # type: ignore[attr-defined]
    # a new board object on the same directory is the same band, rebooted
    board2 = VirtualBoard("c0ffee", flash, _emg, _acc, LoopbackRadio(clock), clock)
    board2.power_on()
    await clock.advance(500)
    app = board2.app
    assert app.log.last_seq() == 3 and app.timebase.boot == 2  # type: ignore[attr-defined]
    await board2.shutdown()


async def test_real_time_mode_with_a_speed_factor(tmp_path: Path) -> None:
    clock = VirtualClock(speed=50.0)
    board = VirtualBoard("c0ffee", str(tmp_path / "band"), _emg, None, LoopbackRadio(clock), clock)
    board.power_on()
    await asyncio.sleep(0.2)  # 10 s of band time
    app = board.app
    assert app is not None
    now = clock.now_ms()
    assert now >= 10_000  # at least 0.2 s x 50 of band time went by
    count = app.sampler.emg_count  # type: ignore[attr-defined]
    # samples follow the sped-up clock (how many were fed depends on the CPU)
    assert 0 < count <= now, (count, now)
    assert not board.has_acc and app.sampler.acc_count == 0  # type: ignore[attr-defined]
    await board.shutdown()


async def test_ten_simulated_minutes_connected_and_streaming(tmp_path: Path) -> None:
    """A soak run: nothing grows without bound, nothing is lost, sampling stays on time."""
    clock = VirtualClock()
    radio = LoopbackRadio(clock)
    board = VirtualBoard("c0ffee", str(tmp_path / "band"), _emg, _acc, radio, clock)
    board.power_on()
    await clock.advance(1000)
    radio.connect(mtu=185)
    radio.command(codec.TIME_SYNC, 1, {"utc_ms": UTC})
    radio.command(codec.STREAM, 2, {"on": 1, "rate_hz": 25})
    app: Any = board.app
    markers: list[int] = []
    samples = 0
    for minute in range(10):
        for _ in range(3):  # the patient presses the button three times a minute
            board.button_level = True
            await clock.advance(200)
            board.button_level = False
            await clock.advance(19_800)
        markers += [f[2] for f in radio.frames("events") if f[0] == codec.MARKER]
        samples += sum(f[3]["count"] for f in radio.frames("signal"))
        radio.command(codec.ACK, 3 + minute, {"upto": markers[-1]})
    await clock.advance(500)
    assert markers == list(range(1, 31))
    assert app.log.acked_seq == 30 and app.log.unacked() == 0
    assert app.sampler.emg_count >= 600_000 and board.overruns == 0
    assert 25 * 599 <= samples <= 25 * 600 and app.signal.dropped == 0
    assert len(clock._waiters) <= 6  # one per task, nothing piles up
    assert app.link.errors == {} and len(app.link.control_q) == 0
    statuses = radio.frames("status")
    assert len(statuses) >= 10  # periodic, every 60 s
    await board.shutdown()
