"""The long fuzz run (`make fuzz`): a million hostile inputs against the band and the decoder.

Two parts, each split over ``--workers`` processes (default 2, the machine's cores):

- control handler: the firmware's own App on a virtual board (tests/vm/fuzz_band.py)
  gets ``--inputs`` generated inputs (random bytes, noise frames, mutated commands,
  frames with a correct CRC around garbage, segments out of order), half on bonded
  links, half on unbonded ones, one fresh band per chunk of ``--chunk`` inputs. Every
  write is checked against the oracle: one ERROR of the right code, or nothing for a
  partial frame, or a real command; refused writes change nothing; flash is compared
  every 200 inputs. Any violation stops the run with the input's seed and index.
- frame decoder: ``--decode-inputs`` frames from the same generator straight into
  ``codec.decode`` and ``segmentation.Reassembler``: only FrameError may come out.

Prints inputs/s and the count of each outcome class, writes bench-results/fuzz.json,
exits 1 on the first violation.

    .venv/bin/python tests/bench/fuzz_long.py [--inputs 1000000] [--workers 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import codec, segmentation  # noqa: E402
from tests.bench.cli_checks import check_output_file  # noqa: E402
from tests.vm import fuzz_band  # noqa: E402


def control_chunk(job: tuple[int, int, bool, int]) -> dict[str, Any]:
    """Run one band through ``n`` inputs; returns counts, writes and seconds (or the failure)."""
    seed, n, secure, mtu = job
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-long-") as d:
        band = fuzz_band.FuzzBand(d, secure=secure, mtu=mtu)
        try:
            writes = fuzz_band.run(
                band, fuzz_band.Oracle(secure), fuzz_band.Gen(seed, mtu), n, counts, 200
            )
        except Exception as e:  # a violation: report the reproducer, not a traceback dump
            return {"failed": f"seed {seed} secure={secure} mtu={mtu}: {type(e).__name__}: {e}"}
        if band.app._crashed is not None or band.link.rx_dropped:
            return {"failed": f"seed {seed}: app crashed or dropped writes"}
    return {"counts": counts, "writes": writes, "inputs": n, "seconds": time.perf_counter() - t0}


class FastGen(fuzz_band.Gen):
    """The same input kinds with CPython's random bytes (the decoder part is bound by them)."""

    def __init__(self, seed: int, mtu: int) -> None:
        super().__init__(seed, mtu)
        self.rnd = random.Random(seed)

    def blob(self, n: int) -> bytes:
        return self.rnd.randbytes(n)


def decode_chunk(job: tuple[int, int]) -> dict[str, Any]:
    seed, n = job
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    gen = FastGen(seed, 247)
    reasm = segmentation.Reassembler()
    for _ in range(n):
        _kind, segs = gen.next()
        frame = b"".join(s[1:] for s in segs) if segs[0][:1] != b"" else b""
        try:
            codec.decode(frame)
            c = "ok"
        except codec.FrameError as e:
            c = fuzz_band.ERROR_NAMES[e.code]
        except Exception as e:  # the codec promises FrameError only
            return {"failed": f"decode seed {seed}: {type(e).__name__}: {e} on {frame.hex()}"}
        counts[c] = counts.get(c, 0) + 1
        for s in segs:
            try:
                reasm.feed(s)
            except codec.SegmentError:
                counts["segment_error"] = counts.get("segment_error", 0) + 1
            except Exception as e:
                return {"failed": f"reassembler seed {seed}: {type(e).__name__}: {e}"}
    return {"counts": counts, "inputs": n, "seconds": time.perf_counter() - t0}


def _merge(results: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        for k, v in r["counts"].items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--inputs", type=int, default=1_000_000, help="control-handler inputs")
    p.add_argument("--decode-inputs", type=int, default=1_000_000, help="decoder inputs")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--chunk", type=int, default=20_000, help="inputs per fresh band")
    p.add_argument("--seed", type=int, default=1, help="first seed (each chunk: seed + i)")
    p.add_argument("--out", default=str(ROOT / "bench-results" / "fuzz.json"), help="JSON file")
    a = p.parse_args(argv)
    if a.inputs < 0 or a.decode_inputs < 0 or a.workers < 1 or a.chunk < 1:
        p.error("--inputs/--decode-inputs must be >= 0, --workers and --chunk >= 1")
    out = check_output_file(p, "--out", Path(a.out))

    jobs = []
    left, i = a.inputs, 0
    while left > 0:
        n = min(a.chunk, left)
        mtu = 247 if i % 5 == 4 else 23
        jobs.append((a.seed + i, n, i % 2 == 0, mtu))
        left -= n
        i += 1
    djobs = [(a.seed + 10_000 + j, min(a.chunk * 5, a.decode_inputs - j * a.chunk * 5))
             for j in range((a.decode_inputs + a.chunk * 5 - 1) // (a.chunk * 5))]  # fmt: skip

    with multiprocessing.Pool(a.workers) as pool:
        t0 = time.perf_counter()
        ctl = pool.map(control_chunk, jobs, chunksize=1)
        t_ctl = time.perf_counter() - t0
        t0 = time.perf_counter()
        dec = pool.map(decode_chunk, djobs, chunksize=1)
        t_dec = time.perf_counter() - t0
    failed = [r["failed"] for r in ctl + dec if "failed" in r]
    for f in failed:
        print("VIOLATION:", f)
    ok_ctl = [r for r in ctl if "failed" not in r]
    ok_dec = [r for r in dec if "failed" not in r]
    n_ctl = sum(r["inputs"] for r in ok_ctl)
    n_writes = sum(r["writes"] for r in ok_ctl)
    n_dec = sum(r["inputs"] for r in ok_dec)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workers": a.workers,
        "control": {
            "inputs": n_ctl,
            "writes": n_writes,
            "seconds": round(t_ctl, 2),
            "inputs_per_s": round(n_ctl / t_ctl) if t_ctl else 0,
            "writes_per_s": round(n_writes / t_ctl) if t_ctl else 0,
            "bands": len(ok_ctl),
            "outcomes": _merge(ok_ctl),
        },
        "decoder": {
            "inputs": n_dec,
            "seconds": round(t_dec, 2),
            "inputs_per_s": round(n_dec / t_dec) if t_dec else 0,
            "outcomes": _merge(ok_dec),
        },
        "violations": failed,
    }
    print(f"{'part':<16}{'inputs':>10}{'writes':>10}{'seconds':>9}{'inputs/s':>10}")
    c, d = result["control"], result["decoder"]
    print(f"{'control handler':<16}{c['inputs']:>10}{c['writes']:>10}{c['seconds']:>9}"
          f"{c['inputs_per_s']:>10}")  # fmt: skip
    print(f"{'frame decoder':<16}{d['inputs']:>10}{'':>10}{d['seconds']:>9}{d['inputs_per_s']:>10}")
    print("\ncontrol handler outcomes (per write; 'ok' = a real command, 'refused:' = refused one)")
    for k, v in c["outcomes"].items():
        print(f"  {k:<20}{v:>10}")
    print("frame decoder outcomes (per input)")
    for k, v in d["outcomes"].items():
        print(f"  {k:<20}{v:>10}")
    print(f"violations: {len(failed)}")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
