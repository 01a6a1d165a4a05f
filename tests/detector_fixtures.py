"""Shared helpers for the detector tests: short seeded recordings and replays."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from simulator.replay import replay
from simulator.scenarios import record
from simulator.signal_model import Recording

# "everything" holds one of each spasm kind, confounder and fault; 4 minutes fit them all
EVERYTHING = ("everything", 1, 4.0)


@lru_cache(maxsize=8)
def recording(name: str, seed: int, minutes: float) -> Recording:
    return record(name, seed, minutes)


def acc_mg(rec: Recording) -> list[tuple[int, int, int]]:
    return [tuple(r) for r in np.round(rec.acc_g * 1000).astype(int).tolist()]  # type: ignore[misc]


def run(
    rec: Recording, emg: bool = True, acc: bool = True, params: dict[str, int] | None = None
) -> list[tuple[int, tuple[Any, ...]]]:
    return replay(rec.emg_uv.tolist() if emg else None, acc_mg(rec) if acc else None, params)


def events(popped: list[tuple[int, tuple[Any, ...]]], kind: str = "event") -> list[tuple[Any, ...]]:
    return [r for _, r in popped if r[0] == kind]


def overlapping(
    evs: list[tuple[Any, ...]], t0: int, t1: int, slack: int = 500
) -> list[tuple[Any, ...]]:
    return [e for e in evs if e[1] <= t1 + slack and e[1] + e[2] >= t0 - slack]
