"""Bridge configuration: a TOML file, then SPASM_* environment variables, then --set overrides.

Every key is typed and checked; a bad config raises ConfigError naming the key
(``mqtt.port``) or the source (file line and column, environment variable) and
the reason. Secrets (the MQTT password, the InfluxDB token) come only from the
environment (``SPASM_MQTT_PASSWORD``, ``SPASM_INFLUX_TOKEN``) or from files named
by ``mqtt.password_file`` / ``influx.token_file``: never from the config file
itself or the command line, where they would leak into shells, ps and backups.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.alert_config import AlertConfigError, AlertsSection, check_section
from host.config_values import (
    ConfigError,
    check_band_id,
    check_field,
    check_value,
    rng,
)

SECRET_KEYS = {"mqtt.password": "SPASM_MQTT_PASSWORD", "influx.token": "SPASM_INFLUX_TOKEN"}
ENV_PREFIX = "SPASM_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# SPASM_* variables that are not SPASM_<SECTION>_<KEY>: the CLI's config file, the simulator's
# radio (SPASM_RADIO), local_servers' binaries, and what alert_publish hands an alert command
# (which may itself run spasm-bridge, e.g. `note`). Any other SPASM_* name is a typo.
OTHER_ENV_VARS = frozenset(
    {
        "SPASM_CONFIG",
        "SPASM_RADIO",
        "SPASM_MOSQUITTO_BIN",
        "SPASM_VICTORIA_METRICS_BIN",
        "SPASM_ALERT_JSON",
        "SPASM_ALERT_BAND",
        "SPASM_ALERT_RULE",
        "SPASM_ALERT_TEXT",
    }
)


@dataclass
class BridgeSection:
    id: str = "bridge"  # names this gateway in MQTT client ids and its online topic
    log_level: str = field(default="INFO", metadata={"choices": LOG_LEVELS, "normalise": str.upper})
    stats_interval_s: float = field(default=30.0, metadata=rng(0.1, 86400))


@dataclass
class BleSection:
    backend: str = "bleak"  # "bleak" or "module:ClientClass" (or a module holding both)
    scanner_backend: str = ""  # "module:ScannerClass"; default: found next to the client
    options: dict[str, Any] = field(default_factory=dict)  # extra kwargs for both backends
    allow: list[str] = field(default_factory=list)  # band ids; empty = any band
    pair: bool = True  # pair (bond) before connecting: the band takes commands only when bonded
    connect_timeout_s: float = field(default=20.0, metadata=rng(0.1, 600))
    backoff_initial_s: float = field(default=1.0, metadata=rng(0.01, 3600))
    backoff_max_s: float = field(default=60.0, metadata=rng(0.01, 3600))
    stable_link_s: float = field(default=10.0, metadata=rng(0, 3600))
    max_notifications_per_s: int = field(default=2000, metadata=rng(1, 1_000_000))
    max_bad_frames: int = field(default=5, metadata=rng(1, 1_000_000))
    inbox_size: int = field(default=4096, metadata=rng(16, 1_000_000))
    stream_rate_hz: int = field(default=0, metadata=rng(0, 50))  # 0 = no signal stream
    command_timeout_s: float = field(default=5.0, metadata=rng(0.1, 600))


@dataclass
class SpoolSection:
    path: str = "spasm-spool.db"
    keep_hours: float = field(default=24.0, metadata=rng(0, 24 * 365))
    max_mb: float = field(default=0.0, metadata=rng(0, 1_000_000))  # 0 = until the disk is full


@dataclass
class MqttSection:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=rng(1, 65535))
    username: str = ""
    password_file: str = ""
    client_id: str = ""  # default: spasm-bridge-<bridge.id>
    topic_prefix: str = "spasm/v1"
    tls: bool = False
    ca_file: str = ""  # PEM CA bundle that signed the broker's certificate (default: system CAs)
    cert_file: str = ""  # PEM client certificate, for brokers that require one
    key_file: str = ""  # its private key (default: in cert_file)
    keepalive_s: int = field(default=30, metadata=rng(5, 3600))
    batch_size: int = field(default=200, metadata=rng(1, 100_000))
    backoff_max_s: float = field(default=30.0, metadata=rng(0.01, 3600))
    commands: bool = True  # accept <prefix>/<band>/cmd/<name>
    password: str = field(default="", metadata={"secret": True})


@dataclass
class InfluxSection:
    enabled: bool = False
    url: str = "http://127.0.0.1:8086"
    org: str = "spasm"
    bucket: str = "spasm"
    token_file: str = ""
    batch_size: int = field(default=1000, metadata=rng(1, 100_000))
    timeout_s: float = field(default=10.0, metadata=rng(0.1, 600))
    backoff_max_s: float = field(default=30.0, metadata=rng(0.01, 3600))
    signal: bool = True  # write signal samples (one point per sample)
    token: str = field(default="", metadata={"secret": True})


@dataclass
class IngestSection:
    group: str = "spasm-ingest"
    client_id: str = ""  # default: spasm-ingest-<bridge.id>; unique per worker
    topics: list[str] = field(default_factory=lambda: ["event"])
    batch_size: int = field(default=500, metadata=rng(1, 100_000))
    flush_interval_s: float = field(default=0.5, metadata=rng(0.01, 60))


@dataclass
class HomeAssistantSection:
    """[homeassistant]: MQTT discovery for each band (needs mqtt.enabled too)."""

    enabled: bool = False
    discovery_prefix: str = "homeassistant"  # = host.ha_discovery.DISCOVERY_PREFIX


@dataclass
class Config:
    bridge: BridgeSection = field(default_factory=BridgeSection)
    ble: BleSection = field(default_factory=BleSection)
    spool: SpoolSection = field(default_factory=SpoolSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    influx: InfluxSection = field(default_factory=InfluxSection)
    ingest: IngestSection = field(default_factory=IngestSection)
    alerts: AlertsSection = field(default_factory=AlertsSection)
    homeassistant: HomeAssistantSection = field(default_factory=HomeAssistantSection)


INGEST_TOPICS = ("event", "marker", "fault", "status", "onset")


def _from_env_text(key: str, typ: str, text: str, var: str) -> Any:
    """Parse an environment variable's text into the type of ``key``."""
    try:
        if typ == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ == "int":
            return int(text)
        if typ == "float":
            return float(text)
        if typ == "list[str]":
            return [s.strip() for s in text.split(",") if s.strip()]
        if typ == "dict[str, Any]":
            return tomllib.loads("x = " + text)["x"]
    except (ValueError, tomllib.TOMLDecodeError, TypeError):
        raise ConfigError(f"{var} ({key}): cannot read {text!r} as {typ}") from None
    return text


