"""The durable spool: SQLite in WAL mode on disk, between the band links and the sinks.

Every record a band sends (event, onset, marker, fault, status, signal chunk) is
inserted once. Logged records (event, marker, fault) are deduplicated on
(band, seq); live ones on (band, type, boot, seq). ``bands.contig`` is, per band,
the highest logged seq below which nothing is missing: it is what the bridge acks
and replays from, and it keeps dedupe working after old rows are pruned.

Durability: journal_mode=WAL with synchronous=FULL. In WAL mode NORMAL survives a
process crash (SIGKILL) but a power cut can lose the last commits; since an ACK
lets the band erase the record from flash, the commit an ACK follows must survive
power loss too, so every commit fsyncs the WAL. Commits are batched (one per
intake batch across all bands) to amortise the fsync.

Each sink has a cursor (the last row id it confirmed); rows are pruned only when
every active sink has passed them and they are older than ``keep_hours``.
A full disk (or ``max_mb``) raises SpoolFull and stores nothing of that batch.

Speed (bench-results/spool.json, chain.json): the sinks read what was just
spooled, so the spool keeps the newest ``tail_records`` inserted records in
memory (every row above ``_tail_floor`` is there, in id order) and serves a sink
whose cursor is inside that tail without SQL or JSON. A sink's cursor moves in
memory at once and reaches the file with the next intake commit (or within
``CURSOR_FLUSH_S`` when intake is idle): a cursor is not what an ACK depends on,
so it needs no fsync of its own; after a crash a sink re-sends at most the
records of that last second (at-least-once, idempotent ends). Asyncio code uses
it through host/async_spool.py; the file's tables, schema id, connection setup and
row decoding are in host/spool_schema.py.
"""

from __future__ import annotations

import bisect
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.records import Record, body, compact_json
from host.spool_schema import (
    INSERT_RECORD,
    NotASpool,
    connect_read_only,
    decode_record,
    file_problem,
    prepare,
    verify,
)


class SpoolError(RuntimeError):
    """The spool file cannot be used (corrupt, not a spool, unreadable)."""


class SpoolFull(SpoolError):
    """The disk (or spool.max_mb) is full: nothing of the batch was stored."""


@dataclass
class AddResult:
    inserted: int = 0
    duplicates: int = 0
    contig: dict[str, int] = field(default_factory=dict)  # per band in the batch


def now_ms() -> int:
    return int(time.time() * 1000)


TAIL_RECORDS = 8192  # newest records kept in memory for the sinks (about 2 KB each)
CURSOR_FLUSH_S = 1.0  # a moved cursor reaches the file at the latest this long after


