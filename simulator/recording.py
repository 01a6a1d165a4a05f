"""Recording files: emg.csv, acc.csv and labels.csv (see simulator/RECORDINGS.md).

Writing is for `spasm-sim record`; reading is for `spasm-detect` and the tests.
Readers check every line and raise `RecordingError` naming the file, the line
and the column of the first problem (missing column, non-numeric value,
timestamps not increasing or out of the limits below). `to_rate` brings a
signal sampled at any steady rate to the band's rate (1 kHz EMG, 100 Hz acc).
Files are UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8").
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from simulator.signal_model import Recording

EMG_COLUMNS = ("t_ms", "emg_uv")
ACC_COLUMNS = ("t_ms", "ax_g", "ay_g", "az_g")
LABEL_COLUMNS = ("onset_ms", "offset_ms", "kind")

# Time stamp limits of a signal file. Resampling fills the band's grid from the
# first time stamp to the last, so a gap is filled by interpolation (invented
# signal) and costs memory: a 1e11 ms jump would be a 745 GiB grid.
MAX_ABS_T_MS = 1e13  # ~317 years: Unix time in ms fits, float steps stay < 0.002 ms
MAX_GAP_MS = 1000.0  # between consecutive samples; longer: split the recording there
MAX_SPAN_MS = 24 * 3600 * 1000.0  # first to last sample, as `spasm-sim record`'s longest


def _sci(x: float) -> str:
    return f"{x:.0e}".replace("e+", "e")  # 1e13, not 1e+13


TIME_LIMITS = (
    f"time stamps within +-{_sci(MAX_ABS_T_MS)} ms (Unix time in ms fits), at most "
    f"{MAX_GAP_MS:.0f} ms apart, at most {MAX_SPAN_MS / 3600000:.0f} hours from first to last"
)


class RecordingError(ValueError):
    """A recording file that cannot be read; the message names file, line and column."""

    def __init__(self, path: Path | str, line: int, column: str, reason: str) -> None:
        super().__init__(f"{path}: line {line}, column {column}: {reason}")
        self.path = str(path)
        self.line = line
        self.column = column
        self.reason = reason


def write(rec: Recording, out: Path) -> None:
    """Write emg.csv, acc.csv and labels.csv for `rec` into the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "emg.csv", "w") as f:
        f.write(",".join(EMG_COLUMNS) + "\n")
        f.writelines(f"{i},{v}\n" for i, v in enumerate(rec.emg_uv.tolist()))
    with open(out / "acc.csv", "w") as f:
        f.write(",".join(ACC_COLUMNS) + "\n")
        for i, (x, y, z) in enumerate(rec.acc_g.tolist()):
            f.write(f"{i * 10},{x:.3f},{y:.3f},{z:.3f}\n")
    with open(out / "labels.csv", "w") as f:
        f.write(",".join(LABEL_COLUMNS) + "\n")
        for lb in rec.labels:
            f.write(f"{lb.onset_ms},{lb.offset_ms},{lb.kind}\n")