def _fields(section: object) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(section)}  # type: ignore[arg-type]


def _apply(cfg: Config, data: Mapping[str, Any], where: str) -> None:
    sections = _fields(cfg)
    for sname, table in data.items():
        if sname not in sections:
            raise ConfigError(f"{sname}: unknown section ({where}); known: {', '.join(sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{sname}: expected a table [{sname}] ({where})")
        section = getattr(cfg, sname)
        known = _fields(section)
        for k, v in table.items():
            key = f"{sname}.{k}"
            if k not in known:
                raise ConfigError(f"{key}: unknown key ({where})")
            f = known[k]
            if f.metadata.get("secret"):
                raise ConfigError(
                    f"{key}: secrets are not read from {where}; set {SECRET_KEYS[key]} "
                    f"or {key}_file"
                )
            setattr(section, k, check_value(key, f, v))


def _env_keys(cfg: Config) -> dict[str, tuple[object, dataclasses.Field[Any], str]]:
    """SPASM_<SECTION>_<KEY> -> (section, field, "section.key") for every config key."""
    out: dict[str, tuple[object, dataclasses.Field[Any], str]] = {}
    for sname in _fields(cfg):
        section = getattr(cfg, sname)
        for k, f in _fields(section).items():
            out[f"{ENV_PREFIX}{sname.upper()}_{k.upper()}"] = (section, f, f"{sname}.{k}")
    return out


