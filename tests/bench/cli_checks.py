"""Output paths of the benchmark and chaos command lines, checked before the run.

A run takes minutes (the chaos run about 25): a path it cannot write must be an error
before it, not a traceback after. The checks are simulator/cli_args.py's (they write
for real: as root, ``os.access`` says yes to /proc/x.json); these turn them into
``p.error`` and create a file's folder first, as the runs themselves do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.cli_args import output_file_problem, output_folder_problem


def check_output_file(p: argparse.ArgumentParser, option: str, path: Path) -> Path:
    """``path`` (its folders created) if a file can be written there, else ``p.error``."""
    problem = None if path.is_dir() else output_folder_problem(path.parent)
    problem = problem or output_file_problem(path)
    if problem:
        p.error(f"{option} {path}: {problem}")
    return path


def check_output_dir(p: argparse.ArgumentParser, option: str, path: Path) -> Path:
    """``path`` (created) if files can be written in it, else ``p.error``."""
    problem = output_folder_problem(path)
    if problem:
        p.error(f"{option} {path}: {problem}")
    return path