def _rows(path: Path, columns: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # -sig: a leading BOM is no header
    except OSError as e:
        raise RecordingError(path, 0, "-", f"cannot open: {e.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise RecordingError(path, 1, "-", "empty file (expected a header line)") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise RecordingError(path, 1, "-", f"not CSV text: {e}") from None
        for c in columns:
            if c not in header:
                raise RecordingError(
                    path, 1, c, f"missing column {c!r} (header must name {', '.join(columns)})"
                )
        rows = []
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    rows.append((reader.line_num, row))
        except (csv.Error, UnicodeDecodeError) as e:
            raise RecordingError(path, reader.line_num + 1, "-", f"not CSV text: {e}") from None
    return header, rows


def _time_problem(t: float, last_t: float, first_t: float) -> str | None:
    """Why time stamp ``t`` (after ``last_t``, in a file starting at ``first_t``) is refused."""
    if abs(t) > MAX_ABS_T_MS:
        return f"time stamp {t:g} out of range (limit +-{_sci(MAX_ABS_T_MS)} ms)"
    if t <= last_t:
        return "timestamps must increase"
    if last_t > -math.inf and t - last_t > MAX_GAP_MS:  # the first sample has no gap
        return (
            f"gap of {t - last_t:g} ms after the previous sample (limit {MAX_GAP_MS:g} ms:"
            " split the recording there)"
        )
    if t - first_t > MAX_SPAN_MS:
        return f"recording longer than {MAX_SPAN_MS / 3600000:g} hours (split it)"
    return None


def _numbers(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """The named columns as floats, shape (rows, len(columns)); time must increase."""
    header, rows = _rows(path, columns)
    idx = [header.index(c) for c in columns]
    out = np.empty((len(rows), len(columns)))
    last_t = -math.inf
    for r, (line, row) in enumerate(rows):
        for k, (i, c) in enumerate(zip(idx, columns, strict=True)):
            if i >= len(row) or not row[i].strip():
                raise RecordingError(path, line, c, "value missing")
            try:
                v = float(row[i])
            except ValueError:
                raise RecordingError(path, line, c, f"not a number: {row[i]!r}") from None
            if not math.isfinite(v):
                raise RecordingError(path, line, c, f"not a finite number: {row[i]!r}")
            out[r, k] = v
        problem = _time_problem(out[r, 0], last_t, out[0, 0])
        if problem is not None:
            raise RecordingError(path, line, columns[0], problem)
        last_t = out[r, 0]
    if len(rows) < 2:
        raise RecordingError(path, len(rows) + 1, columns[0], "need at least two samples")
    return out


def read_emg(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(t_ms, emg_uv) as float arrays."""
    a = _numbers(path, EMG_COLUMNS)
    return a[:, 0], a[:, 1]


def read_acc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(t_ms, acc_g with shape (n, 3))."""
    a = _numbers(path, ACC_COLUMNS)
    return a[:, 0], a[:, 1:]


def read_labels(path: Path) -> list[tuple[int, int, str]]:
    header, rows = _rows(path, LABEL_COLUMNS)
    idx = [header.index(c) for c in LABEL_COLUMNS]
    out = []
    for line, row in rows:
        vals = []
        for i, c in zip(idx, LABEL_COLUMNS, strict=True):
            if i >= len(row) or not row[i].strip():
                raise RecordingError(path, line, c, "value missing")
            vals.append(row[i].strip())
        try:
            t0, t1 = int(vals[0]), int(vals[1])
        except ValueError:
            raise RecordingError(
                path, line, "onset_ms", "onset and offset must be integers"
            ) from None
        if t1 < t0:
            raise RecordingError(path, line, "offset_ms", "offset before onset")
        out.append((t0, t1, vals[2]))
    return out


def source_rate(t_ms: np.ndarray) -> float:
    """Sample rate (Hz) from the median step of the timestamps."""
    return 1000.0 / float(np.median(np.diff(t_ms)))


def to_rate(t_ms: np.ndarray, values: np.ndarray, hz: int) -> np.ndarray:
    """Resample onto the grid t = 0, 1000/hz, ... ms (from the first timestamp).

    Faster sources are averaged over each output period [t, t + period) (a box
    anti-alias filter), slower or irregular ones are linearly interpolated.
    Values is (n,) or (n, k); the result has the same trailing shape.
    """
    step = 1000.0 / hz
    t = t_ms - t_ms[0]
    n_out = int(t[-1] // step) + 1
    grid = np.arange(n_out) * step
    v = values.reshape(len(values), -1).astype(float)
    src_step = float(np.median(np.diff(t)))
    if src_step < step * 0.75:
        # average all samples that fall in [grid, grid + step)
        bins = np.floor(t / step + 1e-9).astype(int)
        bins = np.clip(bins, 0, n_out - 1)
        counts = np.bincount(bins, minlength=n_out).astype(float)
        out = np.empty((n_out, v.shape[1]))
        for k in range(v.shape[1]):
            sums = np.bincount(bins, weights=v[:, k], minlength=n_out)
            interp = np.interp(grid, t, v[:, k])
            out[:, k] = np.where(counts > 0, sums / np.maximum(counts, 1), interp)
    else:
        out = np.column_stack([np.interp(grid, t, v[:, k]) for k in range(v.shape[1])])
    return out.reshape((n_out,) + values.shape[1:])
