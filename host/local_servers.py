"""Local mosquitto and VictoriaMetrics on free loopback ports, for `make run` and the tests.

The one place that knows how to start, wait for, query and stop the servers the
chain delivers to on a development machine or in CI:

- ``Mosquitto(workdir)``: writes ``workdir/mosquitto.conf`` (one listener on
  127.0.0.1, anonymous, no persistence, a deep queue) and runs ``mosquitto -c``.
- ``VictoriaMetrics(workdir)``: the InfluxDB write API stand-in, with
  ``-dedup.minScrapeInterval=1ms`` (a rewritten point stays one point, as in
  InfluxDB) and ``-search.latencyOffset=0s`` (new points are searchable at once);
  data under ``workdir/vm-data``. ``export(match)`` reads series back through
  ``/api/v1/export`` after ``/internal/force_flush``.

``start()`` waits until the port accepts connections (or raises ServerError with
the tail of the server's log); ``stop()`` sends SIGTERM (VictoriaMetrics keeps what
it stored), then SIGKILL if the server lingers. Servers die with the process that
started them (Linux PR_SET_PDEATHSIG), so a killed parent leaves no orphan.

Binaries: ``$SPASM_MOSQUITTO_BIN`` / ``$SPASM_VICTORIA_METRICS_BIN`` when set (an
empty value means "not installed", which is how the no-server path is tested),
else the first found on ``PATH`` or at the Debian package's path.
"""

from __future__ import annotations

import ctypes
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

MOSQUITTO_ENV = "SPASM_MOSQUITTO_BIN"
VICTORIA_ENV = "SPASM_VICTORIA_METRICS_BIN"
# Where Debian's packages put them (/usr/sbin is not on a normal user's PATH).
DEBIAN_PATHS = {"mosquitto": "/usr/sbin/mosquitto", "victoria-metrics": "/usr/bin/victoria-metrics"}
INSTALL_HINT = "install it with `make setup` as root, or: sudo apt-get install -y {package}"


class ServerError(RuntimeError):
    """A server could not be found or started; the message says which and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(program: str, env_var: str) -> str | None:
    """The executable for ``program``: ``$env_var`` if set ("" = none), PATH, Debian's path."""
    if env_var in os.environ:
        chosen = os.environ[env_var].strip()
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    found = shutil.which(program)
    if found:
        return found
    debian = DEBIAN_PATHS.get(program)
    return debian if debian and os.access(debian, os.X_OK) else None


def pdeathsig_preexec() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, tries: int = 200) -> None:
    """Wait (tries x 50 ms) until 127.0.0.1:port accepts a connection; fail if ``proc`` exits."""
    for _ in range(tries):
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerError(f"{what} did not listen on 127.0.0.1:{port}")


def log_tail(log: Path, lines: int, sep: str = " | ", empty: str = "(empty)") -> str:
    """The last lines of a child's log file, joined for an error message."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return sep.join(text[-lines:]) or empty


class LocalServer:
    """One server process on a free loopback port, its log in ``workdir/<name>.log``."""

    name = "server"
    program = "server"
    env_var = ""

    def __init__(
        self,
        workdir: str | Path,
        binary: str | None = None,
        port: int | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary if binary is not None else find_binary(self.program, self.env_var)
        self.port = port if port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / f"{self.name}.log"
        self.die_with_parent = die_with_parent

    @property
    def installed(self) -> bool:
        return self.binary is not None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start (again on the same port after ``stop()``) and wait until the port listens."""
        if self.binary is None:
            raise ServerError(
                f"{self.program} is not installed; " + INSTALL_HINT.format(package=self.program)
            )
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # own process group: a Ctrl-C at the terminal reaches only our parent,
                # which stops us in order
                start_new_session=True,
                preexec_fn=pdeathsig_preexec if self.die_with_parent else None,
            )
        try:
            wait_port(self.port, self.proc, self.name)
        except ServerError as e:
            self.stop()
            raise ServerError(f"{e}; log {self.log}: {self.log_tail()}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (VictoriaMetrics flushes what it stored), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def log_tail(self, lines: int = 5) -> str:
        return log_tail(self.log, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto(LocalServer):
    """An MQTT broker on 127.0.0.1:port, anonymous, no persistence."""

    name = "mosquitto"
    program = "mosquitto"
    env_var = MOSQUITTO_ENV

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        assert self.binary is not None
        conf = self.workdir / "mosquitto.conf"
        # `user`: as root, mosquitto would switch to user mosquitto, and a change of
        # credentials clears the parent-death signal; it stays whoever started it.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nmax_queued_messages 100000\n"
            f"user {getpass.getuser()}\n"
        )
        return [self.binary, "-c", str(conf)]


class VictoriaMetrics(LocalServer):
    """VictoriaMetrics on 127.0.0.1:port: InfluxDB line protocol in, /api/v1/export out."""

    name = "victoria-metrics"
    program = "victoria-metrics"
    env_var = VICTORIA_ENV

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "vm-data"

    def argv(self) -> list[str]:
        assert self.binary is not None
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-dedup.minScrapeInterval=1ms",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    @staticmethod
    def _params(match: str, end: float | None) -> dict[str, str]:
        params = {"match[]": match}
        if end is not None:
            params["end"] = str(int(end))
        return params

    def export_url(self, match: str, end: float | None = None) -> str:
        """The /api/v1/export URL for a series selector, e.g. ``spasm_event_seq``."""
        return f"{self.url}/api/v1/export?" + urllib.parse.urlencode(self._params(match, end))

    def get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        q = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(self.url + path + q, timeout=10) as r:
            return bytes(r.read())

    def force_flush(self) -> None:
        """Make every point received so far searchable."""
        self.get("/internal/force_flush")

    def export(self, match: str, end: float | None = None) -> list[dict[str, Any]]:
        """Every series matching ``match`` after a flush: metric labels, values, timestamps.

        ``end`` (Unix seconds) reaches past the default, now: bands on an accelerated
        clock stamp their records ahead of the wall clock.
        """
        self.force_flush()
        text = self.get("/api/v1/export", self._params(match, end)).decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_points(
        self, match: str, want: int, tries: int = 60, end: float | None = None
    ) -> list[dict[str, Any]]:
        """Poll (tries x 250 ms) until ``want`` points match; returns what matched last."""
        series: list[dict[str, Any]] = []
        for _ in range(tries):
            series = self.export(match, end)
            if count_points(series) >= want:
                return series
            time.sleep(0.25)
        return series


def count_points(series: list[dict[str, Any]]) -> int:
    return sum(len(s["values"]) for s in series)


# The name tests/servers.py uses.
Victoria = VictoriaMetrics
