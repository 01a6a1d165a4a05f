"""Run code inside the real MicroPython VM (the official WebAssembly port, under node).

`run(code)` runs a snippet with the band's flash image on `sys.path` (firmware/ at
/flash, protocol/ at /flash/protocol, exactly as `make flash` lays them out), plus
tests/vm at /tests and simulator/ at /lib/simulator (only its MicroPython-compatible
modules, such as the virtual board, may be imported there). It returns stdout or
raises `MicroPythonError` carrying the MicroPython traceback. The pytest plugin in
tests/conftest.py uses it to run `tests/vm/mp_test_*.py` modules in the VM, one
pytest item per `test_*` function.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("runner.mjs")
FLASH = "/flash"


class MicroPythonError(Exception):
    """Code in the VM raised: the message is the MicroPython traceback."""


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        raise RuntimeError("node is not installed: `make setup` installs the MicroPython VM")
    return exe


def run(
    code: str,
    files: list[tuple[Path, str]] | None = None,
    timeout: float = 600,
    heapsize: int = 8 * 1024 * 1024,
) -> str:
    """Run `code` in a fresh MicroPython VM and return what it printed."""
    job = {
        "trees": [
            [str(ROOT / "firmware"), FLASH],
            [str(ROOT / "protocol"), FLASH + "/protocol"],
            [str(ROOT / "tests" / "vm"), "/tests"],
            [str(ROOT / "simulator"), "/lib/simulator"],
        ],
        "files": [[str(src), dst] for src, dst in (files or [])],
        "path": [FLASH, "/tests", "/lib"],
        "code": code,
        "heapsize": heapsize,
    }
    proc = subprocess.run(
        [node(), str(RUNNER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise MicroPythonError((proc.stderr or proc.stdout).strip())
    return proc.stdout
