"""The child processes of `make run` (simulator/chain.py), and the bridge's config for it.

Each child starts in a session of its own (a Ctrl-C at the terminal reaches only
the chain, which stops the children in order) and is set to die with the chain
(so nothing is orphaned even if the chain is killed), with its stderr appended
to its log file. Stopping is SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from host.local_servers import Mosquitto, log_tail, pdeathsig_preexec
from simulator.chain_watch import PREFIX


class Child:
    """A child process (fleet or bridge) with its log file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, grace: float) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()

    def log_tail(self, lines: int = 6) -> str:
        return log_tail(self.log, lines, "\n    ", "(empty log)")


def child_env(radio: str | None = None) -> dict[str, str]:
    """The environment without inherited SPASM_* settings (the run's config is its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPASM_")}
    if radio:
        env["SPASM_RADIO"] = radio
    return env


async def spawn(name: str, argv: list[str], log: Path, env: dict[str, str], **kw: Any) -> Child:
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stderr=out,
            env=env,
            start_new_session=True,
            preexec_fn=pdeathsig_preexec,
            **kw,
        )
    return Child(name, proc, log)


def bridge_toml(bands: list[str], spool: Path, mqtt: Mosquitto | None, vm: Any) -> str:
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "# written by simulator/chain.py for this run",
        "[bridge]",
        'id = "make-run"',
        "stats_interval_s = 10",
        "[ble]",
        'backend = "simulator.radio.client:VirtualBleakClient"',
        'scanner_backend = "simulator.radio.scanner:VirtualBleakScanner"',
        "allow = [" + ", ".join(q(b) for b in bands) + "]",
        "backoff_max_s = 5",
        "[spool]",
        f"path = {q(str(spool))}",
        "[mqtt]",
        f"enabled = {'true' if mqtt else 'false'}",
    ]
    if mqtt:
        lines += ['host = "127.0.0.1"', f"port = {mqtt.port}", f"topic_prefix = {q(PREFIX)}"]
        lines += ["backoff_max_s = 2"]
    lines += ["[influx]", f"enabled = {'true' if vm else 'false'}"]
    if vm:
        lines += [f"url = {q(vm.url)}", "backoff_max_s = 2"]
    return "\n".join(lines) + "\n"
