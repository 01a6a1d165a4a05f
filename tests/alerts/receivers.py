"""The receiving ends of alert delivery: a webhook's request handler and an MQTT subscriber.

The webhook server itself is the ``webhook`` fixture in conftest.py.
"""

from __future__ import annotations

import asyncio
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import aiomqtt

from tests.servers import Mosquitto


class Hook(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        n = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(self.rfile.read(n))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def collect(mosq: Mosquitto, want: int, action: Any) -> list[dict[str, Any]]:
    """The first ``want`` alerts on MQTT (every band's alert topic) after ``action``."""
    got: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosq.port, identifier="alert-test") as sub:
        await sub.subscribe("spasm/v1/+/alert", qos=1)
        await action()

        async def read() -> None:
            async for msg in sub.messages:
                got.append(json.loads(bytes(msg.payload)))
                if len(got) >= want:
                    return

        await asyncio.wait_for(read(), 30)  # a bound on the loop, not a speed check
    return got
