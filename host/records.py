"""Typed host objects for decoded band frames.

protocol.codec owns the byte layout; this module only wraps its decoded
``(ftype, flags, seq, fields)`` tuples in dataclasses, converts them to and from
the JSON the MQTT sink publishes (the ingest role reads it back), and validates
untrusted JSON by re-encoding through the codec, so ranges are checked in one place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from protocol import codec


@dataclass(frozen=True, kw_only=True)
class Record:
    """A band record as spooled. ``utc_ms`` is final once spooled (band's or the bridge's stamp)."""

    band: str
    seq: int
    boot: int
    utc_ms: int = 0
    rtype: ClassVar[str] = ""
    ftype: ClassVar[int] = 0
    logged: ClassVar[bool] = False  # in band flash: acked and replayed, dedupe on (band, seq)

    @property
    def band_ms(self) -> int:
        """Band time of the record, ms since its boot."""
        return int(getattr(self, "t_ms", 0))


@dataclass(frozen=True, kw_only=True)
class Event(Record):
    t_ms: int
    kind: int
    severity: int
    confidence: int
    duration_ms: int
    peak_act_x10: int
    mean_act_x10: int
    peak_acc_mg: int
    freq_dhz: int
    modalities: int
    rtype: ClassVar[str] = "event"
    ftype: ClassVar[int] = codec.EVENT
    logged: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class Marker(Record):
    t_ms: int
    source: int
    rtype: ClassVar[str] = "marker"
    ftype: ClassVar[int] = codec.MARKER
    logged: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class Fault(Record):
    t_ms: int
    fault: int
    duration_ms: int
    rtype: ClassVar[str] = "fault"
    ftype: ClassVar[int] = codec.FAULT
    logged: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class Onset(Record):
    t_ms: int
    kind: int
    confidence: int
    act_x10: int
    rtype: ClassVar[str] = "onset"
    ftype: ClassVar[int] = codec.ONSET


@dataclass(frozen=True, kw_only=True)
class Status(Record):
    uptime_ms: int
    battery_pct: int
    battery_mv: int
    quality: int
    faults: int
    log_used: int
    log_capacity: int
    log_overwritten: int
    last_seq: int
    acked_seq: int
    state: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    rtype: ClassVar[str] = "status"
    ftype: ClassVar[int] = codec.STATUS

    @property
    def band_ms(self) -> int:
        return self.uptime_ms


@dataclass(frozen=True, kw_only=True)
class Signal(Record):
    t_ms: int
    rate_hz: int
    count: int
    samples: tuple[tuple[int, int, int, int], ...]
    rtype: ClassVar[str] = "signal"
    ftype: ClassVar[int] = codec.SIGNAL


@dataclass(frozen=True)
class ConfigValue:
    """A CONTROL reply to CONFIG_GET/SET (not spooled)."""

    band: str
    seq: int
    status: int
    key: str
    value: int | float | str | bool | None


@dataclass(frozen=True)
class BandError:
    """An ERROR reply: the band refused command ``ref_seq`` (not spooled)."""

    band: str
    seq: int
    code: int
    ref_type: int
    ref_seq: int
    text: str


SPOOLED: dict[str, type[Record]] = {
    c.rtype: c for c in (Event, Marker, Fault, Onset, Status, Signal)
}
BY_FTYPE: dict[int, type[Record]] = {c.ftype: c for c in SPOOLED.values()}
Frame = Record | ConfigValue | BandError


def from_frame(band: str, decoded: tuple[int, int, int, dict[str, Any]]) -> Frame:
    """Wrap one ``codec.decode`` result; raise codec.UnknownTypeError for host->band types."""
    ftype, _flags, seq, fields = decoded
    if ftype == codec.CONFIG_VALUE:
        return ConfigValue(band, seq, fields["status"], fields["key"], fields.get("value"))
    if ftype == codec.ERROR:
        return BandError(
            band, seq, fields["code"], fields["ref_type"], fields["ref_seq"], fields["text"]
        )
    cls = BY_FTYPE.get(ftype)
    if cls is None:
        raise codec.UnknownTypeError(f"type 0x{ftype:02x} is not sent by a band", ftype, seq)
    kw = dict(fields)
    if cls is Signal:
        kw["samples"] = tuple(tuple(s) for s in fields["samples"])
    kw.setdefault("utc_ms", 0)
    return cls(band=band, seq=seq, **kw)


# JSON as the spool and MQTT carry it: no spaces
compact_json = json.JSONEncoder(separators=(",", ":")).encode
_FIELD_NAMES: dict[type[Record], tuple[str, ...]] = {}


def _fields(rec: Record) -> dict[str, Any]:
    """The record's fields in a new dict. Shallow (signal samples are shared, not
    copied as ``dataclasses.asdict`` would: every signal chunk passes here)."""
    cls = type(rec)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return {n: getattr(rec, n) for n in names}


def body(rec: Record) -> dict[str, Any]:
    """The record's fields except band (the spool keeps band and type in columns)."""
    d = _fields(rec)
    del d["band"]
    return d


def to_json(rec: Record) -> dict[str, Any]:
    """The MQTT JSON object: wire-unit integers plus readable names for kinds."""
    d = _fields(rec)
    d["type"] = rec.rtype
    if isinstance(rec, Event | Onset):
        d["kind_name"] = codec.KINDS[rec.kind] if rec.kind < len(codec.KINDS) else ""
    if isinstance(rec, Fault):
        d["fault_name"] = codec.FAULTS[rec.fault]
    return d


def from_json(rtype: str, band: str, data: Any) -> Record:
    """Rebuild a record from untrusted JSON; ValueError names the first bad field."""
    cls = SPOOLED.get(rtype)
    if cls is None:
        raise ValueError(f"unknown record type {rtype!r}")
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    if data.get("band", band) != band:
        raise ValueError(f"band {data.get('band')!r} does not match the topic's {band!r}")
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "band":
            continue
        if f.name not in data:
            if f.name == "utc_ms":
                continue
            raise ValueError(f"missing field {f.name!r}")
        v = data[f.name]
        if f.name == "samples":
            if not isinstance(v, list):
                raise ValueError("samples: not a list")
            v = tuple(tuple(s) if isinstance(s, list) else s for s in v)
        elif isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{f.name}: not an integer")
        kw[f.name] = v
    rec = cls(band=band, **kw)
    validate(rec)
    return rec


def validate(rec: Record) -> None:
    """Check every field's range through the codec (raises ValueError)."""
    fields = body(rec)
    if rec.utc_ms < 0 or rec.utc_ms > 0xFFFFFFFFFFFFFFFF:
        raise ValueError("utc_ms: out of range")
    try:
        codec.encode(rec.ftype, rec.seq, fields)
    except codec.FrameError as e:
        raise ValueError(e.detail) from None
