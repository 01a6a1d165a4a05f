"""Garbage on the command lines of the chaos/benchmark tools and the fleet's fault options."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
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
        # what the fleet refuses is refused before the servers start (the fleet's limits)
        (["-m", "tests.chaos", "--scenario", "nope"], "--scenario"),
        (["-m", "tests.chaos", "--seed", "-1"], "--seed"),
        (["-m", "tests.chaos", "--log-per-segment", "1"], "--log-per-segment"),
        (["-m", "tests.chaos", "--log-segments", "99999"], "--log-segments"),
        (["-m", "tests.chaos", "--bands", "201"], "--bands"),
        (["-m", "tests.chaos", "--records-per-min", "nan"], "--records-per-min"),
        # output paths: checked before a 25-minute run, not after it
        (["-m", "tests.chaos", "--workdir", "pyproject.toml"], "--workdir"),
        (["-m", "tests.chaos", "--json", "/proc/x.json"], "--json"),
        (["-m", "tests.chaos", "--json", "tests"], "--json"),
        # the package is the entry point, not its files
        (["tests/chaos/run.py", "--help"], "python -m tests.chaos"),
        (["tests/chaos/cli.py", "--help"], "python -m tests.chaos"),
        (["tests/bench/bench_chain.py", "--bands", "ten"], "--bands"),
        (["tests/bench/bench_chain.py", "--bands", "0,10"], "--bands"),
        (["tests/bench/bench_chain.py", "--bands", "501"], "--bands"),
        (["tests/bench/bench_chain.py", "--bands", "1", "--seconds", "-1"], "--seconds"),
        (["tests/bench/bench_chain.py", "--seconds", "nan"], "--seconds"),
        (["tests/bench/bench_chain.py", "--poll", "0"], "--poll"),
        (["tests/bench/bench_chain.py", "--settle", "inf"], "--settle"),
        (["tests/bench/bench_chain.py", "--drain", "-1"], "--drain"),
        (["tests/bench/bench_chain.py", "--outage", "nan"], "--outage"),
        (["tests/bench/bench_chain.py", "--raw-seconds", "0"], "--raw-seconds"),
        (["tests/bench/bench_chain.py", "--link-stall", "x"], "--link-stall"),
        (["tests/bench/bench_chain.py", "--probe-bands", "0"], "--probe-bands"),
        (["tests/bench/bench_chain.py", "--ramp", "61"], "--ramp"),
        (["tests/bench/bench_chain.py", "--seed", "-1"], "--seed"),
        (["tests/bench/bench_chain.py", "--json", "/proc/x.json"], "--json"),
        (["tests/bench/bench_chain.py", "--keep", "pyproject.toml"], "--keep"),
        (["tests/bench/replay_band.py", "--bands", "0"], "--bands"),
        (["tests/bench/replay_band.py", "--seconds", "1"], "--seconds"),
        (["tests/bench/replay_band.py", "--bands", "1", "--scenario", "nope", "--seconds", "5"],
         "--scenario"),
        (["tests/bench/replay_band.py", "--seed", "-1"], "--seed"),
        (["tests/bench/fuzz_long.py", "--inputs", "10", "--decode-inputs", "10",
          "--out", "/proc/x.json"], "--out"),
        (["tests/bench/bench_detect.py", "--valdation"], "--valdation"),
        (["tests/bench/bench_spool.py", "--records", "9"], "--records"),
        (["tests/bench/bench_radio.py", "--bands", "2"], "--bands"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_the_option_named(argv: list[str], key: str) -> None:
    r = _run(*argv)
    assert r.returncode == 2, (argv, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, (argv, r.stderr)
    # one line says what is wrong and names the option (argparse's usage lines come first)
    assert key in r.stderr.strip().splitlines()[-1], (argv, r.stderr)


@pytest.mark.parametrize("tool", [["-m", "tests.chaos"], ["tests/bench/replay_band.py"]])
def test_an_unknown_scenario_is_refused_with_the_valid_names(tool: list[str]) -> None:
    from simulator.scenarios import SCENARIOS

    r = _run(*tool, "--scenario", "nope")
    assert r.returncode == 2, r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert "--scenario" in error and all(name in error for name in SCENARIOS), error


def test_a_fleet_that_exits_at_once_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    from tests.e2e_chain import FleetProc, SimStartError

    fleet = FleetProc(tmp_path, 1, 1.0, 1, scenario="nope")  # the fleet refuses it
    with pytest.raises(SimStartError) as e:
        fleet.launch()
    text = str(e.value)
    assert "exited with code 2 before its ready line" in text, text
    assert f"log {fleet.log}" in text and "--scenario" in text, text  # the tail of its log
    assert fleet.log.exists()


def test_the_temporary_workdir_is_kept_when_the_fleet_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.chaos import cli
    from tests.e2e_chain import SimStartError

    async def fleet_fails(args: object, workdir: Path) -> dict[str, object]:
        (workdir / "fleet.log").write_text("why it failed\n")
        raise SimStartError(f"simulator.fleet exited with code 1; log {workdir / 'fleet.log'}")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's temporary workdir
    monkeypatch.setattr(cli, "run_chaos", fleet_fails)
    assert cli.main(["--bands", "1"]) == 1
    err = capsys.readouterr().err
    assert "exited with code 1" in err and "Traceback" not in err, err
    (kept,) = tmp_path.glob("spasm-chaos-*")
    assert (kept / "fleet.log").read_text() == "why it failed\n"
    assert f"kept in {kept}" in err, err


def _bridge_started(bench: psutil.Process) -> list[psutil.Process]:
    """bench_chain's descendants once its bridge runs (bounded wait)."""
    end = time.monotonic() + 90
    while time.monotonic() < end:
        family = bench.children(recursive=True)
        for p in family:
            with contextlib.suppress(psutil.Error):
                if any("spasm-bridge" in part for part in p.cmdline()):
                    return family
        time.sleep(0.2)
    raise AssertionError("bench_chain never started its bridge within 90 s")


def test_bench_chain_stops_its_children_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "tests/bench/bench_chain.py", "--bands", "1", "--seconds", "60",
         "--settle", "0", "--outage", "0", "--no-profile", "--json", str(tmp_path / "c.json")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    family: list[psutil.Process] = []
    try:
        family = _bridge_started(psutil.Process(proc.pid))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        _, alive = psutil.wait_procs(family, timeout=20)
        assert alive == [], (alive, err)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM" in err and "Traceback" not in err, err
    finally:  # a failed run must not leave its processes behind
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


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
