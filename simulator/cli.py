"""`spasm-sim`: the simulator's command line.

Subcommands are built in `build_parser()`, one function per subcommand, so
more can be added beside them (the lead adds `run` for simulated bands).

    spasm-sim scenarios                       list the scenarios
    spasm-sim record --scenario NAME --seed N --minutes M --out DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator import recording
from simulator.cli_args import SEED_HELP, add_scenario_option, output_folder_problem, seed
from simulator.scenarios import SCENARIOS, record


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < v <= 24 * 60:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1440 minutes: {text!r}")
    return v


def cmd_scenarios(args: argparse.Namespace) -> int:
    width = max(len(n) for n in SCENARIOS)
    for name, text in SCENARIOS.items():
        print(f"{name:{width}s}  {text}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    out = Path(args.out)
    problem = output_folder_problem(out)  # before a long recording is made, not after
    if problem is not None:
        print(f"spasm-sim record: --out {out}: {problem}", file=sys.stderr)
        return 2
    rec = record(args.scenario, args.seed, args.minutes)
    try:
        recording.write(rec, out)
    except OSError as e:
        print(f"spasm-sim record: cannot write {out}: {e.strerror}", file=sys.stderr)
        return 1
    spasms = sum(1 for lb in rec.labels if lb.kind in ("myoclonic", "clonic", "tonic"))
    print(
        f"wrote {out}/emg.csv ({len(rec.emg_uv)} samples at 1 kHz), acc.csv ({len(rec.acc_g)} at"
        f" 100 Hz), labels.csv ({len(rec.labels)} labels, {spasms} spasms)"
    )
    return 0


def add_scenarios_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scenarios", help="list the scenarios", description="List the scenarios.")
    p.set_defaults(func=cmd_scenarios)


def add_record_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "record",
        help="write a synthetic recording (emg.csv, acc.csv, labels.csv)",
        description=(
            "Generate a seeded synthetic recording: EMG at 1 kHz (emg.csv: t_ms,emg_uv), "
            "accelerometer at 100 Hz (acc.csv: t_ms,ax_g,ay_g,az_g) and the ground truth "
            "(labels.csv: onset_ms,offset_ms,kind). The same scenario, seed and length always "
            "give the same files. Formats: simulator/RECORDINGS.md."
        ),
    )
    add_scenario_option(p, "scenario name (see `spasm-sim scenarios`)", required=True)
    p.add_argument("--seed", required=True, type=seed, metavar="N", help=SEED_HELP)
    p.add_argument(
        "--minutes",
        required=True,
        type=_positive_float,
        help="length in minutes (0 < M <= 1440; fractions allowed)",
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.set_defaults(func=cmd_record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spasm-sim",
        description=(
            "Spasm band simulator: synthetic physiology with ground truth, "
            "and virtual bands running the firmware on a virtual radio."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_scenarios_command(sub)
    add_record_command(sub)
    from simulator.fleet import add_run_parser  # the radio stack loads only here

    add_run_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
