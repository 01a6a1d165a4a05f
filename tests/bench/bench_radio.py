"""Virtual radio speed benchmark (`make bench-radio`).

Starts a simulator process with echo bands (``python -m simulator.radio``) and,
from this process through bleak's public API and the virtual backend, measures:

- scan-to-found time (BleakScanner.find_device_by_address) and connect time
  (LE connection + MTU exchange + full service discovery), each repeated;
- notifications per second from the band at 20 and 244 bytes (the band sends
  as fast as its TX budget allows; counted when all have arrived here, in order);
- writes per second with and without response (20 bytes);
- the firmware fleet: N bands of ``spasm-sim run`` in one process for a few
  seconds of real time, CPU seconds per band-second (single core).

Prints a table and writes bench-results/radio.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bleak import BleakClient, BleakScanner  # noqa: E402

from protocol import gatt  # noqa: E402
from simulator.radio.client import VirtualBleakClient  # noqa: E402
from simulator.radio.control import request  # noqa: E402
from simulator.radio.host_stack import close_stacks  # noqa: E402
from simulator.radio.scanner import VirtualBleakScanner  # noqa: E402

REPEAT = 10


def start(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def ctl(port: int, **cmd: Any) -> dict[str, Any]:
    return request(port, cmd, timeout=120)


async def radio_numbers(info: dict[str, Any]) -> dict[str, float]:
    band, address = next(iter(info["bands"].items()))
    out: dict[str, float] = {}
    scan, conn = [], []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        dev = await BleakScanner.find_device_by_address(
            address, timeout=10, backend=VirtualBleakScanner
        )
        t1 = time.perf_counter()
        assert dev is not None
        c = BleakClient(dev, backend=VirtualBleakClient)
        await c.connect()
        t2 = time.perf_counter()
        await c.disconnect()
        scan.append(t1 - t0)
        conn.append(t2 - t1)
        await asyncio.sleep(0.05)
    out["scan_to_found_ms_median"] = statistics.median(scan) * 1000
    out["connect_mtu_discovery_ms_median"] = statistics.median(conn) * 1000
    out["connect_mtu_discovery_ms_max"] = max(conn) * 1000

    async with BleakClient(address, backend=VirtualBleakClient) as c:
        for size in (20, 244):
            n = 5000
            got: list[int] = []
            done = asyncio.Event()

            def on(
                _s: Any, d: bytearray, n: int = n, got: list[int] = got, done: Any = done
            ) -> None:
                got.append(struct.unpack_from("<I", d)[0])
                if len(got) == n:
                    done.set()

            await c.start_notify(gatt.SIGNAL, on)
            t0 = time.perf_counter()
            await asyncio.to_thread(
                ctl, info["control"], cmd="notify", band=band, char="signal", count=n, size=size
            )
            await asyncio.wait_for(done.wait(), 120)
            dt = time.perf_counter() - t0
            await c.stop_notify(gatt.SIGNAL)
            assert got == list(range(n)), "notifications out of order or lost"
            out[f"notify_{size}B_per_s"] = n / dt
            out[f"notify_{size}B_kbyte_per_s"] = n * size / dt / 1000
        for response in (False, True):
            n = 2000 if not response else 500
            t0 = time.perf_counter()
            for i in range(n):
                await c.write_gatt_char(gatt.CONTROL, bytes([i & 0xFF]) * 20, response=response)
            dt = time.perf_counter() - t0
            out[f"write_{'with' if response else 'without'}_response_per_s"] = n / dt
    await close_stacks()
    return out


def fleet_numbers(bands: int, seconds: float) -> dict[str, float]:
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(
        [sys.executable, "-m", "simulator.fleet", "run", "--bands", str(bands),
         "--scenario", "everything", "--duration", str(seconds), "--stats-every", "0",
         "--log-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        f"fleet_{bands}_bands_cpu_s_per_band_s": cpu / (bands * seconds),
        f"fleet_{bands}_bands_wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="bench_radio.py",
        description="Virtual radio and firmware fleet speed: prints a table and writes "
        "bench-results/radio.json.",
    ).parse_args(argv)
    proc, info = start([sys.executable, "-m", "simulator.radio", "--bands", "1"])
    os.environ["SPASM_RADIO"] = info["radio"]
    try:
        results = asyncio.run(radio_numbers(info))
    finally:
        proc.kill()
        proc.wait()
    for n in (1, 10):
        results.update(fleet_numbers(n, 10.0))
    width = max(len(k) for k in results)
    print(f"{'measure':{width}s}  value")
    for k, v in results.items():
        print(f"{k:{width}s}  {v:10.2f}")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "radio.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'radio.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
