"""The bridge's spool: dedupe, contiguous seq, cursors, SIGKILL, corruption, a full disk."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from host.async_spool import AsyncSpool
from host.cli import main
from host.records import Event, Status
from host.spool import Spool, SpoolError, SpoolFull

ROOT = Path(__file__).resolve().parent.parent


def ev(band: str, seq: int, utc: int = 0, boot: int = 1) -> Event:
    return Event(
        band=band,
        seq=seq,
        boot=boot,
        utc_ms=utc,
        t_ms=seq * 1000,
        kind=2,
        severity=2,
        confidence=80,
        duration_ms=1500,
        peak_act_x10=55,
        mean_act_x10=30,
        peak_acc_mg=400,
        freq_dhz=35,
        modalities=3,
    )


def st(band: str, seq: int, boot: int) -> Status:
    return Status(
        band=band,
        seq=seq,
        boot=boot,
        utc_ms=5,
        uptime_ms=100,
        battery_pct=90,
        battery_mv=3900,
        quality=95,
        faults=0,
        log_used=1,
        log_capacity=100,
        log_overwritten=0,
        last_seq=3,
        acked_seq=2,
        state=1,
        fw_major=1,
        fw_minor=0,
        fw_patch=0,
    )


def test_logged_records_dedupe_on_band_and_seq(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    r1 = sp.add([ev("a", s, utc=1000 + s) for s in range(1, 6)])
    r2 = sp.add([ev("a", s, utc=9000 + s) for s in range(1, 6)] + [ev("b", 1)])
    assert (r1.inserted, r1.duplicates, r1.contig) == (5, 0, {"a": 5})
    assert (r2.inserted, r2.duplicates) == (1, 5)
    rows = sp.read("x", 100)
    # The first stamp stays: a replay never moves a record's UTC time.
    assert [(r.band, r.seq, r.utc_ms) for _, r in rows] == (
        [("a", s, 1000 + s) for s in range(1, 6)] + [("b", 1, 0)]
    )
    assert rows[0][1] == ev("a", 1, utc=1001)


def test_live_records_dedupe_on_type_boot_and_seq(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    res = sp.add([st("a", 1, boot=1), st("a", 1, boot=1), st("a", 1, boot=2), st("b", 1, 1)])
    assert (res.inserted, res.duplicates) == (3, 1)
    assert res.contig == {}  # live records do not touch the logged seq


def test_contig_waits_for_gaps_and_skips_when_told(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    assert sp.contig("a") == 0  # a band's first seq is 1
    assert sp.add([ev("a", 0)]).duplicates == 1  # seq 0 is never a record
    assert sp.add([ev("a", 1), ev("a", 3)]).contig == {"a": 1}
    assert sp.add([ev("a", 2)]).contig == {"a": 3}
    # The band's log wrapped: seqs 4..9 are gone; 10 arrives first in the replay.
    assert sp.add([ev("a", 10)], skip_to={"a": 10}).contig == {"a": 10}
    # Anything at or below contig is a duplicate, even when its row was pruned.
    assert sp.add([ev("a", 5)]).duplicates == 1
    assert sp.raise_contig("a", 20) == 20
    assert sp.contig("a") == 20


def test_cursors_are_per_sink_and_prune_keeps_undelivered(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", keep_hours=0)
    sp.add([ev("a", s) for s in range(1, 11)])
    sp.register("mqtt")
    sp.register("influx")
    first = sp.read("mqtt", 4)
    sp.commit("mqtt", first[-1][0])
    assert [r.seq for _, r in sp.read("mqtt", 100)] == list(range(5, 11))
    assert [r.seq for _, r in sp.read("influx", 3)] == [1, 2, 3]
    assert (sp.lag("mqtt"), sp.lag("influx")) == (6, 10)
    assert sp.prune(["mqtt", "influx"], now=2**62) == 0  # influx has not confirmed any
    sp.commit("influx", first[1][0])
    assert sp.prune(["mqtt", "influx"], now=2**62) == 2
    assert [r.seq for _, r in sp.read("influx", 100)] == list(range(3, 11))
    sp.close()
    again = Spool(tmp_path / "s.db")
    assert again.cursor("mqtt") == first[-1][0]
    assert again.contig("a") == 10


WRITER = """
import sys
from host.spool import Spool
from tests.test_host_spool import ev
sp = Spool(sys.argv[1])
seq = 1
while True:
    sp.add([ev("k", seq + i) for i in range(7)])
    seq += 7
    print("acked", seq - 1, flush=True)  # what the bridge would ACK to the band now
