"""Alert rules (unit): each rule fires when it should, once per cooldown, and never on history.

Severe spasms, long tonic spasms (with per-band thresholds), a rate above the band's own
baseline, spasms in sleep hours (in the patient's timezone), not worn and sensor faults,
low battery, offline; a replayed backlog and duplicates raise nothing. One scenario raises
every rule, and no alert text reads as medical advice.
"""

from __future__ import annotations

import json
import re

from host.alert_config import AlertsSection, check_section
from host.alerts import RULES, Alert, AlertEngine
from tests.alerts.records import HOUR, MIN, T0, B, ev, fault, feed, rules, status

# Words that would make an alert read as medical advice. Alert texts state facts only.
ADVICE = re.compile(
    r"\b(should|must|take|taking|dose|dosage|doctor|physician|nurse|call|consult|seek|"
    r"recommend\w*|advis\w*|advice|medication|medicine|drug|treat\w*|therapy|emergency|"
    r"hospital|please|try|stop|increase your|reduce|rest|relax|stretch|drink|worry)\b",
    re.IGNORECASE,
)


def test_severe_spasm_once_per_cooldown() -> None:
    eng = AlertEngine(AlertsSection(cooldown_min=60))
    noon = T0 + 12 * HOUR
    got = feed(eng, [ev(0, noon, severity=3), ev(1, noon + 5 * MIN, severity=3)])
    assert rules(got) == ["severe_spasm"]
    assert got[0].seq == 0 and got[0].values["severity"] == 3
    assert rules(feed(eng, [ev(2, noon + 61 * MIN, severity=3)])) == ["severe_spasm"]
    assert feed(eng, [ev(3, noon + 62 * MIN, severity=2)]) == []


def test_long_tonic_with_per_band_threshold() -> None:
    cfg = AlertsSection(long_tonic_s=30, bands={"b2": {"long_tonic_s": 5.0}})
    check_section(cfg)
    eng = AlertEngine(cfg)
    noon = T0 + 12 * HOUR
    assert rules(feed(eng, [ev(0, noon, kind=3, dur_ms=40_000)])) == ["long_tonic"]
    assert feed(eng, [ev(1, noon + MIN, kind=1, dur_ms=40_000, band="b3")]) == []  # not tonic
    assert feed(eng, [ev(2, noon + MIN, kind=3, dur_ms=10_000, band="b3")]) == []  # short
    got = feed(eng, [ev(3, noon + MIN, kind=3, dur_ms=10_000, band="b2")])
    assert rules(got) == ["long_tonic"] and got[0].band == "b2"
    assert eng.thresholds("b2").long_tonic_s == 5 and eng.thresholds("b3").long_tonic_s == 30


def test_rate_above_baseline_needs_history_then_fires_once() -> None:
    cfg = AlertsSection(sleep_hours="00:00-00:01", baseline_min_hours=24, rate_factor=3)
    eng = AlertEngine(cfg)
    seq = 0
    # A burst on the first day: no baseline yet, no alert.
    burst0 = [ev(seq + i, T0 + 10 * HOUR + i * 5 * MIN) for i in range(6)]
    seq += 6
    assert "rate_above_baseline" not in rules(feed(eng, burst0))
    # Three days of one spasm every two hours: the band's own baseline, about 0.5 per hour.
    calm = [ev(seq + i, T0 + 11 * HOUR + i * 2 * HOUR) for i in range(36)]
    seq += 36
    assert "rate_above_baseline" not in rules(feed(eng, calm))
    start = calm[-1].utc_ms + 2 * HOUR
    burst = [ev(seq + i, start + i * 6 * MIN) for i in range(8)]
    got = [a for a in feed(eng, burst) if a.rule == "rate_above_baseline"]
    assert len(got) == 1  # the cooldown holds the rest of the episode
    a = got[0]
    assert a.values["last_hour"] >= 4
    assert a.values["last_hour"] > 3 * a.values["baseline_per_h"]
    assert 0.3 < a.values["baseline_per_h"] < 0.8


def test_sleep_spasms_in_the_patients_timezone() -> None:
    cfg = AlertsSection(timezone="Europe/Berlin", sleep_hours="22:00-07:00", sleep_max_count=3)
    eng = AlertEngine(cfg)
    night = T0 + 1 * HOUR  # 02:00 in Berlin (UTC+1 in November)
    got = feed(eng, [ev(i, night + i * 10 * MIN) for i in range(3)])
    assert rules(got) == ["sleep_spasms"]
    assert "22:00-07:00" in got[0].text and got[0].values["count"] == 3
    morning = T0 + 24 * HOUR + 6 * HOUR + 30 * MIN  # 07:30 in Berlin: awake
    awake = feed(eng, [ev(10 + i, morning + i * 5 * MIN) for i in range(4)])
    assert "sleep_spasms" not in rules(awake)


