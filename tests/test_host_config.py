"""Bridge config: TOML, environment, --set, secrets, backends, and garbage refused by key."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from host.alert_config import AlertsSection
from host.alert_sink import AlertSink
from host.ble_backend import resolve_backends
from host.cli import main
from host.config import ConfigError, MqttSection, describe, load, parse_set


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bridge.toml"
    p.write_text(text)
    return p


def test_defaults_file_env_and_set_layer_in_order(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '[mqtt]\nenabled = true\nport = 1884\n[ble]\nallow = ["a1b2c3"]\n'
        "[influx]\nbatch_size = 10\n",
    )
    cfg = load(
        p,
        env={"SPASM_MQTT_PORT": "1885", "SPASM_BLE_ALLOW": "a1, b2", "SPASM_INFLUX_ENABLED": "yes"},
        overrides=parse_set(["influx.batch_size=20", "spool.path=/tmp/x.db"]),
    )
    assert cfg.mqtt.enabled and cfg.mqtt.port == 1885
    assert cfg.ble.allow == ["a1", "b2"]
    assert cfg.influx.enabled and cfg.influx.batch_size == 20
    assert cfg.spool.path == "/tmp/x.db"
    assert cfg.bridge.stats_interval_s == 30.0
    assert load(None, env={}).mqtt.port == 1883


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt\nport = 1", r"bridge.toml: not valid TOML: .*line 1, column 6"),
        ("[mqtt]\nport = 'x'\n", "mqtt.port: expected an integer, got string"),
        ("[mqtt]\nport = 70000\n", "mqtt.port: 70000 is above the maximum 65535"),
        ("[mqtt]\nhots = 'a'\n", r"mqtt.hots: unknown key \(.*bridge.toml\)"),
        ("[mqttt]\nhost = 'a'\n", "mqttt: unknown section"),
        ("mqtt = 3\n", r"mqtt: expected a table \[mqtt\]"),
        ("[mqtt]\nenabled = 1\n", "mqtt.enabled: expected true or false, got integer"),
        ("[bridge]\nlog_level = 'LOUD'\n", "bridge.log_level: 'LOUD' is not one of"),
        ("[ble]\nallow = 'a1'\n", "ble.allow: expected a list of strings"),
        ("[ble]\nallow = ['a b']\n", "ble.allow: 'a b' is not a band id"),
        (
            "[ble]\nbackoff_initial_s = 10.0\nbackoff_max_s = 1.0\n",
            "ble.backoff_max_s: must not be below ble.backoff_initial_s",
        ),
        ("[ingest]\ntopics = ['event', 'nope']\n", "ingest.topics: 'nope' is not one of"),
        ("[mqtt]\ntopic_prefix = 'spasm/#'\n", "mqtt.topic_prefix: must be non-empty"),
        (
            "[mqtt]\npassword = 'hunter2'\n",
            "mqtt.password: secrets are not read from .*; set SPASM_MQTT_PASSWORD",
        ),
        ("[influx]\ntoken = 'abc'\n", "influx.token: secrets are not read from"),
        ("[influx]\nenabled = true\nurl = 'ftp://x'\n", "influx.url: must start with http"),
        ("[ble]\nbackend = 'no_such_module:Client'\n", "ble.backend: cannot import no_such_module"),
        (
            "[ble]\nbackend = 'host.records:Event'\n",
            "ble.backend: host.records:Event is not a BaseBleakClient subclass",
        ),
        ("[ble]\nscanner_backend = 'x:Y'\n", "ble.scanner_backend: only meaningful"),
        ("\x00\x01garbage", "bridge.toml: not valid TOML"),
        # (issue 6) NaN slipped past every range check; band ids must be pseudonymous
        ("[spool]\nkeep_hours = nan\n", "spool.keep_hours: nan is not a finite number"),
        ("[bridge]\nstats_interval_s = -inf\n", "bridge.stats_interval_s: -inf is not a finite"),
        ("[ble]\nallow = ['JaneDoe']\n", "ble.allow: 'JaneDoe' is not a band id .*never a name"),
        ("[ble]\nallow = ['jane']\n", "ble.allow: 'jane' is not a band id"),
        ("[ble]\nallow = ['A1B2C3']\n", "ble.allow: 'A1B2C3' is not a band id"),
        ("[bridge]\nid = 'ward/3'\n", "bridge.id: must be non-empty and free of /"),
        ("[bridge]\nid = ''\n", "bridge.id: must be non-empty"),
        ("[mqtt]\nca_file = '/etc/hostname'\n", "mqtt.ca_file: only used with TLS"),
        ("[mqtt]\ntls = true\nca_file = '/no/such/ca.pem'\n", "mqtt.ca_file: cannot read"),
        ("[mqtt]\ntls = true\nkey_file = '/etc/hostname'\n", "mqtt.key_file: needs mqtt.cert_f"),
        ("[mqtt]\ntls = true\nca_file = '/etc/hostname'\n", "mqtt.ca_file: .* is not a PEM CA"),
        ("[mqtt]\ntls = true\ncert_file = '/etc/hostname'\n", "mqtt.cert_file: .* do not load"),
        # per-band alert values go through the same check as top-level ones (NaN switched
        # the rule off); band keys follow the one band-id rule (they never matched a band)
        (
            "[alerts.bands.a1b2c3]\nlong_tonic_s = nan\n",
            "alerts.bands.a1b2c3.long_tonic_s: nan is not a finite number",
        ),
        ("[alerts.bands.A1B2C3]\nlong_tonic_s = 5\n", "alerts.bands.A1B2C3: 'A1B2C3' is not a"),
        ("[alerts.bands.Bob_Smith]\nlong_tonic_s = 5\n", "alerts.bands.Bob_Smith: .*never a name"),
        # delivery that could never work
        (
            "[alerts]\nenabled = true\ncommand = ['/no/such/notify']\n",
            "alerts.command: program '/no/such/notify' not found",
        ),
        ("[alerts]\nenabled = true\ncommand = ['no-such-notify-x']\n", "alerts.command: prog"),
        ("[homeassistant]\nenabled = true\n", "homeassistant.enabled: needs mqtt.enabled = true"),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text), env={})


def test_bad_environment_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"SPASM_MQTT_PORT \(mqtt.port\): cannot read 'abc'"):
        load(None, env={"SPASM_MQTT_PORT": "abc"})
    with pytest.raises(ConfigError, match="SPASM_MQTT_TLS"):
        load(None, env={"SPASM_MQTT_TLS": "maybe"})
    with pytest.raises(ConfigError, match="ble.max_bad_frames: 0 is below the minimum 1"):
        load(None, env={"SPASM_BLE_MAX_BAD_FRAMES": "0"})


def test_unknown_spasm_variables_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^SPASM_MQTT_HOTS: unknown setting.*SPASM_MQTT_HOST\?"):
        load(None, env={"SPASM_MQTT_HOTS": "x"})
    with pytest.raises(ConfigError, match="^SPASM_BRIDGE_LOGLEVEL: unknown setting"):
        load(None, env={"SPASM_BRIDGE_LOGLEVEL": "DEBUG"})
    # every SPASM_* variable the product or its tools set that is not a config key still works
    others = ["SPASM_CONFIG", "SPASM_RADIO", "SPASM_MOSQUITTO_BIN", "SPASM_VICTORIA_METRICS_BIN"]
    others += ["SPASM_ALERT_JSON", "SPASM_ALERT_BAND", "SPASM_ALERT_RULE", "SPASM_ALERT_TEXT"]
    env = {v: "x" for v in others} | {"SPASM_MQTT_PASSWORD": "pw", "SPASM_INFLUX_TOKEN": "tok"}
    cfg = load(None, env=env | {"SPASM_MQTT_HOST": "broker", "OTHER_MQTT_HOTS": "y"})
    assert (cfg.mqtt.host, cfg.mqtt.password, cfg.influx.token) == ("broker", "pw", "tok")


def test_log_level_in_any_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load(None, env={"SPASM_BRIDGE_LOG_LEVEL": "debug"}).bridge.log_level == "DEBUG"
    assert load(write(tmp_path, "[bridge]\nlog_level = 'Warning'\n"), env={}).bridge.log_level == (
        "WARNING"
    )
    assert main(["run", "--print-config", "--log-level", "debug", "--set", "bridge.id=x"]) == 0
    assert '"id": "x"' in capsys.readouterr().out


def test_empty_spasm_config_means_no_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load("", env={}).mqtt.port == 1883
    monkeypatch.setenv("SPASM_CONFIG", "")
    assert main(["run", "--print-config"]) == 0
    assert '"port": 1883' in capsys.readouterr().out


def test_alert_command_is_found_on_path_or_by_its_path(tmp_path: Path) -> None:
    for program in ("sh", sys.executable):
        cfg = load(None, env={}, overrides={"alerts": {"enabled": True, "command": [program]}})
        assert cfg.alerts.command == [program]
    # not enabled: the command is never run, so it is not looked for
    assert load(None, env={}, overrides={"alerts": {"command": ["/no/such/notify"]}}).alerts
    not_run = tmp_path / "notify"  # a file, but not executable
    not_run.write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match="alerts.command: program .*notify' not found"):
        load(None, env={}, overrides={"alerts": {"enabled": True, "command": [str(not_run)]}})


async def test_alerts_without_delivery_warn_at_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "spasm.alerts")
    only_log = AlertSink(AlertsSection(enabled=True), None)
    await only_log.start()
    await only_log.close()
    assert "no delivery configured" in caplog.text and "alerts only reach the log" in caplog.text
    caplog.clear()
    for sink in (
        AlertSink(AlertsSection(enabled=True, webhook_url="http://127.0.0.1:9/hook"), None),
        AlertSink(AlertsSection(enabled=True), MqttSection(enabled=True)),
    ):
        await sink.start()
        await sink.close()
    assert "alerts only reach the log" not in caplog.text


def test_files_that_are_not_utf8_are_refused_by_name(tmp_path: Path) -> None:
    # (issue 6) these raised UnicodeDecodeError: a traceback instead of exit 2
    p = tmp_path / "bridge.toml"
    p.write_bytes(b"\xff\xfe[mqtt]\n")
    with pytest.raises(ConfigError, match="bridge.toml: not UTF-8 text"):
        load(p, env={})
    secret = tmp_path / "token"
    secret.write_bytes(b"\x80\x81")
    with pytest.raises(ConfigError, match="influx.token_file: .*token is not UTF-8 text"):
        load(write(tmp_path, f"[influx]\ntoken_file = '{secret}'\n"), env={})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load(tmp_path, env={})  # a directory


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: cannot read the config file"):
        load(tmp_path / "nope.toml", env={})


def test_secrets_come_from_env_or_files_and_are_masked(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok-from-file\n")
    cfg = load(
        write(tmp_path, f"[influx]\ntoken_file = '{secret}'\n"),
        env={"SPASM_MQTT_PASSWORD": "pw-from-env"},
    )
    assert cfg.mqtt.password == "pw-from-env"
    assert cfg.influx.token == "tok-from-file"
    shown = describe(cfg)
    assert shown["mqtt"]["password"] == "***" and shown["influx"]["token"] == "***"
    with pytest.raises(ConfigError, match=r"influx.token_file: cannot read .*missing"):
        load(write(tmp_path, f"[influx]\ntoken_file = '{tmp_path / 'missing'}'\n"), env={})


def test_secrets_on_the_command_line_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="never taken from the command line"):
        parse_set(["mqtt.password=hunter2"])
    assert main(["run", "--set", "influx.token=abc"]) == 2
    assert "influx.token: secrets are never taken from the command line" in capsys.readouterr().err
    assert main(["run", "--mqtt-password=hunter2"]) == 2
    err = capsys.readouterr().err
    assert "--mqtt-password: secrets are never taken from the command line" in err
    assert "hunter2" not in err


def test_cli_config_garbage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[spool]\nkeep_hours = 'soon'\n")
    assert main(["status", "-c", str(p)]) == 2
    assert "spool.keep_hours: expected a number, got string" in capsys.readouterr().err
    assert main(["run", "--set", "nodot=1"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2


def test_print_config_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPASM_INFLUX_TOKEN", "very-secret")
    assert main(["run", "--print-config", "--set", "mqtt.port=1999"]) == 0
    out = capsys.readouterr().out
    assert '"port": 1999' in out and "very-secret" not in out and '"token": "***"' in out


def test_backend_resolution() -> None:
    cfg = load(None, env={})
    assert resolve_backends(cfg.ble) == (None, None)
    from simulator.radio.client import VirtualBleakClient
    from simulator.radio.scanner import VirtualBleakScanner

    cfg.ble.backend = "simulator.radio.client:VirtualBleakClient"
    assert resolve_backends(cfg.ble) == (VirtualBleakClient, VirtualBleakScanner)
    cfg.ble.backend = "simulator.radio.client"
    assert resolve_backends(cfg.ble) == (VirtualBleakClient, VirtualBleakScanner)
    cfg.ble.backend = "host.config"
    with pytest.raises(ConfigError, match="must define exactly one BaseBleakClient subclass"):
        resolve_backends(cfg.ble)
