"""Alert config: the [alerts] section fits host.config, garbage names its key, and which
keys a band may override (Thresholds)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from host import config as host_config
from host.alert_config import AlertConfigError, AlertsSection, Thresholds, check_section


def test_config_section_fits_host_config() -> None:
    """[alerts] uses only the field types host.config reads, so it can join Config as is."""

    @dataclasses.dataclass
    class WithAlerts:
        alerts: AlertsSection = dataclasses.field(default_factory=AlertsSection)

    c = WithAlerts()
    host_config._apply(
        c,  # type: ignore[arg-type]
        {"alerts": {"enabled": True, "timezone": "Europe/Berlin", "battery_low_pct": 20,
                    "command": ["notify-send", "spasm"], "bands": {"b1": {"cooldown_min": 5}}}},
        "test",
    )  # fmt: skip
    check_section(c.alerts)
    assert c.alerts.for_band("b1").cooldown_min == 5.0 and c.alerts.battery_low_pct == 20
    with pytest.raises(host_config.ConfigError, match="alerts.battery_low_pct"):
        host_config._apply(c, {"alerts": {"battery_low_pct": 101}}, "test")  # type: ignore[arg-type]
    for f in dataclasses.fields(AlertsSection):
        assert str(f.type) in ("bool", "int", "float", "str", "list[str]", "dict[str, Any]")


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"sleep_hours": "late"}, "alerts.sleep_hours"),
        ({"sleep_hours": "22:00-25:00"}, "alerts.sleep_hours"),
        ({"timezone": "Mars/Olympus"}, "alerts.timezone"),
        ({"webhook_url": "ftp://x"}, "alerts.webhook_url"),
        ({"command": [""]}, "alerts.command"),
        ({"bands": {"bad band": {}}}, "alerts.bands"),
        ({"bands": {"b1": []}}, "alerts.bands.b1"),
        ({"bands": {"b1": {"volume": 3}}}, "alerts.bands.b1.volume"),
        ({"bands": {"b1": {"rate_factor": "high"}}}, "alerts.bands.b1.rate_factor"),
        ({"bands": {"b1": {"rate_min_count": 2.5}}}, "alerts.bands.b1.rate_min_count"),
        ({"bands": {"b1": {"severe_severity": 9}}}, "alerts.bands.b1.severe_severity"),
        ({"bands": {"b1": {"sleep_hours": "noon"}}}, "alerts.bands.b1.sleep_hours"),
    ],
)
def test_config_garbage_names_the_key(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(AlertConfigError) as e:
        check_section(AlertsSection(**kw))
    assert str(e.value).startswith(key)


def test_thresholds_are_the_per_band_keys() -> None:
    names = {f.name for f in dataclasses.fields(Thresholds)}
    assert {"cooldown_min", "battery_low_pct", "sleep_hours"} <= names
    assert "webhook_url" not in names and "bands" not in names
