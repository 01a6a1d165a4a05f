"""`spasm-detect`: JSON lines, resampling, and clear errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator import recording
from simulator.detect_cli import main
from tests.detector_fixtures import EVERYTHING
from tests.detector_fixtures import recording as cached


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rec")
    recording.write(cached(*EVERYTHING), d)
    return d


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_events_and_faults_as_json_lines(rec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--emg", str(rec_dir / "emg.csv"), "--acc", str(rec_dir / "acc.csv")]) == 0
    out = _lines(capsys)
    kinds = [o["kind"] for o in out if o["type"] == "event"]
    assert {"myoclonic", "clonic", "tonic"} <= set(kinds)
    faults = [o["fault"] for o in out if o["type"] == "fault"]
    assert faults == ["lead_off", "saturation", "flatline", "acc_dropout"]
    for o in out:
        if o["type"] == "event":
            assert {"onset_ms", "offset_ms", "kind", "severity", "confidence"} <= set(o)
            assert o["offset_ms"] == o["onset_ms"] + o["duration_ms"]  # type: ignore[operator]


def test_one_file_is_enough(rec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--emg", str(rec_dir / "emg.csv")]) == 0
    emg = [o for o in _lines(capsys) if o["type"] == "event"]
    assert emg and all(o["modalities"] == 1 for o in emg)
    assert main(["--acc", str(rec_dir / "acc.csv"), "--onsets"]) == 0
    acc = _lines(capsys)
    assert [o["fault"] for o in acc if o["type"] == "fault"] == ["acc_dropout"]
    assert all(o["modalities"] == 2 for o in acc if o["type"] == "event")


def _write(path: Path, header: str, t: np.ndarray, rows: np.ndarray, fmt: str) -> None:
    body = "".join(
        f"{ti:.2f}," + ",".join(fmt % v for v in np.atleast_1d(r)) + "\n"
        for ti, r in zip(t, rows, strict=True)
    )
    path.write_text(header + "\n" + body)


def _events(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[object, object]]:
    assert main(list(argv)) == 0
    return [(o["kind"], o["onset_ms"]) for o in _lines(capsys) if o["type"] == "event"]


def test_faster_sample_rates_give_the_same_events(
    rec_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = cached(*EVERYTHING)
    # EMG at 2 kHz and acc at 200 Hz (each band sample twice, half a period apart)
    n = len(rec.emg_uv)
    _write(
        tmp_path / "emg.csv", "t_ms,emg_uv", np.arange(2 * n) / 2.0, np.repeat(rec.emg_uv, 2), "%d"
    )
    na = len(rec.acc_g)
    _write(
        tmp_path / "acc.csv",
        "t_ms,ax_g,ay_g,az_g",
        np.arange(2 * na) * 5.0,
        np.repeat(rec.acc_g, 2, axis=0),
        "%.3f",
    )
    fast = _events(capsys, "--emg", str(tmp_path / "emg.csv"), "--acc", str(tmp_path / "acc.csv"))
    native = _events(capsys, "--emg", str(rec_dir / "emg.csv"), "--acc", str(rec_dir / "acc.csv"))
    assert fast == native and len(native) >= 3


def test_slower_sample_rates_still_find_the_spasms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = cached(*EVERYTHING)
    # EMG at 500 Hz (loses the band above 250 Hz) and acc at 50 Hz, linearly interpolated
    _write(
        tmp_path / "emg.csv",
        "t_ms,emg_uv",
        np.arange(0, len(rec.emg_uv), 2.0),
        rec.emg_uv[::2],
        "%d",
    )
    _write(
        tmp_path / "acc.csv",
        "t_ms,ax_g,ay_g,az_g",
        np.arange(0, len(rec.acc_g) * 10, 20.0),
        rec.acc_g[::2],
        "%.3f",
    )
    slow = _events(capsys, "--emg", str(tmp_path / "emg.csv"), "--acc", str(tmp_path / "acc.csv"))
    kinds = {k for k, _ in slow}
    assert {"clonic", "tonic"} <= kinds
    for lb in rec.labels:
        if lb.kind in ("clonic", "tonic"):
            assert any(k == lb.kind and abs(int(t) - lb.onset_ms) < 2000 for k, t in slow), lb  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("emg.csv", "time,emg_uv\n0,1\n1,2\n", "line 1, column t_ms"),
        ("emg.csv", "t_ms,emg_uv\n0,1\n1,2\n2,zz\n", "line 4, column emg_uv"),
        ("emg.csv", "t_ms,emg_uv\n0,1\n5,2\n3,2\n", "line 4, column t_ms"),
        ("acc.csv", "t_ms,ax_g,ay_g\n0,1,1\n", "line 1, column az_g"),
        ("acc.csv", "t_ms,ax_g,ay_g,az_g\n0,0,0,1\n10,0,,1\n", "line 3, column ay_g"),
    ],
)
def test_bad_input_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, where: str
) -> None:
    p = tmp_path / name
    p.write_text(text)
    flag = "--emg" if name == "emg.csv" else "--acc"
    assert main([flag, str(p)]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and where in err


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        # a jump once allocated the whole gap (745 GiB), overflowed or printed nothing
        ("t_ms,emg_uv\n0,1\n100000000000,2\n", "line 3, column t_ms", "gap of 1e+11 ms"),
        ("t_ms,emg_uv\n0,1\n1e300,2\n", "line 3, column t_ms", "out of range"),
        ("t_ms,emg_uv\n0,1\n1e30,2\n", "line 3, column t_ms", "out of range"),
        ("t_ms,emg_uv\n0,1\n1,1\n1001.5,2\n", "line 4, column t_ms", "limit 1000 ms"),
        ("t_ms,emg_uv\n-2e13,1\n", "line 2, column t_ms", "out of range"),
    ],
)
def test_time_stamps_beyond_the_limits_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, reason: str
) -> None:
    p = tmp_path / "emg.csv"
    p.write_text(text)
    assert main(["--emg", str(p)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"spasm-detect: {p}: {where}: ")
    assert reason in captured.err and captured.err.count("\n") == 1  # one line, no traceback


def test_a_recording_over_a_day_long_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "acc.csv"
    rows = 24 * 3600 + 2  # 1 Hz, within the gap limit: only the last one is too late
    p.write_text("t_ms,ax_g,ay_g,az_g\n" + "".join(f"{i * 1000},0,0,1\n" for i in range(rows)))
    with pytest.raises(recording.RecordingError) as e:
        recording.read_acc(p)
    assert (e.value.line, e.value.column) == (rows + 1, "t_ms")
    assert "longer than 24 hours" in e.value.reason


def test_a_utf8_byte_order_mark_is_not_part_of_the_header(
    rec_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Excel's "CSV UTF-8" starts the file with one
    bom = tmp_path / "emg.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (rec_dir / "emg.csv").read_bytes())
    assert _events(capsys, "--emg", str(bom)) == _events(capsys, "--emg", str(rec_dir / "emg.csv"))


def test_missing_file_and_no_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--emg", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_console_script_help_documents_rates_and_errors() -> None:
    exe = Path(sys.executable).with_name("spasm-detect")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for words in (
        "1 kHz",
        "100 Hz",
        "interpolated",
        "averaged",
        "line N, column C",
        "1000 ms",
        "24 hours",
        "--emg",
        "--acc",
    ):
        assert words in out, words
