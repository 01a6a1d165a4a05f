"""One value of the bridge's config: its type, its checks, and the band-id rule.

Each config field declares its type and metadata (``min``/``max``, ``choices``,
``normalise``, ``check``); ``check_value`` is the one check of a value against them,
for host.config's sections and for the per-band [alerts.bands.<band>] tables
(host.alert_config). Errors are ConfigError naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

BAND_ID = re.compile(r"[0-9a-f]{2,16}")  # the hex of the band's chip id (protocol/SPEC.md)


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and the reason."""


def rng(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """A numeric field's range metadata."""
    return {"min": lo, "max": hi}


def _type_name(v: object) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(v), type(v).__name__
    )


def _coerce(key: str, typ: str, value: Any) -> Any:
    """Check one TOML value against the declared type of ``key``."""
    if typ == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_type_name(value)}")
    if typ == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {_type_name(value)}")
    if typ == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {_type_name(value)}")
    if typ == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {_type_name(value)}")
    if typ == "list[str]":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{key}: expected a list of strings")
    if typ == "dict[str, Any]":
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key}: expected a table")
    raise ConfigError(f"{key}: unsupported type {typ}")  # a bug in this module


def check_field(key: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` (already of the field's type) normalised and checked against the field's
    metadata: finite, ``choices``, ``min``/``max``, and a ``check`` function that raises
    ValueError with the reason (e.g. sleep hours)."""
    meta = f.metadata
    if "normalise" in meta:
        value = meta["normalise"](value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value} is not a finite number")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(meta['choices'])}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value} is above the maximum {hi}")
    if "check" in meta:
        try:
            meta["check"](value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from None
    return value


def check_value(key: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """A TOML (or --set) value for field ``f`` as its type, normalised and checked; the one
    check of a value, also for the per-band [alerts.bands.<band>] keys (host.alert_config)."""
    return check_field(key, f, _coerce(key, str(f.type), value))


def check_band_id(band: str, key: str) -> str:
    """``band`` if it is a band id as bands send it, else ConfigError naming ``key``.

    The one rule for band ids a user types (ble.allow, alerts.bands, --band): ids on the wire
    are the chip id in lowercase hex, so anything else could never match a band.
    """
    if not BAND_ID.fullmatch(band):
        raise ConfigError(
            f"{key}: {band!r} is not a band id (the band's chip id: 2 to 16 lowercase hex "
            "digits 0-9a-f, as `spasm-bridge scan` shows it; never a name)"
        )
    return band
