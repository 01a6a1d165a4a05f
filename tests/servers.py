"""Real servers for tests: mosquitto and VictoriaMetrics on free loopback ports.

Thin pytest fixtures over host/local_servers.py, the one implementation that
`make run` uses too. Use in a test module with
``from tests.servers import mosquitto_fixture, victoria_fixture  # noqa: F401``.
Both fixtures are module-scoped; each server is killed at the end. Tests that
stop a server (to check a sink rides it out) call ``start()`` again on the same port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host.local_servers import Mosquitto, VictoriaMetrics, free_port

Victoria = VictoriaMetrics

__all__ = ["Mosquitto", "Victoria", "free_port", "mosquitto_fixture", "victoria_fixture"]


def _require(srv: Mosquitto | VictoriaMetrics) -> None:
    # a missing server is an install problem, never a reason to skip
    if not srv.installed:
        raise RuntimeError(
            f"{srv.program} is not installed: run `make setup` as root "
            f"(or apt-get install -y {srv.program})"
        )


@pytest.fixture(scope="module", name="mosquitto")
def mosquitto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    srv = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    _require(srv)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module", name="victoria")
def victoria_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    srv = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    _require(srv)
    srv.start()
    yield srv
    srv.stop()
