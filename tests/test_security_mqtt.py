"""MQTT with username/password, TLS and ACLs, against a real mosquitto configured by this test.

The test makes a CA and a server certificate (``cryptography``), a password
file (``mosquitto_passwd -b``) and an ACL file, and starts mosquitto with
``allow_anonymous false`` on a TLS-only loopback listener. Then:

- the bridge's MQTT sink and the ingest worker connect with the right user,
  password and CA and deliver;
- with a wrong password, no username, or a CA that did not sign the broker's
  certificate they are refused: one clear ERROR line per attempt naming what to
  check, retried with backoff, no crash, nothing delivered;
- a client without a certificate check cannot even talk to the listener in plain
  MQTT;
- the ACL recommended in host/SECURITY.md keeps a read-only user from publishing
  fake events or band commands.
"""

from __future__ import annotations

import asyncio
import datetime
import getpass
import ipaddress
import json
import logging
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from host.config import load
from host.ingest import IngestWorker
from host.mqtt_sink import MqttSink
from host.records import Event, to_json
from host.stats import Stats
from tests.servers import Mosquitto, Victoria, victoria_fixture  # noqa: F401
from tests.test_host_sinks import BASE_UTC, until

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
USERS = {"bridge": "br1dge-pw", "ingest": "1ngest-pw", "viewer": "v1ewer-pw"}
ACL = """\
# the bridge publishes records and reads band commands
user bridge
topic readwrite spasm/v1/#
# ingest workers only read
user ingest
topic read spasm/v1/#
# a dashboard or app: read events only, never publish
user viewer
topic read spasm/v1/+/event
topic read spasm/v1/+/reply
"""


