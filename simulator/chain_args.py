"""The command line of `make run` (simulator/chain.py) and the default folder of a run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator.cli_args import SEED_HELP, add_scenario_option, ranged, seed

MAX_BANDS = 200


def parser(description: str | None) -> argparse.ArgumentParser:
    """The command line; ``description`` is the --help text (simulator/chain.py's docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m simulator.chain",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Servers: mosquitto and victoria-metrics from PATH or Debian's paths; "
            "$SPASM_MOSQUITTO_BIN / $SPASM_VICTORIA_METRICS_BIN choose a binary (empty = treat "
            "as not installed). Without them the run uses the embedded spool only and says so. "
            "Files (bridge.toml, logs, spool, band flash, server data) stay in --dir."
        ),
    )
    p.add_argument(
        "--bands",
        type=ranged(1, MAX_BANDS, integer=True),
        default=3,
        metavar="N",
        help=f"number of virtual bands, 1..{MAX_BANDS} (default 3)",
    )
    add_scenario_option(
        p,
        "signal-model scenario of every band (default spasms; see `spasm-sim scenarios`)",
        default="spasms",
    )
    p.add_argument(
        "--speed",
        type=ranged(0.1, 1000),
        default=20.0,
        metavar="X",
        help="band time per real time (default 20: a minute shows ~20 band-minutes)",
    )
    p.add_argument(
        "--seed", type=seed, default=1, metavar="N", help=f"{SEED_HELP}; also the band ids"
    )
    p.add_argument(
        "--duration",
        type=ranged(0, 7 * 86400),
        default=0.0,
        metavar="S",
        help="stop after this many seconds (default 0: run until Ctrl-C)",
    )
    p.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="folder for this run's files, kept (default var/run/<UTC time>)",
    )
    p.add_argument(
        "--progress-every",
        type=ranged(0.2, 3600),
        default=2.0,
        metavar="S",
        help="seconds between progress updates (default 2)",
    )
    p.add_argument(
        "--summary-json",
        type=Path,
        metavar="FILE",
        help="also write the final counts to this file (its folder must exist; checked at start)",
    )
    return p


def default_dir() -> Path:
    return Path("var/run") / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
