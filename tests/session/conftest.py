"""Fixtures of the band-session tests: the band processes, one of each for the package.

The bands are real parts: the unmodified firmware in a ``python -m simulator.fleet
run`` process (real time, at rest; its marker button, pressed through the control
port, logs records at known wall times). Misbehaving peers, which no firmware
would be, are test bands of ``python -m simulator.radio`` told to misbehave
(simulator/radio/testband.py: never answer, hang writes, send garbage, floods and
oversized notifications). Both processes are shared by every module of the package,
so each test takes its own band of them (a band index no other test uses).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e_chain import FleetProc, TestBandProc


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetProc]:
    proc = FleetProc(tmp_path_factory.mktemp("fleet"), 9, speed=1, seed=41, scenario="rest")
    proc.launch()
    yield proc
    proc.stop()


@pytest.fixture(scope="package")
def testbands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBandProc]:
    proc = TestBandProc(tmp_path_factory.mktemp("testbands"), 4)
    proc.launch()
    for band in proc.bands:  # quiet: an echo of our own commands is garbage of its own
        proc.control_sync({"cmd": "mode", "band": band, "echo": False})
    yield proc
    proc.stop()
