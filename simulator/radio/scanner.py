"""bleak scanner backend for the virtual air: ``BleakScanner(backend=VirtualBleakScanner)``.

Reports every virtual band it hears through bleak's own bookkeeping
(``create_or_update_device`` / ``call_detection_callbacks``), with the local
name and the service UUIDs of the advertisement, so ``BleakScanner.discover``,
``find_device_by_filter`` and service-UUID filters behave as with BlueZ.
The air's address comes from ``radio=`` or SPASM_RADIO (see host_stack).

Cost with many bands: every band that is not linked advertises ten times a
second, and the virtual controller reports each advertisement twice (as the
advertisement and as a scan response with the same data). The second copy is
dropped here, and the service UUIDs and name of an advertisement's bytes are
parsed once per distinct payload (bands repeat theirs), not once per report.
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
from bumble.hci import Address

from simulator.radio.air import key
from simulator.radio.host_stack import HostStack, get_stack

_PARSED_MAX = 4096  # distinct advertising payloads remembered (bands repeat theirs)
_parsed: dict[bytes, tuple[list[str], str | None]] = {}

_UUID_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
)


def bleak_uuid(u: UUID) -> str:
    """A bumble UUID in bleak's normal form (lower-case 128-bit string)."""
    return str(uuid.UUID(bytes=bytes(u.to_bytes(force_128=True))[::-1]))


def parse(adv: Advertisement) -> tuple[list[str], str | None]:
    """Service UUIDs (bleak's form) and local name of an advertisement, once per payload."""
    key_ = bytes(adv.data_bytes)
    found = _parsed.get(key_)
    if found is not None:
        return found
    data = adv.data
    uuids: list[str] = []
    for kind in _UUID_LISTS:
        listed = data.get(kind)
        if isinstance(listed, list):
            uuids.extend(bleak_uuid(u) for u in listed)
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
        AdvertisingData.SHORTENED_LOCAL_NAME
    )
    found = (uuids, name if isinstance(name, str) else None)
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[key_] = found
    return found


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
        self._last: dict[Address, bytes] = {}  # the last advertisement's bytes per address

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
        if adv.is_scan_response:
            if self._last.get(adv.address) == adv.data_bytes:
                return  # the same data once more: nothing new for bleak
        else:
            self._last[adv.address] = adv.data_bytes
        uuids, local_name = parse(adv)
        if not self.is_allowed_uuid(uuids):
            return
        uuids = list(uuids)  # bleak keeps it in AdvertisementData; the cached one stays ours
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
