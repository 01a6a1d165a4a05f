"""A simulator process with simple echo bands: the virtual radio without the firmware.

For tests of the radio and of host code that needs a band before (or without)
the firmware app: ``python -m simulator.radio --bands 2``. Each band advertises
``SB-<id>``, echoes every CONTROL write back as a CONTROL notification, and
obeys extra commands on the control port besides the faults of control.py:

    {"cmd": "state", "band": id}      connected, mtu, secure, subscriptions, writes seen
    {"cmd": "notify", "band": id, "char": "signal", "count": 100, "size": 20}
        send ``count`` notifications of ``size`` bytes, each starting with its
        number (uint32 LE); waits while the radio reports TX full
    {"cmd": "set_value", "band": id, "char": "status", "hex": "0102"}
    {"cmd": "disconnect", "band": id} the band ends the link itself
    {"cmd": "forget_bonds", "band": id}   the band loses its bonds (flash erased)

Misbehaviour, for tests of the host's defences (a band's firmware never does these):

    {"cmd": "mode", "band": id, "echo": false}   never answer a write (a band that
        never answers: writes are taken and recorded, nothing comes back)
    {"cmd": "mode", "band": id, "hang_writes_ms": 3000}   from the first CONTROL write
        of each link, every PDU to and from the band is held this long (the write
        is answered that late): a band that stalls its host
    {"cmd": "send", "band": id, "char": "events", "hex": ["c0..", ...], "repeat": 1}
        these notifications, as given (garbage, floods); waits while TX is full.
        ``"oversized": true`` sends them even when longer than MTU - 3, as a broken
        stack would (straight to the ATT layer)

On start it prints one JSON line: {"radio": "tcp:127.0.0.1:PORT", "control": PORT,
"bands": {id: address}}; it runs until its stdin closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
from typing import Any

from bumble import att

from protocol import gatt
from simulator.radio import gatt_db
from simulator.radio.air import Air, key
from simulator.radio.band_radio import BandRadio
from simulator.radio.control import CommandError, FaultControl


class EchoHandler:
    """The tiny band app: counts link events, echoes control writes."""

    def __init__(self, radio: BandRadio) -> None:
        self.radio = radio
        self.connects = 0
        self.disconnects = 0
        self.writes: list[bytes] = []
        self.echo: asyncio.Queue[bytes] = asyncio.Queue()
        self.echoing = True
        self.hang_writes_ms = 0.0
        self._hung = False  # this link's writes are being held

    def on_connect(self) -> None:
        self.connects += 1
        self._hung = False

    def on_disconnect(self) -> None:
        self.disconnects += 1

    def on_write(self, char: str, data: bytes) -> None:
        self.writes.append(data)
        if self.hang_writes_ms and not self._hung:
            # the answer to this write (and everything after it) leaves that much later
            self._hung = True
            air, address = self.radio.air, key(self.radio.address)
            air.set_delay(address, self.hang_writes_ms)
            asyncio.get_running_loop().call_later(
                self.hang_writes_ms / 1000, air.set_delay, address, 0.0
            )
        if self.echoing:
            self.echo.put_nowait(data)

    async def run_echo(self) -> None:
        while True:
            data = await self.echo.get()
            for _ in range(1000):  # bounded: TX full clears within ms
                if not self.radio.connected() or self.radio.notify("control", data):
                    break
                await asyncio.sleep(0.002)


class TestBands:
    def __init__(self, air: Air, ids: list[str]) -> None:
        self.air = air
        self.radios: dict[str, BandRadio] = {}
        self.handlers: dict[str, EchoHandler] = {}
        for band_id in ids:
            radio = BandRadio(air, band_id)
            self.radios[band_id] = radio
            self.handlers[band_id] = EchoHandler(radio)

    async def start(self) -> None:
        for band_id, radio in self.radios.items():
            radio.set_value("status", b"\x00")
            radio.set_value("battery", bytes((87,)))
            radio.set_value("manufacturer", b"spasm-band project")
            radio.set_value("model", b"virtual")
            radio.set_value("firmware", b"0.1.0")
            radio.start(gatt.NAME_PREFIX + band_id, self.handlers[band_id])
            await radio.wait_ready()
            asyncio.get_running_loop().create_task(self.handlers[band_id].run_echo())

    def addresses(self) -> dict[str, str]:
        return {i: key(r.address) for i, r in self.radios.items()}

    def _band(self, cmd: dict[str, Any]) -> tuple[BandRadio, EchoHandler]:
        band = cmd.get("band")
        if band not in self.radios:
            raise CommandError(f"band: unknown band id {band!r}")
        return self.radios[band], self.handlers[band]

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        name = cmd.get("cmd")
        if name == "state":
            radio, h = self._band(cmd)
            return {
                "ok": True,
                "connected": radio.connected(),
                "mtu": radio.mtu(),
                "secure": radio.secure(),
                "subscribed": {c: radio.is_subscribed(c) for c in gatt_db.NOTIFYING},
                "writes": [w.hex() for w in h.writes],
                "connects": h.connects,
                "disconnects": h.disconnects,
                "stats": dict(radio.stats),
            }
        if name == "notify":
            radio, _h = self._band(cmd)
            char = cmd.get("char")
            if char not in gatt_db.NOTIFYING:
                raise CommandError("char: not a notifying characteristic")
            count = cmd.get("count", 1)
            size = cmd.get("size", 20)
            if not isinstance(count, int) or not 0 < count <= 1000000:
                raise CommandError("count: expected 1..1000000")
            if not isinstance(size, int) or not 4 <= size <= 512:
                raise CommandError("size: expected 4..512")
            sent = 0
            waits = 0
            for i in range(count):
                if not radio.is_subscribed(char):
                    break
                payload = struct.pack("<I", i) + bytes(size - 4)
                while not radio.notify(char, payload[: radio.mtu() - 3]):
                    if not radio.connected() or waits > 100000:
                        return {"ok": True, "sent": sent, "waits": waits}
                    waits += 1
                    await asyncio.sleep(0.001)
                sent += 1
            return {"ok": True, "sent": sent, "waits": waits}
        if name == "set_value":
            radio, _h = self._band(cmd)
            try:
                radio.set_value(str(cmd.get("char")), bytes.fromhex(str(cmd.get("hex", ""))))
            except ValueError as e:
                raise CommandError(str(e)) from None
            return {"ok": True}
        if name == "forget_bonds":
            radio, _h = self._band(cmd)
            await radio.forget_bonds()
            return {"ok": True}
        if name == "disconnect":
            radio, _h = self._band(cmd)
            radio.disconnect()
            return {"ok": True}
        if name == "mode":
            _radio, h = self._band(cmd)
            echo = cmd.get("echo", h.echoing)
            hang = cmd.get("hang_writes_ms", h.hang_writes_ms)
            if not isinstance(echo, bool):
                raise CommandError("echo: not true/false")
            if (
                isinstance(hang, bool)
                or not isinstance(hang, int | float)
                or not 0 <= hang <= 60000
            ):
                raise CommandError("hang_writes_ms: expected 0..60000")
            h.echoing, h.hang_writes_ms = echo, float(hang)
            return {"ok": True}
        if name == "send":
            return await self._send(cmd)
        return None

    async def _send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        radio, _h = self._band(cmd)
        char = cmd.get("char")
        if char not in gatt_db.NOTIFYING:
            raise CommandError("char: not a notifying characteristic")
        try:
            items = [bytes.fromhex(x) for x in cmd.get("hex", [])]
        except (TypeError, ValueError):
            raise CommandError("hex: expected a list of hex strings") from None
        repeat = cmd.get("repeat", 1)
        if not isinstance(repeat, int) or not 1 <= repeat <= 100000:
            raise CommandError("repeat: expected 1..100000")
        oversized = cmd.get("oversized", False) is True
        sent = 0
        for _ in range(repeat):
            for data in items:
                for _ in range(5000):  # bounded: TX full clears within ms
                    if not radio.is_subscribed(char):
                        return {"ok": True, "sent": sent}
                    if oversized and _notify_unchecked(radio, char, data):
                        break
                    if not oversized and radio.notify(char, data[: radio.mtu() - 3]):
                        break
                    await asyncio.sleep(0.001)
                sent += 1
        return {"ok": True, "sent": sent}


def _notify_unchecked(radio: BandRadio, char: str, data: bytes) -> bool:
    """A notification of any length, straight to the ATT layer (what a broken stack sends)."""
    conn, device = radio._connection, radio._device  # (the radio's own package)
    if conn is None or device is None:
        return False
    handle = radio._chars[char].handle
    pdu = att.ATT_Handle_Value_Notification(attribute_handle=handle, attribute_value=data)
    device.gatt_server.send_gatt_pdu(conn, bytes(pdu))
    return True


async def serve(args: argparse.Namespace) -> None:
    air = Air()
    ids = args.ids.split(",") if args.ids else ["%06x" % (0xB00000 + i) for i in range(args.bands)]
    bands = TestBands(air, ids)
    await bands.start()
    port = await air.serve_hosts("127.0.0.1", args.port)
    control = FaultControl(air, bands.addresses(), bands.command)
    server = await control.serve("127.0.0.1", args.control_port)
    control_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "radio": f"tcp:127.0.0.1:{port}",
                "control": control_port,
                "bands": bands.addresses(),
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:  # a parent that holds our stdin as a pipe stops us by closing it
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
    except (OSError, ValueError):  # not a pipe: SIGTERM only
        pass
    await stop.wait()
    server.close()
    await air.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m simulator.radio",
        description="Run the virtual air with simple echo bands (no firmware), for tests.",
    )
    p.add_argument("--bands", type=int, default=1, help="number of echo bands (default 1)")
    p.add_argument("--ids", default="", help="comma-separated band ids (overrides --bands)")
    p.add_argument("--port", type=int, default=0, help="TCP port for host processes (0: free)")
    p.add_argument("--control-port", type=int, default=0, help="JSON-lines control port (0: free)")
    args = p.parse_args(argv)
    if args.bands < 1 or args.bands > 200:
        p.error("--bands: expected 1..200")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
