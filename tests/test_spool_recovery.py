"""A damaged spool file: a clear error, `spasm-bridge spool check`, and `spool recover`.

Real SQLite files, damaged the way disks and power cuts damage them: pages in
the middle overwritten with garbage. Recovery must keep every readable row
unchanged (same ids), keep the sink cursors, never mark an unsent record as
sent (new ids continue above every old id), reset the ack points when rows
were lost (bands then replay all they hold), and keep the damaged file.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
from pathlib import Path

import pytest

from host.cli import main
from host.notes import Note, NoteStore
from host.records import Event
from host.spool import Spool, SpoolError
from host.spool_recovery import check, recover

N = 3000
PAGE = 4096


def ev(band: str, seq: int) -> Event:
    return Event(
        band=band, seq=seq, boot=1, utc_ms=1_700_000_000_000 + seq, t_ms=seq * 10, kind=2,
        severity=2, confidence=80, duration_ms=900 + seq % 100, peak_act_x10=50, mean_act_x10=20,
        peak_acc_mg=300, freq_dhz=40, modalities=3,
    )  # fmt: skip


def make_spool(path: Path) -> dict[int, tuple[object, ...]]:
    """N events over two bands, two sinks part-way; returns every row by id."""
    sp = Spool(path)
    first = {"a1b2c3": 1, "d4e5f6": 1}  # as the session does on the first replay
    for start in range(1, N // 2 + 1, 100):
        batch = [ev(b, s) for s in range(start, start + 100) for b in ("a1b2c3", "d4e5f6")]
        sp.add(batch, skip_to=first if start == 1 else None)
    sp.register("mqtt")
    sp.register("influx")
    sp.commit("mqtt", 2500)
    sp.commit("influx", 1000)
    assert sp.contig("a1b2c3") == N // 2
    rows = {r[0]: r for r in sp.db.execute("SELECT * FROM records")}
    sp.close()
    assert len(rows) == N
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0
    return rows


def damage(path: Path, first_frac: float = 0.4, pages: int = 6, seed: int = 1) -> str:
    """Overwrite ``pages`` pages from ``first_frac`` of the file with random bytes."""
    rnd = random.Random(seed)
    data = bytearray(path.read_bytes())
    first = int(len(data) // PAGE * first_frac)
    for p in range(first, first + pages):
        data[p * PAGE : (p + 1) * PAGE] = rnd.randbytes(PAGE)
    path.write_bytes(bytes(data))
    return hashlib.sha256(data).hexdigest()


def run_cli(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str]:
    code = main(["spool", *args, "--set", f"spool.path='{path}'"])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_damaged_spool_is_checked_and_recovered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    original = make_spool(path)
    digest = damage(path)
    with pytest.raises(
        SpoolError, match="(?s)not a usable spool database .*spasm-bridge spool recover"
    ):
        Spool(path)

    code, out = run_cli(capsys, path, "check")
    assert code == 1 and "DAMAGED" in out and "spasm-bridge spool recover" in out
    code, out = run_cli(capsys, path, "recover")
    assert code == 0, out
    assert "recovered" in out and "damaged file kept as" in out

    # the damaged file is kept, byte for byte
    kept = list(tmp_path.glob("spool.db.damaged-*"))
    assert [k.name for k in kept if not k.name.endswith(("-wal", "-shm"))]
    main_kept = [k for k in kept if not k.name.endswith(("-wal", "-shm"))][0]
    assert hashlib.sha256(main_kept.read_bytes()).hexdigest() == digest

    assert check(path).ok
    code, out = run_cli(capsys, path, "check")
    assert code == 0 and "ok" in out
    sp = Spool(path)
    try:
        rows = {r[0]: r for r in sp.db.execute("SELECT * FROM records")}
        # every recovered row is exactly the original row under the same id
        assert rows and all(original[i] == r for i, r in rows.items())
        lost = N - len(rows)
        assert 0 < lost < N // 2, lost
        # the sinks keep their places; nothing unsent is now marked sent
        assert sp.cursor("mqtt") == 2500 and sp.cursor("influx") == 1000
        for sink in ("mqtt", "influx"):
            unsent = {rid for rid, _ in sp.read(sink, 10 * N)}
            assert unsent == {i for i in rows if i > sp.cursor(sink)}
        # rows were lost: ack points are reset, so the bands replay all they still hold
        assert sp.contig("a1b2c3") == 0 and sp.contig("d4e5f6") == 0  # as a new spool
        # a new record lands above every old id (and so above every cursor)
        res = sp.add([ev("a1b2c3", N)])
        assert res.inserted == 1 and sp.last_id() == N + 1
        # what survived still dedupes
        some = next(iter(rows.values()))
        assert sp.add([ev(str(some[1]), int(some[5]))]).duplicates == 1
    finally:
        sp.close()


def test_recovering_an_intact_spool_keeps_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    original = make_spool(path)
    notes = NoteStore(path)  # host/notes.py keeps its table in the same file
    for i in range(3):
        notes.add(Note("a1b2c3", "medication", f"dose {i}", 1_700_000_000_000 + i))
    notes.close()
    code, out = run_cli(capsys, path, "recover")
    assert code == 0 and "ok, nothing to recover" in out
    assert not list(tmp_path.glob("spool.db.damaged-*"))
    r = recover(path)  # what `spool recover --force` does
    assert (r.recovered, r.lost_rows, r.bands_reset) == (N, 0, False)
    notes = NoteStore(path)
    try:
        assert [n.text for n in notes.between("a1b2c3", 0, 2**62)] == ["dose 0", "dose 1", "dose 2"]
        assert notes.add(Note("a1b2c3", "other", "later", 1_700_000_000_100)).id == 4
    finally:
        notes.close()
    assert r.bands == {"a1b2c3": N // 2, "d4e5f6": N // 2}
    sp = Spool(path)
    try:
        assert {r[0]: r for r in sp.db.execute("SELECT * FROM records")} == original
        assert sp.contig("a1b2c3") == N // 2 and sp.cursor("mqtt") == 2500
    finally:
        sp.close()


def test_damaged_first_page_recovers_an_empty_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    make_spool(path)
    damage(path, first_frac=0, pages=1)
    code, out = run_cli(capsys, path, "check")
    assert code == 1
    # its SQLite header is gone too: nothing says it was a spool, so only --force replaces it
    code, out = run_cli(capsys, path, "recover", "--json")
    assert code == 1 and "not an SQLite database" in caplog.text and "--force" in caplog.text
    assert not list(tmp_path.glob("spool.db.damaged-*"))
    r = recover(path, force=True)  # what `spool recover --force` does
    assert r.bands_reset and r.recovered == 0
    sp = Spool(path)
    sp.close()
    assert len(list(tmp_path.glob("spool.db.damaged-*"))) >= 1


def test_garbage_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    code, out = run_cli(capsys, path, "check")
    assert code == 1 and "is no spool (not an SQLite database" in out, out
    assert "recover --force" in out, out
    code, out = run_cli(capsys, path, "recover")
    assert code == 1 and "spool.db: not an SQLite database" in caplog.text
    assert path.read_bytes() == garbage and not list(tmp_path.glob("spool.db.*"))
    r = recover(path, force=True)
    assert r.recovered == 0 and "not an SQLite file: nothing read from it" in r.notes
    assert Path(r.damaged_to).read_bytes() == garbage
    sp = Spool(path)
    assert sp.summary()["last_id"] == 0
    sp.close()
    code, out = run_cli(capsys, tmp_path / "nope.db", "check")
    assert code == 1 and "nope.db: no spool here" in caplog.text
    with pytest.raises(SystemExit):
        main(["spool", "fix"])
    # a foreign SQLite file is not a spool
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    assert not check(other).ok and "schema" in " ".join(check(other).problems)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def make_foreign(path: Path, kind: str) -> None:
    if kind == "csv":
        path.write_bytes(b"when,what\n2024-05-01,spasm\n")
    elif kind == "empty":
        path.write_bytes(b"")
        # a -wal left next to it: SQLite would delete it on open; it must stay
        Path(f"{path}-wal").write_bytes(b"not ours to delete")
    else:
        db = sqlite3.connect(path)
        if kind == "patients":
            db.execute("CREATE TABLE patients(id INTEGER PRIMARY KEY, name TEXT)")
            db.execute("INSERT INTO patients(name) VALUES('A. Person')")
        else:  # an SQLite database with no table at all
            db.execute("PRAGMA user_version=7")
        db.commit()
        db.close()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("csv", "not an SQLite database"),
        ("empty", "an empty file"),
        ("patients", "an SQLite database without the spool's schema .it holds patients"),
        ("no-tables", "an SQLite database without the spool's schema .it holds no tables"),
    ],
)
def test_recover_leaves_a_file_that_is_no_spool_alone(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    kind: str,
    reason: str,
) -> None:
    path = tmp_path / "ok.csv"
    make_foreign(path, kind)
    before = snapshot(tmp_path)
    code, out = run_cli(capsys, path, "check")  # no advice to recover what recover refuses
    assert code == 1 and "is no spool" in out and "check spool.path" in out, out
    assert "readable" not in out, out
    code, out = run_cli(capsys, path, "recover")
    assert code == 1, out
    err = caplog.text
    assert f"{path}: " in err and re.search(reason, err) and "--force" in err, err
    assert snapshot(tmp_path) == before  # not renamed, nothing created
    with pytest.raises(SpoolError, match=f"ok.csv: {reason}"):
        recover(path)
    assert snapshot(tmp_path) == before
    # --force: moved aside, kept byte for byte (with its -wal), a new spool in its place
    r = recover(path, force=True)
    for name, data in before.items():
        assert Path(r.damaged_to + name.removeprefix("ok.csv")).read_bytes() == data
    assert check(path).ok


def test_recover_force_on_the_command_line_replaces_a_file_that_is_no_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.csv"
    make_foreign(path, "csv")
    code, out = run_cli(capsys, path, "recover", "--force")
    assert code == 0, out
    assert check(path).ok and list(tmp_path.glob("ok.csv.damaged-*"))


def test_a_truncated_spool_is_still_recovered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    make_spool(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the end of the file lost
    code, out = run_cli(capsys, path, "recover")
    assert code == 0 and "damaged file kept as" in out, out
    kept = [k for k in tmp_path.glob("spool.db.damaged-*") if not k.name.endswith(("-wal", "-shm"))]
    assert [k.read_bytes() for k in kept] == [data[: len(data) // 2]]
    assert check(path).ok


def test_check_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    make_spool(path)
    before = snapshot(tmp_path)
    assert sorted(before) == ["spool.db"]
    assert check(path).ok
    assert snapshot(tmp_path) == before
