"""`make run` end to end: simulator/chain.py with real bands, bridge, mosquitto and VictoriaMetrics.

The chain runs as a subprocess exactly as `make run` starts it; its --summary-json
gives the counts it read back; the test checks them against the spool file itself
and against VictoriaMetrics restarted on the data the run kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from host.local_servers import Mosquitto, ServerError, VictoriaMetrics, find_binary, log_tail
from simulator.chain_readback import read_back
from simulator.chain_watch import report_lines

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPASM_")}
    env.update(extra)
    return env


def run_chain(
    args: list[str], env: dict[str, str], timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator.chain", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (a run's folder)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{d.name}: {cmd}")
    return found


def spool_events(path: Path) -> set[tuple[str, int]]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT band, seq FROM records WHERE rtype='event'").fetchall()
    finally:
        con.close()
    return {(str(b), int(s)) for b, s in rows}


def test_chain_delivers_every_event_to_spool_mqtt_and_victoria(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    summary_file = tmp_path / "summary.json"
    args = ["--bands", "3", "--speed", "40", "--duration", "20", "--dir", str(run_dir)]
    args += ["--summary-json", str(summary_file), "--progress-every", "5"]
    proc = run_chain(args, clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert processes_mentioning(str(run_dir)) == []
    s: dict[str, Any] = json.loads(summary_file.read_text())
    assert s["reason"] == "duration" and s["failed"] == "" and s["notes"] == []

    # the spool: all three bands, events from each, nothing missing below the ack point
    events: dict[str, int] = s["spool"]["events"]
    assert sorted(events) == sorted(s["bands"]) and len(events) == 3
    assert all(n > 0 for n in events.values()), events
    held = spool_events(run_dir / "spool.db")
    assert len(held) == sum(events.values())
    for band, b in s["spool"]["summary"]["bands"].items():
        logged = sum(b["records"].get(k, 0) for k in ("event", "marker", "fault"))
        assert b["contig_seq"] == logged, (band, b)

    # MQTT: the run's subscriber saw each spooled event, once per (band, seq)
    assert s["mqtt"]["by_band"] == events
    assert s["mqtt"]["messages"] >= s["mqtt"]["distinct"] == len(held)

    # VictoriaMetrics: the run read back one point per event ...
    assert s["victoria"]["points"] == s["victoria"]["distinct"] == len(held)
    # ... and the data it kept holds exactly the spool's (band, seq) pairs
    with VictoriaMetrics(run_dir) as vm:
        series = vm.export("spasm_event_seq", end=time.time() + 2 * 86400)
    assert {(x["metric"]["band"], int(v)) for x in series for v in x["values"]} == held
    assert sum(len(x["values"]) for x in series) == len(held)

    # the terminal says where the data went
    out = proc.stdout
    assert str(run_dir / "spool.db") in out
    assert s["mqtt"]["address"] in out and "spasm/v1/<band>/event" in out
    assert s["victoria"]["url"] in out and "/api/v1/export?match" in out
    assert f"{len(held)} event points read back" in out
    assert "events on band/spooled/MQTT" in out  # progress lines (stdout is not a terminal)


def test_chain_without_servers_runs_on_the_spool_and_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    summary_file = tmp_path / "summary.json"
    env = clean_env(SPASM_MOSQUITTO_BIN="", SPASM_VICTORIA_METRICS_BIN="")
    args = ["--bands", "2", "--speed", "40", "--duration", "10", "--dir", str(run_dir)]
    proc = run_chain(args + ["--summary-json", str(summary_file)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mosquitto is not installed" in proc.stdout
    assert "victoria-metrics is not installed" in proc.stdout
    assert "embedded spool only" in proc.stdout
    s = json.loads(summary_file.read_text())
    assert s["mqtt"] is None and s["victoria"] is None
    assert len(s["spool"]["events"]) == 2 and sum(s["spool"]["events"].values()) > 0
    assert not (run_dir / "mosquitto.log").exists() and not (run_dir / "vm-data").exists()
    assert processes_mentioning(str(run_dir)) == []


def test_a_killed_chain_leaves_no_process_behind(tmp_path: Path) -> None:
    """SIGKILL gives the chain no chance to clean up: its children die with it."""
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "simulator.chain", "--speed", "40", "--dir", str(run_dir)]
    proc = subprocess.Popen(argv, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, text=True)
    guard = threading.Timer(150, proc.kill)  # never hang the suite on a chain that hangs
    guard.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("  bridge:"):
                break
        started = [
            p for p in processes_mentioning(str(run_dir)) if int(p.split(":")[0]) != proc.pid
        ]
        assert len(started) == 4, started  # mosquitto, victoria-metrics, fleet, bridge
    finally:
        proc.kill()
        proc.wait()
        guard.cancel()
    left = started
    for _ in range(300):  # the bridge takes a few seconds to say goodbye to its sinks
        left = processes_mentioning(str(run_dir))
        if not left:
            break
        time.sleep(0.1)
    assert left == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bands", "0"], "argument --bands: 0 is outside 1..200"),
        (["--bands", "three"], "argument --bands: expected an integer, got 'three'"),
        (["--bands", "2.5"], "argument --bands: expected an integer"),
        (["--duration", "abc"], "argument --duration: expected a number, got 'abc'"),
        (["--duration", "-5"], "argument --duration: -5 is outside"),
        (["--speed", "0"], "argument --speed: 0 is outside 0.1..1000"),
        (["--scenario", "nope"], "argument --scenario: invalid choice: 'nope'"),
        (["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
        (["--progress-every", ""], "argument --progress-every: expected a number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_chain_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    run_dir = tmp_path / "run"
    proc = run_chain(args + ["--dir", str(run_dir)], clean_env(), timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == "" and not run_dir.exists()  # nothing started


def test_chain_refuses_an_unusable_run_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_chain(["--dir", str(blocker / "run")], clean_env(), timeout=60)
    assert proc.returncode == 2
    assert f"--dir {blocker / 'run'}" in proc.stderr


def test_chain_refuses_an_unwritable_summary_file_before_it_starts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for summary, why in (
        (tmp_path / "absent" / "s.json", f"folder {tmp_path / 'absent'} does not exist"),
        (tmp_path, "is a folder, expected a file"),
        (Path("/proc/summary.json"), "cannot write"),  # a folder that takes no files, even as root
    ):
        args = ["--summary-json", str(summary), "--duration", "1", "--dir", str(run_dir)]
        proc = run_chain(args, clean_env(), timeout=60)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"simulator.chain: --summary-json {summary}: {why}")
        assert proc.stderr.count("\n") == 1  # one line, no traceback
        assert proc.stdout == ""  # nothing started


def test_the_summary_says_mosquitto_ran_when_the_run_failed_before_the_bridge(
    tmp_path: Path,
) -> None:
    # the bands failed: no bridge, so no subscriber and nothing published
    mqtt = Mosquitto(tmp_path)
    got = asyncio.run(read_back(tmp_path / "bridge.toml", tmp_path / "spool.db", mqtt, None, None))
    summary = {"reason": "error", "failed": "the bands did not start", "seconds": 1.0}
    lines = report_lines({**summary, "dir": str(tmp_path), **got, "notes": []}, 1, 20)
    mqtt_lines = [line for line in lines if "MQTT" in line]
    assert mqtt_lines == [
        f"  MQTT: mosquitto ran on {mqtt.address} (stopped with the run), but the run failed "
        "before the bridge started: nothing was published"
    ]
    assert got["mqtt"] == {"address": mqtt.address, "subscribed": False}


def test_server_binary_choice_and_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPASM_VICTORIA_METRICS_BIN", "")
    assert find_binary("victoria-metrics", "SPASM_VICTORIA_METRICS_BIN") is None
    monkeypatch.setenv("SPASM_VICTORIA_METRICS_BIN", str(tmp_path / "absent"))
    assert find_binary("victoria-metrics", "SPASM_VICTORIA_METRICS_BIN") is None
    vm = VictoriaMetrics(tmp_path)
    assert not vm.installed
    with pytest.raises(ServerError, match="victoria-metrics is not installed.*make setup"):
        vm.start()
    monkeypatch.delenv("SPASM_VICTORIA_METRICS_BIN")
    assert find_binary("victoria-metrics", "SPASM_VICTORIA_METRICS_BIN") is not None


def test_a_server_that_exits_at_once_is_reported_with_its_log(tmp_path: Path) -> None:
    vm = VictoriaMetrics(tmp_path, binary="/bin/false")
    with pytest.raises(ServerError, match="victoria-metrics exited with 1"):
        vm.start()
    assert not vm.running


def test_a_childs_log_tail_for_error_messages(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    assert log_tail(log, 3) == "(no log)"
    log.write_text("\n\n")
    assert log_tail(log, 3) == "(empty)"
    assert log_tail(log, 3, empty="(empty log)") == "(empty log)"
    log.write_text("".join(f"line {i}\n" for i in range(10)) + "\xff\n")
    assert log_tail(log, 3) == "line 8 | line 9 | \xff"
    assert log_tail(log, 2, "\n    ") == "line 9\n    \xff"
