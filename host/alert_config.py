"""The [alerts] config section: per-patient thresholds, delivery, per-band overrides.

``AlertsSection`` uses only the field types and metadata (``min``/``max``, ``check``)
that host.config reads, so it joins ``host.config.Config`` as one more section;
``check_section`` is the cross-check (time zone, webhook URL, command, and the ``bands``
table of per-band overrides, whose values go through host.config_values' one value check).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from host.config_values import ConfigError, check_band_id, check_value, rng


class AlertConfigError(ValueError):
    """A bad [alerts] value; the message names the key (host.config turns it into ConfigError)."""


def parse_sleep_hours(text: str) -> tuple[int, int]:
    """``"22:00-07:00"`` -> (start, end) in minutes after midnight; ValueError says why."""
    try:
        a, b = text.split("-")
        out = []
        for part in (a, b):
            h, m = part.strip().split(":")
            hh, mm = int(h), int(m)
            if not (0 <= hh < 24 and 0 <= mm < 60):
                raise ValueError
            out.append(hh * 60 + mm)
    except ValueError:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM") from None
    return out[0], out[1]


def in_window(minute: int, start: int, end: int) -> bool:
    """Is ``minute`` of the day inside [start, end), a window that may wrap midnight?"""
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


@dataclass
class Thresholds:
    """The per-patient part of [alerts]: each key may be overridden per band."""

    baseline_days: float = field(default=7.0, metadata=rng(1, 90))
    baseline_min_hours: float = field(default=24.0, metadata=rng(1, 90 * 24))
    rate_factor: float = field(default=3.0, metadata=rng(1, 100))
    rate_min_count: int = field(default=4, metadata=rng(1, 10_000))
    # local time in ``timezone``; may wrap midnight
    sleep_hours: str = field(default="22:00-07:00", metadata={"check": parse_sleep_hours})
    sleep_window_min: float = field(default=60.0, metadata=rng(1, 24 * 60))
    sleep_max_count: int = field(default=3, metadata=rng(1, 10_000))
    severe_severity: int = field(default=3, metadata=rng(1, 3))
    long_tonic_s: float = field(default=30.0, metadata=rng(0.1, 86400))
    fault_min_s: float = field(default=60.0, metadata=rng(0, 86400))
    battery_low_pct: int = field(default=15, metadata=rng(0, 100))
    offline_after_min: float = field(default=30.0, metadata=rng(1, 7 * 24 * 60))
    cooldown_min: float = field(default=60.0, metadata=rng(0, 7 * 24 * 60))


@dataclass
class AlertsSection(Thresholds):
    """[alerts]: the rules' defaults, delivery, and ``bands = {band = {key = value}}``."""

    enabled: bool = False
    timezone: str = "UTC"  # IANA name for sleep hours, e.g. "Europe/Berlin"
    stale_after_min: float = field(default=60.0, metadata=rng(0, 7 * 24 * 60))
    command: list[str] = field(default_factory=list)  # argv, run without a shell; alert on stdin
    command_timeout_s: float = field(default=10.0, metadata=rng(0.1, 600))
    webhook_url: str = ""  # HTTP POST of the alert JSON
    webhook_timeout_s: float = field(default=10.0, metadata=rng(0.1, 600))
    bands: dict[str, Any] = field(default_factory=dict)  # per-band Thresholds overrides

    def for_band(self, band: str) -> Thresholds:
        """This band's thresholds: the defaults with its overrides applied."""
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(Thresholds)}
        base.update(self.bands.get(band, {}))
        return Thresholds(**base)


def check_section(sec: AlertsSection) -> None:
    """Cross-check [alerts] (call from host.config's checks); AlertConfigError names the key."""
    _check_thresholds(sec)
    try:
        ZoneInfo(sec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AlertConfigError(f"alerts.timezone: {sec.timezone!r} is not an IANA zone") from None
    if sec.webhook_url and not sec.webhook_url.startswith(("http://", "https://")):
        raise AlertConfigError("alerts.webhook_url: must start with http:// or https://")
    if sec.command and not sec.command[0]:
        raise AlertConfigError("alerts.command: the first item (the program) is empty")


def _check_thresholds(sec: AlertsSection) -> None:
    """Top-level and per-band thresholds through host.config_values' one value check (type, finite,
    range, sleep hours) and band-id rule; per-band values are stored as their field's type."""
    fields = {f.name: f for f in dataclasses.fields(Thresholds)}
    try:
        for name, f in fields.items():
            check_value(f"alerts.{name}", f, getattr(sec, name))
        for band, table in sec.bands.items():
            check_band_id(band, f"alerts.bands.{band}")
            if not isinstance(table, dict):
                raise AlertConfigError(f"alerts.bands.{band}: expected a table")
            for k, v in table.items():
                key = f"alerts.bands.{band}.{k}"
                if k not in fields:
                    raise AlertConfigError(
                        f"{key}: unknown key; per-band keys: {', '.join(fields)}"
                    )
                table[k] = check_value(key, fields[k], v)
    except ConfigError as e:
        raise AlertConfigError(str(e)) from None
