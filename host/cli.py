"""`spasm-bridge`: run the bridge, scan for bands, show or repair the spool, run an ingest worker.

Exit codes: 0 ok, 1 runtime failure (spool unusable, scanner failed), 2 bad
command line or config (the message names the key and the reason).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from host.ble_backend import resolve_backends
from host.config import LOG_LEVELS, Config, ConfigError, describe, load, parse_set
from host.notes import add_note_parser, note_main
from host.report import add_report_parser, report_main
from host.spool import Spool, SpoolError

log = logging.getLogger("spasm.cli")

EPILOG = """\
config: a TOML file (-c, or $SPASM_CONFIG), then environment variables
SPASM_<SECTION>_<KEY> (e.g. SPASM_MQTT_HOST, SPASM_INFLUX_URL), then --set.
An empty SPASM_CONFIG means no file; any other SPASM_* name that is no key is refused.
Secrets only from the environment (SPASM_MQTT_PASSWORD, SPASM_INFLUX_TOKEN) or
from files (mqtt.password_file, influx.token_file); never on the command line.
See host/README.md for every key and its default.
"""
MAX_DURATION_S = 366 * 86400
DURATION_HELP = "stop after S seconds (default 0: run until Ctrl-C or SIGTERM)"


def _seconds(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse ``type=`` for seconds within lo..hi; NaN and inf are refused.

    (simulator.cli_args.ranged does the same for the simulator; the bridge does not import
    the simulator package.)
    """

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not lo <= v <= hi:  # finite bounds: NaN and inf fail too
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:.10g}")
        return v

    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("SPASM_CONFIG"),  # empty = no file (config.load)
        help="TOML config file (default: $SPASM_CONFIG; none = defaults)",
    )
    common.add_argument(
        "--set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override one config key (TOML value; repeatable)",
    )
    common.add_argument(
        "--log-level",
        type=str.upper,  # any case, like bridge.log_level
        choices=LOG_LEVELS,
        help="log level, any case (default: bridge.log_level)",
    )
    p = argparse.ArgumentParser(
        prog="spasm-bridge",
        description="Spasm band host bridge: BLE -> spool -> MQTT/InfluxDB",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the bridge until Ctrl-C",
        description="Find bands, keep them linked, spool every record and "
        "deliver it to the enabled sinks. Stops on SIGINT/SIGTERM.",
    )
    run.add_argument(
        "--duration", type=_seconds(0, MAX_DURATION_S), default=0.0, metavar="S", help=DURATION_HELP
    )
    run.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config (secrets masked) and exit",
    )
    scan = sub.add_parser(
        "scan",
        parents=[common],
        help="list bands advertising nearby",
        description="Scan for the band service and print band id, address, "
        "name and RSSI; bands outside ble.allow are marked.",
    )
    scan.add_argument(
        "--seconds",
        type=_seconds(0.1, 3600),
        default=5.0,
        help="scan time, 0.1..3600 (default 5)",
    )
    status = sub.add_parser(
        "status",
        parents=[common],
        help="show what the spool holds",
        description="Per band: contiguous seq and records held; per sink: "
        "cursor and lag. Reads the spool file only.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    sp = sub.add_parser(
        "spool",
        parents=[common],
        help="check a spool file, or recover a damaged one",
        description="check: SQLite's integrity_check and the spool schema (exit 1 if damaged). "
        "recover: copy every readable row into a new spool file at spool.path, keeping "
        "row ids, sink cursors and (when nothing was lost) ack points; the damaged file "
        "is renamed to <path>.damaged-<UTC time>, never deleted. Stop the bridge first. "
        "See host/README.md, 'A damaged spool'.",
    )
    sp.add_argument("action", choices=("check", "recover"), help="what to do")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument(
        "--force",
        action="store_true",
        help=(
            "recover even when the check finds nothing wrong, or when the file is no spool "
            "(not SQLite, or SQLite without the spool's tables): it is moved aside, never deleted"
        ),
    )
    ing = sub.add_parser(
        "ingest",
        parents=[common],
        help="MQTT shared subscription -> InfluxDB",
        description="Consume $share/<ingest.group>/<prefix>/+/<type> and write "
        "InfluxDB. Run several with distinct --worker-id to split the load.",
    )
    ing.add_argument("--worker-id", help="MQTT client id of this worker (ingest.client_id)")
    ing.add_argument(
        "--duration", type=_seconds(0, MAX_DURATION_S), default=0.0, metavar="S", help=DURATION_HELP
    )
    add_note_parser(sub, [common])
    add_report_parser(sub, [common])
    return p


def _refuse_secret_args(argv: Sequence[str]) -> None:
    for a in argv:
        low = a.lower()
        if low.startswith("--") and ("password" in low or "token" in low):
            raise ConfigError(
                f"{a.split('=')[0]}: secrets are never taken from the command line (they show "
                "in ps and shell history); set SPASM_MQTT_PASSWORD / SPASM_INFLUX_TOKEN or "
                "mqtt.password_file / influx.token_file"
            )


def _load(args: argparse.Namespace) -> Config:
    overrides = parse_set(args.set)
    if getattr(args, "worker_id", None):
        overrides.setdefault("ingest", {})["client_id"] = args.worker_id
    return load(args.config, overrides=overrides)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().setLevel(getattr(logging, level))  # also when already configured


