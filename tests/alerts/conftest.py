"""Fixtures of the alert tests: a real mosquitto (tests/servers.py) and a webhook server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests import servers
from tests.alerts.receivers import Hook

# the module-scoped broker of tests/servers.py, under its fixture name "mosquitto"
mosquitto = servers.mosquitto_fixture


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("Hook", (Hook,), {"bodies": [], "status": 200})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/alert", handler
    srv.shutdown()
    srv.server_close()
