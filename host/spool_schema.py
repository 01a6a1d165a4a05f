"""The spool file's format: its tables, its schema id, how a connection to it is set up,
and how a stored row turns back into a Record.

host/spool.py keeps records in this format; host/spool_recovery.py checks a file against
it and rebuilds a damaged file in it. A row's ``body`` is ``compact_json(body(rec))``
(host/records.py): the record's fields but band (band and type are columns).

What is a spool file: an SQLite file (its first 16 bytes are ``SQLITE_HEADER``) that has
the spool's tables (``SPOOL_TABLES``) and ``SCHEMA_ID`` in ``meta``. A file that is not
SQLite, or SQLite without any of those tables (another program's database), is
``NotASpool``: nothing here creates tables in it or reads it as a spool.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from host.records import SPOOLED, Record

SCHEMA_ID = "spasm-spool 1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    band TEXT NOT NULL, rtype TEXT NOT NULL, logged INTEGER NOT NULL,
    boot INTEGER NOT NULL, seq INTEGER NOT NULL, utc_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS records_logged ON records(band, seq) WHERE logged = 1;
CREATE UNIQUE INDEX IF NOT EXISTS records_live ON records(band, rtype, boot, seq)
    WHERE logged = 0;
CREATE TABLE IF NOT EXISTS bands(band TEXT PRIMARY KEY, contig INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors(sink TEXT PRIMARY KEY, pos INTEGER NOT NULL);
"""

INSERT_RECORD = (
    "INSERT OR IGNORE INTO records(band, rtype, logged, boot, seq, utc_ms, received_ms, body)"
    " VALUES(?,?,?,?,?,?,?,?)"
)


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
SPOOL_TABLES = ("meta", "records", "bands", "cursors")


class NotASpool(sqlite3.DatabaseError):
    """The file is not a spool, damaged or not: not SQLite, or another program's database."""


def file_problem(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a spool, seen without opening it as SQLite; None
    when it is an SQLite file (it may still be damaged or someone else's database)."""
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a regular file"
    with path.open("rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if not head:
        return "an empty file, not an SQLite database (it holds no spool)"
    if head != SQLITE_HEADER:
        return "not an SQLite database (it does not start with the header 'SQLite format 3')"
    return None


def connect_read_only(path: Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection that only reads the SQLite file at ``path``: it creates no file.

    A file with no ``-wal`` beside it is not in use (SQLite deletes the ``-wal`` when the
    last connection closes) and holds everything: it is opened immutable, so SQLite needs
    no ``-wal``/``-shm`` and makes none. A live spool is read through the ``-wal`` and
    ``-shm`` its writer keeps (WAL readers never block the writer). Check ``file_problem``
    first: SQLite deletes a ``-wal`` it finds next to an empty file.
    """
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(
        f"{path.absolute().as_uri()}?{flags}", uri=True, check_same_thread=check_same_thread
    )


def table_names(db: sqlite3.Connection) -> set[str]:
    """The database's tables, but SQLite's own; raises sqlite3.DatabaseError if unreadable."""
    rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")}


def foreign(names: set[str]) -> str | None:
    """Why a database with tables ``names`` is not a spool, or None when it has spool tables."""
    if names & set(SPOOL_TABLES):
        return None
    held = ", ".join(sorted(names)) or "no tables"
    return (
        f"an SQLite database without the spool's schema (it holds {held}; "
        f"a spool holds {', '.join(SPOOL_TABLES)})"
    )


def schema_problem(db: sqlite3.Connection) -> str | None:
    """Why the database is not a spool of this schema, or None; reads only.

    Raises sqlite3.DatabaseError when the schema cannot be read.
    """
    names = table_names(db)
    missing = [t for t in SPOOL_TABLES if t not in names]
    if len(missing) == len(SPOOL_TABLES):
        return foreign(names)
    if missing:
        return f"spool schema incomplete: no table {', '.join(missing)}"
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None or row[0] != SCHEMA_ID:
        return f"schema {row[0] if row else None!r}, expected {SCHEMA_ID!r}"
    return None


def quick_check(db: sqlite3.Connection) -> None:
    """``PRAGMA quick_check``; raises sqlite3.DatabaseError naming what it found."""
    res = db.execute("PRAGMA quick_check(3)").fetchall()
    if res != [("ok",)]:
        raise sqlite3.DatabaseError("integrity check: " + "; ".join(r[0] for r in res))


def verify(db: sqlite3.Connection, check: bool = True) -> None:
    """Check a spool opened with ``connect_read_only``, writing nothing: that it is no
    other program's database, ``quick_check`` when ``check``, then the schema.

    Raises NotASpool for another program's database, sqlite3.DatabaseError for a
    damaged spool.
    """
    other = foreign(table_names(db))
    if other:
        raise NotASpool(other)
    if check:
        quick_check(db)
    problem = schema_problem(db)
    if problem:
        raise sqlite3.DatabaseError(problem)


def prepare(db: sqlite3.Connection, max_mb: float = 0.0, check: bool = True) -> None:
    """Set up a connection to a spool file, creating the tables in a new one.

    WAL with synchronous=FULL (every commit fsyncs: host/spool.py says why),
    ``PRAGMA quick_check`` when ``check``, a size cap when ``max_mb`` > 0.
    Raises NotASpool for another program's database (its tables are left alone),
    sqlite3.DatabaseError when the file is not a usable spool.
    """
    names = table_names(db)  # before anything writes: someone else's file stays as it is
    other = foreign(names) if names else None  # a new (empty) file becomes a spool
    if other:
        raise NotASpool(other)
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    if check:
        quick_check(db)
    if max_mb > 0:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={max(16, int(max_mb * 1048576 // page))}")
    db.executescript(SCHEMA)
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None:
        db.execute("INSERT INTO meta(key, value) VALUES('schema', ?)", (SCHEMA_ID,))
    elif row[0] != SCHEMA_ID:
        raise sqlite3.DatabaseError(f"schema {row[0]!r}, expected {SCHEMA_ID!r}")


def decode_record(band: str, rtype: str, utc_ms: int, text: str) -> Record:
    """The Record a row holds (its band, rtype, utc_ms and body columns)."""
    kw: dict[str, Any] = json.loads(text)
    samples = kw.get("samples")
    if samples is not None:
        kw["samples"] = tuple(map(tuple, samples))
    kw["utc_ms"] = utc_ms
    return SPOOLED[rtype](band=band, **kw)
