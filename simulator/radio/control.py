"""Fault injection for the virtual air: commands, a JSON-lines control port, a schedule.

A command is a JSON object with ``cmd`` and its arguments; ``band`` is a band
id (``"a1b2c3"``) or ``"*"`` for every band:

    {"cmd": "bands"}                                    -> {"ok": true, "bands": {id: address}}
    {"cmd": "drop", "band": "a1b2c3"}                   link lost (supervision timeout)
    {"cmd": "refuse", "band": "a1b2c3", "on": true}     connections fail to be established
    {"cmd": "delay", "band": "a1b2c3", "ms": 200}       every ATT PDU arrives 200 ms late
    {"cmd": "out_of_range", "band": "a1b2c3", "seconds": 5}   unreachable, not advertising

The control port takes one command per line and answers one JSON line each
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). A schedule (from
a file given to ``spasm-sim run --faults``) is a JSON list of commands, each
with ``"at"``: seconds after the start. ``request`` and ``arequest`` are the
client side: one command, one answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from simulator.radio.air import Air

log = logging.getLogger(__name__)

Extra = Callable[[dict[str, Any]], Any]


class CommandError(ValueError):
    """A command that cannot be carried out; the message names the key."""


def request(port: int, cmd: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one command to the control port on loopback; its answer (ok or not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((json.dumps(cmd) + "\n").encode())
        return dict(json.loads(s.makefile("rb").readline()))


async def arequest(port: int, cmd: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """``request`` without blocking the caller's event loop."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write((json.dumps(cmd) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    return dict(json.loads(line))


def _num(cmd: dict[str, Any], name: str, lo: float, hi: float) -> float:
    if name not in cmd:
        raise CommandError(f"{name}: missing")
    v = cmd[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CommandError(f"{name}: not a number")
    if not lo <= v <= hi:
        raise CommandError(f"{name}: out of range {lo:g}..{hi:g}")
    return float(v)


class FaultControl:
    """Carries out commands on an Air whose bands are known by id."""

    def __init__(self, air: Air, bands: dict[str, str], extra: Extra | None = None) -> None:
        self.air = air
        self.bands = bands  # band id -> address key in the air (kept up to date by the owner)
        self.extra = extra  # more commands (the test band's), tried for unknown ``cmd``

    def _targets(self, cmd: dict[str, Any]) -> list[str]:
        band = cmd.get("band")
        if band == "*":
            return list(self.bands.values())
        if not isinstance(band, str):
            raise CommandError('band: missing (a band id or "*")')
        if band not in self.bands:
            raise CommandError(f"band: unknown band id {band!r}")
        return [self.bands[band]]

    async def execute(self, cmd: Any) -> dict[str, Any]:
        if not isinstance(cmd, dict):
            raise CommandError("command: not a JSON object")
        name = cmd.get("cmd")
        if name == "bands":
            return {"ok": True, "bands": dict(self.bands)}
        if name == "drop":
            n = sum(self.air.drop(a) for a in self._targets(cmd))
            return {"ok": True, "dropped": n}
        if name == "refuse":
            on = cmd.get("on", True)
            if not isinstance(on, bool):
                raise CommandError("on: not true/false")
            for a in self._targets(cmd):
                self.air.set_refuse(a, on)
            return {"ok": True}
        if name == "delay":
            ms = _num(cmd, "ms", 0, 60000)
            for a in self._targets(cmd):
                self.air.set_delay(a, ms)
            return {"ok": True}
        if name == "out_of_range":
            seconds = _num(cmd, "seconds", 0, 86400)
            for a in self._targets(cmd):
                self.air.out_of_range(a, seconds)
            return {"ok": True}
        if self.extra is not None and isinstance(name, str):
            result = self.extra(cmd)
            if asyncio.iscoroutine(result):
                result = await result
            if result is not None:
                return dict(result)
        raise CommandError(f"cmd: unknown command {name!r}")

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
        """The JSON-lines control port; ``server.sockets[0].getsockname()[1]`` is its port."""
        return await asyncio.start_server(self._client, host, port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                answer = await self.answer(line)
                writer.write((json.dumps(answer) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        try:
            cmd = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            return {"ok": False, "error": f"not JSON: {e}"}
        try:
            return await self.execute(cmd)
        except CommandError as e:
            return {"ok": False, "error": str(e)}


def load_schedule(path: str) -> list[dict[str, Any]]:
    """A fault schedule file: a JSON list of commands with ``at`` (seconds), checked."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise CommandError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CommandError(f"{path}: not JSON text (byte {e.start} is not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise CommandError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    if not isinstance(data, list):
        raise CommandError(f"{path}: expected a JSON list of commands")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("cmd"), str):
            raise CommandError(f'{path}: item {i}: expected an object with "cmd"')
        try:
            _num(item, "at", 0, 10**7)
        except CommandError as e:
            raise CommandError(f"{path}: item {i}: {e}") from None
    return data


async def run_schedule(control: FaultControl, schedule: list[dict[str, Any]]) -> None:
    """Carry out each command at its time (seconds of wall time after the call)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for item in sorted(schedule, key=lambda c: float(c["at"])):
        await asyncio.sleep(max(0.0, start + float(item["at"]) - loop.time()))
        cmd = {k: v for k, v in item.items() if k != "at"}
        try:
            result = await control.execute(cmd)
            log.info("fault %s: %s", json.dumps(cmd), result)
        except CommandError as e:
            log.error("fault %s refused: %s", json.dumps(cmd), e)
