"""Finding bands: scan for the band service UUID and keep only allow-listed band ids.

A band advertises the name ``SB-<band id>`` with the SERVICE UUID. The scanner's
service filter is a hint some backends ignore, so both are checked here.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError
from bleak.uuids import normalize_uuid_str

from host.config_values import BAND_ID
from protocol import gatt

log = logging.getLogger("spasm.discovery")
SERVICE = normalize_uuid_str(gatt.SERVICE)
BLUEZ_MISSING = "org.freedesktop.DBus.Error.ServiceUnknown"  # the bus is up, bluetoothd is not


class BleUnavailable(Exception):
    """BLE cannot work on this machine (no adapter, no BlueZ, no D-Bus system bus): the
    message says which, in one line."""


def unavailable_reason(e: Exception, own_backend: bool) -> str | None:
    """Why BLE is not available here, when ``e`` says so; None for any other failure.

    ``own_backend``: bleak's own backend, on Linux BlueZ over the D-Bus system bus, where a
    missing bus surfaces as a bare OSError (a custom backend's OSError means something else).
    """
    if isinstance(e, BleakBluetoothNotAvailableError):
        return f"the BLE adapter is not available: {e.args[0]}"
    if not (own_backend and sys.platform.startswith("linux")):
        return None
    if isinstance(e, BleakDBusError) and e.dbus_error == BLUEZ_MISSING:
        return "BlueZ is not available: bluetoothd is not running on the D-Bus system bus"
    if isinstance(e, OSError) and not isinstance(e, TimeoutError):
        return (
            "the BLE adapter is not available: BlueZ cannot be reached on the D-Bus system "
            f"bus ({e.strerror or e})"
        )
    return None


@dataclass(frozen=True)
class Found:
    band: str
    address: str
    name: str
    rssi: int


def band_id(device: BLEDevice, adv: AdvertisementData) -> str | None:
    """The band id of an advertisement, or None when it is not a band."""
    name = adv.local_name or device.name or ""
    if not name.startswith(gatt.NAME_PREFIX):
        return None
    if SERVICE not in {normalize_uuid_str(u) for u in adv.service_uuids}:
        return None
    ident = name[len(gatt.NAME_PREFIX) :]
    # a band id is the chip id in hex: anything else (a name a rogue device advertises)
    # is not a band and never reaches a topic, a tag or a log line
    return ident if BAND_ID.fullmatch(ident) else None


class Discovery:
    """Scans until cancelled; calls ``on_band(band, device)`` for every allowed sighting."""

    def __init__(
        self,
        allow: list[str],
        backend: type | None,
        on_band: Callable[[str, BLEDevice], None],
        options: dict[str, object] | None = None,
    ) -> None:
        self.allow = set(allow)
        self.backend = backend
        self.on_band = on_band
        self.options = dict(options or {})
        self.ignored: set[str] = set()
        self.found: dict[str, Found] = {}

    def _seen(self, device: BLEDevice, adv: AdvertisementData) -> None:
        band = band_id(device, adv)
        if band is None:
            return
        if self.allow and band not in self.allow:
            if band not in self.ignored:
                self.ignored.add(band)
                log.info("discovery: ignoring band %s (not in ble.allow)", band)
            return
        if band not in self.found:
            log.info("discovery: found band %s at %s (rssi %s)", band, device.address, adv.rssi)
        self.found[band] = Found(band, device.address, adv.local_name or "", adv.rssi)
        self.on_band(band, device)

    def _scanner(self) -> BleakScanner:
        kwargs: dict[str, object] = dict(self.options)
        if self.backend is not None:
            kwargs["backend"] = self.backend
        return BleakScanner(detection_callback=self._seen, service_uuids=[gatt.SERVICE], **kwargs)  # type: ignore[arg-type]

    async def run(self) -> None:
        """Scan until cancelled, restarting the scanner if it fails."""
        while True:
            try:
                async with self._scanner():
                    await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = unavailable_reason(e, self.backend is None)
                if reason is not None:
                    log.warning("discovery: %s; retrying in 5 s", reason)
                else:
                    log.warning(
                        "discovery: scanner failed (%s: %s); restarting in 5 s",
                        type(e).__name__,
                        e,
                    )
                await asyncio.sleep(5)

    async def scan(self, seconds: float) -> list[Found]:
        """Scan once for ``seconds`` and return what was found (the `scan` command);
        BleUnavailable when this machine cannot scan at all."""
        try:
            async with self._scanner():
                await asyncio.sleep(seconds)
        except Exception as e:
            reason = unavailable_reason(e, self.backend is None)
            if reason is None:
                raise
            raise BleUnavailable(reason) from None
        return sorted(self.found.values(), key=lambda f: f.band)
