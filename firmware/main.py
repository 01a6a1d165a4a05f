"""Band entry point (runs after boot.py): build the real Board and run the app forever."""

try:
    import asyncio
except ImportError:  # older firmware
    import uasyncio as asyncio

from spasmband.app import App
from spasmband.board import Board

asyncio.run(App(Board()).run())
