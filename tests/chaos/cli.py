"""The chaos run's command line: its options and their checks, the printed report, the JSON.

A simulated day, as ``make chaos`` runs it:

    python -m tests.chaos --hours 24 --speed 60 --bands 5 --json bench-results/chaos.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # as a file, the package's imports below cannot resolve
    print("start the chaos run with: python -m tests.chaos (see --help)", file=sys.stderr)
    sys.exit(2)

# the fleet's own limits: a value it refuses must fail here, not after the servers started
from simulator.cli_args import SEED_HELP, add_scenario_option, seed  # noqa: E402
from simulator.fleet import MAX_BANDS, log_shape  # noqa: E402
from simulator.scenarios import SCENARIOS  # noqa: E402
from tests.bench.cli_checks import check_output_dir, check_output_file  # noqa: E402
from tests.chaos.run import run_chaos  # noqa: E402
from tests.chaos.schedule import KINDS  # noqa: E402
from tests.e2e_chain import ROOT, SimStartError  # noqa: E402

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
    p.add_argument(
        "--bands", type=int, default=5, help=f"virtual bands, 1..{MAX_BANDS} (5 for the claim)"
    )
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument(
        "--round-minutes",
        type=float,
        default=120.0,
        help="simulated minutes per round of every fault kind (default 120)",
    )
    p.add_argument("--speed", type=float, default=60.0, help="band time per wall time")
    p.add_argument("--seed", type=seed, default=7, help=f"{SEED_HELP}; also the band ids")
    add_scenario_option(
        p,
        f"signal-model scenario of the bands: {', '.join(sorted(SCENARIOS))}",
        default="spasms",
    )
    p.add_argument("--log-segments", type=log_shape, default=3, help="band event log segments")
    p.add_argument("--log-per-segment", type=log_shape, default=8, help="records per segment")
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
    if not 1 <= a.bands <= MAX_BANDS:
        p.error(f"--bands: must be 1..{MAX_BANDS}")
    if not 0 < a.hours <= 48:
        p.error("--hours: must be in (0, 48]")
    if not 1 <= a.speed <= 1000:
        p.error("--speed: must be 1..1000")
    if not 0 < a.round_minutes <= a.hours * 60:
        p.error("--round-minutes: must be positive and at most the run's simulated minutes")
    if not 1 <= a.connect_timeout <= 120:
        p.error("--connect-timeout: must be 1..120 seconds")
    if not 0 < a.records_per_min < math.inf:
        p.error("--records-per-min: must be positive")
    if not 10 <= a.recovery_timeout <= 3600:
        p.error("--recovery-timeout: must be 10..3600 seconds")
    # after the run is too late to find these out
    if a.json:
        out = Path(a.json)
        a.json = check_output_file(p, "--json", out if out.is_absolute() else ROOT / out)
    if a.workdir:
        a.workdir = check_output_dir(p, "--workdir", Path(a.workdir))


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
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spasm-chaos-"))
    try:
        result = asyncio.run(run_chaos(args, workdir))
    except SimStartError as e:
        print(f"{p.prog}: {e}\n  files of this run kept in {workdir}", file=sys.stderr)
        return 1
    except BaseException:
        # the logs say why: a temporary workdir is kept for them
        print(f"{p.prog}: files of this run kept in {workdir}", file=sys.stderr)
        raise
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if not result["problems"] else 1
