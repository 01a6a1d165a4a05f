"""Secrets stay secret and nothing names a patient: a real run of the whole chain, scanned.

The firmware fleet (two bands on the virtual radio) -> `spasm-bridge run` (a
subprocess, DEBUG logging, an MQTT password and an InfluxDB token in its
environment) -> a real mosquitto and VictoriaMetrics. Then:

- every MQTT topic is ``spasm/v1/<band id>/<kind>`` or the bridge's own
  presence topic, where the band id is the band's chip id in hex; every string
  in every payload is a band id or a word of the protocol's vocabulary;
- every InfluxDB series carries only the documented tags, and the ``band`` tag
  is a band id;
- the bridge's log (DEBUG) contains neither secret, and the only band names in
  it are ``SB-<band id>``;
- ``--print-config`` masks both secrets whether they come from the environment
  or from files.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from protocol import codec
from tests.e2e_chain import BRIDGE_CLI, ROOT, BridgeProc, FleetProc, until, write_config
from tests.servers import Mosquitto, Victoria, mosquitto_fixture, victoria_fixture  # noqa: F401

HEX_ID = re.compile(r"[0-9a-f]{2,16}")
RTYPES = {"event", "marker", "fault", "onset", "status", "signal", "online", "reply", "alert"}
# strings a payload may carry besides band ids: the protocol's names, presence words
VOCABULARY = (
    set(codec.KINDS) | set(codec.FAULTS) | RTYPES | {"online", "offline"}
    | {"myoclonic", "clonic", "tonic", "button", "host"}
)  # fmt: skip
TAGS = {"__name__", "band", "kind", "source", "fault", "db"}


class Everything:
    """An MQTT client subscribed to ``#``: every topic and payload the broker routes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.got: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe("#", qos=0)
            self.ready.set()
            async for m in c.messages:
                self.got.append((str(m.topic), m.payload if isinstance(m.payload, bytes) else b""))


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


async def test_topics_tags_and_logs_carry_only_band_ids_and_no_secrets(
    tmp_path: Path, mosquitto: Mosquitto, victoria: Victoria
) -> None:
    token = "tok-" + secrets.token_hex(12)
    password = "pw-" + secrets.token_hex(12)
    fleet = FleetProc(tmp_path, bands=2, speed=20, seed=41)
    await fleet.start()
    everything = Everything(mosquitto.port)
    await asyncio.wait_for(everything.ready.wait(), 10)
    cfg = write_config(
        tmp_path / "bridge.toml", fleet.bands, tmp_path / "spool.db", mosquitto, victoria, "gw1"
    )
    cfg.write_text(cfg.read_text().replace("[mqtt]\n", '[mqtt]\nusername = "gw1"\n'))
    bridge = BridgeProc(cfg, fleet.radio, tmp_path / "bridge.log", "run", "--log-level", "DEBUG")
    bridge.env |= {"SPASM_INFLUX_TOKEN": token, "SPASM_MQTT_PASSWORD": password}
    bridge.start()
    bands = fleet.bands
    try:

        def events_from_each_band() -> bool:
            seen = {t.split("/")[2] for t, _ in everything.got if t.endswith("/event")}
            return set(bands) <= seen

        await until(events_from_each_band, "an event from each band on MQTT", seconds=90)
        for b in bands:
            await fleet.press(b)  # markers too
        await until(
            lambda: sum(t.endswith("/marker") for t, _ in everything.got) >= 2, "markers", 60
        )

        def measurements() -> set[str]:
            return {s["metric"]["__name__"] for s in victoria.export('{__name__=~"spasm_.*"}')}

        await until(
            lambda: {"spasm_event_seq", "spasm_marker_seq", "spasm_status_seq"} <= measurements(),
            "events, markers and status in VictoriaMetrics",
            90,
        )
    finally:
        bridge.stop()
        fleet.stop()
        everything.task.cancel()
        await asyncio.gather(everything.task, return_exceptions=True)

    assert all(HEX_ID.fullmatch(b) for b in bands), bands
    # MQTT topics and payloads (each kind of message was seen, so each was scanned)
    kinds = {t.rsplit("/", 1)[-1] for t, _ in everything.got}
    assert {"event", "marker", "status", "online"} <= kinds, kinds
    for topic, payload in everything.got:
        parts = topic.split("/")
        assert parts[:2] == ["spasm", "v1"], topic
        if parts[2] == "bridge":
            assert parts[3:] == ["gw1", "online"], topic
        else:
            assert parts[2] in bands and len(parts) == 4 and parts[3] in RTYPES, topic
        if payload[:1] in (b"{", b"["):
            for s in _strings(json.loads(payload)):
                assert s in bands or s in VOCABULARY, (topic, s)
        else:
            assert payload in (b"online", b"offline"), (topic, payload)

    # InfluxDB series: only the documented tags, band ids only
    series = await asyncio.to_thread(victoria.export, '{__name__=~"spasm_.*"}')
    assert {s["metric"]["__name__"].split("_")[1] for s in series} >= {"event", "marker", "status"}
    for s in series:
        labels = s["metric"]
        assert set(labels) <= TAGS, labels
        assert labels["band"] in bands, labels
        for k in ("kind", "source", "fault"):
            if k in labels:
                assert labels[k].isdigit() or labels[k] in VOCABULARY, labels

    # the bridge's log: DEBUG, and still no secret; bands only by their ids
    text = bridge.text()
    assert "DEBUG" in text and all(b in text for b in bands)
    assert token not in text and password not in text
    for name in re.findall(r"SB-(\w+)", text):
        assert name in bands, name


