"""The chaos run, compressed (tests/chaos): every fault kind once, five bands, real processes.

The long run is ``make chaos`` (a simulated day). Here (``make test``, and ``make
chaos-short`` for its table): 40 simulated minutes at 30x, one round of the schedule
(every fault kind once: link drop, out of range until the band's log wraps, power cut
in the middle of a flash write, REBOOT over MQTT, bridge SIGKILL, mosquitto restart,
time-series server down 6 simulated minutes, spool full), about 2 minutes of wall time,
and the exactly-once oracle over what the bands logged. Plus the oracle and the schedule
on their own, and the command line's refusals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.oracle import judge
from tests.chaos.schedule import KINDS, plan
from tests.e2e_chain import ROOT

# The same run as `make chaos-short`; the log holds 16 records, so an absence of a few
# simulated minutes wraps it.
SHORT = ["--bands", "5", "--hours", "0.67", "--round-minutes", "40", "--speed", "30",
         "--log-segments", "3", "--log-per-segment", "8", "--seed", "11"]  # fmt: skip
# Bounds on a broken run, not speed targets: it takes about 2 minutes, and a fault that
# recovers at all does so within 20 s here.
RECOVERY_S = 90
SHORT_WALL_S = 420


def test_compressed_chaos_run_delivers_every_record_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos", *SHORT, "--recovery-timeout", str(RECOVERY_S),
         "--workdir", str(tmp_path / "run"), "--json", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its group: the bridge, the fleet, the run itself
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=SHORT_WALL_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # servers die with their parent
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        stdout += f"\nHUNG: killed after {SHORT_WALL_S} s"
    wall = time.monotonic() - t0
    report = f"{stdout}\n{stderr[-3000:]}\n(logs: {tmp_path / 'run'}; {wall:.0f} s)"
    print(report)  # the tables, with -s
    assert out.exists(), report
    res = json.loads(out.read_text())
    assert res["problems"] == [] and proc.returncode == 0, report
    assert sorted(res["faults_by_kind"]) == sorted(KINDS), report
    assert all(n >= 1 for n in res["faults_by_kind"].values()), report
    assert len(res["bands"]) == 5
    t = res["totals"]
    assert (t["lost"], t["duplicated_tsdb"]) == (0, 0), report
    assert t["events"] > 0 and t["delivered_tsdb"] > 0
    for v in res["bands_verdict"]:
        # records dropped by the overflow policy, plus those the band counted although the
        # bridge had them (their ACK never reached it), are the band's own overflow count
        assert v["dropped_policy"] + v["overflow_delivered"] == v["overflow_count"], v
    assert t["overflow_count"] > 0, report  # the log wrapped for real while the band was away
    assert all(f["recovery_s"] is not None for f in res["faults"]), report
    assert res["final_recovery_s"] is not None, report


def test_schedule_has_every_fault_kind_once_per_round_and_rotates_bands() -> None:
    faults = plan(240, 120, 5, 16, 2.0)
    assert [f.kind for f in faults] == list(KINDS) * 2
    assert all(faults[i].at_min < faults[i + 1].at_min for i in range(len(faults) - 1))
    band_faults = [f.band for f in faults if f.band is not None]
    assert band_faults == [0, 1, 2, 3, 4, 0, 1, 2]
    tsdb = [f for f in faults if f.kind == "tsdb_down"]
    assert all(f.minutes >= 5 for f in tsdb)


def test_oracle_counts_and_flags() -> None:
    # band logged 1..10; 1..3 overwritten (the band counts 3); 10 still held, not acked
    tsdb = {"event": {("b1", s): [s * 1000] for s in range(4, 10)}, "marker": {}, "fault": {}}
    mqtt = {"event": {("b1", s): [s * 1000] * 2 for s in range(4, 10)}, "marker": {}, "fault": {}}
    v = judge("b1", 10, 4, 9, 3, tsdb, mqtt)
    assert v.ok, v.problems
    assert (v.dropped_policy, v.pending, v.lost, v.mqtt_extra_copies) == (3, 1, 0, 6)
    # the band counted 4: one of them had reached the bridge before its ACK got back
    v = judge("b1", 10, 4, 9, 4, tsdb, mqtt)
    assert v.ok and v.overflow_delivered == 1
    # the band says 2 were overwritten: one record vanished without being counted
    v = judge("b1", 10, 4, 9, 2, tsdb, mqtt)
    assert not v.ok and v.lost == 1 and "LOST" in v.problems[0]
    # a record stored twice (a moved stamp) and one acked but never delivered
    tsdb["event"][("b1", 5)].append(9)
    del tsdb["event"][("b1", 6)]
    v = judge("b1", 10, 4, 9, 3, tsdb, mqtt)
    assert v.duplicated_tsdb == 1
    assert any("acked by the bridge but not delivered: [6]" in p for p in v.problems)


def test_oracle_names_a_point_identity_collision() -> None:
    # seqs 5 and 6: same type, kind and stamp -> the time-series server keeps one point
    tsdb = {"event": {("b1", s): [s] for s in (1, 2, 3, 4, 6)}, "marker": {}, "fault": {}}
    mqtt = {"event": {("b1", s): [s] for s in range(1, 7)}, "marker": {}, "fault": {}}
    ident = {("b1", s): ("event", 3, 1000 + s) for s in range(1, 7)}
    ident[("b1", 5)] = ident[("b1", 6)]
    v = judge("b1", 6, 1, 6, 0, tsdb, mqtt, ident)
    assert v.lost == 1 and not v.ok
    assert any("seq 5 has the same point identity as seq [6]" in p for p in v.problems)