def _unknown_env_var(var: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(var, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(
        f"{var}: unknown setting (not SPASM_<SECTION>_<KEY> of any config key){hint}"
    )


def _env_overrides(cfg: Config, env: Mapping[str, str]) -> None:
    keys = _env_keys(cfg)
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in OTHER_ENV_VARS:
            continue
        if var not in keys:  # refused like an unknown TOML key: a typo must not pass unseen
            raise _unknown_env_var(var, [*keys, *OTHER_ENV_VARS])
        section, f, key = keys[var]
        value = _from_env_text(key, str(f.type), env[var], var)
        setattr(section, f.name, check_field(key, f, value))


def _read_secret_file(key: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{key}_file: cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{key}_file: {path} is not UTF-8 text ({e.reason})") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ``--set section.key=value`` items (TOML values; bare words are strings) into tables."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item}: expected section.key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if key in SECRET_KEYS:
            raise ConfigError(
                f"{key}: secrets are never taken from the command line (they would show in ps "
                f"and shell history); set {SECRET_KEYS[key]} or {key}_file"
            )
        try:
            value = tomllib.loads("x = " + text)["x"]
        except tomllib.TOMLDecodeError:
            value = text
        sname, k = key.split(".", 1)
        out.setdefault(sname, {})[k] = value
    return out


def load(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config from defaults, the TOML file, SPASM_* variables and overrides.

    ``path`` None or "" (an empty SPASM_CONFIG) means no file: the defaults.
    """
    env = os.environ if env is None else env
    cfg = Config()
    if path is not None and path != "":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config file: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{p}: not UTF-8 text (byte {e.start}: {e.reason}); TOML files are UTF-8"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from None
        _apply(cfg, data, str(p))
    _env_overrides(cfg, env)
    if overrides:
        _apply(cfg, overrides, "--set")
    # Secrets: environment first, then the named file.
    if env.get("SPASM_MQTT_PASSWORD"):
        cfg.mqtt.password = env["SPASM_MQTT_PASSWORD"]
    elif cfg.mqtt.password_file:
        cfg.mqtt.password = _read_secret_file("mqtt.password", cfg.mqtt.password_file)
    if env.get("SPASM_INFLUX_TOKEN"):
        cfg.influx.token = env["SPASM_INFLUX_TOKEN"]
    elif cfg.influx.token_file:
        cfg.influx.token = _read_secret_file("influx.token", cfg.influx.token_file)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    if cfg.ble.backoff_max_s < cfg.ble.backoff_initial_s:
        raise ConfigError("ble.backoff_max_s: must not be below ble.backoff_initial_s")
    for t in cfg.ingest.topics:
        if t not in INGEST_TOPICS:
            raise ConfigError(f"ingest.topics: {t!r} is not one of {', '.join(INGEST_TOPICS)}")
    for b in cfg.ble.allow:
        check_band_id(b, "ble.allow")  # band ids are pseudonymous: refuse anything like a name
    if not cfg.bridge.id or any(c in cfg.bridge.id for c in "/+#\0"):
        raise ConfigError(
            "bridge.id: must be non-empty and free of /, +, # (it is an MQTT topic level)"
        )
    if not cfg.mqtt.topic_prefix or any(c in cfg.mqtt.topic_prefix for c in "+#"):
        raise ConfigError("mqtt.topic_prefix: must be non-empty and free of + and #")
    for k in ("ca_file", "cert_file", "key_file"):
        v = getattr(cfg.mqtt, k)
        if v and not cfg.mqtt.tls:
            raise ConfigError(f"mqtt.{k}: only used with TLS; set mqtt.tls = true too")
        if v and not os.access(v, os.R_OK):
            raise ConfigError(f"mqtt.{k}: cannot read {v}")
    if cfg.mqtt.key_file and not cfg.mqtt.cert_file:
        raise ConfigError("mqtt.key_file: needs mqtt.cert_file")
    if cfg.mqtt.ca_file:
        try:  # a file that is not PEM would otherwise fail at every connect
            ssl.create_default_context(cafile=cfg.mqtt.ca_file)
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"mqtt.ca_file: {cfg.mqtt.ca_file} is not a PEM CA file: {e}"
            ) from None
    if cfg.mqtt.cert_file:
        try:
            ssl.create_default_context().load_cert_chain(
                cfg.mqtt.cert_file, cfg.mqtt.key_file or None
            )
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"mqtt.cert_file: {cfg.mqtt.cert_file} and its key do not load: {e}"
            ) from None
    if cfg.influx.enabled and not cfg.influx.url.startswith(("http://", "https://")):
        raise ConfigError("influx.url: must start with http:// or https://")
    try:
        check_section(cfg.alerts)
    except AlertConfigError as e:
        raise ConfigError(str(e)) from None
    _check_delivery(cfg)
    # Imported here: host.ble_backend imports this module (ConfigError, BleSection).
    from host.ble_backend import resolve_backends

    resolve_backends(cfg.ble)


def _check_delivery(cfg: Config) -> None:
    """Alert and Home Assistant delivery that could never work is refused at start, not
    found out at the first alert."""
    command = cfg.alerts.command
    if cfg.alerts.enabled and command and shutil.which(command[0]) is None:
        raise ConfigError(
            f"alerts.command: program {command[0]!r} not found (not on PATH, or not an "
            "executable file)"
        )
    if cfg.homeassistant.enabled and not cfg.mqtt.enabled:
        raise ConfigError(
            "homeassistant.enabled: needs mqtt.enabled = true (discovery and the band "
            "summaries go over MQTT)"
        )


def describe(cfg: Config) -> dict[str, dict[str, Any]]:
    """The effective config with secrets masked (for `spasm-bridge run --print-config`)."""
    out: dict[str, dict[str, Any]] = {}
    for sname in _fields(cfg):
        section = getattr(cfg, sname)
        d = dataclasses.asdict(section)
        for k, f in _fields(section).items():
            if f.metadata.get("secret"):
                d[k] = "***" if d[k] else ""
        out[sname] = d
    return out
