"""Run the chain under the fault schedule, time each recovery, judge with the oracle.

Real parts: the firmware fleet (simulator.fleet, time accelerated, with a small event
log) on the virtual radio, the bridge (``spasm-bridge run``) as a process, mosquitto
and VictoriaMetrics as processes. A fault is injected, held, undone; its *recovery
time* is the wall time from undoing it until every record the bands held at that
moment is on MQTT (deduping consumer) and in the time-series server.

Disk full: the bridge is restarted with ``spool.max_mb`` below the spool's current
size (SQLite's max_page_count cannot go below the file's size, so the next pages
it needs are refused with SQLITE_FULL, the same error a full disk gives), held,
then restarted without the cap. No root is needed (a small tmpfs would need one).

The command line (``python -m tests.chaos``: options, report, JSON) is tests/chaos/cli.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # as a file, the package's imports below cannot resolve
    print("start the chaos run with: python -m tests.chaos (see --help)", file=sys.stderr)
    sys.exit(2)

import aiomqtt  # noqa: E402

from host.local_servers import VictoriaMetrics  # noqa: E402
from tests.chaos.observe import (  # noqa: E402
    DedupTap,
    PersistentMosquitto,
    spool_contig,
    vm_seqs,
    vm_status_overwritten,
)
from tests.chaos.oracle import BandVerdict, as_json, band_table, fault_table, judge  # noqa: E402
from tests.chaos.schedule import KINDS, Fault, plan  # noqa: E402
from tests.e2e_chain import BridgeProc, FleetProc, write_config  # noqa: E402


def _now() -> float:
    return time.monotonic()


class ChaosRun:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.dir = workdir
        self.speed = float(args.speed)
        self.capacity = (args.log_segments - 1) * args.log_per_segment
        self.mosq = PersistentMosquitto(workdir / "mosquitto")
        self.vm = VictoriaMetrics(workdir / "victoria")
        self.fleet = FleetProc(workdir, args.bands, self.speed, args.seed, args.scenario)
        self.fleet.argv += [
            "--log-segments", str(args.log_segments),
            "--log-per-segment", str(args.log_per_segment),
        ]  # fmt: skip
        self.spool = workdir / "spool.db"
        self.bridge_log = workdir / "bridge.log"
        self.bridge: BridgeProc | None = None
        self.config = workdir / "bridge.toml"
        self.tap: DedupTap | None = None
        self.t0 = 0.0
        self.faults: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.ahead_s = args.hours * 3600 + 86400

    def say(self, text: str) -> None:
        print(f"[chaos {self.sim_min():7.1f} sim-min] {text}", flush=True)

    def sim_min(self) -> float:
        return 0.0 if not self.t0 else (_now() - self.t0) * self.speed / 60

    # ------------------------------------------------------------ the chain

    async def start(self) -> None:
        self.mosq.start()
        self.vm.start()
        await self.fleet.start()
        self.t0 = _now()
        self.tap = await DedupTap(self.mosq.port).start()
        write_config(self.config, self.fleet.bands, self.spool, self.mosq, self.vm, "chaos")
        # a connect to a band that is away (rebooting, out of range) holds the adapter, and
        # with it every other band's connect, until it times out (20 s by default): a
        # shorter one keeps the faults apart
        text = self.config.read_text()
        self.config.write_text(
            text.replace("[ble]\n", f"[ble]\nconnect_timeout_s = {self.args.connect_timeout}\n", 1)
        )
        self.start_bridge()
        await self.wait(self.all_linked, "every band linked and bonded", 120)
        self.say(f"{len(self.fleet.bands)} bands linked: {', '.join(self.fleet.bands)}")

    def start_bridge(self, *extra: str) -> None:
        self.bridge = BridgeProc(self.config, self.fleet.radio, self.bridge_log, "run", *extra)
        self.bridge.start()

    async def all_linked(self) -> bool:
        return all(s["secure"] for s in (await self.fleet.stats()).values())

    async def wait(self, cond: Any, what: str, seconds: float) -> bool:
        end = _now() + seconds
        while _now() < end:
            if await cond():
                return True
            await asyncio.sleep(0.3)
        self.problems.append(f"never happened within {seconds:g} s: {what}")
        self.say(f"TIMEOUT: {what}")
        return False

    async def caught_up(self, since: float) -> float | None:
        """Wall seconds from ``since`` until every band is linked (bonded) again and every
        record the bands had logged at ``since`` is on MQTT and in the time-series server.
        A record the band's log overwrote meanwhile is left to the oracle (it must be
        counted in the band's overflow count)."""
        assert self.tap is not None
        last = {b: s["last_seq"] for b, s in (await self.fleet.stats()).items()}
        end = _now() + self.args.recovery_timeout
        while _now() < end:
            now = await self.fleet.stats()
            want = {b: set(range(max(1, now[b]["first_seq"]), n + 1)) for b, n in last.items()}
            linked = all(s["secure"] for s in now.values())
            if linked and all(w <= self.tap.seqs(b) for b, w in want.items()):
                pts = await asyncio.to_thread(vm_seqs, self.vm, self.fleet.bands, self.ahead_s)
                got = {(b, s) for per in pts.values() for (b, s) in per}
                if all((b, s) in got for b, w in want.items() for s in w):
                    return _now() - since
            await asyncio.sleep(0.5)
        return None

    # ------------------------------------------------------------ the faults

    async def inject(self, f: Fault) -> dict[str, Any]:
        bands = self.fleet.bands
        band = bands[f.band] if f.band is not None else None
        hold = f.minutes * 60 / self.speed
        rec: dict[str, Any] = {"kind": f.kind, "sim_min": self.sim_min(), "target": band or ""}
        t = _now()
        note = ""
        if f.kind == "link_drop":
            await self.fleet.control({"cmd": "drop", "band": band})
        elif f.kind == "out_of_range":
            note = await self.out_of_range(str(band), hold)
        elif f.kind == "power_cut":
            r = await self.fleet.control(
                {"cmd": "power_cut", "band": band, "after_bytes": 7, "off_s": hold, "wait_s": 30}
            )
            note = "mid-write (torn record)" if r.get("torn") else "between writes"
        elif f.kind == "reboot":
            note = await self.reboot(str(band))
        elif f.kind == "bridge_sigkill":
            assert self.bridge is not None
            self.bridge.kill()
            await asyncio.sleep(hold)
            self.start_bridge()
        elif f.kind == "mqtt_restart":
            self.mosq.stop()
            await asyncio.sleep(hold)
            self.mosq.start()
        elif f.kind == "tsdb_down":
            self.vm.stop()
            await asyncio.sleep(hold)
            self.vm.start()
        elif f.kind == "spool_full":
            note = await self.spool_full(hold)
        rec["held_s"] = _now() - t
        rec["sim_minutes_held"] = rec["held_s"] * self.speed / 60
        restored = _now()
        rec["recovery_s"] = await self.caught_up(restored)
        if rec["recovery_s"] is None:
            self.problems.append(
                f"{f.kind} {band or ''}: not recovered in {self.args.recovery_timeout:g} s"
            )
        rec["note"] = note
        self.say(
            f"{f.kind} {band or ''} held {rec['held_s']:.1f} s, recovered in "
            f"{rec['recovery_s'] if rec['recovery_s'] is None else round(rec['recovery_s'], 1)}"
            f" s {note}"
        )
        return rec

    async def out_of_range(self, band: str, hold: float) -> str:
        """Out of range until the band logged more than its log holds (bounded), then back."""
        start = (await self.fleet.stats())[band]
        await self.fleet.control({"cmd": "out_of_range", "band": band, "seconds": 86400})

        async def wrapped() -> bool:
            # the overflow count grows when the log recycles a segment not yet acked
            s = (await self.fleet.stats())[band]
            return bool(s["overwritten"] > start["overwritten"])

        ok = await self.wait(wrapped, f"band {band} wrapped its log", max(hold, 120))
        await self.fleet.control({"cmd": "out_of_range", "band": band, "seconds": 0})
        s = (await self.fleet.stats())[band]
        return (
            f"logged {s['last_seq'] - start['last_seq']} while away (log holds {self.capacity}),"
            f" overflow {start['overwritten']}->{s['overwritten']}" + ("" if ok else " NO WRAP")
        )

    async def reboot(self, band: str) -> str:
        boots = (await self.fleet.stats())[band]["boots"]
        async with aiomqtt.Client("127.0.0.1", self.mosq.port, identifier="chaos-cmd") as c:
            await c.publish(f"spasm/v1/{band}/cmd/reboot", b"{}", qos=1)

        async def rebooted() -> bool:
            return bool((await self.fleet.stats())[band]["boots"] > boots)

        ok = await self.wait(rebooted, f"band {band} rebooted on the MQTT command", 30)
        return "REBOOT over MQTT -> bridge -> band" if ok else "band did not reboot"

    async def spool_full(self, hold: float) -> str:
        assert self.bridge is not None
        self.bridge.stop()
        mark = self.bridge_log.stat().st_size
        self.start_bridge("--set", "spool.max_mb=0.001")

        def log_since() -> str:
            with open(self.bridge_log, errors="replace") as f:
                f.seek(mark)
                return f.read()

        async def refused() -> bool:
            return "spool full" in log_since()

        full = await self.wait(refused, "the bridge reported its spool full", max(hold, 60))
        await asyncio.sleep(hold)
        stats = await self.fleet.stats()
        contig = await asyncio.to_thread(spool_contig, self.spool)
        bad = {b: (s["acked_seq"], contig.get(b, 0)) for b, s in stats.items()}
        bad = {b: v for b, v in bad.items() if v[0] > v[1]}
        text = log_since()
        # intake paused: batches refused (not stored, not acked), seen in the stats line as
        # full=1 or as dropped=spool_full:N (the flag clears whenever a small batch fits)
        paused = "full=1" in text or "spool_full:" in text
        if bad:
            self.problems.append(f"spool full: bands acked past what the spool holds: {bad}")
        if not paused:
            self.problems.append("spool full: the stats line never showed intake refused")
        self.bridge.stop()
        self.start_bridge()
        errors = [ln for ln in text.splitlines() if "spool full" in ln]
        return (
            f"{len(errors)} 'spool full' log lines, intake paused={paused}, "
            f"acked<=stored={'yes' if not bad else 'NO'}" + ("" if full else " NEVER FULL")
        )

    # ------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        a = self.args
        schedule = plan(a.hours * 60, a.round_minutes, a.bands, self.capacity, a.records_per_min)
        try:
            await self.start()  # inside: servers already started are stopped if it fails
            for f in schedule:
                wait_s = (f.at_min - self.sim_min()) * 60 / self.speed
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                self.faults.append(await self.inject(f))
            rest = (a.hours * 60 - self.sim_min()) * 60 / self.speed
            if rest > 0:
                await asyncio.sleep(rest)
            return await self.finish()
        finally:
            await self.close()

    async def finish(self) -> dict[str, Any]:
        assert self.tap is not None
        final = await self.caught_up(_now())
        if final is None:
            self.problems.append("the final records never all arrived")
        # freeze: no bridge, no acks; the bands' state now is the ground truth
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        await asyncio.sleep(1.0)
        await self.tap_settle()
        snap = await self.fleet.stats()
        pts = await asyncio.to_thread(vm_seqs, self.vm, self.fleet.bands, self.ahead_s)
        status = await asyncio.to_thread(
            vm_status_overwritten, self.vm, self.fleet.bands, self.ahead_s
        )
        verdicts: list[BandVerdict] = []
        for b, s in sorted(snap.items()):
            v = judge(
                b,
                s["last_seq"],
                s["first_seq"],
                s["acked_seq"],
                s["overwritten"],
                pts,
                self.tap.copies,
                self.tap.identity,
            )
            if status.get(b, 0) > s["overwritten"]:
                v.problems.append(f"STATUS said {status[b]} overwritten, the band {s}")
            verdicts.append(v)
        kinds = {k: sum(1 for f in self.faults if f["kind"] == k) for k in KINDS}
        recov = [f["recovery_s"] for f in self.faults if f["recovery_s"] is not None]
        return {
            "machine": "2 cores, shared",
            "command": " ".join(sys.argv),
            "bands": self.fleet.bands,
            "speed": self.speed,
            "simulated_minutes": round(self.sim_min(), 1),
            "wall_seconds": round(_now() - self.t0, 1),
            "log_capacity": self.capacity,
            "faults_injected": len(self.faults),
            "faults_by_kind": kinds,
            "faults": self.faults,
            "recovery_s_max": max(recov) if recov else None,
            "final_recovery_s": final,
            "bands_verdict": as_json(verdicts),
            "status_log_overwritten": status,
            "totals": {
                k: sum(int(getattr(v, k)) for v in verdicts)
                for k in (
                    "logged",
                    "events",
                    "delivered_tsdb",
                    "delivered_mqtt",
                    "duplicated_tsdb",
                    "mqtt_extra_copies",
                    "lost",
                    "dropped_policy",
                    "overflow_count",
                    "pending",
                    "overflow_delivered",
                )
            },  # fmt: skip
            "problems": self.problems + [f"{v.band}: {p}" for v in verdicts for p in v.problems],
            "band_table": band_table(verdicts),
            "fault_table": fault_table(self.faults),
        }

    async def tap_settle(self) -> None:
        """Let the consumer take what the broker still has queued for it (bounded)."""
        assert self.tap is not None
        before = -1
        for _ in range(20):
            n = sum(len(v) for per in self.tap.copies.values() for v in per.values())
            if n == before:
                return
            before = n
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self.bridge is not None and self.bridge.proc is not None:
            self.bridge.stop()
        if self.tap is not None:
            await self.tap.close()
        self.fleet.stop()
        self.mosq.stop()
        self.vm.stop()


async def run_chaos(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    return await ChaosRun(args, workdir).run()
