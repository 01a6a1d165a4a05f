"""The spool file's format: its tables, its schema id, how a connection to it is set up,
and how a stored row turns back into a Record.

host/spool.py keeps records in this format; host/spool_recovery.py checks a file against
it and rebuilds a damaged file in it. A row's ``body`` is ``compact_json(body(rec))``
(host/records.py): the record's fields but band (band and type are columns).
"""

from __future__ import annotations

import json
import sqlite3
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


def prepare(db: sqlite3.Connection, max_mb: float = 0.0, check: bool = True) -> None:
    """Set up a connection to a spool file, creating the tables in a new one.

    WAL with synchronous=FULL (every commit fsyncs: host/spool.py says why),
    ``PRAGMA quick_check`` when ``check``, a size cap when ``max_mb`` > 0.
    Raises sqlite3.DatabaseError when the file is not a usable spool.
    """
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    if check:
        res = db.execute("PRAGMA quick_check(3)").fetchall()
        if res != [("ok",)]:
            raise sqlite3.DatabaseError("integrity check: " + "; ".join(r[0] for r in res))
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
