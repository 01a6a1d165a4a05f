"""Runs first at every boot: quiet ESP-IDF debug output, full CPU clock, early GC threshold."""

import gc

import esp
import machine

esp.osdebug(None)  # keep the USB serial log readable: only the app's lines
machine.freq(240000000)
gc.collect()
gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())  # collect early and often: short pauses