# ---------------------------------------------------------------- certificates


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_ca(d: Path, cn: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = d / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_cert(
    d: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    crt, kf = d / "server.pem", d / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(kf, key)
    return crt, kf


# ---------------------------------------------------------------- the broker


class SecureMosquitto(Mosquitto):
    """mosquitto with TLS only, passwords, an ACL and no anonymous access."""

    name = "mosquitto-secure"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.ca, ca_cert, ca_key = make_ca(workdir, "spasm-test-ca")
        self.rogue_ca, _, _ = make_ca(workdir, "some-other-ca")
        self.cert, self.key = make_server_cert(workdir, ca_cert, ca_key)
        self.passwd = workdir / "passwd"
        for i, (user, pw) in enumerate(USERS.items()):
            args = ["-c"] if i == 0 else []
            subprocess.run(
                [MOSQUITTO_PASSWD, *args, "-b", str(self.passwd), user, pw],
                check=True,
                capture_output=True,
            )
        assert "br1dge-pw" not in self.passwd.read_text()  # hashed, not stored
        self.acl = workdir / "acl"
        self.acl.write_text(ACL)

    def argv(self) -> list[str]:
        conf = self.workdir / "mosquitto-secure.conf"
        conf.write_text(
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n"
            f"cafile {self.ca}\ncertfile {self.cert}\nkeyfile {self.key}\n"
            "tls_version tlsv1.2\n"
            f"allow_anonymous false\npassword_file {self.passwd}\nacl_file {self.acl}\n"
            "persistence false\n"
        )
        assert self.binary is not None
        return [self.binary, "-c", str(conf)]


@pytest.fixture(scope="module")
def secure_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    srv = SecureMosquitto(tmp_path_factory.mktemp("mosquitto-secure"))
    srv.start()
    yield srv
    srv.stop()


def tls_client(srv: SecureMosquitto, user: str | None, pw: str | None, **kw: Any) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        srv.port,
        username=user,
        password=pw,
        tls_context=ssl.create_default_context(cafile=str(srv.ca)),
        timeout=10,
        **kw,
    )


def cfg_env(srv: SecureMosquitto, user: str, pw: str, ca: Path | None = None) -> dict[str, str]:
    return {
        "SPASM_MQTT_ENABLED": "true",
        "SPASM_MQTT_PORT": str(srv.port),
        "SPASM_MQTT_TLS": "true",
        "SPASM_MQTT_CA_FILE": str(ca or srv.ca),
        "SPASM_MQTT_USERNAME": user,
        "SPASM_MQTT_PASSWORD": pw,
        "SPASM_MQTT_BACKOFF_MAX_S": "0.4",
    }


def ev(band: str, seq: int) -> Event:
    return Event(
        band=band, seq=seq, boot=1, utc_ms=BASE_UTC + seq * 1000, t_ms=seq * 1000, kind=1,
        severity=2, confidence=77, duration_ms=900, peak_act_x10=123, mean_act_x10=45,
        peak_acc_mg=321, freq_dhz=42, modalities=3,
    )  # fmt: skip


@dataclass
class Sub:
    got: list[tuple[str, bytes]]
    ready: asyncio.Event
    task: asyncio.Task[None]


def subscribe(srv: SecureMosquitto, user: str, topic: str) -> Sub:
    got: list[tuple[str, bytes]] = []
    ready = asyncio.Event()

    async def run() -> None:
        async with tls_client(srv, user, USERS[user]) as c:
            await c.subscribe(topic, qos=1)
            ready.set()
            async for m in c.messages:
                got.append((str(m.topic), m.payload if isinstance(m.payload, bytes) else b""))

    return Sub(got, ready, asyncio.create_task(run()))


async def stop(*tasks: asyncio.Task[Any]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- tests


async def test_anonymous_and_plain_clients_are_refused(secure_mosquitto: SecureMosquitto) -> None:
    with pytest.raises(aiomqtt.MqttError, match="(?i)not authori"):
        async with tls_client(secure_mosquitto, None, None):
            pass
    with pytest.raises(aiomqtt.MqttError, match="(?i)not authori"):
        async with tls_client(secure_mosquitto, "bridge", "wrong"):
            pass
    with pytest.raises(aiomqtt.MqttError):  # plain MQTT to a TLS listener
        async with aiomqtt.Client(
            "127.0.0.1", secure_mosquitto.port, username="bridge", password=USERS["bridge"],
            timeout=3,
        ):  # fmt: skip
            pass


async def test_sink_delivers_with_the_right_credentials_and_ca(
    secure_mosquitto: SecureMosquitto,
) -> None:
    cfg = load(None, env=cfg_env(secure_mosquitto, "bridge", USERS["bridge"]))
    assert cfg.mqtt.ca_file == str(secure_mosquitto.ca)
    viewer = subscribe(secure_mosquitto, "viewer", "spasm/v1/+/event")
    await viewer.ready.wait()
    sink = MqttSink(cfg.mqtt, "sec1", Stats())
    await sink.start()
    try:
        await until(lambda: sink.up, "sink connected over TLS with a password")
        await sink.deliver([ev("a1b2c3", 1), ev("a1b2c3", 2)])
        await until(lambda: len(viewer.got) == 2, "two events at the viewer")
        assert [json.loads(p)["seq"] for _t, p in viewer.got] == [1, 2]
    finally:
        await sink.close()
        await stop(viewer.task)


@pytest.mark.parametrize(
    "user, pw, use_rogue_ca, words",
    [
        ("bridge", "not-the-password", False, "refused the credentials (user 'bridge')"),
        ("", "", False, "refused the credentials (no username (anonymous))"),
        ("bridge", USERS["bridge"], True, "TLS with broker 127.0.0.1"),
    ],
)
async def test_sink_with_wrong_credentials_or_ca_is_refused_and_retries(
    secure_mosquitto: SecureMosquitto,
    caplog: pytest.LogCaptureFixture,
    user: str,
    pw: str,
    use_rogue_ca: bool,
    words: str,
) -> None:
    env = cfg_env(secure_mosquitto, user, pw, secure_mosquitto.rogue_ca if use_rogue_ca else None)
    if not pw:
        del env["SPASM_MQTT_PASSWORD"]
    cfg = load(None, env=env)
    caplog.set_level(logging.WARNING, logger="spasm.mqtt")
    sink = MqttSink(cfg.mqtt, "sec2", Stats())
    await sink.start()
    try:

        def refusals() -> list[logging.LogRecord]:
            return [r for r in caplog.records if words in r.getMessage()]

        await until(lambda: len(refusals()) >= 3, "three refused attempts (backoff, no crash)")
        assert all(r.levelno == logging.ERROR for r in refusals())
        assert not sink.up and sink._task is not None and not sink._task.done()
        if pw:
            assert all(pw not in r.getMessage() for r in caplog.records)  # never logged
    finally:
        await sink.close()


async def test_ingest_worker_with_credentials_and_ca(
    secure_mosquitto: SecureMosquitto, victoria: Victoria, caplog: pytest.LogCaptureFixture
) -> None:
    env = cfg_env(secure_mosquitto, "ingest", USERS["ingest"])
    env |= {"SPASM_INFLUX_ENABLED": "true", "SPASM_INFLUX_URL": victoria.url}
    env["SPASM_INGEST_FLUSH_INTERVAL_S"] = "0.05"
    good = IngestWorker(load(None, env=env | {"SPASM_INGEST_CLIENT_ID": "sec-ingest-ok"}))
    bad_env = env | {"SPASM_MQTT_PASSWORD": "nope", "SPASM_INGEST_CLIENT_ID": "sec-ingest-bad"}
    bad = IngestWorker(load(None, env=bad_env))
    caplog.set_level(logging.WARNING, logger="spasm.ingest")
    tasks = [asyncio.create_task(good.run()), asyncio.create_task(bad.run())]
    try:
        await asyncio.wait_for(good.ready.wait(), 20)
        async with tls_client(secure_mosquitto, "bridge", USERS["bridge"]) as pub:
            await pub.publish("spasm/v1/d4e5f6/event", json.dumps(to_json(ev("d4e5f6", 7))), qos=1)
        await until(lambda: good.written == 1, "the event written by the worker")
        series = victoria.wait_points('spasm_event_seq{band="d4e5f6"}', 1)
        assert [v for s in series for v in s["values"]] == [7]

        def refusals() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if "sec-ingest-bad" in r.getMessage()
                and "refused the credentials" in r.getMessage()
            ]

        await until(lambda: len(refusals()) >= 2, "the bad worker refused, retrying")
        assert not bad.ready.is_set() and bad.written == 0 and not tasks[1].done()
        assert all(r.levelno == logging.ERROR for r in refusals())
    finally:
        await stop(*tasks)
        await good.close()
        await bad.close()


async def test_acl_keeps_a_read_only_user_from_publishing(
    secure_mosquitto: SecureMosquitto,
) -> None:
    """A rogue or compromised app account cannot inject events or band commands."""
    commands: list[tuple[str, int, dict[str, Any]]] = []

    async def handler(band: str, ftype: int, fields: dict[str, Any]) -> None:
        commands.append((band, ftype, fields))

    cfg = load(None, env=cfg_env(secure_mosquitto, "bridge", USERS["bridge"]))
    sink = MqttSink(cfg.mqtt, "sec3", Stats(), handler)
    await sink.start()
    ingest_view = subscribe(secure_mosquitto, "ingest", "spasm/v1/#")
    await ingest_view.ready.wait()
    try:
        await until(lambda: sink.up, "sink connected")
        async with tls_client(secure_mosquitto, "viewer", USERS["viewer"]) as rogue:
            await rogue.publish(
                "spasm/v1/a1b2c3/event", json.dumps(to_json(ev("a1b2c3", 99))), qos=1
            )
            await rogue.publish("spasm/v1/a1b2c3/cmd/reboot", b"{}", qos=1)
        # the bridge's own publish and command go through (a marker that the broker is live)
        async with tls_client(secure_mosquitto, "bridge", USERS["bridge"]) as ok:
            await ok.publish("spasm/v1/a1b2c3/cmd/config_get", b'{"key": "led"}', qos=1)
        await until(lambda: len(commands) == 1, "the bridge user's command")
        await until(lambda: any(t.endswith("/cmd/config_get") for t, _ in ingest_view.got), "seen")
        topics = [t for t, _ in ingest_view.got]
        assert "spasm/v1/a1b2c3/event" not in topics and "spasm/v1/a1b2c3/cmd/reboot" not in topics
        assert [c[0] for c in commands] == ["a1b2c3"] and commands[0][2] == {"key": "led"}
    finally:
        await sink.close()
        await stop(ingest_view.task)
