"""Patient notes: `spasm-bridge note --band B --kind medication|therapy|trigger|other --text ...`.

A note records a medication dose, a therapy session, a trigger (stress, heat,
exercise, ...) or anything else, at a time (``--at``, default now). It is kept in
the spool file, table ``notes`` (the spool's ``records`` table holds band frames
only; this module creates its own table in the same SQLite file, WAL mode, so the
running bridge and this command share the file safely), and written to InfluxDB as

    spasm_note,band=<band>,kind=<kind> id=<note id>i,text="<text>" <utc ms>

``id`` is the numeric field every server keeps; ``text`` is a string field that
InfluxDB keeps and VictoriaMetrics loses (it stores numbers only: the text becomes
0). The spool always has the text, so reports from the spool show it. Notes not yet
in InfluxDB are marked pending and sent by ``push_pending`` (the command tries
once right away when ``influx.enabled``; the bridge can retry later).

The band's own button presses ("I felt a spasm") are MARKER records: they come
through the spool's ``records`` table like events, not through this module.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from influxdb_client import Point, WritePrecision

from host.config import Config, ConfigError, check_band_id, load, parse_set
from host.spool import Spool, SpoolError

log = logging.getLogger("spasm.notes")

NOTE_KINDS = ("medication", "therapy", "trigger", "other")
NOTE_MEASUREMENT = "spasm_note"
NOTE_FIELDS = ("id", "text")  # id: integer (kept everywhere); text: string (InfluxDB only)
MAX_TEXT = 500
MAX_AHEAD_MS = 86_400_000  # a note up to a day ahead: time zones; more is a typing slip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    band TEXT NOT NULL, kind TEXT NOT NULL, utc_ms INTEGER NOT NULL, text TEXT NOT NULL,
    created_ms INTEGER NOT NULL, influx_done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS notes_band_time ON notes(band, utc_ms);
"""


class NoteError(ValueError):
    """Bad note input; the message names the option and the reason."""


@dataclass(frozen=True)
class Note:
    band: str
    kind: str
    text: str
    utc_ms: int
    id: int = 0


def check_text(text: str) -> str:
    t = text.strip()
    if not t:
        raise NoteError("--text: empty; say what was taken, done or noticed")
    if len(t) > MAX_TEXT:
        raise NoteError(f"--text: {len(t)} characters, at most {MAX_TEXT}")
    if any(ord(c) < 32 and c not in "\t" for c in t):
        raise NoteError("--text: contains control characters (newlines are not allowed)")
    return t


def parse_when(text: str, option: str, now_ms: int | None = None) -> int:
    """``now``, ``YYYY-MM-DD`` or ISO 8601 date-time (no offset = UTC) -> UTC ms."""
    if text == "now":
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000) if now_ms is None else now_ms
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise NoteError(
            f"{option}: {text!r} is not a date (YYYY-MM-DD) or ISO date-time "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM]); no offset means UTC"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if not 2020 <= when.year <= 2100:
        raise NoteError(f"{option}: {text!r} is outside 2020-2100")
    return int(when.timestamp() * 1000)


