"""The harness itself: these run in the MicroPython VM, not CPython."""

import sys


def test_is_micropython():
    assert sys.implementation.name == "micropython", sys.implementation.name


def test_async_functions_are_awaited():
    import asyncio

    async def body():
        await asyncio.sleep(0)
        return 1

    return body()
