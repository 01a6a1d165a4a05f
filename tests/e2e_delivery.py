"""What the end-to-end tests saw arrive, and the delivery checks on it.

- ``MqttTap``: a subscriber that records every event copy per (band, seq).
- ``vm_points`` / ``vm_until``: points per (band, seq) from VictoriaMetrics' export
  API (``vm_until`` polls, bounded, until the wanted ones are there).
- ``deliver_snapshot``, ``check_exactly_once``, ``check_acked``: the delivery
  invariants, against the bands' flash and stats (tests/e2e_chain.py runs the chain).

Every wait is bounded and fails with a message saying what never happened.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from typing import Any

import aiomqtt

from tests.e2e_chain import FleetProc, until
from tests.servers import Victoria

# ---------------------------------------------------------------- what arrived


class MqttTap:
    """Every copy of every ``<band>/event`` and ``<band>/marker`` message, by (band, seq)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.copies: dict[str, dict[tuple[str, int], list[int]]] = {"event": {}, "marker": {}}
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as c:
            await c.subscribe("spasm/v1/+/event", qos=1)
            await c.subscribe("spasm/v1/+/marker", qos=1)
            self.ready.set()
            async for m in c.messages:
                rtype = str(m.topic).rsplit("/", 1)[-1]
                payload = m.payload if isinstance(m.payload, bytes) else b""
                e = json.loads(payload)
                self.copies[rtype].setdefault((e["band"], e["seq"]), []).append(e["utc_ms"])

    async def start(self) -> MqttTap:
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    def events(self, bands: list[str]) -> dict[tuple[str, int], list[int]]:
        return {k: v for k, v in self.copies["event"].items() if k[0] in bands}

    def has(self, band: str, seqs: set[int], rtype: str = "event") -> bool:
        got = self.copies[rtype]
        return all((band, s) in got for s in seqs)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def vm_points(
    vm: Victoria, bands: list[str], measurement: str = "spasm_event"
) -> dict[tuple[str, int], list[int]]:
    """(band, seq) -> timestamps (ms) of every point VictoriaMetrics holds for it.

    The export covers all time up to a day ahead: accelerated bands stamp their events
    in the future (band time runs faster than the wall clock that synced it)."""
    match = f'{measurement}_seq{{band=~"{"|".join(bands)}"}}'
    with urllib.request.urlopen(vm.url + "/internal/force_flush", timeout=10):
        pass
    query = urllib.parse.urlencode(
        {"match[]": match, "start": "0", "end": str(int(time.time()) + 86400)}
    )
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as r:
        text = r.read().decode()
    out: dict[tuple[str, int], list[int]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        for t, v in zip(s["timestamps"], s["values"], strict=True):
            out.setdefault((s["metric"]["band"], int(v)), []).append(int(t))
    return out


async def vm_until(
    vm: Victoria, bands: list[str], want: set[tuple[str, int]]
) -> dict[tuple[str, int], list[int]]:
    """Poll (bounded) until every (band, seq) of ``want`` has a point; returns all points."""
    pts: dict[tuple[str, int], list[int]] = {}
    for _ in range(80):
        pts = await asyncio.to_thread(vm_points, vm, bands)
        if want <= set(pts):
            return pts
        await asyncio.sleep(0.25)
    missing = sorted(want - set(pts))
    raise AssertionError(f"VictoriaMetrics never got {len(missing)} events: {missing[:10]}")


# ---------------------------------------------------------------- the checks


def logged_total(stats: dict[str, Any]) -> int:
    """Records a band has logged this run (its last seq, on a fresh flash)."""
    return int(stats["events"]) + int(stats["markers"]) + int(stats["faults"])


async def deliver_snapshot(
    fleet: FleetProc, tap: MqttTap, seconds: float = 40
) -> dict[str, dict[str, Any]]:
    """Take the fleet's stats now and wait (bounded) until MQTT has as many events and
    markers per band as the bands had logged by then."""
    snap = await fleet.stats()

    def caught_up() -> bool:
        for band, s in snap.items():
            ev = sum(1 for k in tap.copies["event"] if k[0] == band)
            mk = sum(1 for k in tap.copies["marker"] if k[0] == band)
            if ev < s["events"] or mk < s["markers"]:
                return False
        return True

    await until(caught_up, f"MQTT caught up with what the bands logged: {snap}", seconds)
    return snap


def check_exactly_once(
    flash: dict[str, list[tuple[int, int, int, int]]],
    snap: dict[str, dict[str, Any]],
    mqtt: dict[tuple[str, int], list[int]],
    vm: dict[tuple[str, int], list[int]],
) -> set[tuple[str, int]]:
    """The delivery invariants; returns the (band, seq) of the events checked: every event
    logged before the snapshot ``snap``."""
    from protocol import codec

    logged = {(b, r[1]) for b, recs in flash.items() for r in recs if r[0] == codec.EVENT}
    must = {(b, seq) for b, seq in logged if seq <= logged_total(snap[b])}
    assert must, "the bands logged no event: nothing was tested"
    assert must <= set(mqtt), f"never on MQTT: {sorted(must - set(mqtt))}"
    assert must <= set(vm), f"never in VictoriaMetrics: {sorted(must - set(vm))}"
    assert set(mqtt) <= logged, f"on MQTT, never logged: {sorted(set(mqtt) - logged)}"
    assert set(vm) <= logged, f"in VictoriaMetrics, never logged: {sorted(set(vm) - logged)}"
    doubled = {k: v for k, v in vm.items() if len(v) != 1}
    assert not doubled, f"more than one point per (band, seq): {doubled}"
    # at-least-once on MQTT: copies may repeat, but every copy carries the same stamp,
    # the one the time-series point has
    moved = {k: (v, vm.get(k)) for k, v in mqtt.items() if set(v) != set(vm.get(k, v[:1]))}
    assert not moved, f"stamps differ between copies / sinks: {moved}"
    return must


def check_acked(acked: dict[str, int], snap: dict[str, dict[str, Any]]) -> None:
    """What was delivered was acknowledged to the band (which may then free it)."""
    for band, s in snap.items():
        assert acked[band] >= logged_total(s), (
            f"band {band}: delivered every record up to seq {logged_total(s)}, but the band's "
            f"flash says acked up to {acked[band]}"
        )
