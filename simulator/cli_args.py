"""Range-checked numbers for the simulator's command lines (argparse ``type=``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def number(text: str, lo: float, hi: float, integer: bool = False) -> Any:
    """``text`` as an int or float within lo..hi, or an ArgumentTypeError that says why."""
    try:
        v: float = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not lo <= v <= hi:
        raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
    return v


def ranged(lo: float, hi: float, integer: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for numbers within lo..hi."""
    return lambda text: number(text, lo, hi, integer)
