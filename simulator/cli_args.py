"""Checked command-line values for the simulator's command lines.

Range-checked numbers and seeds (argparse ``type=``), and output paths checked
before a run starts, so a bad one fails at once rather than after the run.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.scenarios import SCENARIOS

MAX_SEED = 2**32 - 1
SEED_HELP = f"random seed, 0..{MAX_SEED} (the same seed gives the same signals)"


def number(text: str, lo: float, hi: float, integer: bool = False) -> Any:
    """``text`` as an int or float within lo..hi, or an ArgumentTypeError that says why."""
    try:
        v: float = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not lo <= v <= hi:
        # integer bounds in full: 4294967295, not 4.29497e+09
        bounds = f"{int(lo)}..{int(hi)}" if integer else f"{lo:g}..{hi:g}"
        raise argparse.ArgumentTypeError(f"{text} is outside {bounds}")
    return v


def ranged(lo: float, hi: float, integer: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for numbers within lo..hi."""
    return lambda text: number(text, lo, hi, integer)


# numpy's seeding takes no negative numbers: refuse them here, not in a traceback
seed = ranged(0, MAX_SEED, integer=True)


def output_folder_problem(folder: Path) -> str | None:
    """Create ``folder`` (and its parents) if missing; why files cannot be written in it, or None.

    Tried for real: as root, ``os.access`` says yes where no one can write (/proc).
    """
    if folder.exists() and not folder.is_dir():
        return "exists and is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"cannot write there: {e.strerror or e}"
    return None


def output_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (its folder must exist), or None.

    Tried for real, as above; a file that did not exist is removed again (an empty
    one until the run ends would look like a broken result).
    """
    if path.is_dir():
        return "is a folder, expected a file"
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        return f"cannot write: {e.strerror or e}"
    if not existed:
        path.unlink()
    return None


def add_scenario_option(p: argparse.ArgumentParser, help: str, **kwargs: Any) -> None:
    """``--scenario NAME``, one of the signal model's scenarios (argparse lists them if not)."""
    p.add_argument("--scenario", choices=sorted(SCENARIOS), metavar="NAME", help=help, **kwargs)