"""


def test_sigkill_of_a_writer_loses_nothing_it_acked(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = -1
    for line in proc.stdout:
        acked = int(line.split()[1])
        if acked >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    sp = Spool(path)
    seqs = [r.seq for _, r in sp.read("check", 100_000)]
    assert acked >= 300
    assert sp.contig("k") >= acked
    assert seqs[:acked] == list(range(1, acked + 1))
    assert seqs == list(range(1, len(seqs) + 1))  # nothing half-written or doubled


def test_garbage_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.db"
    bad.write_bytes(os.urandom(8192))
    with pytest.raises(SpoolError, match="garbage.db: not a usable spool database"):
        Spool(bad)


def test_damaged_spool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dmg.db"
    sp = Spool(path)
    sp.add([ev("a", s) for s in range(2000)])
    sp.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sp.close()
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 5] = os.urandom(8192)  # trash two pages in the middle
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="dmg.db: not a usable spool database"):
        Spool(path)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES('schema', 'something else 7')")
    db.commit()
    db.close()
    with pytest.raises(SpoolError, match="expected 'spasm-spool 1'"):
        Spool(path)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes: to see that nothing was created or written."""
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def patients_db(path: Path) -> None:
    """Another program's SQLite database (rollback journal, one table)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE patients(id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO patients(name) VALUES('A. Person')")
    db.commit()
    db.close()


def test_someone_elses_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "patients.db"
    patients_db(path)
    before = snapshot(tmp_path)
    for read_only in (False, True):  # the bridge, and `status`
        with pytest.raises(
            SpoolError, match=r"patients.db: not a spool file: .*without the spool's schema"
        ):
            Spool(path, read_only=read_only)
    assert snapshot(tmp_path) == before  # no tables added, journal mode not switched


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.db", None, "no such file"),
        ("empty.csv", b"", "an empty file"),
        ("data.csv", b"when,what\n2024-05-01,spasm\n", "not an SQLite database"),
        ("patients.db", "patients", "an SQLite database without the spool's schema"),
    ],
)
def test_read_only_spool_refuses_what_is_no_spool_and_creates_nothing(
    tmp_path: Path, name: str, content: bytes | str | None, reason: str
) -> None:
    path = tmp_path / name
    if content == "patients":
        patients_db(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    before = snapshot(tmp_path)
    with pytest.raises(SpoolError, match=rf"{name}: not a spool file: {reason}"):
        Spool(path, read_only=True)
    assert snapshot(tmp_path) == before


def test_read_only_spool_reads_a_live_spool_and_a_closed_one(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    live = Spool(path)  # a running bridge: WAL, holds the file open and keeps writing
    live.add([ev("a1b2c3", s) for s in range(1, 4)])
    live.register("mqtt")
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    ro = Spool(path, read_only=True)
    try:
        assert ro.summary()["bands"]["a1b2c3"]["contig_seq"] == 3
        live.add([ev("a1b2c3", 4)])  # the writer is not blocked by the reader ...
        assert ro.summary()["bands"]["a1b2c3"]["contig_seq"] == 4  # ... which sees its commits
        assert ro.summary()["sinks"] == {"mqtt": {"cursor": 0, "lag": 3}}
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.db.execute("DELETE FROM records")
    finally:
        ro.close()
    live.add([ev("a1b2c3", 5)])
    live.close()
    # a closed spool (no -wal, -shm): read without creating them, the file unchanged
    before = snapshot(tmp_path)
    assert sorted(before) == ["live.db"]
    ro = Spool(path, read_only=True)
    try:
        assert ro.summary()["bands"]["a1b2c3"]["contig_seq"] == 5
    finally:
        ro.close()
    assert snapshot(tmp_path) == before


def test_read_only_spool_refuses_a_damaged_spool(tmp_path: Path) -> None:
    path = tmp_path / "dmg.db"
    sp = Spool(path)
    sp.add([ev("a", s) for s in range(2000)])
    sp.close()
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 5] = os.urandom(8192)
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="(?s)dmg.db: not a usable spool database .*spool recover"):
        Spool(path, read_only=True)


async def test_full_spool_stores_nothing_of_the_batch_and_recovers(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "full.db", max_mb=0.1, keep_hours=0)
    aspool = AsyncSpool(sp)
    await aspool.register("s")
    seq = 1
    with pytest.raises(SpoolFull):
        for _ in range(1000):  # bounded: 0.1 MB is full long before
            await aspool.add([ev("f", seq + i) for i in range(20)])
            seq += 20
    assert aspool.full
    stored = await aspool.contig("f")
    assert stored == seq - 1  # the failed batch left nothing behind
    assert len(await aspool.read("s", 100_000)) == seq - 1
    # A sink delivers, old rows are pruned, and intake works again.
    rows = await aspool.read("s", 100_000)
    await aspool.commit("s", rows[-1][0])
    assert await aspool.prune(["s"]) == seq - 1
    res = await aspool.add([ev("f", seq + i) for i in range(20)])
    assert res.contig["f"] == seq + 19 and not aspool.full
    await aspool.close()


async def test_group_commit_serves_concurrent_sessions(tmp_path: Path) -> None:
    aspool = AsyncSpool(Spool(tmp_path / "g.db"))
    results = await asyncio.gather(
        *(aspool.add([ev(b, s) for s in range(1, 51)]) for b in ("a", "b", "c", "d"))
    )
    assert [r.contig[b] for r, b in zip(results, "abcd", strict=True)] == [50] * 4
    assert aspool.inserted == 200
    await aspool.close()


def test_status_command_reads_the_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "st.db"
    sp = Spool(path)
    sp.add([ev("a1b2c3", s) for s in range(1, 4)] + [st("a1b2c3", 1, 1)])
    sp.register("mqtt")
    sp.close()
    assert main(["status", "--set", f"spool.path='{path}'"]) == 0
    out = capsys.readouterr().out
    assert "band a1b2c3: contiguous seq 3; held: event=3, status=1" in out
    assert "sink mqtt: cursor 0, lag 4" in out
    (tmp_path / "bad.db").write_bytes(b"x" * 5000)
    assert main(["status", "--set", f"spool.path='{tmp_path / 'bad.db'}'"]) == 1


def test_status_command_refuses_someone_elses_database(tmp_path: Path) -> None:
    path = tmp_path / "patients.db"
    patients_db(path)
    before = snapshot(tmp_path)
    assert main(["status", "--set", f"spool.path='{path}'"]) == 1
    assert snapshot(tmp_path) == before


def test_status_command_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    path = tmp_path / "st.db"
    sp = Spool(path)
    sp.add([ev("a1b2c3", 1)])
    sp.close()
    before = snapshot(tmp_path)
    assert main(["status", "--set", f"spool.path='{empty}'"]) == 1
    assert main(["status", "--set", f"spool.path='{path}'"]) == 0
    assert snapshot(tmp_path) == before


def test_sinks_read_the_in_memory_tail_and_the_file_alike(tmp_path: Path) -> None:
    path = tmp_path / "tail.db"
    old = Spool(path)
    old.add([ev("a", s, utc=100 + s) for s in range(1, 6)])
    old.close()
    sp = Spool(path, tail_records=8)  # rows 1-5 are only in the file
    sp.register("s")
    sp.add([ev("a", s, utc=100 + s) for s in range(1, 21)])  # 15 new, 5 duplicates
    assert sp.read_tail("s", 100) is None  # row 1 is not in memory
    from_file = Spool(path, tail_records=0)
    want = from_file.read("s", 100)
    from_file.close()
    assert [r.seq for _, r in want] == list(range(1, 21))
    assert sp.read("s", 100) == want
    sp.advance("s", want[13][0])  # rows after it are all in memory now
    tail = sp.read_tail("s", 100)
    assert tail == want[14:]
    assert sp.read_tail("s", 2) == want[14:16]
    sp.close()


async def test_a_cursor_moves_in_memory_and_reaches_the_file_with_the_next_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cur.db"
    aspool = AsyncSpool(Spool(path))
    await aspool.register("s")
    await aspool.add([ev("a", s) for s in range(1, 11)])
    rows = await aspool.read("s", 4)
    await aspool.commit("s", rows[-1][0])
    assert await aspool.lag("s") == 6
    assert [r.seq for _, r in await aspool.read("s", 100)] == list(range(5, 11))
    peek = Spool(path, check=False)
    assert peek.cursor("s") == 0  # not in the file yet: no fsync of its own
    await aspool.add([ev("a", 11)])  # the next intake commit carries it
    peek.close()
    peek = Spool(path, check=False)
    assert peek.cursor("s") == rows[-1][0]
    peek.close()
    await aspool.commit("s", rows[-1][0] + 2)
    await aspool.close()  # and a clean close writes it
    again = Spool(path)
    assert again.cursor("s") == rows[-1][0] + 2
    again.close()