def test_print_config_masks_secrets_from_env_and_files(tmp_path: Path) -> None:
    token = "tok-" + secrets.token_hex(12)
    password = "pw-" + secrets.token_hex(12)
    tok_file, pw_file = tmp_path / "influx-token", tmp_path / "mqtt-password"
    tok_file.write_text(token + "\n")
    pw_file.write_text(password + "\n")
    tok_file.chmod(0o600)
    conf = tmp_path / "bridge.toml"
    conf.write_text(
        f'[mqtt]\nusername = "gw1"\npassword_file = "{pw_file}"\n'
        f'[influx]\ntoken_file = "{tok_file}"\n'
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for extra in ({}, {"SPASM_INFLUX_TOKEN": token, "SPASM_MQTT_PASSWORD": password}):
        r = subprocess.run(
            [BRIDGE_CLI, "run", "-c", str(conf), "--print-config", "--log-level", "DEBUG"],
            cwd=ROOT,
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        shown = json.loads(r.stdout)
        assert shown["influx"]["token"] == "***" and shown["mqtt"]["password"] == "***"
        assert token not in r.stdout + r.stderr and password not in r.stdout + r.stderr
    # a secret in the TOML file itself is refused, and the refusal does not echo it
    conf.write_text(f'[influx]\ntoken = "{token}"\n')
    r = subprocess.run(
        [BRIDGE_CLI, "run", "-c", str(conf), "--print-config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "influx.token: secrets are not read from" in r.stderr
    assert token not in r.stdout + r.stderr


@pytest.mark.parametrize(
    "name, want",
    [
        ("SB-a1b2c3", "a1b2c3"),
        ("SB-Alice", None),  # a rogue device advertising a person's name
        ("SB-a1b2c3/x", None),
        ("SB-", None),
        ("SB-" + "a" * 17, None),
        ("Fitbit", None),
    ],
)
def test_discovery_takes_only_hex_band_ids(name: str, want: str | None) -> None:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from host.discovery import band_id
    from protocol import gatt

    adv = AdvertisementData(
        local_name=name,
        manufacturer_data={},
        service_data={},
        service_uuids=[gatt.SERVICE],
        tx_power=None,
        rssi=-50,
        platform_data=(),
    )
    assert band_id(BLEDevice("00:11:22:33:44:55", name, None), adv) == want
