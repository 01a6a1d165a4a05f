"""Garbage on the command lines of the chaos/benchmark tools and the fleet's fault options."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.e2e_chain import ROOT


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["-m", "simulator.fleet", "run", "--scenario", "rest", "--log-segments", "1"],
         "--log-segments"),
        (["-m", "simulator.fleet", "run", "--scenario", "rest", "--log-per-segment", "x"],
         "--log-per-segment"),
        (["-m", "tests.chaos", "--bands", "0"], "--bands"),
        (["-m", "tests.chaos", "--speed", "fast"], "--speed"),
        (["-m", "tests.chaos", "--hours", "1", "--round-minutes", "600"], "--round-minutes"),
        (["-m", "tests.chaos", "--log-segments", "1"], "--log-segments"),
        (["-m", "tests.chaos", "--recovery-timeout", "0"], "--recovery-timeout"),
        (["tests/bench/bench_chain.py", "--bands", "ten"], "--bands"),
        (["tests/bench/bench_chain.py", "--bands", "0,10"], "--bands"),
        (["tests/bench/replay_band.py", "--bands", "0"], "--bands"),
        (["tests/bench/replay_band.py", "--seconds", "1"], "--seconds"),
        (["tests/bench/bench_detect.py", "--valdation"], "--valdation"),
        (["tests/bench/bench_spool.py", "--records", "9"], "--records"),
        (["tests/bench/bench_radio.py", "--bands", "2"], "--bands"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_the_option_named(argv: list[str], key: str) -> None:
    r = _run(*argv)
    assert r.returncode == 2, (argv, r.stdout, r.stderr)
    assert key in r.stderr, (argv, r.stderr)


def test_detector_benchmark_documents_its_options() -> None:
    r = _run("tests/bench/bench_detect.py", "--help")
    assert r.returncode == 0, r.stderr
    for opt in ("--validation", "--full-only", "--no-vm"):
        assert opt in r.stdout, (opt, r.stdout)


async def test_fleet_power_cut_and_small_log_options(tmp_path: object) -> None:
    from simulator.fleet import Fleet
    from simulator.radio.control import CommandError

    fleet = Fleet(
        ["a1b2c3"], "spasms", 1, 20.0, str(tmp_path),
        app_kwargs={"log_segments": 2, "log_per_segment": 4},
    )  # fmt: skip
    await fleet.start()
    try:
        s = fleet.stats()["a1b2c3"]
        assert s["log_capacity"] == 4 and s["last_seq"] >= 0 and s["overwritten"] == 0
        for bad in (
            {"after_bytes": -1},
            {"after_bytes": "7"},
            {"off_s": True},
            {"wait_s": 1e9},
        ):
            with pytest.raises(CommandError) as e:
                await fleet.command({"cmd": "power_cut", "band": "a1b2c3", **bad})
            assert next(iter(bad)) in str(e.value)
        with pytest.raises(CommandError):
            await fleet.command({"cmd": "power_cut", "band": "nope"})
        boots = s["boots"]
        r = await fleet.command(
            {"cmd": "power_cut", "band": "a1b2c3", "after_bytes": 5, "off_s": 0.1, "wait_s": 0.5}
        )
        assert r is not None and r["ok"] is True and isinstance(r["torn"], bool)
        for _ in range(100):  # bounded: the band boots again on the same flash
            if fleet.stats()["a1b2c3"]["boots"] > boots:
                break
            await asyncio.sleep(0.05)
        assert fleet.stats()["a1b2c3"]["boots"] == boots + 1
    finally:
        await fleet.close()
