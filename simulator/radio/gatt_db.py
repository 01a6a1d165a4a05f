"""The band's GATT database as bumble services, from the UUIDs in protocol/gatt.py.

Custom SERVICE: EVENTS (notify), SIGNAL (notify), CONTROL (write, write without
response, notify), STATUS (read, notify); Battery 0x180F (level: read, notify);
Device Information 0x180A (manufacturer, model, firmware revision: read).
bumble adds the CCCD descriptor of every notifying characteristic itself.

Reads are served from a dict of values (``Radio.set_value``); writes to CONTROL
go to a callback. Both are given by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bumble.gatt import Characteristic, CharacteristicValue, Service

from protocol import gatt

P = Characteristic.Properties
READABLE = Characteristic.READABLE
WRITEABLE = Characteristic.WRITEABLE

# Radio seam name -> (service UUID, characteristic UUID, properties)
CHARACTERISTICS: dict[str, tuple[str, str, Any]] = {
    "events": (gatt.SERVICE, gatt.EVENTS, P.NOTIFY),
    "signal": (gatt.SERVICE, gatt.SIGNAL, P.NOTIFY),
    "control": (gatt.SERVICE, gatt.CONTROL, P.WRITE | P.WRITE_WITHOUT_RESPONSE | P.NOTIFY),
    "status": (gatt.SERVICE, gatt.STATUS, P.READ | P.NOTIFY),
    "battery": (gatt.BATTERY_SERVICE, gatt.BATTERY_LEVEL, P.READ | P.NOTIFY),
    "manufacturer": (gatt.DEVICE_INFO_SERVICE, gatt.MANUFACTURER_NAME, P.READ),
    "model": (gatt.DEVICE_INFO_SERVICE, gatt.MODEL_NUMBER, P.READ),
    "firmware": (gatt.DEVICE_INFO_SERVICE, gatt.FIRMWARE_REVISION, P.READ),
}
NOTIFYING = ("events", "signal", "control", "status", "battery")
READ_VALUES = ("status", "battery", "manufacturer", "model", "firmware")
SERVICE_ORDER = (gatt.SERVICE, gatt.BATTERY_SERVICE, gatt.DEVICE_INFO_SERVICE)


def build(
    values: dict[str, bytes],
    on_write: Callable[[str, bytes], None],
) -> tuple[list[Service], dict[str, Characteristic]]:
    """The services to add to a bumble Device, and the characteristics by seam name."""
    chars: dict[str, Characteristic] = {}
    by_service: dict[str, list[Characteristic]] = {s: [] for s in SERVICE_ORDER}
    for name, (service_uuid, uuid, props) in CHARACTERISTICS.items():
        perms = Characteristic.Permissions(0)
        value_kwargs: dict[str, Any] = {}
        if props & P.READ:
            perms |= READABLE
            value_kwargs["read"] = _reader(values, name)
        if props & (P.WRITE | P.WRITE_WITHOUT_RESPONSE):
            perms |= WRITEABLE
            value_kwargs["write"] = _writer(on_write, name)
        value: Any = CharacteristicValue(**value_kwargs) if value_kwargs else b""
        char = Characteristic(uuid, props, perms, value)
        chars[name] = char
        by_service[service_uuid].append(char)
    services = [Service(uuid, by_service[uuid]) for uuid in SERVICE_ORDER]
    return services, chars


def _reader(values: dict[str, bytes], name: str) -> Callable[[Any], bytes]:
    def read(_connection: Any) -> bytes:
        return values.get(name, b"")

    return read


def _writer(on_write: Callable[[str, bytes], None], name: str) -> Callable[[Any, bytes], None]:
    def write(_connection: Any, value: bytes) -> None:
        on_write(name, bytes(value))

    return write
