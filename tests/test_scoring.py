"""The benchmark's matching rule (simulator/scoring.py) on hand-made labels and detector output."""

from __future__ import annotations

from typing import Any

from simulator.scoring import score
from simulator.signal_model import Label

Popped = list[tuple[int, tuple[Any, ...]]]


def _event(t: int, dur: int, kind: int = 1) -> tuple[Any, ...]:
    return ("event", t, dur, kind, 1, 60, 30, 20, 0, 0, 3)


def _onset(t: int) -> tuple[Any, ...]:
    return ("onset", t, 0, 55, 20)


LABELS = [
    Label(0, 60000, "rest"),
    Label(10000, 10200, "myoclonic", "weak"),
    Label(20000, 25000, "clonic", "strong"),
    Label(30000, 40000, "walking"),
    Label(35000, 35300, "bumps"),
    Label(50000, 52000, "flatline"),
]


def test_a_spasm_is_found_by_an_event_overlapping_it_within_the_slack() -> None:
    # 450 ms before the jerk's onset still overlaps with the 500 ms slack; the
    # clonus event ends 600 ms before its onset: too early
    popped: Popped = [
        (9600, _onset(9550)),
        (11000, _event(9550, 50)),
        (20000, _event(18000, 1400, 2)),
    ]
    s = score(LABELS, popped, 60000)
    jerk, clonus = s.matches
    assert jerk.kind == "myoclonic" and jerk.latency_ms == 9600 - 10000
    assert jerk.duration_err_ms == 50 - 200
    assert clonus.kind == "" and clonus.latency_ms is None
    assert s.false_positives == [("rest", 18000, "clonic")]


def test_labels_and_events_are_matched_one_to_one_in_time_order() -> None:
    # one long event over both spasms finds only the first; the second event
    # (later, overlapping the clonus) finds the clonus
    popped: Popped = [(26000, _event(9900, 15500, 3)), (27000, _event(24000, 800, 2))]
    s = score(LABELS, popped, 60000)
    assert [m.kind for m in s.matches] == ["tonic", "clonic"]
    assert s.false_positives == [] and s.detections == 2


def test_latency_is_to_the_onset_announcement_or_else_to_the_event() -> None:
    popped: Popped = [
        (20300, _onset(20000)),
        (26500, _event(20000, 5000, 2)),
        (12000, _event(10000, 150)),  # no onset announced: the event's pop time counts
    ]
    s = score(LABELS, sorted(popped), 60000)
    by_kind = {m.label.kind: m.latency_ms for m in s.matches}
    assert by_kind == {"myoclonic": 2000, "clonic": 300}


def test_false_positives_are_charged_to_the_label_under_them() -> None:
    popped: Popped = [
        (33000, _event(32000, 100)),  # amid the walk
        (35500, _event(35100, 100)),  # a bump inside the walk: the short episode wins
        (51000, _event(50500, 100)),  # during a fault: the fault wins, and counts apart
        (45000, _event(45000, 100)),  # nothing but rest
    ]
    s = score(LABELS, popped, 60000)
    assert sorted(c for c, _, _ in s.false_positives) == ["bumps", "flatline", "rest", "walking"]
    assert s.events_in_faults == 1


def test_an_onset_that_no_event_followed_is_a_withdrawn_alert() -> None:
    popped: Popped = [
        (9600, _onset(9550)),
        (11000, _event(9550, 50)),
        (31000, _onset(30950)),  # a step: announced, then judged ordinary
        (36000, _onset(35900)),  # a knock
    ]
    s = score(LABELS, popped, 60000)
    assert s.lone_onsets == 2
    total = score(LABELS, popped, 60000)
    total.merge(s)
    assert total.lone_onsets == 4


def test_faults_are_found_by_a_report_of_the_same_type_overlapping_them() -> None:
    flat = ("fault", 50010, 3, 1990)
    wrong = ("fault", 50010, 1, 1990)  # lead-off: another type
    assert score(LABELS, [(52000, flat)], 60000).faults_found["flatline"] == [1, 1]
    assert score(LABELS, [(52000, wrong)], 60000).faults_found["flatline"] == [0, 1]


def test_exposure_covers_the_whole_recording_once() -> None:
    s = score(LABELS, [], 60000)
    assert sum(s.exposure_ms.values()) == 60000
    assert s.exposure_ms["walking"] == 10000 - 300 and s.exposure_ms["bumps"] == 300
