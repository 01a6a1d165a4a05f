"""GATT identifiers of the band, shared by firmware, simulator and host (see SPEC.md)."""

SERVICE = "5a3e0001-7c2b-4b8e-9d6f-2f1c0b5e8a10"
EVENTS = "5a3e0002-7c2b-4b8e-9d6f-2f1c0b5e8a10"  # notify: event, onset, marker, fault
SIGNAL = "5a3e0003-7c2b-4b8e-9d6f-2f1c0b5e8a10"  # notify: signal chunks
CONTROL = "5a3e0004-7c2b-4b8e-9d6f-2f1c0b5e8a10"  # write, notify: commands in, replies out
STATUS = "5a3e0005-7c2b-4b8e-9d6f-2f1c0b5e8a10"  # read, notify: band status

BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_INFO_SERVICE = "0000180a-0000-1000-8000-00805f9b34fb"
MANUFACTURER_NAME = "00002a29-0000-1000-8000-00805f9b34fb"
MODEL_NUMBER = "00002a24-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION = "00002a26-0000-1000-8000-00805f9b34fb"

# Advertised local name: NAME_PREFIX + band id (pseudonymous, from the chip id)
NAME_PREFIX = "SB-"
