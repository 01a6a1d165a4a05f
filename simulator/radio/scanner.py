"""bleak scanner backend for the virtual air: ``BleakScanner(backend=VirtualBleakScanner)``.

Reports every virtual band it hears through bleak's own bookkeeping
(``create_or_update_device`` / ``call_detection_callbacks``), with the local
name and the service UUIDs of the advertisement, so ``BleakScanner.discover``,
``find_device_by_filter`` and service-UUID filters behave as with BlueZ.
The air's address comes from ``radio=`` or SPASM_RADIO (see host_stack).
"""

from __future__ import annotations

import uuid
from typing import Any

from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement

from simulator.radio.air import key
from simulator.radio.host_stack import HostStack, get_stack

_UUID_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
)


def bleak_uuid(u: UUID) -> str:
    """A bumble UUID in bleak's normal form (lower-case 128-bit string)."""
    return str(uuid.UUID(bytes=bytes(u.to_bytes(force_128=True))[::-1]))


class VirtualBleakScanner(BaseBleakScanner):
    """Scans the virtual air of a simulator process."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        radio: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio = radio
        self._stack: HostStack | None = None
        self._token = 0

    async def start(self) -> None:
        self.seen_devices = {}
        stack = await get_stack(self._radio)
        self._stack = stack
        self._token = stack.add_scan_listener(self._on_advertisement)
        await stack.scan_acquire()

    async def stop(self) -> None:
        stack = self._stack
        if stack is None:
            return
        self._stack = None
        stack.remove_scan_listener(self._token)
        await stack.scan_release()

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = adv.data
        uuids: list[str] = []
        for kind in _UUID_LISTS:
            found = data.get(kind)
            if isinstance(found, list):
                uuids.extend(bleak_uuid(u) for u in found)
        if not self.is_allowed_uuid(uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME
        )
        local_name = name if isinstance(name, str) else None
        address = key(adv.address)
        advertisement_data = AdvertisementData(
            local_name=local_name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=int(adv.rssi),
            platform_data=(adv,),
        )
        device = self.create_or_update_device(address, address, local_name, adv, advertisement_data)
        self.call_detection_callbacks(device, advertisement_data)
