"""The clinic report from a simulated week in a real spool file; the report CLI's garbage input."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from host import cli
from host.notes import NoteStore
from host.report_data import poisson_interval
from host.spool import Spool
from tests.servers import Victoria, victoria_fixture  # noqa: F401
from tests.spasm_week import DAY, HOUR, Week, simulated_week

BAND = "a1b2c3"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Week, Path]:
    start = (int(time.time()) // 86400 - 8) * 86_400_000  # midnight UTC, 8 days ago
    w = simulated_week(BAND, start)
    path = tmp_path_factory.mktemp("spool") / "spool.db"
    spool = Spool(path)
    spool.add(w.records)
    spool.add(simulated_week("other", start, seed=3).records)  # a second band must not leak in
    spool.close()
    store = NoteStore(path)
    w.notes = [store.add(n) for n in w.notes]
    store.close()
    return w, path


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _run(path: Path, out: Path, *extra: str) -> int:
    return cli.main(
        ["report", "--band", BAND, "--out", str(out), "--set", f'spool.path="{path}"', *extra]
    )


def _values(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-key="([^"]+)">([^<]*)<', html))


@pytest.fixture(scope="module")
def rendered(week: tuple[Week, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    w, path = week
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert _run(path, out, "--since", _iso(w.start_ms), "--until", _iso(w.end_ms)) == 0
    return out


def test_files_and_plots(rendered: Path, week: tuple[Week, Path]) -> None:
    w, _ = week
    html = rendered.read_text()
    figs = re.findall(
        r"<figure data-plot='(\w+)' data-panels='(\d+)' data-width='(\d+)' data-height='(\d+)'>"
        r"<img src='([^']+)'",
        html,
    )
    treatments = sum(1 for n in w.notes if n.kind in ("medication", "therapy"))
    expected = {
        "per_day": 1,
        "day_night": 2,
        "distributions": 2,
        "heatmap": 2,  # the map and its colour bar
        "markers": 1,
        "before_after": 2 * treatments,
    }
    assert {name: int(panels) for name, panels, *_ in figs} == expected
    for name, _panels, width, height, src in figs:
        png = rendered.parent / src
        assert png.exists() and png.stat().st_size > 1000, name
        with Image.open(png) as im:
            assert im.format == "PNG"
            assert im.size == (int(width), int(height)), name
            colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 10, f"{name}: a blank image"
    assert "not a diagnosis" in html
    assert 'id="disclaimer"' in html or "id='disclaimer'" in html


def test_numbers_match_the_spool(rendered: Path, week: tuple[Week, Path]) -> None:
    w, path = week
    v = _values(rendered.read_text())
    db = sqlite3.connect(path)
    n_events = db.execute(
        "SELECT count(*) FROM records WHERE band=? AND rtype='event' AND utc_ms>=? AND utc_ms<?",
        (BAND, w.start_ms, w.end_ms),
    ).fetchone()[0]
    db.close()
    assert int(v["events_total"]) == n_events == len(w.events)
    kinds = {1: "myoclonic", 2: "clonic", 3: "tonic"}
    for k, name in kinds.items():
        assert int(v[f"events_{name}"]) == sum(1 for e in w.events if e.kind == k)
    assert int(v["markers_total"]) == len(w.markers)
    assert int(v["notes_total"]) == len(w.notes)
    for d in range(7):
        day = _day(w.start_ms + d * DAY)
        in_day = [e for e in w.events if _day(e.utc_ms) == day]
        assert int(v[f"day_{day}_total"]) == len(in_day)
        for k, name in kinds.items():
            assert int(v[f"day_{day}_{name}"]) == sum(1 for e in in_day if e.kind == k)
    # Sleep hours 22:00-07:00 UTC by default: 9 of every 24 hours.
    night = [e for e in w.events if not 7 <= (e.utc_ms // HOUR) % 24 < 22]
    assert int(v["night_count"]) == len(night)
    assert int(v["day_count"]) == len(w.events) - len(night)
    assert float(v["night_hours"]) == pytest.approx(7 * 9)
    assert float(v["day_hours"]) == pytest.approx(7 * 15)
    # Every press made for an event is caught; the spurious ones are not.
    assert int(v["markers"]) == len(w.markers)
    assert int(v["markers_caught"]) == w.true_markers
    assert int(v["events_marked"]) == w.true_markers
    assert int(v["events"]) == len(w.events)


def test_before_after_numbers(rendered: Path, week: tuple[Week, Path]) -> None:
    w, _ = week
    html = rendered.read_text()
    v = _values(html)
    assert "cannot tell the two rates apart" in html
    assert "120 s before and 30 s after" in html
    for n in w.notes:
        key = f"note{n.id}_before_count"
        if n.kind not in ("medication", "therapy"):
            assert key not in v
            continue
        before = [e for e in w.events if n.utc_ms - 24 * HOUR <= e.utc_ms < n.utc_ms]
        after = [e for e in w.events if n.utc_ms <= e.utc_ms < n.utc_ms + 24 * HOUR]
        assert int(v[key]) == len(before)
        assert int(v[f"note{n.id}_after_count"]) == len(after)
        assert float(v[f"note{n.id}_after_rate"]) == pytest.approx(len(after) / 24, abs=0.00501)
        mean = sum(e.severity for e in after) / len(after)
        assert float(v[f"note{n.id}_after_severity"]) == pytest.approx(mean, abs=0.00501)


def test_poisson_interval_is_exact() -> None:
    # Garwood's interval: k=0 upper = -ln(0.025); k=10 (a textbook value) 4.795 - 18.39.
    lo, hi = poisson_interval(0)
    assert lo == 0 and hi == pytest.approx(3.689, abs=1e-3)
    lo, hi = poisson_interval(10)
    assert lo == pytest.approx(4.795, abs=1e-3) and hi == pytest.approx(18.390, abs=1e-3)


def test_report_runs_as_a_program(week: tuple[Week, Path], tmp_path: Path) -> None:
    w, path = week
    out = tmp_path / "r.html"
    res = subprocess.run(
        [sys.executable, "-m", "host.cli", "report", "--band", BAND, "--since",
         _day(w.start_ms), "--until", _day(w.end_ms), "--out", str(out), "--timezone",
         "Europe/Berlin", "--set", f'spool.path="{path}"'],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert out.exists() and "Europe/Berlin" in out.read_text()
    assert "matplotlib" not in res.stderr  # its INFO lines ("categorical units") are noise


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--band", "../etc", "--since", "2026-01-01"], 2, "--band"),
        (["--band", "", "--since", "2026-01-01"], 2, "--band"),
        (["--band", "Bob_Smith", "--since", "2026-01-01"], 2, "--band: 'Bob_Smith' is not"),
        (["--band", BAND, "--since", "yesterday"], 2, "--since"),
        (["--band", BAND, "--since", "2026-13-01"], 2, "--since"),
        (["--band", BAND, "--since", "2026-01-02", "--until", "2026-01-01"], 2, "--until"),
        (["--band", BAND, "--since", "1999-01-01"], 2, "2020-2100"),
        (["--band", BAND, "--since", "2024-01-01", "--until", "2026-01-01"], 2, "days"),
        (["--band", BAND, "--since", "2026-01-01", "--timezone", "Mars/Base"], 2, "--timezone"),
        (["--band", BAND, "--since", "2026-01-01", "--sleep-hours", "25:00-7"], 2, "sleep"),
        (["--band", BAND, "--since", "2026-01-01", "--window-h", "-3"], 2, "--window-h"),
        (["--band", "ffff01", "--since", "2026-01-01"], 1, "no records of band"),
    ],
)
def test_report_refuses_garbage(
    week: tuple[Week, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    words: str,
) -> None:
    _, path = week
    rc = cli.main(
        ["report", *args, "--out", str(tmp_path / "r.html"), "--set", f'spool.path="{path}"']
    )
    assert rc == code
    assert words in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_bad_files(
    week: tuple[Week, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = week
    assert _run(tmp_path / "missing.db", tmp_path / "r.html", "--since", "2026-01-01") == 1
    assert "no spool file" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    assert _run(junk, tmp_path / "r.html", "--since", "2026-01-01") == 1
    assert "not a spool" in capsys.readouterr().err
    assert _run(path, tmp_path / "r.txt", "--since", "2026-01-01") == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "--band", BAND, "--since", "2026-01-01", "--out", "x.html",
                     "--source", "carrier-pigeon"])  # fmt: skip
    assert e.value.code == 2
    assert "--source" in capsys.readouterr().err


def test_flux_queries_name_what_the_bridge_writes() -> None:
    from host import influx_sink
    from host.records import Event, Marker
    from host.report_data import EVENT_MEASUREMENT, MARKER_MEASUREMENT, flux_query

    e = Event(band="b", seq=1, boot=1, utc_ms=1, t_ms=1, kind=1, severity=1, confidence=1,
              duration_ms=1, peak_act_x10=1, mean_act_x10=1, peak_acc_mg=0, freq_dhz=0,
              modalities=1)  # fmt: skip
    m = Marker(band="b", seq=2, boot=1, utc_ms=1, t_ms=1, source=1)
    assert influx_sink.points(e)[0]._name == EVENT_MEASUREMENT
    assert influx_sink.points(m)[0]._name == MARKER_MEASUREMENT
    q = flux_query("spasm", EVENT_MEASUREMENT, "a1b2c3", 0, 86_400_000)
    assert 'r._measurement == "spasm_event" and r.band == "a1b2c3"' in q
    assert "range(start: 1970-01-01T00:00:00.000000Z, stop: 1970-01-02T00:00:00.000000Z)" in q
    with pytest.raises(ValueError, match="band"):
        flux_query("spasm", EVENT_MEASUREMENT, 'x") or true //', 0, 1)


def test_influx_source_without_flux_fails_cleanly(
    victoria: Victoria, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """VictoriaMetrics takes InfluxDB writes but has no Flux: the report says so and exits 1."""
    rc = cli.main(
        ["report", "--band", BAND, "--since", "2026-01-01", "--until", "2026-01-08", "--out",
         str(tmp_path / "r.html"), "--source", "influx", "--set", f'influx.url="{victoria.url}"',
         "--set", "influx.timeout_s=5"]
    )  # fmt: skip
    assert rc == 1
    assert "query failed" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
