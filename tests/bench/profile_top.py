"""Where a process spends its time: py-spy samples, summarised by leaf function and package.

    from tests.bench.profile_top import record, summarise
    stacks = record(pid, seconds=20, out=Path("bench-results/x.folded"))
    print(summarise(stacks))

``record`` runs ``py-spy record --format raw`` (folded stacks, one "f1;f2;...;leaf N"
line per distinct stack) on a running process, without stopping it (--nonblocking).
``summarise`` gives the share of samples per leaf function (self time) and per
package any frame of the stack belongs to (inclusive time): bumble (the virtual radio's
Bluetooth stack), the bridge (host/), firmware, aiomqtt/paho, influxdb_client,
sqlite, asyncio, json.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PACKAGES = {
    "bumble (BLE stack)": ("bumble/",),
    "simulator.radio": ("simulator/radio/",),
    "bridge (host/)": ("host/",),
    "firmware (spasmband)": ("spasmband/",),
    "mqtt (aiomqtt/paho)": ("aiomqtt/", "paho/"),
    "influxdb_client": ("influxdb_client/",),
    "bleak": ("bleak/",),
    "sqlite3": ("sqlite3",),
    "json": ("json/",),
    "asyncio": ("asyncio/",),
}


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 50) -> dict[str, int]:
    """Folded stacks -> sample count (empty if py-spy is missing or may not attach)."""
    exe = py_spy()
    if exe is None:
        return {}
    cmd = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate),
           "-f", "raw", "-o", str(out), "--nonblocking"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0 or not out.exists():
        return {}
    stacks: dict[str, int] = {}
    for line in out.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks[stack] = stacks.get(stack, 0) + int(n)
    return stacks


def summarise(stacks: dict[str, int], top: int = 12) -> dict[str, list[tuple[str, float]]]:
    total = sum(stacks.values()) or 1
    leaf: Counter[str] = Counter()
    pkg: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        leaf[frames[-1]] += n
        for name, marks in PACKAGES.items():
            if any(m in f for f in frames for m in marks):
                pkg[name] += n
    return {
        "self_time_by_function": [(f, round(100 * n / total, 1)) for f, n in leaf.most_common(top)],
        "inclusive_time_by_package": [(p, round(100 * n / total, 1)) for p, n in pkg.most_common()],
        "samples": [("total", float(total))],
    }
