"""The fault schedule of a chaos run, in simulated (band) minutes.

One *round* holds every fault kind once, spread over ``round_min`` simulated
minutes; a run repeats rounds until its simulated duration is used up. Faults
rotate over the bands. Durations are simulated minutes; the runner converts
them to wall seconds with the fleet's speed (band time = wall time x speed).
"""

from __future__ import annotations

from dataclasses import dataclass

# kind -> what it does (the runner implements each)
KINDS: dict[str, str] = {
    "link_drop": "the band's link is lost (supervision timeout on both ends)",
    "out_of_range": "the band is out of range long enough for its event log to wrap",
    "power_cut": "the band loses power in the middle of a flash write, boots again",
    "reboot": "the band reboots on a REBOOT command sent over MQTT (bridge -> band)",
    "bridge_sigkill": "the bridge process is killed with SIGKILL, restarted",
    "mqtt_restart": "mosquitto is stopped, restarted on the same port",
    "tsdb_down": "the time-series server (VictoriaMetrics) is stopped, restarted",
    "spool_full": "the spool's disk is full (spool.max_mb cap below its size), then room again",
}
ORDER = list(KINDS)


@dataclass
class Fault:
    at_min: float  # planned start, simulated minutes since the run started
    kind: str
    band: int | None  # index into the fleet's bands, for band faults
    minutes: float  # how long the fault lasts (0: instantaneous)


def durations(log_capacity: int, records_per_min: float) -> dict[str, float]:
    """Simulated minutes each fault lasts. The out-of-range one lasts long enough that the
    band logs about twice its log's capacity (so the log wraps); the time-series server is
    down 6 simulated minutes (at least 5, as the run promises)."""
    wrap = 2.0 * log_capacity / max(records_per_min, 0.1)
    return {
        "link_drop": 0.0,
        "out_of_range": wrap,
        "power_cut": 0.5,  # off time
        "reboot": 0.0,
        "bridge_sigkill": 1.0,
        "mqtt_restart": 2.0,
        "tsdb_down": 6.0,
        "spool_full": 2.0,
    }


def plan(
    total_min: float, round_min: float, bands: int, log_capacity: int, records_per_min: float
) -> list[Fault]:
    """Every fault kind once per round, evenly spaced, rounds until ``total_min``."""
    if bands < 1 or round_min <= 0 or total_min < round_min:
        raise ValueError("need at least one band and one whole round within the run")
    dur = durations(log_capacity, records_per_min)
    faults: list[Fault] = []
    step = round_min / len(ORDER)
    rounds = int(total_min // round_min)
    n = 0
    for r in range(rounds):
        for i, kind in enumerate(ORDER):
            band_fault = kind in ("link_drop", "out_of_range", "power_cut", "reboot")
            faults.append(
                Fault(
                    at_min=r * round_min + (i + 0.5) * step,
                    kind=kind,
                    band=(n % bands) if band_fault else None,
                    minutes=dur[kind],
                )
            )
            if band_fault:
                n += 1
    return faults
