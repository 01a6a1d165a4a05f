"""The signal model: seeded, randomised, labelled, and its recording files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator import recording
from simulator.cli import main as sim_main
from simulator.latency_floor import (
    RMS_RATIOS,
    oracle_latencies,
    oracle_latency_ms,
    snr_threshold,
    summarise,
)
from simulator.scenarios import SCENARIOS, record
from simulator.signal_model import (
    AMPLITUDE_CLASSES,
    FAULTS,
    FULL_SCALE_UV,
    SPASM_KINDS,
    Body,
    Label,
)
from tests.detector_fixtures import EVERYTHING
from tests.detector_fixtures import recording as cached


def test_same_seed_same_recording_other_seed_other_body() -> None:
    a = record("spasms", 5, 1.0)
    b = record("spasms", 5, 1.0)
    c = record("spasms", 6, 1.0)
    assert np.array_equal(a.emg_uv, b.emg_uv) and np.array_equal(a.acc_g, b.acc_g)
    assert a.labels == b.labels
    assert not np.array_equal(a.emg_uv, c.emg_uv)


def test_knobs_are_randomised_across_seeds() -> None:
    bodies = [Body(np.random.default_rng(s), 1.0) for s in range(40)]
    assert {round(b.hum_hz, -1) for b in bodies} == {50.0, 60.0}  # both mains frequencies
    floors = [b.sigma0 for b in bodies]
    assert max(floors) > 2 * min(floors)
    assert len({round(b.drift_uv) for b in bodies}) > 30


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_is_labelled_and_in_range(name: str) -> None:
    rec = record(name, 3, 2.0)
    n = len(rec.emg_uv)
    assert n == 120000 and rec.acc_g.shape == (12000, 3)
    assert rec.emg_uv.dtype == np.int32
    assert np.abs(rec.emg_uv).max() <= FULL_SCALE_UV
    assert rec.labels, name
    for lb in rec.labels:
        assert 0 <= lb.onset_ms <= lb.offset_ms <= n, lb
        if lb.kind in SPASM_KINDS:
            assert lb.amplitude in AMPLITUDE_CLASSES and lb.snr > 1.0


def test_episode_durations_follow_their_kind() -> None:
    rec = cached(*EVERYTHING)
    spans = {lb.kind: lb.offset_ms - lb.onset_ms for lb in rec.labels}
    assert 50 <= spans["myoclonic"] <= 300
    assert 2000 <= spans["clonic"] <= 31000
    assert 1000 <= spans["tonic"] <= 64000
    assert {"walking", "typing", "lifting", "bumps", "sleep_turn"} <= set(spans)
    assert set(FAULTS) <= set(spans)


def test_spasm_raises_emg_and_faults_look_like_faults() -> None:
    rec = cached(*EVERYTHING)
    emg = rec.emg_uv.astype(float)
    hp = np.zeros_like(emg)
    hp[100:] = emg[100:] - emg[:-100]  # 100 ms comb: cancels 50 and 60 Hz hum and drift
    by = {lb.kind: lb for lb in rec.labels}
    rest = hp[1500:4500].std()
    tonic = by["tonic"]
    mid = (tonic.onset_ms + tonic.offset_ms) // 2
    assert hp[mid - 500 : mid + 500].std() > 2 * rest
    sat = by["saturation"]
    assert np.all(np.abs(rec.emg_uv[sat.onset_ms : sat.offset_ms]) == FULL_SCALE_UV)
    flat = by["flatline"]
    assert np.ptp(rec.emg_uv[flat.onset_ms : flat.offset_ms]) == 0
    drop = by["acc_dropout"]
    assert np.all(rec.acc_g[drop.onset_ms // 10 : drop.offset_ms // 10] == 0)
    # outside the dropout the accelerometer feels about 1 g of gravity
    g = np.linalg.norm(rec.acc_g[:200], axis=1)
    assert 0.9 < g.mean() < 1.1


def test_amplitude_classes_reach_down_to_the_noise_floor() -> None:
    rec = record("myoclonic", 2, 10.0)
    snrs = [lb.snr for lb in rec.labels if lb.kind == "myoclonic"]
    assert min(snrs) < 3.0 and max(snrs) > 8.0


def test_activation_over_the_floor_comes_with_the_recording() -> None:
    rest = record("rest", 1, 10.0)
    assert rest.snr is not None and rest.snr.dtype == np.float32
    assert len(rest.snr) == len(rest.emg_uv) and np.isfinite(rest.snr).all()
    # no spasms at rest: only brief posture shifts (<= 1.2x the floor) raise the activation
    assert not any(lb.kind in SPASM_KINDS for lb in rest.labels)
    assert np.median(rest.snr) == 0.0 and (rest.snr > 0.01).mean() < 0.05
    assert 0.0 < rest.snr.max() <= 1.2 + 1e-6
    # in the hold of a tonic spasm the activation sits at the label's SNR (+-15 % fluctuation)
    tonic = record("tonic", 2, 10.0)
    assert tonic.snr is not None
    held = [lb for lb in tonic.labels if lb.kind == "tonic" and lb.offset_ms - lb.onset_ms > 6000]
    assert len(held) >= 3
    for lb in held:
        ratio = np.median(tonic.snr[lb.onset_ms + 2000 : lb.offset_ms - 1500]) / lb.snr
        assert 0.85 < ratio < 1.15, (lb, ratio)


def test_oracle_latency_is_the_first_sample_over_the_threshold() -> None:
    snr = np.zeros(5000, dtype=np.float32)
    snr[1000:3001] = np.linspace(0.0, 2.0, 2001)  # 0.001 per ms from t = 1000
    lb = Label(1000, 4000, "tonic", "moderate", 2.0)
    for r in (1.1, 1.2, 1.5):
        expected = int(np.ceil(snr_threshold(r) / 0.001 - 1e-3))
        assert abs(oracle_latency_ms(snr, lb, r) - expected) <= 1  # type: ignore[operator]
    assert oracle_latency_ms(snr, lb, 3.0) is None  # never reaches snr 2.83: never visible


def test_tonic_oracle_latency_lies_in_the_rise_and_grows_with_the_threshold() -> None:
    rec = record("tonic", 2, 10.0)
    assert rec.snr is not None
    tonics = [lb for lb in rec.labels if lb.kind == "tonic"]
    assert len(tonics) >= 5
    for lb in tonics:
        lat = [oracle_latency_ms(rec.snr, lb, r) for r in (1.05, 1.1, 1.2, 1.5)]
        assert all(x is not None for x in lat), (lb, lat)
        seen = [int(x) for x in lat if x is not None]
        assert 0 < seen[0] and seen[-1] <= 2000, (lb, seen)  # inside the 0.3-2 s rise
        assert seen == sorted(seen) and seen[0] < seen[-1], (lb, seen)
        assert (
            rec.snr[lb.onset_ms + seen[1] - 1]
            < snr_threshold(1.1)
            <= rec.snr[lb.onset_ms + seen[1]]
        )
    # the bench's summary: weak spasms rise slowest, so more of them are late
    floor = summarise(oracle_latencies(rec))
    s = floor[f"rms_ratio_{RMS_RATIOS[0]}"]
    assert s["labelled_spasms"] == len(tonics) and s["never_visible"] == 0
    per_amp = s["share_over_target_per_amplitude"]
    assert per_amp["weak"] is not None and per_amp["strong"] is not None
    assert per_amp["weak"] >= per_amp["strong"]


def test_recording_files_round_trip(tmp_path: Path) -> None:
    rec = record("everything", 2, 0.5)
    recording.write(rec, tmp_path)
    t, v = recording.read_emg(tmp_path / "emg.csv")
    assert np.array_equal(v.astype(int), rec.emg_uv) and t[1] - t[0] == 1
    t, a = recording.read_acc(tmp_path / "acc.csv")
    assert np.allclose(a, rec.acc_g, atol=0.0006) and t[1] - t[0] == 10
    labels = recording.read_labels(tmp_path / "labels.csv")
    assert labels == [(lb.onset_ms, lb.offset_ms, lb.kind) for lb in rec.labels]
    assert (tmp_path / "emg.csv").read_text().splitlines()[0] == "t_ms,emg_uv"
    assert (tmp_path / "acc.csv").read_text().splitlines()[0] == "t_ms,ax_g,ay_g,az_g"
    assert (tmp_path / "labels.csv").read_text().splitlines()[0] == "onset_ms,offset_ms,kind"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("t_ms,emg\n0,1\n", 1, "emg_uv"),
        ("t_ms,emg_uv\n0,1\n1,abc\n", 3, "emg_uv"),
        ("t_ms,emg_uv\n0,1\n2,1\n1,1\n", 4, "t_ms"),
        ("t_ms,emg_uv\n0,1\n1\n", 3, "emg_uv"),
        ("t_ms,emg_uv\n0,1\n1,nan\n", 3, "emg_uv"),
        ("", 1, "-"),
        ("t_ms,emg_uv\n0,1\n", 2, "t_ms"),
    ],
)
def test_bad_emg_files_name_line_and_column(
    tmp_path: Path, text: str, line: int, column: str
) -> None:
    p = tmp_path / "emg.csv"
    p.write_text(text)
    with pytest.raises(recording.RecordingError) as e:
        recording.read_emg(p)
    assert (e.value.line, e.value.column) == (line, column)
    assert str(p) in str(e.value) and f"line {line}" in str(e.value)


def test_bad_labels_and_binary_garbage(tmp_path: Path) -> None:
    p = tmp_path / "labels.csv"
    p.write_text("onset_ms,offset_ms,kind\n10,5,tonic\n")
    with pytest.raises(recording.RecordingError, match="line 2, column offset_ms"):
        recording.read_labels(p)
    p.write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(recording.RecordingError):
        recording.read_labels(p)
    with pytest.raises(recording.RecordingError, match="cannot open"):
        recording.read_acc(tmp_path / "missing.csv")


def test_resampling_to_band_rates() -> None:
    t = np.arange(0, 1000, 0.5)  # 2 kHz for one second
    v = np.sin(2 * np.pi * 5 * t / 1000)
    out = recording.to_rate(t, v, 1000)
    assert len(out) == 1000
    assert np.allclose(out, np.sin(2 * np.pi * 5 * np.arange(1000) / 1000), atol=0.02)
    slow = recording.to_rate(np.arange(0, 1000, 20.0), np.arange(50.0), 100)  # 50 Hz -> 100 Hz
    assert len(slow) == 99 and slow[1] == pytest.approx(0.5)


def test_cli_record_and_scenarios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["scenarios"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SCENARIOS)
    out = tmp_path / "rec"
    assert (
        sim_main(
            ["record", "--scenario", "tonic", "--seed", "4", "--minutes", "0.2", "--out", str(out)]
        )
        == 0
    )
    assert len((out / "emg.csv").read_text().splitlines()) == 12001
    assert len((out / "acc.csv").read_text().splitlines()) == 1201


@pytest.mark.parametrize(
    "argv",
    [
        ["record", "--scenario", "nope", "--seed", "1", "--minutes", "1", "--out", "x"],
        ["record", "--scenario", "rest", "--seed", "x", "--minutes", "1", "--out", "x"],
        ["record", "--scenario", "rest", "--seed", "1", "--minutes", "-1", "--out", "x"],
        ["record", "--scenario", "rest", "--seed", "1", "--minutes", "1"],
        ["bogus"],
        [],
    ],
)
def test_cli_garbage_arguments_exit_non_zero(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        sim_main(argv)
    assert e.value.code != 0


def test_cli_record_refuses_a_negative_seed(capsys: pytest.CaptureFixture[str]) -> None:
    # numpy takes no negative seed: refused as a usage error, not a traceback
    argv = ["record", "--scenario", "spasms", "--seed", "-1", "--minutes", "0.1", "--out", "x"]
    with pytest.raises(SystemExit) as e:
        sim_main(argv)
    assert e.value.code == 2
    assert "argument --seed: -1 is outside 0..4294967295" in capsys.readouterr().err


def test_cli_record_refuses_an_unusable_out_folder_before_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["record", "--scenario", "rest", "--seed", "1", "--minutes", "0.1"]
    assert sim_main(argv + ["--out", str(blocker / "rec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spasm-sim record: --out {blocker / 'rec'}: ") and err.count("\n") == 1


def _markdown_table(text: str, heading: str) -> dict[str, str]:
    """The two-column rows of the first table under ``heading``, header row left out."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return {a.strip(): b.strip() for a, b in rows[2:]}


def test_recordings_md_describes_the_scenarios_as_spasm_sim_does() -> None:
    md = (Path(recording.__file__).parent / "RECORDINGS.md").read_text()
    assert _markdown_table(md, "## Scenarios") == SCENARIOS


def test_scenario_descriptions_match_the_labels() -> None:
    # night: all three kinds, tonic drawn twice as often as each other kind (over
    # three hours: one recording's counts stray far from the odds)
    kinds = [lb.kind for seed in (1, 2, 3) for lb in record("night", seed, 60).labels]
    n = {k: kinds.count(k) for k in SPASM_KINDS}
    assert 1.5 < n["tonic"] / n["clonic"] < 2.5 and 1.5 < n["tonic"] / n["myoclonic"] < 2.5, n
    assert "tonic with odds 1/2" in SCENARIOS["night"]
    # everything: one of each episode kind, but no background bout of rest or sleep
    labelled = {lb.kind for lb in record("everything", 2, 4).labels}
    assert labelled >= set(SPASM_KINDS) | set(FAULTS) | {"walking", "typing", "lifting"}
    assert not labelled & {"rest", "sleep"} and "no rest or sleep bout" in SCENARIOS["everything"]
