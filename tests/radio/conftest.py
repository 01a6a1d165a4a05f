"""Fixtures of the virtual-radio tests: one simulator process per test module
(``python -m simulator.radio``: the air plus echo bands, pointed at through
$SPASM_RADIO as the bridge is), and a fresh host stack after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.radio.host_stack import close_stacks
from tests.radio.sim import BANDS, Sim, start_sim


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    proc, info = start_sim(["--ids", ",".join(BANDS)])
    # the way a host process is pointed at the air (the bridge does the same)
    old = os.environ.get("SPASM_RADIO")
    os.environ["SPASM_RADIO"] = info["radio"]
    try:
        yield Sim(proc, info)
    finally:
        if old is None:
            os.environ.pop("SPASM_RADIO", None)
        else:
            os.environ["SPASM_RADIO"] = old
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
async def _fresh_stack() -> Any:
    yield
    await close_stacks()
