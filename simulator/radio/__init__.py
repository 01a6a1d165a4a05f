"""The virtual radio: virtual bands and host processes on bumble's BLE stack.

- air.py: the link (bumble virtual controllers), faults, TCP port for hosts
- band_radio.py: the band side, the Radio seam of firmware/README.md ("The hardware seam")
- gatt_db.py: the band's GATT services
- host_stack.py, scanner.py, client.py: the host side, a bleak backend
  (``simulator.radio.scanner:VirtualBleakScanner``,
  ``simulator.radio.client:VirtualBleakClient``; air address from SPASM_RADIO)
- control.py: fault commands, JSON-lines control port, fault schedules
- testband.py: a simulator process with echo bands (``python -m simulator.radio``)
"""
