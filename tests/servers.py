"""Real servers for host tests: mosquitto and VictoriaMetrics on free loopback ports.

Use in a test module: ``from tests.servers import mosquitto_fixture, victoria_fixture``
with ``# noqa: F401`` (fixtures named ``mosquitto`` and ``victoria``; the short
names import them too).
Both fixtures are module-scoped; each server is killed at the end. Tests that stop a
server (to check a sink rides it out) call ``start()`` again on the same port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
VICTORIA = "/usr/bin/victoria-metrics"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


class Server:
    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, self.name)

    def stop(self) -> None:
        """Stop the server (SIGTERM, so VictoriaMetrics keeps what it stored)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Mosquitto(Server):
    name = "mosquitto"

    def argv(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nmax_queued_messages 100000\n"
        )
        return [MOSQUITTO, "-c", str(conf)]


class Victoria(Server):
    name = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            VICTORIA,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'vm-data'}",
            "-dedup.minScrapeInterval=1ms",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        q = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(self.url + path + q, timeout=10) as r:
            return bytes(r.read())

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching ``match`` after a flush: metric labels, values, timestamps."""
        self._get("/internal/force_flush")
        text = self._get("/api/v1/export", {"match[]": match}).decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_points(self, match: str, want: int, tries: int = 60) -> list[dict[str, Any]]:
        """Poll until ``want`` points match (new data takes a moment to be searchable)."""
        series: list[dict[str, Any]] = []
        for _ in range(tries):
            series = self.export(match)
            if sum(len(s["values"]) for s in series) >= want:
                return series
            time.sleep(0.25)
        return series


@pytest.fixture(scope="module", name="mosquitto")
def mosquitto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    srv = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module", name="victoria")
def victoria_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    srv = Victoria(tmp_path_factory.mktemp("victoria"))
    srv.start()
    yield srv
    srv.stop()


# Importing the short names (mosquitto, victoria) registers the fixtures too;
# importing the *_fixture names instead keeps ruff's F811 quiet in the test signatures.
mosquitto = mosquitto_fixture
victoria = victoria_fixture
