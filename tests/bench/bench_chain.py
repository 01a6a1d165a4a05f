"""Chain throughput benchmark (`make bench-chain`, part of `make bench`).

N replay bands (tests/bench/replay_band.py: the firmware app with a replayed sampler,
on the bumble virtual radio, one simulator process) stream the signal at 50 Hz plus
events; one bridge process (`spasm-bridge run`, ble.stream_rate_hz = 50) spools them
and delivers to a real mosquitto and a real VictoriaMetrics. For each N:

- intake records/s (bridge stats ``in``), points/s written to the time-series server,
  bridge CPU (cores: 1.0 = one core busy) and peak RSS, simulator CPU;
- end-to-end latency band -> time-series server: a probe polls VictoriaMetrics every
  ``--poll`` s for the newest signal points of a few bands; latency = wall time a point
  was first seen - its timestamp (the band's sample time, mapped to UTC). It includes
  the band's 200 ms chunking of the signal and up to one poll interval;
- where the latency comes from: for the signal chunks spooled in the window, the
  spool's receive time - the chunk's last sample time (``band_to_bridge_ms``: the
  band's queue and the virtual radio, not the 200 ms chunking);
- bridge throughput into the time-series server, at the largest N only: the server is
  stopped for ``--outage`` s while all N bands keep streaming, then started; the
  bridge's influx sink then works off that backlog while intake goes on, so the sink
  is the bottleneck (its backlog is its offered load). ``drain_records_per_s`` is
  records delivered / time from the first delivery after the restart until the lag is
  back under one second of intake (from the bridge's stats lines, every 0.5 s);
  ``drain_points_per_s`` = that x 10 (nearly every record is a 10-sample chunk);
- raw influxdb-client: ``spasm_signal`` lines of the same shape (band tag, four
  integer fields, ms timestamps) in batches of the bridge's influx.batch_size (1000),
  written by influxdb-client's synchronous write API into the same server right after
  the drain, while the N bands still stream through the bridge (the same background
  load the drain had): ``raw_influx_points_per_s``. The ratio is
  ``drain_points_per_s / raw_influx_points_per_s``. ``raw_idle_points_per_s`` is the
  same raw run once the bridge and the bands have stopped (the machine quieter), and
  ``bridge_to_raw_idle_ratio`` the ratio against it: the stricter reading.

At the largest N, py-spy then samples the bridge and the simulator for up to 20 s
(after the latency window: sampling costs CPU too).

Prints a table and writes bench-results/chain.json. Machine: 2 cores, shared; numbers
from one run compare with each other, not with another machine's. How each figure is
read off the chain (log lines, the probe, the spool, the raw writes):
tests/bench/chain_measures.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from host.local_servers import Mosquitto, VictoriaMetrics  # noqa: E402
from simulator.cli_args import ranged, seed  # noqa: E402
from simulator.radio.control import arequest  # noqa: E402
from tests.bench.chain_measures import (  # noqa: E402
    RAW_BATCH,
    SAMPLES_PER_CHUNK,
    LatencyProbe,
    band_to_bridge_ms,
    drain_rate,
    loop_lines,
    pct,
    raw_influx_rate,
    stats_lines,
)
from tests.bench.cli_checks import check_output_dir, check_output_file  # noqa: E402
from tests.bench.profile_top import record, summarise  # noqa: E402
from tests.bench.replay_band import MAX_BANDS, MAX_RAMP_S  # noqa: E402
from tests.e2e_chain import BridgeProc, write_config  # noqa: E402

STATS_S = 0.5  # the bridge's stats interval here: the drain is timed from its stats lines


class ReplayFleetProc:
    def __init__(self, bands: int, log: Path, seed: int, ramp: float) -> None:
        self.argv = [sys.executable, str(ROOT / "tests/bench/replay_band.py"), "--bands",
                     str(bands), "--seed", str(seed), "--ramp", str(ramp)]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.loop_late_ms = 0.0  # the simulator's worst event-loop lateness between stats
        self.gc_pause_ms = 0.0  # and its longest garbage-collector pause

    def start(self) -> None:
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True,
            )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"replay fleet exited; see {self.log}")
        self.info = json.loads(line)

    async def stats(self) -> dict[str, dict[str, Any]]:
        answer = await arequest(self.info["control"], {"cmd": "stats"}, timeout=60)
        self.loop_late_ms = float(answer.get("loop_late_ms", 0))
        self.gc_pause_ms = float(answer.get("gc_pause_ms", 0))
        return dict(answer["bands"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


async def one_load(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    d = work / f"n{n}"
    d.mkdir(parents=True)
    mosq = Mosquitto(d / "mosquitto")
    vm = VictoriaMetrics(d / "victoria")
    mosq.start()
    vm.start()
    fleet = ReplayFleetProc(n, d / "fleet.log", args.seed, args.ramp)
    bridge: BridgeProc | None = None
    res: dict[str, Any] = {"bands": n}
    try:
        t_fleet = time.monotonic()
        await asyncio.to_thread(fleet.start)
        res["fleet_start_s"] = round(time.monotonic() - t_fleet, 1)
        bands = sorted(fleet.info["bands"])
        cfg = write_config(d / "bridge.toml", bands, d / "spool.db", mosq, vm, "bench")  # type: ignore[arg-type]
        # the bridge's own reconnect backoff (1 s doubling), not the tests' quick one
        text = cfg.read_text().replace("[ble]\n", "[ble]\nstream_rate_hz = 50\n", 1)
        text = text.replace("backoff_initial_s = 0.2", "backoff_initial_s = 1.0")
        text = text.replace("stats_interval_s = 2", f"stats_interval_s = {STATS_S}")
        cfg.write_text(text.replace("backoff_max_s = 1.0", "backoff_max_s = 30.0", 1))
        bridge = BridgeProc(cfg, fleet.info["radio"], d / "bridge.log").start()
        assert bridge.proc is not None
        bp = psutil.Process(bridge.proc.pid)
        assert fleet.proc is not None
        fp = psutil.Process(fleet.proc.pid)
        # every band linked and streaming (bounded: connects are serialised)
        t_link = time.monotonic()
        deadline = t_link + 60 + (2.0 + args.ramp) * n
        streaming = best = 0
        progress = time.monotonic()
        while time.monotonic() < deadline:
            st = await fleet.stats()
            streaming = sum(1 for s in st.values() if s["streaming"] and s["secure"])
            if streaming == n:
                break
            now = time.monotonic()
            if streaming > best:
                best, progress = streaming, now
            elif min(now - progress, now - t_link - n * args.ramp) > args.link_stall:
                break  # every band has been in range a while and none was added since
            await asyncio.sleep(2)
        res["link_all_s"] = round(time.monotonic() - t_link, 1)
        res["streaming_bands"] = streaming
        await asyncio.sleep(args.settle)
        # ---- steady state
        st0 = await fleet.stats()
        c_b0, c_f0, w0 = _cpu(bp), _cpu(fp), time.monotonic()
        rss = [bp.memory_info().rss]
        probe = LatencyProbe(vm, bands[: args.probe_bands], args.poll)
        ptask = asyncio.create_task(probe.run(args.seconds))
        while not ptask.done():
            await asyncio.sleep(1)
            rss.append(bp.memory_info().rss)
        c_b1, c_f1, w1 = _cpu(bp), _cpu(fp), time.monotonic()
        res["loadavg_1m"] = round(os.getloadavg()[0], 2)  # 2 shared cores: other jobs too
        st1 = await fleet.stats()
        wall = w1 - w0
        lines = [s for s in stats_lines(bridge.log) if s[0] >= time.time() - wall - 1]
        if len(lines) >= 2:
            (ta, ia, oa, _), (tb, ib, ob, lag) = lines[0], lines[-1]
            res["records_in_per_s"] = round((ib - ia) / (tb - ta), 1)
            res["influx_records_per_s"] = round((ob - oa) / (tb - ta), 1)
            res["influx_lag_end"] = lag
        dropped = sum(st1[b]["signal_dropped"] - st0[b]["signal_dropped"] for b in bands)
        notified = sum(st1[b]["notified"] - st0[b]["notified"] for b in bands)
        res["offered_samples_per_s"] = round(n * 50.0)
        res["band_notifications_per_s"] = round(notified / wall, 1)
        # chunks the band dropped because its radio could not take them (live, lossy)
        res["band_chunks_dropped_per_s"] = round(dropped / wall, 1)
        # nearly every record is a 10-sample signal chunk (events and status are a few)
        res["delivered_samples_per_s"] = round(
            res.get("influx_records_per_s", 0) * SAMPLES_PER_CHUNK
        )
        res["bridge_cpu_cores"] = round((c_b1 - c_b0) / wall, 2)
        res["bridge_rss_mb_max"] = round(max(rss) / 1e6, 1)
        window = [x for x in loop_lines(bridge.log) if x[0] >= time.time() - wall - 1]
        res["bridge_loop_late_ms_max"] = max((x[1] for x in window), default=-1)
        res["bridge_loop_late_ms_p50"] = round(pct([float(x[1]) for x in window], 0.5))
        res["bridge_gc_pause_ms_max"] = max((x[2] for x in window), default=-1)
        res["sim_loop_late_ms_max"] = round(fleet.loop_late_ms)
        res["sim_gc_pause_ms_max"] = round(fleet.gc_pause_ms)
        res["sim_cpu_cores"] = round((c_f1 - c_f0) / wall, 2)
        res["latency_ms_p50"] = round(pct(probe.latencies_ms, 0.5))
        res["latency_ms_p99"] = round(pct(probe.latencies_ms, 0.99))
        res["latency_points"] = len(probe.latencies_ms)
        res["latency_probe"] = f"{args.probe_bands} bands, poll {args.poll} s"
        b2b = band_to_bridge_ms(d / "spool.db", time.time() - wall, time.time())
        res["band_to_bridge_ms_p50"] = round(pct(b2b, 0.5))
        res["band_to_bridge_ms_p99"] = round(pct(b2b, 0.99))
        # ---- where the time goes: py-spy after the latency window (it costs CPU too)
        if args.profile and n == max(args.bands):
            secs = min(args.seconds, 20)
            prof = [
                asyncio.to_thread(record, proc.pid, secs, d / f"{name}.folded")
                for name, proc in (("bridge", bp), ("simulator", fp))
            ]
            for name, stacks in zip(("bridge", "simulator"), await asyncio.gather(*prof),
                                    strict=True):  # fmt: skip
                res[f"profile_{name}"] = summarise(stacks)
                folded = d / f"{name}.folded"
                if args.keep and folded.exists():
                    Path(args.keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(folded, Path(args.keep) / f"{name}-{n}.folded")
        # ---- bridge throughput: the server away (intake goes on), then back: the drain
        if args.outage > 0 and n == max(args.bands):
            vm.stop()
            await asyncio.sleep(args.outage)
            t_back = time.time()
            vm.start()
            await asyncio.sleep(args.drain)
            res.update(drain_rate([s for s in stats_lines(bridge.log) if s[0] >= t_back]))
            # raw influxdb-client, same server, same line shape, the chain still running
            raw = await asyncio.to_thread(raw_influx_rate, vm.url, args.raw_seconds, RAW_BATCH, n)
            res["raw_influx_points_per_s"] = raw["points_per_s"]
            if res.get("drain_points_per_s"):
                res["bridge_to_raw_ratio"] = round(
                    res["drain_points_per_s"] / raw["points_per_s"], 2
                )
        bridge.stop()
        bridge = None
        fleet.stop()
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for log in ("bridge.log", "fleet.log"):
                shutil.copy(d / log, Path(args.keep) / f"{log[:-4]}-{n}.log")
        # ---- raw influxdb-client again, with the chain stopped (the stricter ratio)
        raw = await asyncio.to_thread(raw_influx_rate, vm.url, args.raw_seconds, RAW_BATCH, n)
        res["raw_idle_points_per_s"] = raw["points_per_s"]
        if res.get("drain_points_per_s"):
            res["bridge_to_raw_idle_ratio"] = round(
                res["drain_points_per_s"] / raw["points_per_s"], 2
            )
        return res
    finally:
        if bridge is not None:
            bridge.stop()
        fleet.stop()
        mosq.stop()
        vm.stop()


COLS = [
    ("bands", "bands"), ("load", "loadavg_1m"), ("streaming", "streaming_bands"),
    ("in rec/s", "records_in_per_s"),
    ("samples/s", "delivered_samples_per_s"), ("offered", "offered_samples_per_s"),
    ("band drops/s", "band_chunks_dropped_per_s"), ("bridge cpu", "bridge_cpu_cores"),
    ("rss MB", "bridge_rss_mb_max"), ("sim cpu", "sim_cpu_cores"),
    ("p50 ms", "latency_ms_p50"), ("p99 ms", "latency_ms_p99"),
    ("band>bridge p99", "band_to_bridge_ms_p99"), ("loop ms bridge", "bridge_loop_late_ms_max"),
    ("loop ms sim", "sim_loop_late_ms_max"), ("gc ms", "bridge_gc_pause_ms_max"),
    ("gc ms sim", "sim_gc_pause_ms_max"),
    ("drain pts/s", "drain_points_per_s"), ("raw pts/s", "raw_influx_points_per_s"),
    ("ratio", "bridge_to_raw_ratio"), ("raw idle", "raw_idle_points_per_s"),
    ("ratio idle", "bridge_to_raw_idle_ratio"),
]  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for h, _ in COLS]] + [[str(r.get(k, "-")) for _, k in COLS] for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(COLS))]
    return "\n".join("  ".join(c.rjust(x) for c, x in zip(r, w, strict=True)) for r in cells)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    # SIGTERM (from `timeout`, say) cancels the run as Ctrl-C does, so the finally blocks
    # stop the bridge, the fleet and the servers, as simulator/chain.py stops its children;
    # its default action would end this process alone and leave the bridge running
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rows = []
    with tempfile.TemporaryDirectory(prefix="spasm-bench-chain-") as tmp:
        for n in args.bands:
            print(f"--- {n} bands", flush=True)
            r = await one_load(n, args, Path(tmp))
            print(json.dumps(r), flush=True)
            rows.append(r)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bands", default="10,50,200", help="comma-separated band counts")
    p.add_argument(
        "--seconds", type=ranged(1, 3600), default=30.0, help="steady-state window per load"
    )
    p.add_argument(
        "--settle", type=ranged(0, 600), default=5.0, help="seconds after all bands stream"
    )
    p.add_argument("--poll", type=ranged(0.01, 10), default=0.2, help="latency probe poll interval")
    p.add_argument(
        "--probe-bands",
        type=ranged(1, MAX_BANDS, integer=True),
        default=3,
        help="bands the latency probe reads",
    )
    p.add_argument(
        "--outage",
        type=ranged(0, 600),
        default=20.0,
        help="time-series outage before the drain measurement, at the largest band count "
        "only (smaller loads build too small a backlog to time); 0: none",
    )
    p.add_argument("--drain", type=ranged(1, 600), default=30.0, help="seconds to watch the drain")
    p.add_argument(
        "--raw-seconds",
        type=ranged(1, 600),
        default=10.0,
        help="each raw influxdb-client run",
    )
    p.add_argument(
        "--link-stall",
        type=ranged(1, 3600),
        default=90.0,
        help="stop waiting for the last bands to stream when none was added for this long",
    )
    p.add_argument("--seed", type=seed, default=3, help="band ids")
    p.add_argument(
        "--ramp",
        type=ranged(0, MAX_RAMP_S),
        default=0.5,
        help="seconds between bands coming into range (a herd of new bands makes the "
        "bridge's serialised connects time out)",
    )
    p.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the py-spy profile of the bridge and the simulator at the largest load",
    )
    p.add_argument(
        "--keep",
        default="",
        help="copy the py-spy folded stacks and the bridge and fleet logs into this folder",
    )
    p.add_argument("--json", default="bench-results/chain.json", help="result file")
    args = p.parse_args(argv)
    try:
        args.bands = [int(x) for x in args.bands.split(",") if x.strip()]
    except ValueError:
        p.error(f"--bands: expected comma-separated integers, got {args.bands!r}")
    if not args.bands or any(not 1 <= n <= MAX_BANDS for n in args.bands):
        p.error(f"--bands: each count must be 1..{MAX_BANDS}")
    out = check_output_file(p, "--json", ROOT / args.json)
    if args.keep:
        check_output_dir(p, "--keep", Path(args.keep))
    t0 = time.time()
    try:
        rows = asyncio.run(main_async(args))
    except asyncio.CancelledError:
        print("bench_chain.py: stopped by SIGTERM; its children were stopped", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(table(rows))
    for r in rows:
        for name in ("bridge", "simulator"):
            prof = r.get(f"profile_{name}")
            if prof:
                print(f"\n{name} at {r['bands']} bands (py-spy), % of samples by package:")
                for pkg, share in prof["inclusive_time_by_package"]:
                    print(f"  {share:5.1f}  {pkg}")
                print("  self time, top functions:")
                for fn, share in prof["self_time_by_function"][:8]:
                    print(f"  {share:5.1f}  {fn}")
    out.write_text(json.dumps({
        "machine": f"{os.cpu_count()} cores, shared with other jobs",
        "command": " ".join(["python tests/bench/bench_chain.py", *(argv or sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "loadavg_at_end": os.getloadavg(),
        "rows": rows,
        "latency_note": "sample time -> first seen in VictoriaMetrics export, includes the "
        "band's 200 ms chunking and up to one poll interval; band_to_bridge: spool receive "
        "time - the chunk's last sample time",
        "ratio_note": "drain_points_per_s: the bridge's influx sink working off a backlog "
        "(server stopped --outage s, then back) while every band keeps streaming, from the "
        "first delivery until the lag is under 1 s of intake; raw_influx_points_per_s: "
        "influxdb-client synchronous writes of the same spasm_signal line shape, 1000 lines "
        "per request, into the same server right after, with the chain still running; "
        "raw_idle_points_per_s: the same with the chain stopped",
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
