"""The chaos run's command line: its options and their checks, the printed report, the JSON.

A simulated day, as ``make chaos`` runs it:

    python -m tests.chaos --hours 24 --speed 60 --bands 5 --json bench-results/chaos.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.chaos.run import run_chaos
from tests.chaos.schedule import KINDS
from tests.e2e_chain import ROOT

RECOVERY_TIMEOUT_S = 180.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description=(
            "Chaos run: firmware fleet -> bridge -> mosquitto + VictoriaMetrics (real processes) "
            "under a scripted fault schedule over accelerated simulated time; every fault kind "
            f"once per round ({', '.join(KINDS)}). Oracle: every record the bands logged is in "
            "the time-series server exactly once and was seen by a deduping MQTT consumer, "
            "except those the band's overflow policy dropped, whose number must equal the "
            "band's own overflow count. Prints a table per band and per fault; exit 0 when the "
            "oracle holds, 1 when it does not, 2 for a bad command line."
        ),
    )
    p.add_argument("--bands", type=int, default=5, help="virtual bands (at least 5 for the claim)")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument(
        "--round-minutes",
        type=float,
        default=120.0,
        help="simulated minutes per round of every fault kind (default 120)",
    )
    p.add_argument("--speed", type=float, default=60.0, help="band time per wall time")
    p.add_argument("--seed", type=int, default=7, help="band ids and signals")
    p.add_argument("--scenario", default="spasms", help="signal-model scenario of the bands")
    p.add_argument("--log-segments", type=int, default=3, help="band event log segments")
    p.add_argument("--log-per-segment", type=int, default=8, help="records per segment")
    p.add_argument(
        "--records-per-min",
        type=float,
        default=3.0,
        help="expected logged records per band per simulated minute (sizes the absence "
        "that wraps the log; the run waits for the wrap itself)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=8.0,
        help="the bridge's ble.connect_timeout_s (default 8; the bridge's own default is 20)",
    )
    p.add_argument(
        "--recovery-timeout",
        type=float,
        default=RECOVERY_TIMEOUT_S,
        help=f"seconds a fault may take to recover before it counts as not recovered "
        f"(default {RECOVERY_TIMEOUT_S:g})",
    )
    p.add_argument("--json", help="write the result here (e.g. bench-results/chaos.json)")
    p.add_argument("--workdir", help="keep logs, spool and server data here (default: temporary)")
    return p


def check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if not 1 <= a.bands <= 200:
        p.error("--bands: must be 1..200")
    if not 0 < a.hours <= 48:
        p.error("--hours: must be in (0, 48]")
    if not 1 <= a.speed <= 1000:
        p.error("--speed: must be 1..1000")
    if not 0 < a.round_minutes <= a.hours * 60:
        p.error("--round-minutes: must be positive and at most the run's simulated minutes")
    if a.log_segments < 2 or a.log_per_segment < 1:
        p.error("--log-segments must be >= 2 and --log-per-segment >= 1")
    if not 1 <= a.connect_timeout <= 120:
        p.error("--connect-timeout: must be 1..120 seconds")
    if a.records_per_min <= 0:
        p.error("--records-per-min: must be positive")
    if not 10 <= a.recovery_timeout <= 3600:
        p.error("--recovery-timeout: must be 10..3600 seconds")


def report(result: dict[str, Any]) -> str:
    t = result["totals"]
    lines = [
        result["band_table"],
        "",
        result["fault_table"],
        "",
        f"records logged {t['logged']} (events {t['events']}), delivered once "
        f"{t['delivered_tsdb']}, duplicated {t['duplicated_tsdb']}, lost {t['lost']}, "
        f"dropped by the overflow policy {t['dropped_policy']} (bands' own count "
        f"{t['overflow_count']}, of which {t['overflow_delivered']} delivered before their ACK "
        f"reached the band), faults injected {result['faults_injected']}, "
        f"{result['simulated_minutes']} simulated minutes in {result['wall_seconds']} s",
    ]
    if result["problems"]:
        lines += ["PROBLEMS:"] + [f"  - {p}" for p in result["problems"]]
    else:
        lines.append("oracle: OK")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_args(p, args)
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_chaos(args, workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="spasm-chaos-") as tmp:
            result = asyncio.run(run_chaos(args, Path(tmp)))
    print(report(result))
    if args.json:
        out = Path(args.json)
        if not out.is_absolute():
            out = ROOT / out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0 if not result["problems"] else 1
