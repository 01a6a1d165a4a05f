"""Checking a spool file and recovering what can be read from a damaged one.

`spasm-bridge spool check` runs SQLite's ``PRAGMA integrity_check`` and the
spool's own schema check; `spasm-bridge spool recover` copies every readable
row into a new spool file, then moves the damaged file aside (renamed to
``<path>.damaged-<UTC time>``, with its ``-wal``/``-shm``; never deleted) and
puts the new file in its place. Stop the bridge first.

Recovery is for a damaged spool: a file that is certainly none (not SQLite, an empty
file included, or an SQLite database without any of the spool's tables: a wrong
``spool.path``) is left as it is with a SpoolError, unless ``force``. An SQLite file
too damaged to tell (its schema unreadable, a truncated file) is recovered. A spool
whose first 16 bytes are destroyed no longer says it is SQLite (nothing in it is
readable then either): ``force`` moves it aside too.

Recovery is conservative: nothing unsent may end up marked sent.

- Other tables in the file (the notes of host/notes.py) are copied the same
  way, rows keeping their ids and flags.
- Records keep their row ids, so the sinks' cursors keep their meaning. A row
  that cannot be read, or whose body does not decode, is lost and counted.
- The id counter (``sqlite_sequence``) continues above every id the old file
  used or a cursor names, so a new record never lands below a cursor.
- Sink cursors are copied when readable; when not, the sink starts from 0 and
  re-delivers what the spool holds (duplicates are harmless: InfluxDB point
  identity and MQTT consumers dedupe on band and seq).
- A band's ``contig`` (ack and replay point) is copied only when its table is
  readable and no row was lost. Otherwise it is left unknown, as in a new
  spool: on its next connect each band replays every record it still holds
  (a lost row the band had not yet seen acked comes back; rows already here
  are deduplicated). Rows lost that the band had already erased after an ACK
  are gone for good: they are counted in ``lost_rows``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.spool import SpoolError
from host.spool_schema import (
    SCHEMA,
    SCHEMA_ID,
    connect_read_only,
    decode_record,
    file_problem,
    foreign,
    schema_problem,
    table_names,
)

BLOCK = 256  # rows read per query; a failing block is retried row by row


@dataclass
class CheckResult:
    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class RecoverResult:
    path: str
    damaged_to: str
    recovered: int = 0
    lost_rows: int = 0  # ids in the old range that could not be read or decoded
    bad_bodies: int = 0
    bands: dict[str, int] = field(default_factory=dict)  # contig per band in the new file
    bands_reset: bool = False  # contig unknown: the bridge replays all each band holds
    cursors: dict[str, int] = field(default_factory=dict)
    cursors_reset: bool = False
    next_id: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check(path: str | Path, limit: int = 20) -> CheckResult:
    """SQLite's full integrity check plus the spool's schema; creates and writes nothing."""
    p = Path(path)
    res = CheckResult(str(p), False)
    problem = file_problem(p)
    if problem:
        res.problems.append(problem)
        return res
    try:
        db = connect_read_only(p)
    except sqlite3.Error as e:
        res.problems.append(f"cannot open: {e}")
        return res
    try:
        rows = db.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        if rows != [("ok",)]:
            res.problems += [str(r[0]) for r in rows]
        problem = schema_problem(db)
        if problem:
            res.problems.append(problem)
    except sqlite3.DatabaseError as e:
        res.problems.append(str(e))
    finally:
        db.close()
    res.ok = not res.problems
    return res


def refusal(path: Path) -> str | None:
    """Why ``recover`` leaves the file at ``path`` alone unless forced: it is certainly no
    spool (not SQLite, or an SQLite database that has none of the spool's tables). None
    for a spool, damaged or not, and for a file too damaged to tell (recovered)."""
    problem = file_problem(path)
    if problem:
        return problem
    try:
        db = connect_read_only(path)
    except sqlite3.Error:
        return None
    try:
        names = table_names(db)
    except sqlite3.DatabaseError:
        return None  # the schema is damaged: treat it as a damaged spool
    finally:
        db.close()
    return foreign(names)


def _try(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[Any] | None:
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.DatabaseError:
        return None


def _max_id(old: sqlite3.Connection) -> int:
    """The highest record id the old file knows of, from whatever is still readable."""
    best = 0
    for sql in (
        "SELECT seq FROM sqlite_sequence WHERE name='records'",
        "SELECT max(id) FROM records",
        "SELECT max(pos) FROM cursors",
    ):
        rows = _try(old, sql)
        if rows and rows[0][0] is not None:
            best = max(best, int(rows[0][0]))
    return best


_COLS = "id, band, rtype, logged, boot, seq, utc_ms, received_ms, body"


def _read_rows(old: sqlite3.Connection, upto: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    lo = 1
    while lo <= upto:
        hi = min(upto, lo + BLOCK - 1)
        rows = _try(
            old, f"SELECT {_COLS} FROM records WHERE id BETWEEN ? AND ? ORDER BY id", (lo, hi)
        )
        if rows is None:  # a damaged page in this block: row by row
            rows = []
            for i in range(lo, hi + 1):
                one = _try(old, f"SELECT {_COLS} FROM records WHERE id=?", (i,))
                if one:
                    rows += one
        out += rows
        lo = hi + 1
    return out


def _good(row: tuple[Any, ...]) -> bool:
    rid, band, rtype, logged, boot, seq, utc, recv, text = row
    try:
        if not (isinstance(band, str) and isinstance(text, str)):
            return False
        decode_record(band, rtype, int(utc), text)
        return all(isinstance(v, int) for v in (rid, logged, boot, seq, utc, recv))
    except (ValueError, TypeError, KeyError, json.JSONDecodeError):
        return False


@dataclass
class OldSpool:
    """What ``recover`` could read from the damaged file (None: that table unreadable)."""

    top: int = 0  # highest record id it knows of
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    bands: list[Any] | None = None
    cursors: list[Any] | None = None
    others: list[OtherTable] = field(default_factory=list)


def _read_old(p: Path, res: RecoverResult) -> OldSpool:
    if file_problem(p):  # forced: not SQLite, nothing to read (and SQLite kept off it)
        res.notes.append("not an SQLite file: nothing read from it")
        return OldSpool()
    try:
        db = connect_read_only(p)
    except sqlite3.Error as e:  # pragma: no cover - ro open fails only on a missing file
        raise OSError(f"{p}: cannot open: {e}") from None
    try:
        top = _max_id(db)
        return OldSpool(
            top,
            _read_rows(db, top) if top else [],
            _try(db, "SELECT band, contig FROM bands"),
            _try(db, "SELECT sink, pos FROM cursors"),
            _read_other_tables(db, res),
        )
    finally:
        db.close()


def recover(path: str | Path, force: bool = False) -> RecoverResult:
    """Copy what is readable into a new spool at ``path``; the damaged file is renamed.

    A file that is certainly no spool (``refusal``: a plain file, or someone else's SQLite
    database) is left alone with a SpoolError, unless ``force``: then it too is moved
    aside (never deleted) and a spool made in its place, with whatever could be read.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such spool file")
    why = refusal(p)
    if why and not force:
        raise SpoolError(
            f"{p}: {why}; `spool recover` repairs a damaged spool only and leaves this file "
            "as it is: check spool.path (--force moves the file aside, renamed, never "
            "deleted, and starts a new spool there)"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    damaged = p.with_name(f"{p.name}.damaged-{stamp}")
    new = p.with_name(f"{p.name}.recovering")
    if new.exists():
        new.unlink()  # our own leftover from an interrupted recovery, never the user's file
    res = RecoverResult(str(p), str(damaged))
    old = _read_old(p, res)
    top, rows, bands, cursors, others = old.top, old.rows, old.bands, old.cursors, old.others

    good = []
    for r in rows:
        if _good(r):
            good.append(r)
        else:
            res.bad_bodies += 1
    res.recovered = len(good)
    res.lost_rows = max(0, top - len(rows)) + res.bad_bodies

    db = sqlite3.connect(new, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        db.execute("BEGIN")
        db.execute("INSERT INTO meta(key, value) VALUES('schema', ?)", (SCHEMA_ID,))
        db.executemany(f"INSERT OR IGNORE INTO records({_COLS}) VALUES(?,?,?,?,?,?,?,?,?)", good)
        if bands is not None and res.lost_rows == 0:
            res.bands = {str(b): int(c) for b, c in bands}
        else:
            # a lost row may be one the band still holds: forget every ack point, so the
            # bridge replays all the bands still hold (what is already here is deduped)
            res.bands_reset = True
            res.notes.append(
                "rows lost or bands table unreadable: ack points reset, bands replay all they hold"
            )
        db.executemany("INSERT INTO bands(band, contig) VALUES(?, ?)", sorted(res.bands.items()))
        if cursors is not None:
            res.cursors = {str(s): int(c) for s, c in cursors}
        else:
            res.cursors_reset = True
            res.notes.append("cursors unreadable: every sink re-delivers from the start")
        db.executemany("INSERT INTO cursors(sink, pos) VALUES(?, ?)", sorted(res.cursors.items()))
        res.next_id = max([top, *res.cursors.values()]) + 1
        db.execute("DELETE FROM sqlite_sequence WHERE name='records'")
        db.execute(
            "INSERT INTO sqlite_sequence(name, seq) VALUES('records', ?)", (res.next_id - 1,)
        )
        _write_other_tables(db, others)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    _fsync(new)
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(p) + suffix)
        if src.exists():
            os.replace(src, Path(str(damaged) + suffix))
    os.replace(new, p)
    for suffix in ("-wal", "-shm"):
        leftover = Path(str(new) + suffix)
        if leftover.exists():
            leftover.unlink()  # empty after the checkpoint; belongs to the new file's old name
    _fsync(p.parent)
    return res


OWN = {"meta", "records", "bands", "cursors", "sqlite_sequence"}


@dataclass
class OtherTable:
    """A table another module keeps in the spool file (host/notes.py: notes)."""

    name: str
    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    indexes: list[str]
    top: int  # highest rowid used (for AUTOINCREMENT)


def _read_other_tables(old: sqlite3.Connection, res: RecoverResult) -> list[OtherTable]:
    """Every other table, row by row where blocks fail, like the records."""
    master = _try(old, "SELECT type, name, tbl_name, sql FROM sqlite_master") or []
    out = []
    for typ, name, _tbl, sql in master:
        if typ != "table" or name in OWN or name.startswith("sqlite_") or not sql:
            continue
        info = _try(old, f'PRAGMA table_info("{name}")') or []
        cols = [str(c[1]) for c in info]
        if not cols:
            res.notes.append(f"table {name}: columns unreadable, not recovered")
            continue
        idx = [str(r[3]) for r in master if r[0] == "index" and r[2] == name and r[3]]
        seq = _try(old, "SELECT seq FROM sqlite_sequence WHERE name=?", (name,))
        mx = _try(old, f'SELECT max(rowid) FROM "{name}"')
        top = max(int(seq[0][0]) if seq else 0, int(mx[0][0] or 0) if mx else 0)
        sel = ", ".join(f'"{c}"' for c in cols)
        rows: list[tuple[Any, ...]] = []
        lo = 1
        while lo <= top:
            hi = min(top, lo + BLOCK - 1)
            got = _try(old, f'SELECT {sel} FROM "{name}" WHERE rowid BETWEEN ? AND ?', (lo, hi))
            if got is None:
                got = []
                for i in range(lo, hi + 1):
                    got += _try(old, f'SELECT {sel} FROM "{name}" WHERE rowid=?', (i,)) or []
            rows += got
            lo = hi + 1
        out.append(OtherTable(name, str(sql), cols, rows, idx, top))
        res.notes.append(f"table {name}: {len(rows)} rows recovered")
    return out


def _write_other_tables(db: sqlite3.Connection, tables: list[OtherTable]) -> None:
    for t in tables:
        db.execute(t.sql)
        cols = ", ".join(f'"{c}"' for c in t.columns)
        marks = ", ".join("?" for _ in t.columns)
        db.executemany(f'INSERT OR IGNORE INTO "{t.name}"({cols}) VALUES({marks})', t.rows)
        for sql in t.indexes:
            db.execute(sql)
        if "AUTOINCREMENT" in t.sql.upper():
            db.execute("DELETE FROM sqlite_sequence WHERE name=?", (t.name,))
            db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES(?, ?)", (t.name, t.top))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
