"""Spool speed benchmark (`make bench-spool`).

The bridge acks a band only after the spool commit is durable (WAL,
synchronous=FULL: one fsync per commit), so commit cost bounds intake. Measures,
on this machine's disk, through AsyncSpool (the bridge's path):

- one commit per record (no batching): records/s and commit latency;
- group commit: N concurrent "sessions" each adding batches of B records;
- sink reads: records/s read after a cursor and the cursor commit, through
  AsyncSpool (the sinks' path: the newest records from memory, the cursor written
  with the next intake commit) and from the file (a sink behind the in-memory tail);
- signal chunks (10 samples, most of the traffic when streaming): group-commit
  intake and the file read.

Prints a table and writes bench-results/spool.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host.async_spool import AsyncSpool  # noqa: E402
from host.records import Event, Signal  # noqa: E402
from host.spool import Spool  # noqa: E402


def ev(band: str, seq: int) -> Event:
    return Event(
        band=band,
        seq=seq,
        boot=1,
        utc_ms=1_700_000_000_000 + seq,
        t_ms=seq,
        kind=2,
        severity=2,
        confidence=80,
        duration_ms=900,
        peak_act_x10=50,
        mean_act_x10=20,
        peak_acc_mg=300,
        freq_dhz=40,
        modalities=3,
    )


def sig(band: str, seq: int) -> Signal:
    return Signal(
        band=band,
        seq=seq,
        boot=1,
        utc_ms=1_700_000_000_000 + seq * 200,
        t_ms=seq * 200,
        rate_hz=50,
        count=10,
        samples=tuple((100 + i, 10 * i, -20, 1000) for i in range(10)),
    )


async def single(path: Path, n: int) -> dict[str, Any]:
    sp = AsyncSpool(Spool(path))
    lat = []
    t0 = time.perf_counter()
    for s in range(n):
        t = time.perf_counter()
        await sp.add([ev("b0", s)])
        lat.append(time.perf_counter() - t)
    dt = time.perf_counter() - t0
    await sp.close()
    return {
        "records_per_s": n / dt,
        "commit_ms_median": statistics.median(lat) * 1000,
        "commit_ms_p99": sorted(lat)[int(len(lat) * 0.99)] * 1000,
    }


async def grouped(
    path: Path, sessions: int, batch: int, rounds: int, make: Any = None
) -> dict[str, Any]:
    sp = AsyncSpool(Spool(path))
    make = make or ev

    async def session(i: int) -> None:
        for r in range(rounds):
            await sp.add([make(f"b{i}", r * batch + k + 1) for k in range(batch)])

    t0 = time.perf_counter()
    await asyncio.gather(*(session(i) for i in range(sessions)))
    dt = time.perf_counter() - t0
    n = sessions * batch * rounds
    await sp.close()
    return {"records_per_s": n / dt}


def reads(path: Path) -> dict[str, Any]:
    """A sink behind the in-memory tail: every read goes to the file (and decodes JSON)."""
    sp = Spool(path, tail_records=0)
    sp.register("bench")
    n = 0
    t0 = time.perf_counter()
    while True:
        rows = sp.read("bench", 500)
        if not rows:
            break
        sp.commit("bench", rows[-1][0])
        n += len(rows)
    dt = time.perf_counter() - t0
    sp.close()
    return {"records_per_s": n / dt, "records": n}


async def tail_reads(path: Path, n: int) -> dict[str, Any]:
    """The sinks' usual path: records just spooled, read through AsyncSpool, cursor moved."""
    sp = AsyncSpool(Spool(path))
    await sp.register("bench")
    await sp.add([sig("t", s) for s in range(1, n + 1)])
    got = 0
    t0 = time.perf_counter()
    while True:
        rows = await sp.read("bench", 500)
        if not rows:
            break
        await sp.commit("bench", rows[-1][0])
        got += len(rows)
    dt = time.perf_counter() - t0
    await sp.close()
    return {"records_per_s": got / dt, "records": got}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="bench_spool.py",
        description="Spool commit and read speed on this disk: prints a table and writes "
        "bench-results/spool.json.",
    ).parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        d = Path(tmp)
        out["one_commit_per_record"] = asyncio.run(single(d / "a.db", 300))
        for sessions, batch in ((1, 10), (3, 10), (10, 10), (3, 100)):
            key = f"group_{sessions}x{batch}"
            out[key] = asyncio.run(grouped(d / f"{key}.db", sessions, batch, 30))
        out["signal_group_10x10"] = asyncio.run(grouped(d / "sig.db", 10, 10, 30, sig))
        out["sink_read_from_file"] = reads(d / "group_3x100.db")
        out["signal_read_from_file"] = reads(d / "sig.db")
        out["sink_read_from_memory"] = asyncio.run(tail_reads(d / "tail.db", 5000))
    print(f"{'measure':<28} {'records/s':>10} {'commit ms (median/p99)':>24}")
    for k, v in out.items():
        if not isinstance(v, dict):
            continue
        extra = ""
        if "commit_ms_median" in v:
            extra = f"{v['commit_ms_median']:.2f} / {v['commit_ms_p99']:.2f}"
        print(f"{k:<28} {v['records_per_s']:>10.0f} {extra:>24}")
    res = ROOT / "bench-results"
    res.mkdir(exist_ok=True)
    out["machine"] = f"{os.cpu_count()} cores, shared; load average {os.getloadavg()[0]:.2f}"
    (res / "spool.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