def check_not_ahead(utc_ms: int, option: str, now_ms: int | None = None) -> int:
    """``utc_ms`` unless it is more than a day in the future (a wrong year or month)."""
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000) if now_ms is None else now_ms
    if utc_ms - now > MAX_AHEAD_MS:
        when = dt.datetime.fromtimestamp(utc_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
        raise NoteError(f"{option}: {when} UTC is more than a day in the future")
    return utc_ms


class NoteStore:
    """The ``notes`` table in the spool file (created on first use)."""

    def __init__(self, spool_path: str | Path) -> None:
        self.path = Path(spool_path)
        # Opening it as a spool first refuses a damaged or foreign file with the reason,
        # and makes a new file a proper spool.
        Spool(self.path).close()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise SpoolError(f"{self.path}: cannot keep notes in this file: {e}") from None

    def close(self) -> None:
        self.db.close()

    def add(self, note: Note, created_ms: int | None = None) -> Note:
        if created_ms is None:
            created_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        cur = self.db.execute(
            "INSERT INTO notes(band, kind, utc_ms, text, created_ms) VALUES(?,?,?,?,?)",
            (note.band, note.kind, note.utc_ms, note.text, created_ms),
        )
        return Note(note.band, note.kind, note.text, note.utc_ms, int(cur.lastrowid or 0))

    def between(self, band: str, since_ms: int, until_ms: int) -> list[Note]:
        rows = self.db.execute(
            "SELECT band, kind, text, utc_ms, id FROM notes WHERE band=? AND utc_ms>=? "
            "AND utc_ms<? ORDER BY utc_ms, id",
            (band, since_ms, until_ms),
        ).fetchall()
        return [Note(*r) for r in rows]

    def bands(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT band FROM notes")}

    def pending(self, limit: int = 1000) -> list[Note]:
        rows = self.db.execute(
            "SELECT band, kind, text, utc_ms, id FROM notes WHERE influx_done=0 ORDER BY id "
            "LIMIT ?",
            (limit,),
        ).fetchall()
        return [Note(*r) for r in rows]

    def mark_written(self, ids: Sequence[int]) -> None:
        self.db.executemany("UPDATE notes SET influx_done=1 WHERE id=?", [(i,) for i in ids])


def note_point(note: Note) -> Point:
    """The InfluxDB point of a note (see the module docstring)."""
    return (
        Point(NOTE_MEASUREMENT)
        .tag("band", note.band)
        .tag("kind", note.kind)
        .field("id", note.id)
        .field("text", note.text)
        .time(note.utc_ms, WritePrecision.MS)
    )


async def push_pending(store: NoteStore, cfg: Config) -> int:
    """Write notes not yet in InfluxDB; return how many were written (raises on failure)."""
    from host.influx_sink import InfluxWriter

    notes = store.pending()
    if not notes:
        return 0
    writer = InfluxWriter(cfg.influx)
    try:
        await writer.write([note_point(n) for n in notes])
    finally:
        await writer.close()
    store.mark_written([n.id for n in notes])
    return len(notes)


async def push_forever(cfg: Config, interval_s: float = 60.0) -> None:
    """For the bridge (with influx.enabled): write pending notes every ``interval_s``."""
    store = NoteStore(cfg.spool.path)
    try:
        while True:
            try:
                n = await push_pending(store, cfg)
                if n:
                    log.info("notes: %d written to InfluxDB", n)
            except Exception as e:  # InfluxDB down: the notes stay pending, try again later
                log.warning("notes: InfluxDB write failed (%s); retrying in %g s", e, interval_s)
            await asyncio.sleep(interval_s)
    finally:
        store.close()


# ------------------------------------------------------------ command line

NOTE_HELP = """\
Record a medication dose, a therapy session, a trigger or another note for a band.
Stored in the spool file (spool.path) and, with influx.enabled, written to
InfluxDB as measurement spasm_note (tags band, kind; fields id and text).
Times: "now", YYYY-MM-DD or an ISO 8601 date-time; without an offset it is UTC.
"""


def add_note_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "note",
        parents=list(parents),
        help="record a medication, therapy, trigger or other note",
        description=NOTE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--band", required=True, help="band id (lowercase hex), e.g. a1b2c3")
    p.add_argument("--kind", required=True, choices=NOTE_KINDS, help="what the note is about")
    p.add_argument("--text", required=True, help=f"the note, one line, at most {MAX_TEXT} chars")
    p.add_argument(
        "--at", default="now", help='when it happened (default "now"; at most a day ahead)'
    )
    return p


def note_main(args: argparse.Namespace, cfg: Config | None = None) -> int:
    """Run `note`; 0 stored, 1 the spool file is unusable, 2 bad input or config."""
    try:
        if cfg is None:
            cfg = load(getattr(args, "config", None), overrides=parse_set(getattr(args, "set", [])))
        at = check_not_ahead(parse_when(args.at, "--at"), "--at")
        note = Note(check_band_id(args.band, "--band"), args.kind, check_text(args.text), at)
    except (NoteError, ConfigError) as e:
        print(f"spasm-bridge note: {e}", file=sys.stderr)
        return 2
    try:
        store = NoteStore(cfg.spool.path)
    except SpoolError as e:
        print(f"spasm-bridge note: {e}", file=sys.stderr)
        return 1
    try:
        note = store.add(note)
        print(f"note {note.id} stored for band {note.band} ({note.kind}) in {cfg.spool.path}")
        if cfg.influx.enabled:
            try:
                n = asyncio.run(push_pending(store, cfg))
                print(f"{n} note(s) written to InfluxDB")
            except Exception as e:  # the note is stored; InfluxDB gets it on a later push
                print(f"InfluxDB not reached ({e}); the note stays pending", file=sys.stderr)
    finally:
        store.close()
    return 0