class Spool:
    """Synchronous spool on one SQLite connection (use from one thread at a time).

    The in-memory tail and cursors are guarded by a lock, so ``read_tail``,
    ``advance`` and ``lag`` may also be called from another thread.
    """

    def __init__(
        self,
        path: str | Path,
        keep_hours: float = 24.0,
        max_mb: float = 0.0,
        check: bool = True,
        tail_records: int = TAIL_RECORDS,
        read_only: bool = False,
    ) -> None:
        """Open the spool at ``path``, a new file becoming an empty spool.

        ``read_only`` (`spasm-bridge status`) opens an existing spool to read it, also
        while a bridge writes it, and creates and writes nothing (spool_schema.py,
        ``connect_read_only``); a missing file, one that is not SQLite or one without the
        spool's tables is refused. Raises SpoolError naming the path and the reason.
        """
        self.path = Path(path)
        self.keep_ms = int(keep_hours * 3600_000)
        self.tail_records = max(0, tail_records)
        self._lock = threading.Lock()
        self._tail_ids: list[int] = []
        self._tail_recs: list[Record] = []
        self._cursors: dict[str, int] = {}  # sink -> row id, as known in memory
        self._dirty: dict[str, int] = {}  # cursors moved in memory, not yet in the file
        self.db = self._connect(read_only)
        try:
            if read_only:
                verify(self.db, check)
            else:
                prepare(self.db, max_mb, check)
            self._last_id = self._db_last_id()
        except NotASpool as e:
            self.db.close()
            raise SpoolError(f"{self.path}: not a spool file: {e}; check spool.path") from None
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise SpoolError(
                f"{self.path}: not a usable spool database ({e}); `spasm-bridge spool recover` "
                f"copies what is readable into a new spool and keeps this file renamed "
                f"(records not yet acked stay on the bands)"
            ) from None
        # every row with an id above the floor is in the tail
        self._tail_floor = self._last_id

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        if read_only:
            problem = file_problem(self.path)  # before SQLite touches the file
            if problem:
                raise SpoolError(f"{self.path}: not a spool file: {problem}; check spool.path")
        try:
            if read_only:
                return connect_read_only(self.path, check_same_thread=False)
            return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise SpoolError(f"{self.path}: cannot open the spool: {e}") from None

    def close(self) -> None:
        try:
            self.flush_cursors()
        except SpoolError:
            pass  # the file is gone or full: the sinks re-send from the last stored cursor
        self.db.close()

    # ------------------------------------------------------------ intake

    def contig(self, band: str) -> int:
        """Highest logged seq of ``band`` with nothing missing below it.

        0 for a band not met yet: a band's first logged record has seq 1 (SPEC.md).
        """
        row = self.db.execute("SELECT contig FROM bands WHERE band=?", (band,)).fetchone()
        return 0 if row is None else int(row[0])

    def add(
        self,
        records: Sequence[Record],
        received_ms: int | None = None,
        skip_to: dict[str, int] | None = None,
    ) -> AddResult:
        """Insert ``records`` in one durable transaction.

        ``skip_to[band] = s`` records that the band no longer has seqs below ``s``
        (its log overwrote them): contig may jump to s - 1. Cursors moved in memory
        since the last commit are written in the same transaction.
        """
        recv = now_ms() if received_ms is None else received_ms
        res = AddResult()
        db = self.db
        execute = db.execute
        added: list[tuple[int, Record]] = []
        with self._lock:
            dirty = dict(self._dirty)
        try:
            execute("BEGIN IMMEDIATE")
            self._write_cursors(dirty)
            contig: dict[str, int] = {}
            for band, s in (skip_to or {}).items():
                contig[band] = max(self.contig(band), s - 1)
            for rec in records:
                logged = rec.logged
                if logged:
                    c = contig.get(rec.band)
                    if c is None:
                        c = contig[rec.band] = self.contig(rec.band)
                    if rec.seq <= c:
                        res.duplicates += 1
                        continue
                cur = execute(
                    INSERT_RECORD,
                    (
                        rec.band,
                        rec.rtype,
                        int(logged),
                        rec.boot,
                        rec.seq,
                        rec.utc_ms,
                        recv,
                        compact_json(body(rec)),
                    ),
                )
                if cur.rowcount:
                    res.inserted += 1
                    added.append((int(cur.lastrowid or 0), rec))
                else:
                    res.duplicates += 1
            for band, c in contig.items():
                while execute(
                    "SELECT 1 FROM records WHERE band=? AND logged=1 AND seq=?", (band, c + 1)
                ).fetchone():
                    c += 1
                execute(
                    "INSERT INTO bands(band, contig) VALUES(?, ?) "
                    "ON CONFLICT(band) DO UPDATE SET contig=excluded.contig",
                    (band, c),
                )
                res.contig[band] = c
            execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            if e.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise SpoolFull(f"{self.path}: spool full ({e})") from None
            raise SpoolError(f"{self.path}: write failed: {e}") from None
        except BaseException:
            self._rollback()
            raise
        with self._lock:
            self._written(dirty)
            if added:
                self._last_id = max(self._last_id, added[-1][0])
                self._tail_append(added)
        return res

    def _tail_append(self, added: list[tuple[int, Record]]) -> None:
        ids, recs = self._tail_ids, self._tail_recs
        if ids and added[0][0] <= ids[-1]:  # never expected (ids only grow): start afresh
            ids.clear()
            recs.clear()
            self._tail_floor = added[0][0] - 1
        for rid, rec in added:
            ids.append(rid)
            recs.append(rec)
        over = len(ids) - self.tail_records
        if over > 0 and (over >= self.tail_records // 4 or over >= len(ids)):
            self._tail_floor = ids[over - 1]
            del ids[:over]
            del recs[:over]

    def raise_contig(self, band: str, seq: int) -> int:
        """Raise band's contig to at least ``seq`` (records the band says were already acked)."""
        return self.add([], skip_to={band: seq + 1}).contig[band]

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open

    # ------------------------------------------------------------ sinks

    def register(self, sink: str) -> int:
        self.db.execute("INSERT OR IGNORE INTO cursors(sink, pos) VALUES(?, 0)", (sink,))
        with self._lock:
            self._cursors.pop(sink, None)  # re-read from the file
        return self.cursor(sink)

    def cursor(self, sink: str) -> int:
        with self._lock:
            pos = self._cursors.get(sink)
        if pos is not None:
            return pos
        row = self.db.execute("SELECT pos FROM cursors WHERE sink=?", (sink,)).fetchone()
        pos = 0 if row is None else int(row[0])
        if row is not None:
            with self._lock:
                pos = self._cursors.setdefault(sink, pos)
        return pos

    def read_tail(
        self, sink: str, limit: int, after: int | None = None
    ) -> list[tuple[int, Record]] | None:
        """``read`` from memory, or None when the sink's next rows are not all in the tail."""
        with self._lock:
            pos = self._cursors.get(sink) if after is None else after
            return None if pos is None else self._from_tail(pos, limit)

    def _from_tail(self, pos: int, limit: int) -> list[tuple[int, Record]] | None:
        # (lock held) the rows after ``pos`` from memory, or None when not all are there
        if pos < self._tail_floor:
            return None
        ids = self._tail_ids
        i = bisect.bisect_right(ids, pos)
        return list(zip(ids[i : i + limit], self._tail_recs[i : i + limit], strict=True))

    def read(self, sink: str, limit: int, after: int | None = None) -> list[tuple[int, Record]]:
        """The next ``limit`` records after the sink's cursor (or row ``after``), oldest first."""
        pos = self.cursor(sink) if after is None else after
        with self._lock:
            tail = self._from_tail(pos, limit)
        if tail is not None:
            return tail
        rows = self.db.execute(
            "SELECT id, band, rtype, utc_ms, body FROM records WHERE id > ? ORDER BY id LIMIT ?",
            (pos, limit),
        ).fetchall()
        return [
            (rid, decode_record(band, rtype, utc, text)) for rid, band, rtype, utc, text in rows
        ]

    def advance(self, sink: str, upto: int) -> bool:
        """Move the sink's cursor in memory; True when it was not already due for the file."""
        with self._lock:
            if upto <= self._cursors.get(sink, -1):
                return False
            self._cursors[sink] = upto
            fresh = sink not in self._dirty
            self._dirty[sink] = upto
            return fresh

    def flush_cursors(self) -> None:
        """Write cursors moved in memory to the file (one small transaction)."""
        with self._lock:
            dirty = dict(self._dirty)
        if not dirty:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._write_cursors(dirty)
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            raise SpoolError(f"{self.path}: cursor write failed: {e}") from None
        with self._lock:
            self._written(dirty)

    def _write_cursors(self, dirty: dict[str, int]) -> None:
        # (inside the caller's transaction) cursors only move forward
        for sink, pos in dirty.items():
            self.db.execute("UPDATE cursors SET pos=max(pos, ?) WHERE sink=?", (pos, sink))

    def _written(self, dirty: dict[str, int]) -> None:
        # (lock held) the cursors in ``dirty`` are in the file, unless moved since
        for sink, pos in dirty.items():
            if self._dirty.get(sink) == pos:
                del self._dirty[sink]

    def commit(self, sink: str, upto: int) -> None:
        """The sink has delivered every record up to row id ``upto`` (written at once)."""
        self.advance(sink, upto)
        self.flush_cursors()

    def _db_last_id(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
        return 0 if row is None else int(row[0])

    def last_id(self) -> int:
        with self._lock:
            return self._last_id

    def lag(self, sink: str) -> int:
        return max(0, self.last_id() - self.cursor(sink))

    def prune(self, sinks: Iterable[str], now: int | None = None) -> int:
        """Delete rows every sink in ``sinks`` has passed and older than keep_hours."""
        names = list(sinks)
        self.flush_cursors()
        upto = min((self.cursor(s) for s in names), default=None)
        if upto is None:
            return 0  # no sink: the spool is the store, keep within keep_hours only
        cutoff = (now_ms() if now is None else now) - self.keep_ms
        cur = self.db.execute(
            "DELETE FROM records WHERE id <= ? AND received_ms < ?", (upto, cutoff)
        )
        if cur.rowcount:
            # rows at or below upto may be gone now: a reader behind it goes to the file
            with self._lock:
                i = bisect.bisect_right(self._tail_ids, upto)
                del self._tail_ids[:i]
                del self._tail_recs[:i]
                self._tail_floor = max(self._tail_floor, upto)
        return cur.rowcount

    # ------------------------------------------------------------ reporting

    def summary(self) -> dict[str, Any]:
        self.flush_cursors()
        bands = {}
        for band, contig in self.db.execute("SELECT band, contig FROM bands ORDER BY band"):
            counts = dict(
                self.db.execute(
                    "SELECT rtype, count(*) FROM records WHERE band=? GROUP BY rtype", (band,)
                ).fetchall()
            )
            bands[band] = {"contig_seq": contig, "records": counts}
        for (band,) in self.db.execute("SELECT DISTINCT band FROM records"):
            if band not in bands:
                bands[band] = {
                    "contig_seq": 0,
                    "records": dict(
                        self.db.execute(
                            "SELECT rtype, count(*) FROM records WHERE band=? GROUP BY rtype",
                            (band,),
                        ).fetchall()
                    ),
                }
        sinks = {
            s: {"cursor": p, "lag": max(0, self.last_id() - p)}
            for s, p in self.db.execute("SELECT sink, pos FROM cursors ORDER BY sink")
        }
        return {"path": str(self.path), "last_id": self.last_id(), "bands": bands, "sinks": sinks}
