"""The spool for asyncio code (host/spool.py behind one worker thread), as the bridge uses it.

Every file access runs on one worker thread, in order, so the event loop never
waits on SQLite or an fsync. Band sessions' ``add`` requests group-commit (those
that arrive while a commit runs share the next transaction and its fsync), and
what the sinks do most (read the records just spooled, move a cursor, ask the
lag) is answered from the spool's in-memory tail on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host.records import Record
from host.spool import CURSOR_FLUSH_S, AddResult, Spool, SpoolError, SpoolFull


class AsyncSpool:
    """The spool for asyncio code: every file access runs on one worker thread, in order.

    ``add`` group-commits: requests from all band sessions that arrive while a
    commit is running are written together in the next transaction (one fsync).
    ``read`` of records still in the in-memory tail, ``commit`` (a cursor moved in
    memory) and ``lag`` answer on the event loop without waiting for that thread.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._pending: list[tuple[list[Record], dict[str, int], asyncio.Future[AddResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
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

    async def read(
        self, sink: str, limit: int, after: int | None = None
    ) -> list[tuple[int, Record]]:
        """The next records after the sink's cursor (or row id ``after``): from memory
        when it has them all."""
        rows = self.spool.read_tail(sink, limit, after)
        if rows is None:
            rows = await self._run(self.spool.read, sink, limit, after)
        return rows

    async def commit(self, sink: str, upto: int) -> None:
        """Move the sink's cursor; it reaches the file with the next intake commit."""
        if self.spool.advance(sink, upto) and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(CURSOR_FLUSH_S)
            await self._run(self.spool.flush_cursors)
        except SpoolError:
            pass  # tried again with the next commit; the sinks re-send at worst
        finally:
            self._flusher = None

    async def lag(self, sink: str) -> int:
        return self.spool.lag(sink)

    async def prune(self, sinks: Iterable[str]) -> int:
        return int(await self._run(self.spool.prune, list(sinks)))

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._run(self.spool.close)
        self._pool.shutdown(wait=True)
