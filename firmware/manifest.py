# ruff: noqa: F821  (include/package are defined by MicroPython's manifest tool)
# Freeze the band's code into a MicroPython firmware image (optional, for production).
#
# Frozen bytecode runs from flash: the code then costs no heap (firmware/README.md,
# "Heap"). Build from a MicroPython checkout with ESP-IDF installed:
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/spasm-band/firmware/manifest.py
#
# Paths below are relative to this file. boot.py and main.py stay on the
# filesystem (`make flash` copies them; the frozen packages are found first).
include("$(PORT_DIR)/boards/manifest.py")
package("spasmband", base_path=".")
package("protocol", base_path="..")
