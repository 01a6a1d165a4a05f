"""After `make run` (simulator/chain.py): the counts read back from every place the data went.

- the spool: ``spasm-bridge status --json`` on the run's bridge.toml (a bridge
  process of its own, so the numbers are the bridge's, not a second reading);
- VictoriaMetrics: the ``spasm_event_seq`` series through /api/v1/export;
- MQTT: the chain's own subscriber (simulator/chain_watch.py), deduped on (band, seq).

The servers must still be up; the chain stops them after this.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from host.local_servers import Mosquitto, VictoriaMetrics, count_points
from simulator.chain_children import child_env
from simulator.chain_watch import MqttWatcher

EVENT_SERIES = "spasm_event_seq"  # the InfluxDB field `seq` of measurement spasm_event


async def spool_summary(conf: Path, spool: Path) -> dict[str, Any] | None:
    if not conf.exists() or not spool.exists():
        return None
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "host.cli", "status", "--json", "-c", str(conf)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=child_env(),
    )
    out, _ = await proc.communicate()
    try:
        return dict(json.loads(out))
    except ValueError:
        return None


def victoria_readback(vm: VictoriaMetrics | None, want: int) -> dict[str, Any] | None:
    if vm is None:
        return None
    # Accelerated bands stamp records ahead of the wall clock; VictoriaMetrics
    # takes points up to two days ahead, and its export stops at now unless told.
    end = time.time() + 2 * 86400
    try:
        series = vm.wait_points(EVENT_SERIES, want, tries=20 if want else 1, end=end)
    except OSError as e:
        return {"url": vm.url, "error": str(e)}
    seqs = {(s["metric"].get("band"), int(v)) for s in series for v in s["values"]}
    return {
        "url": vm.url,
        "points": count_points(series),
        "distinct": len(seqs),
        "example": vm.export_url(EVENT_SERIES, end),
        "data": str(vm.data_dir),
    }


def mqtt_readback(mqtt: Mosquitto | None, watcher: MqttWatcher | None) -> dict[str, Any] | None:
    """None without a broker; ``subscribed`` False when the broker ran but the run failed
    before the bridge (and the chain's subscriber) started, so nothing was published."""
    if mqtt is None:
        return None
    if watcher is None:
        return {"address": mqtt.address, "subscribed": False}
    return {
        "address": mqtt.address,
        "subscribed": True,
        "distinct": watcher.distinct(),
        "messages": watcher.messages,
        "by_band": {b: len(s) for b, s in sorted(watcher.seen.items())},
    }


async def read_back(
    conf: Path,
    spool: Path,
    mqtt: Mosquitto | None,
    vm: VictoriaMetrics | None,
    watcher: MqttWatcher | None,
) -> dict[str, Any]:
    """The summary's ``spool``, ``mqtt`` and ``victoria`` entries."""
    summary = await spool_summary(conf, spool)
    events = {
        b: int(v["records"].get("event", 0)) for b, v in (summary or {}).get("bands", {}).items()
    }
    victoria = await asyncio.to_thread(victoria_readback, vm, sum(events.values()))
    return {
        "spool": {"path": str(spool), "events": events, "summary": summary},
        "mqtt": mqtt_readback(mqtt, watcher),
        "victoria": victoria,
    }
