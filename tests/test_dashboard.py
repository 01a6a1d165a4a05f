"""The Grafana dashboard: valid JSON; every query names a measurement and field the bridge writes.

The names the bridge writes are taken from the code that writes them
(host.influx_sink.points for band records, host.notes.note_point for notes), by
turning one record of each type into line protocol, not from a copied list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from host import influx_sink
from host.notes import NOTE_KINDS, Note, note_point
from host.records import Event, Fault, Marker, Onset, Signal, Status

DASHBOARD = Path(__file__).resolve().parents[1] / "host" / "dashboards" / "grafana-spasm.json"


def written() -> dict[str, tuple[set[str], set[str]]]:
    """measurement -> (tag keys, field keys), from the bridge's own point mapping."""
    common: dict[str, Any] = {"band": "b1", "seq": 1, "boot": 1, "utc_ms": 1_700_000_000_000}
    recs = [
        Event(**common, t_ms=1, kind=1, severity=1, confidence=50, duration_ms=100,
              peak_act_x10=10, mean_act_x10=5, peak_acc_mg=0, freq_dhz=0, modalities=1),
        Marker(**common, t_ms=1, source=1),
        Fault(**common, t_ms=1, fault=1, duration_ms=10),
        Onset(**common, t_ms=1, kind=1, confidence=50, act_x10=10),
        Status(**common, uptime_ms=1, battery_pct=50, battery_mv=3700, quality=90, faults=0,
               log_used=0, log_capacity=10, log_overwritten=0, last_seq=0, acked_seq=0, state=1,
               fw_major=1, fw_minor=0, fw_patch=0),
        Signal(**common, t_ms=1, rate_hz=10, count=1, samples=((1, 2, 3, 4),)),
    ]  # fmt: skip
    points = [p for r in recs for p in influx_sink.points(r)]
    points.append(note_point(Note("b1", NOTE_KINDS[0], "plain", 1_700_000_000_000, 1)))
    out: dict[str, tuple[set[str], set[str]]] = {}
    for p in points:
        head, fields, _ts = _split(p.to_line_protocol())
        meas, *tags = head.split(",")
        t, f = out.setdefault(meas, (set(), set()))
        t.update(kv.split("=")[0] for kv in tags)
        f.update(kv.split("=")[0] for kv in fields.split(","))
    return out


def _split(line: str) -> tuple[str, str, str]:
    """Line protocol: measurement+tags (no spaces here), fields, timestamp."""
    head, rest = line.split(" ", 1)
    fields, ts = rest.rsplit(" ", 1)
    return head, fields, ts


def queries(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query text) of every panel target, annotation and templating query."""
    out = []
    for p in d["panels"]:
        for t in p["targets"]:
            out.append((f"panel {p['title']!r} {t['refId']}", t["query"]))
    for a in d["annotations"]["list"]:
        out.append((f"annotation {a['name']!r}", a["target"]["query"]))
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["query"]))
    return out


def test_dashboard_loads_and_is_well_formed() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["title"] and d["uid"] and d["schemaVersion"] >= 30
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) >= 6
    for p in d["panels"]:
        assert {"type", "title", "gridPos", "datasource", "targets"} <= set(p)
        assert p["datasource"]["type"] == "influxdb" and p["targets"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"][
            "w"
        ] <= 24
    assert any(i["name"] == "DS_INFLUXDB" for i in d["__inputs"])


def test_every_query_names_what_the_bridge_writes() -> None:
    d = json.loads(DASHBOARD.read_text())
    w = written()
    assert {"spasm_event", "spasm_marker", "spasm_status", "spasm_note"} <= set(w)
    seen: set[str] = set()
    for where, q in queries(d):
        meas = re.findall(r'r\._measurement == "(\w+)"', q)
        assert meas, f"{where}: names no measurement"
        for m in meas:
            assert m in w, f"{where}: {m} is not written by the bridge"
            seen.add(m)
        tags_used = set(re.findall(r"r\.(\w+) (?:==|=~)", q)) - {"_measurement", "_field"}
        for m in meas:
            assert tags_used <= w[m][0], f"{where}: tags {tags_used - w[m][0]} not on {m}"
        if where.startswith("variable"):
            continue  # a tag-values query names a measurement, not a field
        fields = re.findall(r'r\._field == "(\w+)"', q)
        assert fields, f"{where}: names no field"
        for f in fields:
            assert any(f in w[m][1] for m in meas), f"{where}: field {f} not written to {meas}"
        for cols in re.findall(r"group\(columns: \[([^\]]*)\]\)", q):
            for col in re.findall(r'"(\w+)"', cols):
                assert any(col in w[m][0] for m in meas), f"{where}: groups by unknown tag {col}"
    assert {"spasm_event", "spasm_marker", "spasm_status", "spasm_fault", "spasm_note"} <= seen
