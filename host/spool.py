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
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from host.records import SPOOLED, Record, body

SCHEMA_ID = "spasm-spool 1"
T = TypeVar("T")

_SCHEMA = """
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


class Spool:
    """Synchronous spool on one SQLite connection (use from one thread at a time)."""

    def __init__(
        self, path: str | Path, keep_hours: float = 24.0, max_mb: float = 0.0, check: bool = True
    ) -> None:
        self.path = Path(path)
        self.keep_ms = int(keep_hours * 3600_000)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise SpoolError(f"{self.path}: cannot open the spool: {e}") from None
        try:
            self._setup(max_mb, check)
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise SpoolError(
                f"{self.path}: not a usable spool database ({e}); `spasm-bridge spool recover` "
                f"copies what is readable into a new spool and keeps this file renamed "
                f"(records not yet acked stay on the bands)"
            ) from None

    def _setup(self, max_mb: float, check: bool) -> None:
        db = self.db
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
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta(key, value) VALUES('schema', ?)", (SCHEMA_ID,))
        elif row[0] != SCHEMA_ID:
            raise sqlite3.DatabaseError(f"schema {row[0]!r}, expected {SCHEMA_ID!r}")

    def close(self) -> None:
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
        (its log overwrote them): contig may jump to s - 1.
        """
        recv = now_ms() if received_ms is None else received_ms
        res = AddResult()
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            contig: dict[str, int] = {}
            for band, s in (skip_to or {}).items():
                contig[band] = max(self.contig(band), s - 1)
            for rec in records:
                if rec.logged:
                    c = contig.get(rec.band)
                    if c is None:
                        c = contig[rec.band] = self.contig(rec.band)
                    if rec.seq <= c:
                        res.duplicates += 1
                        continue
                cur = db.execute(
                    "INSERT OR IGNORE INTO records(band, rtype, logged, boot, seq, utc_ms,"
                    " received_ms, body) VALUES(?,?,?,?,?,?,?,?)",
                    (
                        rec.band,
                        rec.rtype,
                        int(rec.logged),
                        rec.boot,
                        rec.seq,
                        rec.utc_ms,
                        recv,
                        json.dumps(body(rec), separators=(",", ":")),
                    ),
                )
                if cur.rowcount:
                    res.inserted += 1
                else:
                    res.duplicates += 1
            for band, c in contig.items():
                while db.execute(
                    "SELECT 1 FROM records WHERE band=? AND logged=1 AND seq=?", (band, c + 1)
                ).fetchone():
                    c += 1
                db.execute(
                    "INSERT INTO bands(band, contig) VALUES(?, ?) "
                    "ON CONFLICT(band) DO UPDATE SET contig=excluded.contig",
                    (band, c),
                )
                res.contig[band] = c
            db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            if e.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise SpoolFull(f"{self.path}: spool full ({e})") from None
            raise SpoolError(f"{self.path}: write failed: {e}") from None
        except BaseException:
            self._rollback()
            raise
        return res

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
        return self.cursor(sink)

    def cursor(self, sink: str) -> int:
        row = self.db.execute("SELECT pos FROM cursors WHERE sink=?", (sink,)).fetchone()
        return 0 if row is None else int(row[0])

    def read(self, sink: str, limit: int) -> list[tuple[int, Record]]:
        """The next ``limit`` records after the sink's cursor, oldest first."""
        rows = self.db.execute(
            "SELECT id, band, rtype, utc_ms, body FROM records WHERE id > ? ORDER BY id LIMIT ?",
            (self.cursor(sink), limit),
        ).fetchall()
        return [(rid, self._record(band, rtype, utc, text)) for rid, band, rtype, utc, text in rows]

    @staticmethod
    def _record(band: str, rtype: str, utc_ms: int, text: str) -> Record:
        kw: dict[str, Any] = json.loads(text)
        if "samples" in kw:
            kw["samples"] = tuple(tuple(s) for s in kw["samples"])
        kw["utc_ms"] = utc_ms
        return SPOOLED[rtype](band=band, **kw)

    def commit(self, sink: str, upto: int) -> None:
        """The sink has delivered every record up to row id ``upto``."""
        self.db.execute("UPDATE cursors SET pos=max(pos, ?) WHERE sink=?", (upto, sink))

    def last_id(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
        return 0 if row is None else int(row[0])

    def lag(self, sink: str) -> int:
        return max(0, self.last_id() - self.cursor(sink))

    def prune(self, sinks: Iterable[str], now: int | None = None) -> int:
        """Delete rows every sink in ``sinks`` has passed and older than keep_hours."""
        names = list(sinks)
        upto = min((self.cursor(s) for s in names), default=None)
        if upto is None:
            return 0  # no sink: the spool is the store, keep within keep_hours only
        cutoff = (now_ms() if now is None else now) - self.keep_ms
        cur = self.db.execute(
            "DELETE FROM records WHERE id <= ? AND received_ms < ?", (upto, cutoff)
        )
        return cur.rowcount

    # ------------------------------------------------------------ reporting

    def summary(self) -> dict[str, Any]:
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


class AsyncSpool:
    """The spool for asyncio code: every call runs on one worker thread, in order.

    ``add`` group-commits: requests from all band sessions that arrive while a
    commit is running are written together in the next transaction (one fsync).
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._pending: list[tuple[list[Record], dict[str, int], asyncio.Future[AddResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.full = False  # the last write hit SpoolFull; intake is paused
        self.inserted = 0
        self.duplicates = 0

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def add(
        self, records: Sequence[Record], skip_to: dict[str, int] | None = None
    ) -> AddResult:
        fut: asyncio.Future[AddResult] = asyncio.get_running_loop().create_future()
        self._pending.append((list(records), dict(skip_to or {}), fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await fut

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            recs = [r for b in batch for r in b[0]]
            skip: dict[str, int] = {}
            for _, s, _ in batch:
                for band, seq in s.items():
                    skip[band] = max(seq, skip.get(band, seq))
            try:
                res: AddResult = await self._run(self.spool.add, recs, None, skip)
            except Exception as e:
                self.full = isinstance(e, SpoolFull)
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.full = False
            self.inserted += res.inserted
            self.duplicates += res.duplicates
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(res)

    async def contig(self, band: str) -> int:
        return int(await self._run(self.spool.contig, band))

    async def raise_contig(self, band: str, seq: int) -> int:
        return int(await self._run(self.spool.raise_contig, band, seq))

    async def register(self, sink: str) -> int:
        return int(await self._run(self.spool.register, sink))

    async def read(self, sink: str, limit: int) -> list[tuple[int, Record]]:
        rows: list[tuple[int, Record]] = await self._run(self.spool.read, sink, limit)
        return rows

    async def commit(self, sink: str, upto: int) -> None:
        await self._run(self.spool.commit, sink, upto)

    async def lag(self, sink: str) -> int:
        return int(await self._run(self.spool.lag, sink))

    async def prune(self, sinks: Iterable[str]) -> int:
        return int(await self._run(self.spool.prune, list(sinks)))

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._run(self.spool.close)
        self._pool.shutdown(wait=True)