def test_not_worn_and_sensor_faults() -> None:
    eng = AlertEngine(AlertsSection(fault_min_s=60))
    noon = T0 + 12 * HOUR
    assert feed(eng, [fault(0, noon, 1, 10_000)]) == []  # a short lead-off: a loose moment
    assert rules(feed(eng, [fault(1, noon, 1, 120_000)])) == ["not_worn"]
    assert rules(feed(eng, [fault(2, noon, 2, 120_000)])) == ["sensor_fault"]
    eng2 = AlertEngine(AlertsSection())
    assert rules(feed(eng2, [status(0, noon, faults=0b0001)])) == ["not_worn"]
    got = feed(eng2, [status(1, noon, faults=0b1100)])
    assert rules(got) == ["sensor_fault"] and "flatline" in got[0].text


def test_battery_low_once_per_cooldown() -> None:
    eng = AlertEngine(AlertsSection(battery_low_pct=15, cooldown_min=120))
    noon = T0 + 12 * HOUR
    assert feed(eng, [status(0, noon, battery=50)]) == []
    recs = [status(i, noon + i * 10 * MIN, battery=14 - i) for i in range(6)]
    got = feed(eng, recs)
    assert rules(got) == ["battery_low"] and got[0].values["battery_pct"] == 14


def test_offline_once_per_silence() -> None:
    eng = AlertEngine(AlertsSection(offline_after_min=30, cooldown_min=0))
    t = T0 + 12 * HOUR
    eng.link(B, True, t)
    feed(eng, [status(0, t)])
    eng.link(B, False, t + MIN)
    assert eng.tick(t + 20 * MIN) == []
    got = eng.tick(t + 40 * MIN)
    assert rules(got) == ["offline"] and got[0].values["silent_min"] >= 30
    assert eng.tick(t + 90 * MIN) == []  # still the same silence
    eng.link(B, True, t + 100 * MIN)
    assert eng.tick(t + 200 * MIN) == []  # linked: not offline however long it is quiet
    eng.link(B, False, t + 200 * MIN)
    assert rules(eng.tick(t + 240 * MIN)) == ["offline"]


def test_backlog_and_duplicates_raise_nothing() -> None:
    eng = AlertEngine(AlertsSection(cooldown_min=0, stale_after_min=60))
    t = T0 + 12 * HOUR
    # A replayed backlog from yesterday: history, not news.
    assert eng.feed(ev(0, t, severity=3), now_ms=t + 24 * HOUR) == []
    assert eng.bands[B].events[-1] == t
    got = eng.feed(ev(1, t + 24 * HOUR, severity=3), now_ms=t + 24 * HOUR)
    assert rules(got) == ["severe_spasm"]
    assert eng.feed(ev(1, t + 24 * HOUR, severity=3), now_ms=t + 24 * HOUR) == []  # same seq


def _all_alerts() -> list[Alert]:
    """One scenario that raises every rule."""
    cfg = AlertsSection(cooldown_min=0, baseline_min_hours=24, timezone="UTC")
    eng = AlertEngine(cfg)
    out: list[Alert] = []
    seq = 0
    for i in range(40):  # baseline: one every two hours
        out += feed(eng, [ev(seq, T0 + 9 * HOUR + i * 2 * HOUR)])
        seq += 1
    night = T0 + 4 * 24 * HOUR + 2 * HOUR
    for i in range(6):
        out += feed(eng, [ev(seq, night + i * 5 * MIN, kind=3, severity=3, dur_ms=60_000)])
        seq += 1
    out += feed(eng, [fault(seq, night, 1, 300_000), fault(seq + 1, night, 3, 300_000)])
    out += feed(eng, [status(0, night, battery=5, faults=0b1001)])
    eng.link(B, False, night)
    out += eng.tick(night + 5 * HOUR)
    return out


def test_every_rule_fires_and_no_text_gives_advice() -> None:
    alerts = _all_alerts()
    assert set(rules(alerts)) == set(RULES)
    for a in alerts:
        assert a.text and B in a.text
        assert not ADVICE.search(a.text), f"advice-like wording in {a.rule}: {a.text}"
        assert a.rule in RULES and a.level in ("info", "warning")
        d = json.loads(json.dumps(a.to_json()))
        assert d["type"] == "alert" and d["band"] == B and d["rule"] == a.rule
