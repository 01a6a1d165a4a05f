"""`spasm-detect`: run the band's own detector over a recording and print JSON lines.

See `spasm-detect --help` (the description below is that help).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator import recording
from simulator.replay import replay
from simulator.scoring import FAULT_NAMES, KIND_NAMES

DESCRIPTION = (
    """\
Run exactly the band's spasm detector (firmware/spasmband/detector.py) over a
recording and print one JSON object per line for every spasm event and every
sensor fault, in the order the band would report them.

Input files (CSV with a header line, UTF-8 with or without a byte-order mark;
extra columns are ignored):
  emg.csv  t_ms,emg_uv             surface EMG in microvolts
  acc.csv  t_ms,ax_g,ay_g,az_g     acceleration in g
Either file may be omitted (the detector then runs on one modality, with
lower confidence; without EMG it finds jerks and clonus, not tonic spasms).
Time stamps are milliseconds (fractions allowed) and must increase.
"""
    + textwrap.fill(
        f"Limits: {recording.TIME_LIMITS}. A longer gap is refused, not interpolated over"
        " (that would invent signal): split the recording at the gap.",
        width=78,
    )
    + """

Sample rates: the band samples EMG at 1 kHz and acceleration at 100 Hz. Other
rates are brought to those: the source rate is taken from the median step of
the time stamps; a faster source is averaged over each 1 ms (EMG) or 10 ms
(acc) period of the band's grid (the samples in [t, t + period)), a slower or
irregular one is linearly interpolated onto that grid. The grid starts at
each file's first time stamp;
detector times (onset_ms) count from there. EMG is rounded to whole microvolts
and acceleration to whole mg, as on the band.

Output lines:
  {"type": "event", "onset_ms", "offset_ms", "duration_ms", "kind", "severity",
   "confidence", "peak_act_x10", "mean_act_x10", "peak_acc_mg", "freq_dhz",
   "modalities"}
  {"type": "fault", "fault", "onset_ms", "offset_ms", "duration_ms"}
kind is myoclonic, clonic or tonic; fault is lead_off, saturation, flatline or
acc_dropout. With --onsets the live onset announcements are printed too. A
spasm or a fault still going on when the recording ends is reported as ending
there.

Errors (missing file or column, a value that is not a number, time stamps
going backwards or beyond the limits) are reported as FILE: line N, column C:
reason, with exit status 2.
"""
)


def _event_json(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "type": "event",
        "onset_ms": r[1],
        "offset_ms": r[1] + r[2],
        "duration_ms": r[2],
        "kind": KIND_NAMES[r[3]],
        "severity": r[4],
        "confidence": r[5],
        "peak_act_x10": r[6],
        "mean_act_x10": r[7],
        "peak_acc_mg": r[8],
        "freq_dhz": r[9],
        "modalities": r[10],
    }


def to_json(r: tuple[Any, ...], popped_ms: int) -> dict[str, Any] | None:
    if r[0] == "event":
        return _event_json(r)
    if r[0] == "fault":
        return {
            "type": "fault",
            "fault": FAULT_NAMES[r[2]],
            "onset_ms": r[1],
            "offset_ms": r[1] + r[3],
            "duration_ms": r[3],
        }
    if r[0] == "onset":
        return {
            "type": "onset",
            "onset_ms": r[1],
            "announced_ms": popped_ms,
            "confidence": r[3],
            "act_x10": r[4],
        }
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spasm-detect",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--emg", type=Path, help="EMG file (t_ms,emg_uv)")
    p.add_argument("--acc", type=Path, help="accelerometer file (t_ms,ax_g,ay_g,az_g)")
    p.add_argument("--onsets", action="store_true", help="also print live onset announcements")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.emg is None and args.acc is None:
        parser.error("give --emg, --acc or both")
    try:
        emg = acc = None
        if args.emg is not None:
            t, v = recording.read_emg(args.emg)
            emg = np.round(recording.to_rate(t, v, 1000)).astype(int)
        if args.acc is not None:
            t, v = recording.read_acc(args.acc)
            acc = np.round(recording.to_rate(t, v, 100) * 1000).astype(int)
    except recording.RecordingError as e:
        print(f"spasm-detect: {e}", file=sys.stderr)
        return 2
    popped = replay(
        emg.tolist() if emg is not None else None,
        [tuple(a) for a in acc.tolist()] if acc is not None else None,
    )
    out = sys.stdout
    for popped_ms, r in popped:
        if r[0] == "onset" and not args.onsets:
            continue
        j = to_json(r, popped_ms)
        if j is not None:
            out.write(json.dumps(j) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
