"""`spasm-bridge note`: kept in the spool file, written to a real VictoriaMetrics; garbage input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from host import cli, notes
from host.notes import NOTE_MEASUREMENT, Note, NoteStore, note_point
from host.spool import Spool
from tests.servers import Victoria, free_port, victoria_fixture  # noqa: F401

RECENT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
IN_3_DAYS = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()


def run(path: Path, *args: str, extra: tuple[str, ...] = ()) -> int:
    return cli.main(["note", *args, "--set", f'spool.path="{path}"', *extra])


def test_note_is_stored_in_the_spool_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    at = "2026-03-01T08:15:00+01:00"
    assert run(path, "--band", "a1b2c3", "--kind", "medication", "--text", " baclofen 10 mg ",
               "--at", at) == 0  # fmt: skip
    assert "stored for band a1b2c3" in capsys.readouterr().out
    store = NoteStore(path)
    got = store.between("a1b2c3", 0, 2**62)
    assert got == [
        Note("a1b2c3", "medication", "baclofen 10 mg",
             int(dt.datetime.fromisoformat(at).timestamp() * 1000), got[0].id)
    ]  # fmt: skip
    assert store.pending() == got  # InfluxDB is not enabled: the note waits
    store.close()
    spool = Spool(path)  # the spool still opens (quick_check, schema) with the notes table in it
    assert spool.summary()["last_id"] == 0
    spool.close()


def test_note_point_keeps_numbers_and_tags(victoria: Victoria, tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    at = RECENT.isoformat()
    url = f'influx.url="{victoria.url}"'
    rc = run(path, "--band", "0a01", "--kind", "therapy", "--text", "physio, 45 min", "--at", at,
             extra=("--set", "influx.enabled=true", "--set", url))  # fmt: skip
    assert rc == 0
    # VictoriaMetrics keeps the numeric field (id) and the tags; it loses the string field
    # text (stored as 0). InfluxDB keeps it; the spool always has it.
    series = victoria.wait_points('{__name__=~"spasm_note.*",band="0a01"}', 2)
    by_name = {s["metric"]["__name__"]: s for s in series}
    assert set(by_name) == {f"{NOTE_MEASUREMENT}_id", f"{NOTE_MEASUREMENT}_text"}
    assert by_name[f"{NOTE_MEASUREMENT}_text"]["values"] == [0]
    assert "physio" not in json.dumps(series)
    ids = by_name[f"{NOTE_MEASUREMENT}_id"]
    assert ids["metric"]["kind"] == "therapy"
    store = NoteStore(path)
    note = store.between("0a01", 0, 2**62)[0]
    assert ids["values"] == [note.id]
    assert ids["timestamps"] == [int(RECENT.timestamp() * 1000)]
    assert store.pending() == []
    store.close()
    line = note_point(note).to_line_protocol()
    assert line.startswith("spasm_note,band=0a01,kind=therapy ") and 'text="physio, 45 min"' in line


def test_influx_down_leaves_the_note_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    url = f"http://127.0.0.1:{free_port()}"
    rc = run(path, "--band", "0a02", "--kind", "trigger", "--text", "heat",
             extra=("--set", "influx.enabled=true", "--set", f'influx.url="{url}"',
                    "--set", "influx.timeout_s=2"))  # fmt: skip
    assert rc == 0
    assert "stays pending" in capsys.readouterr().err
    store = NoteStore(path)
    assert [n.text for n in store.pending()] == ["heat"]
    store.close()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--band", "a b", "--kind", "other", "--text", "x"], "--band"),
        (["--band", "", "--kind", "other", "--text", "x"], "--band"),
        (["--band", "x" * 33, "--kind", "other", "--text", "x"], "--band"),
        (["--band", "bänd", "--kind", "other", "--text", "x"], "--band"),
        # band ids on the wire are lowercase hex: a note for anything else matches no band
        (["--band", "Bob_Smith", "--kind", "other", "--text", "x"], "--band: 'Bob_Smith' is not"),
        (["--band", "A1B2C3", "--kind", "other", "--text", "x"], "--band: 'A1B2C3' is not a band"),
        (["--band", "b1", "--kind", "other", "--text", "x", "--at", IN_3_DAYS], "--at: "),
        (["--band", "b1", "--kind", "other", "--text", ""], "--text: empty"),
        (["--band", "b1", "--kind", "other", "--text", "   "], "--text: empty"),
        (["--band", "b1", "--kind", "other", "--text", "two\nlines"], "control characters"),
        (["--band", "b1", "--kind", "other", "--text", "y" * 501], "at most 500"),
        (["--band", "b1", "--kind", "other", "--text", "x", "--at", "tomorrow"], "--at"),
        (["--band", "b1", "--kind", "other", "--text", "x", "--at", "2026-02-30"], "--at"),
        (["--band", "b1", "--kind", "other", "--text", "x", "--at", "1970-01-01"], "2020-2100"),
    ],
)
def test_note_refuses_garbage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    path = tmp_path / "spool.db"
    assert run(path, *args) == 2
    assert words in capsys.readouterr().err
    assert not path.exists()  # nothing was created for a refused note


def test_note_refuses_bad_kind_and_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        run(tmp_path / "s.db", "--band", "b1", "--kind", "dessert", "--text", "x")
    assert e.value.code == 2 and "--kind" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["note", "--band", "b1", "--kind", "other"])  # no --text
    assert e.value.code == 2 and "--text" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all " * 200)
    assert run(junk, "--band", "b1", "--kind", "other", "--text", "x") == 1
    assert "junk.db" in capsys.readouterr().err
    assert run(tmp_path / "s.db", "--band", "b1", "--kind", "other", "--text", "x",
               extra=("--set", "spool.keep_hours=-1")) == 2  # fmt: skip
    assert "spool.keep_hours" in capsys.readouterr().err


def test_note_up_to_a_day_ahead_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a day of slack for time zones; beyond that --at is refused (see test_note_refuses_garbage)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)).replace(microsecond=0)
    assert run(tmp_path / "s.db", "--band", "b1", "--kind", "other", "--text", "x",
               "--at", soon.isoformat()) == 0  # fmt: skip
    assert "stored for band b1" in capsys.readouterr().out
    with pytest.raises(notes.NoteError, match="--at: .* more than a day in the future"):
        notes.check_not_ahead(1_000 + notes.MAX_AHEAD_MS + 1, "--at", now_ms=1_000)


async def test_push_forever_sends_pending_notes(victoria: Victoria, tmp_path: Path) -> None:
    import asyncio

    from host.config import load

    path = tmp_path / "spool.db"
    store = NoteStore(path)
    at = int(RECENT.timestamp() * 1000)
    store.add(Note("n3", "trigger", "stress at work", at))
    store.add(Note("n3", "other", "new band strap", at + 1000))
    cfg = load(
        None,
        env={},
        overrides={"spool": {"path": str(path)}, "influx": {"enabled": True, "url": victoria.url}},
    )
    task = asyncio.create_task(notes.push_forever(cfg, interval_s=0.2))
    for _ in range(150):  # bounded: at most 30 s
        if not store.pending():
            break
        await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.pending() == []
    store.close()
    series = victoria.wait_points('spasm_note_id{band="n3"}', 2)
    assert sorted(s["metric"]["kind"] for s in series) == ["other", "trigger"]
