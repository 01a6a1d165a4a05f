"""Hostile MQTT payloads against the bridge's parsers (property tests, no servers).

- ``mqtt_sink.parse_command``: a command from anyone who can publish to
  ``<prefix>/<band>/cmd/<name>``. It must return fields the codec encodes, or
  raise CommandRejected; nothing else (another exception would end the sink's
  connection task: found by this file, see the deep-nesting and lone-surrogate
  cases).
- ``IngestWorker._parse``: an event from anyone who can publish to
  ``<prefix>/<band>/<type>``. It must return a record whose points build, or
  raise one of ``ingest.BAD_MESSAGE`` (the worker logs, counts and acks those).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.config import Config
from host.influx_sink import points
from host.ingest import BAD_MESSAGE, IngestWorker
from host.mqtt_sink import COMMANDS, CommandRejected, parse_command
from host.records import Event, to_json
from protocol import codec

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["key", "value", "on", "rate_hz", "x", "seq", "kind", "samples"])
command_objects = st.dictionaries(keys, json_values, max_size=4)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.binary(max_size=300),
    command_objects.map(_dump),
    json_values.map(_dump),
    st.integers(1, 30_000).map(lambda n: b"[" * n),
    st.integers(1, 30_000).map(lambda n: b'{"a":' * n),
)
names = st.one_of(st.sampled_from(sorted(COMMANDS)), st.text(max_size=12))


def _check_command(name: str, payload: bytes) -> None:
    try:
        ftype, fields = parse_command(name, payload)
    except CommandRejected:
        return
    codec.decode(codec.encode(ftype, 1, fields))  # what the bridge then writes to the band


@settings(max_examples=300)
@given(names, payloads)
def test_mqtt_commands_parse_or_are_rejected(name: str, payload: bytes) -> None:
    _check_command(name, payload)


@pytest.mark.parametrize(
    "name, payload",
    [
        ("config_get", b"[" * 100_000),  # RecursionError in json: ended the sink's task
        ("config_get", b'{"key": "\\ud800"}'),  # lone surrogate: UnicodeEncodeError in the codec
        ("config_set", b'{"key": "k", "value": NaN}'),
        ("config_set", b'{"key": "k", "value": Infinity}'),
        ("config_set", b'{"key": "k", "value": "\\udfff"}'),
        ("stream", b'{"on": true, "rate_hz": 1e999}'),
        ("stream", b'{"on": true, "rate_hz": 100000000000000000000000}'),
    ],
)
def test_known_hostile_commands_are_rejected(name: str, payload: bytes) -> None:
    with pytest.raises(CommandRejected):
        parse_command(name, payload)


@dataclass
class Msg:
    """The two attributes of aiomqtt.Message that the ingest parser reads."""

    topic: str
    payload: Any


def _event_json() -> dict[str, Any]:
    ev = Event(
        band="a1b2c3", seq=5, boot=1, utc_ms=1_700_000_000_000, t_ms=100, kind=2, severity=2,
        confidence=80, duration_ms=900, peak_act_x10=50, mean_act_x10=20, peak_acc_mg=300,
        freq_dhz=40, modalities=3,
    )  # fmt: skip
    return to_json(ev)


rtypes = st.one_of(
    st.sampled_from(["event", "marker", "fault", "status", "onset", "signal"]), st.text(max_size=8)
)


@st.composite
def ingest_payloads(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["bytes", "json", "mutated_event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return _dump(draw(json_values))
    data = _event_json()
    for k in draw(st.lists(st.sampled_from(sorted(data)), max_size=3)):
        if draw(st.booleans()):
            data[k] = draw(json_values)
        else:
            data.pop(k, None)
    return _dump(data)


@settings(max_examples=300)
@given(rtypes, st.text(max_size=10), ingest_payloads())
def test_ingest_messages_parse_or_are_rejected(rtype: str, band: str, payload: Any) -> None:
    worker = IngestWorker(Config())
    try:
        rec = worker._parse(Msg(f"spasm/v1/{band}/{rtype}", payload))
    except BAD_MESSAGE:
        return
    assert rec.band == band
    points(rec, True)  # the point it becomes builds too


def test_deeply_nested_ingest_message_is_a_bad_message() -> None:
    worker = IngestWorker(Config())
    with pytest.raises(BAD_MESSAGE):
        worker._parse(Msg("spasm/v1/a1b2c3/event", b"[" * 100_000))
    assert worker._parse(Msg("spasm/v1/a1b2c3/event", _dump(_event_json()))).seq == 5
