"""`spasm-bridge` command-line input: times in seconds, and a machine without BLE."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

import pytest

from host import cli, discovery
from host.discovery import Discovery


@pytest.mark.parametrize(
    "args, option",
    [
        (["scan", "--seconds", "-1"], "--seconds"),
        (["scan", "--seconds", "nan"], "--seconds"),
        (["scan", "--seconds", "0"], "--seconds"),
        (["scan", "--seconds", "inf"], "--seconds"),
        (["run", "--duration", "-1"], "--duration"),
        (["run", "--duration", "nan"], "--duration"),
        (["run", "--duration", "inf"], "--duration"),
        (["ingest", "--duration", "-5"], "--duration"),
        (["ingest", "--duration", "nan"], "--duration"),
    ],
)
def test_bad_seconds_exit_2_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    option: str,
) -> None:
    def must_not_start(*args: object) -> None:
        raise AssertionError("started with a bad time")  # and never runs for ever

    for command in ("_run", "_scan", "_ingest"):
        monkeypatch.setattr(cli, command, must_not_start)
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {args[2]} is outside" in err and "Traceback" not in err


async def test_duration_0_runs_until_stopped() -> None:
    """--duration 0 (the default) runs until a signal, as DURATION=0 elsewhere in the product."""
    forever = await cli._until_stopped(0)
    briefly = await cli._until_stopped(0.05)
    await asyncio.wait_for(briefly.wait(), 5)
    await asyncio.sleep(0.1)
    assert not forever.is_set()


class _NoBus:
    """A scanner whose start fails as bleak's does without a D-Bus system bus."""

    async def __aenter__(self) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def test_scan_without_bluez_is_one_line_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(discovery.sys, "platform", "linux")
    monkeypatch.setattr(Discovery, "_scanner", lambda self: _NoBus())
    assert cli.main(["scan", "--seconds", "0.1"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "BLE adapter is not available" in errors[0] and "D-Bus system bus" in errors[0]
    assert "Traceback" not in capsys.readouterr().err


async def test_run_without_bluez_logs_the_cause_and_keeps_retrying(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(discovery.sys, "platform", "linux")
    monkeypatch.setattr(Discovery, "_scanner", lambda self: _NoBus())
    caplog.set_level(logging.WARNING, "spasm.discovery")
    task = asyncio.create_task(Discovery([], None, lambda band, dev: None).run())
    for _ in range(100):  # bounded: at most 5 s
        if caplog.records:
            break
        await asyncio.sleep(0.05)
    assert not task.done()  # it waits out its backoff, then tries again
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    msg = caplog.records[0].getMessage()
    assert "BlueZ cannot be reached on the D-Bus system bus" in msg and "retrying in 5 s" in msg
