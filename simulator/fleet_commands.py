"""The fleet's own control commands (stats, truth, press, power_cut) and their checks.

One check per command serves both times a command is judged: when the fleet carries
it out, and when ``spasm-sim run --faults FILE`` loads a schedule, whose every command
is run up front through the same FaultControl against an air that does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from simulator.radio.air import Air
from simulator.radio.control import CommandError, FaultControl


def command_band(cmd: dict[str, Any], ids: Collection[str]) -> str:
    """The ``band`` of a command, one of ``ids``; CommandError otherwise."""
    band = cmd.get("band")
    if not isinstance(band, str) or band not in ids:
        raise CommandError(f"band: unknown band id {band!r}")
    return band


def power_cut_args(cmd: dict[str, Any]) -> tuple[int, float, float]:
    """(after_bytes, off_s, wait_s) of a ``power_cut`` command, checked."""
    after = cmd.get("after_bytes", 0)
    off = cmd.get("off_s", 1.0)
    wait = cmd.get("wait_s", 30.0)
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= 1 << 20:
        raise CommandError("after_bytes: expected an integer 0..1048576")
    for key_name, v in (("off_s", off), ("wait_s", wait)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 3600:
            raise CommandError(f"{key_name}: expected seconds 0..3600")
    return after, float(off), float(wait)


# the checks of the fleet's own commands, by name (the others are FaultControl's)
FLEET_COMMANDS: dict[str, Callable[[dict[str, Any], Collection[str]], object]] = {
    "stats": lambda cmd, ids: None,
    "truth": command_band,
    "press": command_band,
    "power_cut": lambda cmd, ids: (command_band(cmd, ids), power_cut_args(cmd)),
}


def check_fleet_command(cmd: dict[str, Any], ids: Collection[str]) -> dict[str, Any] | None:
    """``{"ok": True}`` for a valid fleet command on bands ``ids``, CommandError for a bad
    one, None for a name that is not the fleet's; nothing is carried out."""
    check = FLEET_COMMANDS.get(str(cmd.get("cmd")))
    if check is None:
        return None
    check(cmd, ids)
    return {"ok": True}


class _DryAir(Air):
    """An air that takes fault commands and does nothing: to check a schedule up front
    with the very code that will carry it out."""

    def drop(self, address: str, reason: int = 0) -> int:
        return 0

    def set_refuse(self, address: str, on: bool) -> None:
        pass

    def set_delay(self, address: str, ms: float) -> None:
        pass

    def out_of_range(self, address: str, seconds: float) -> None:
        pass


def check_schedule(path: str, schedule: list[dict[str, Any]], ids: list[str]) -> None:
    """Every command of a --faults schedule as the fleet of bands ``ids`` would take it;
    CommandError naming the file, the item and the field of the first bad one."""
    control = FaultControl(
        _DryAir(), {i: i for i in ids}, lambda cmd: check_fleet_command(cmd, ids)
    )

    async def check_all() -> None:
        for i, item in enumerate(schedule):
            try:
                await control.execute({k: v for k, v in item.items() if k != "at"})
            except CommandError as e:
                raise CommandError(f"{path}: item {i}: {e}") from None

    asyncio.run(check_all())