async def _until_stopped(duration: float) -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration > 0:  # 0 = until stopped, as DURATION=0 in the Makefile and the simulator
        loop.call_later(duration, stop.set)
    return stop


async def _run(cfg: Config, duration: float) -> int:
    from host.bridge import Bridge

    bridge = Bridge(cfg)
    # Everything imported so far (bleak, aiomqtt, influxdb-client, the radio stack: about
    # 140,000 objects) lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall the event loop 100-200 ms each
    # (stats line gc_ms=; bench_chain bridge_gc_pause_ms_max). Records that wait in the
    # spool's memory for the sinks reach the oldest generation at 1000/s with 200 bands,
    # and a full pass over the links' objects still takes 150-200 ms: one every 100
    # (not 10) middle-generation passes.
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
    stop = await _until_stopped(duration)
    await bridge.run(stop)
    return 0


async def _scan(cfg: Config, seconds: float) -> int:
    from host.discovery import BleUnavailable, Discovery

    _client, scanner = resolve_backends(cfg.ble)
    d = Discovery([], scanner, lambda band, dev: None, cfg.ble.options)
    try:
        found = await d.scan(seconds)
    except BleUnavailable as e:
        log.error("scan: %s", e)
        return 1
    allow = set(cfg.ble.allow)
    print(f"{'band':<14} {'address':<20} {'rssi':>5}  name")
    for f in found:
        mark = "" if not allow or f.band in allow else "  (not in ble.allow)"
        print(f"{f.band:<14} {f.address:<20} {f.rssi:>5}  {f.name}{mark}")
    print(f"{len(found)} band(s) in {seconds:g} s")
    return 0


def _status(cfg: Config, as_json: bool) -> int:
    if not os.path.exists(cfg.spool.path):
        raise SpoolError(f"{cfg.spool.path}: no spool here yet (spool.path)")
    spool = Spool(cfg.spool.path, cfg.spool.keep_hours, read_only=True)
    try:
        s = spool.summary()
    finally:
        spool.close()
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"spool {s['path']}: {s['last_id']} records spooled in total")
    for band, b in s["bands"].items():
        held = ", ".join(f"{k}={v}" for k, v in sorted(b["records"].items())) or "none"
        print(f"  band {band}: contiguous seq {b['contig_seq']}; held: {held}")
    for sink, c in s["sinks"].items():
        print(f"  sink {sink}: cursor {c['cursor']}, lag {c['lag']}")
    return 0


def _spool(cfg: Config, action: str, as_json: bool, force: bool) -> int:
    from host.spool_recovery import check, recover, refusal

    path = cfg.spool.path
    if not os.path.exists(path):
        raise SpoolError(f"{path}: no spool here (spool.path)")
    if action == "check":
        c = check(path)
        no_spool = refusal(Path(path))  # recovery would refuse it: the path is wrong, not the file
        if as_json:
            print(json.dumps(c.__dict__, indent=2))
        elif c.ok:
            print(f"spool {path}: ok")
        elif no_spool:
            print(
                f"spool {path}: this file is no spool ({no_spool}); check spool.path, or move "
                "it aside and start a new spool with: spasm-bridge spool recover --force"
            )
        else:
            print(f"spool {path}: DAMAGED")
            for prob in c.problems:
                print(f"  {prob}")
            print(
                f"recover what is readable with: spasm-bridge spool recover --set spool.path={path}"
            )
        return 0 if c.ok else 1
    if not force and check(path).ok:
        print(f"spool {path}: ok, nothing to recover (--force copies it anyway)")
        return 0
    try:
        r = recover(path, force=force)
    except (OSError, sqlite3.Error) as e:
        raise SpoolError(f"{path}: recovery failed: {e}") from None
    if as_json:
        print(json.dumps(r.as_dict(), indent=2))
        return 0
    print(f"spool {path}: recovered {r.recovered} records, lost {r.lost_rows}")
    print(f"  damaged file kept as {r.damaged_to}")
    print(f"  sink cursors: {r.cursors or 'none'}; next record id {r.next_id}")
    print(f"  band ack points: {r.bands or 'unknown (bands replay what they hold)'}")
    for note in r.notes:
        print(f"  note: {note}")
    return 0


async def _ingest(cfg: Config, duration: float) -> int:
    from host.ingest import IngestWorker

    worker = IngestWorker(cfg)
    stop = await _until_stopped(duration)
    task = asyncio.create_task(worker.run())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await worker.close()
    log.info(
        "ingest %s: wrote %d records, rejected %d",
        worker.client_id,
        worker.written,
        worker.rejected,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        _refuse_secret_args(argv)
        args = parser.parse_args(argv)
        cfg = _load(args)
    except ConfigError as e:
        print(f"spasm-bridge: config error: {e}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level or cfg.bridge.log_level)
    try:
        if args.command == "run":
            if args.print_config:
                print(json.dumps(describe(cfg), indent=2))
                return 0
            return asyncio.run(_run(cfg, args.duration))
        if args.command == "scan":
            return asyncio.run(_scan(cfg, args.seconds))
        if args.command == "status":
            return _status(cfg, args.json)
        if args.command == "spool":
            return _spool(cfg, args.action, args.json, args.force)
        if args.command == "note":
            return note_main(args, cfg)
        if args.command == "report":
            return report_main(args, cfg)
        return asyncio.run(_ingest(cfg, args.duration))
    except SpoolError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
