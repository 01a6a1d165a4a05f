"""The detector gives exactly the same results under CPython and in the MicroPython VM.

The recording holds every kind of episode (each spasm kind, walking, typing,
lifting, a bump and a sleep turn between them, every sensor fault). The VM reads
the same recording files (emg.csv, acc.csv) with a few lines of MicroPython and
feeds the detector in the band's order:
with both sensors, and with one of them missing (rules of their own run then).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulator import recording
from simulator.detect_cli import main as detect_main
from simulator.signal_model import CONFOUNDERS, FAULTS, SPASM_KINDS
from tests import mpvm
from tests.detector_fixtures import EVERYTHING
from tests.detector_fixtures import recording as cached

VM_CODE = """
from spasmband.detector import Detector

EMG = %s
ACC = %s

def column_ints(path, scale):
    out = []
    f = open(path)
    f.readline()
    for line in f:
        parts = line.strip().split(",")
        for p in parts[1:]:
            out.append(int(round(float(p) * scale)))
    f.close()
    return out

emg = column_ints("/data/emg.csv", 1) if EMG else []
acc = column_ints("/data/acc.csv", 1000) if ACC else []
det = Detector(emg=EMG, acc=ACC)
if EMG and ACC:
    frames = min(len(emg) // 10, len(acc) // 3)
else:
    frames = len(emg) // 10 if EMG else len(acc) // 3
for f in range(frames):
    if EMG:
        det.emg_samples(emg, f * 10, f * 10 + 10)
    if ACC:
        det.acc(acc[3 * f], acc[3 * f + 1], acc[3 * f + 2])
    r = det.pop()
    while r is not None:
        print(repr(((f + 1) * 10, r)))
        r = det.pop()
det.finish()
r = det.pop()
while r is not None:
    print(repr((frames * 10, r)))
    r = det.pop()
"""

MODES = {"emg only": (True, False), "acc only": (False, True)}


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("everything")
    recording.write(cached(*EVERYTHING), d)
    return d


def _in_vm(rec_dir: Path, emg: bool, acc: bool) -> list[tuple[int, tuple[object, ...]]]:
    """What the detector popped inside the MicroPython VM, with the time it popped."""
    out = mpvm.run(
        VM_CODE % (emg, acc),
        files=[(rec_dir / "emg.csv", "/data/emg.csv"), (rec_dir / "acc.csv", "/data/acc.csv")],
    )
    return [ast.literal_eval(line) for line in out.splitlines() if line.startswith("(")]


@pytest.fixture(scope="module")
def vm_results(rec_dir: Path) -> list[tuple[int, tuple[object, ...]]]:
    return _in_vm(rec_dir, True, True)


def test_recording_has_every_kind_of_episode() -> None:
    kinds = {lb.kind for lb in cached(*EVERYTHING).labels}
    assert set(SPASM_KINDS) <= kinds and set(FAULTS) <= kinds
    assert set(CONFOUNDERS) - {"rest", "sleep"} <= kinds


def _on_host(rec_dir: Path, emg: bool, acc: bool) -> list[tuple[int, tuple[object, ...]]]:
    from simulator.replay import replay

    emg_v = recording.read_emg(rec_dir / "emg.csv")[1] if emg else None
    acc_v = recording.read_acc(rec_dir / "acc.csv")[1] if acc else None
    return replay(
        [int(v) for v in emg_v] if emg_v is not None else None,
        [tuple(int(round(x * 1000)) for x in row) for row in acc_v] if acc_v is not None else None,
    )


def test_same_results_in_cpython_and_micropython(
    rec_dir: Path, vm_results: list[tuple[int, tuple[object, ...]]]
) -> None:
    host = _on_host(rec_dir, True, True)
    assert vm_results == host
    kinds = {r[3] for _, r in host if r[0] == "event"}
    faults = {r[2] for _, r in host if r[0] == "fault"}
    assert len(host) > 8
    assert kinds == {1, 2, 3} and faults == {1, 2, 3, 4}


@pytest.mark.parametrize("mode", ["emg only", "acc only"])
def test_same_results_with_one_sensor(rec_dir: Path, mode: str) -> None:
    emg, acc = MODES[mode]
    host = _on_host(rec_dir, emg, acc)
    assert _in_vm(rec_dir, emg, acc) == host
    events = [r for _, r in host if r[0] == "event"]
    faults = {r[2] for _, r in host if r[0] == "fault"}
    # each mode finds spasms and reports only its own sensor's faults
    assert events, mode
    assert faults == ({1, 2, 3} if emg else {4}), (mode, faults)


def test_spasm_detect_prints_the_same_events(
    rec_dir: Path,
    vm_results: list[tuple[int, tuple[object, ...]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert detect_main(["--emg", str(rec_dir / "emg.csv"), "--acc", str(rec_dir / "acc.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    vm_events = [r for _, r in vm_results if r[0] != "onset"]
    assert len(lines) == len(vm_events)
    for line, r in zip(lines, vm_events, strict=True):
        assert f'"onset_ms": {r[1]}' in line
