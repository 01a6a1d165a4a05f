"""Virtual time for simulated bands: one clock drives any number of VirtualBoards.

MicroPython-compatible (it runs in the VM tests and under CPython in the
simulator). ``VirtualClock()`` is virtual time: every ``board.sleep_ms`` waits
on it, and ``await clock.advance(ms)`` runs all due sleepers, then jumps to the
next wake-up, until ``ms`` have passed, so a test runs simulated hours in
seconds. ``VirtualClock(speed=1.0)`` (or 10.0, ...) is real time times
``speed``: sleeps are real ``asyncio.sleep``s, for the simulator with a real
radio and host. ``TICKS_PERIOD`` is where MicroPython's ``ticks_ms`` wraps.
"""

import asyncio
import time

try:
    import heapq
except ImportError:  # pragma: no cover - every port used here has heapq
    heapq = None  # type: ignore[assignment]

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps here


_monotonic = getattr(time, "monotonic", None)  # CPython
_ticks_ms = getattr(time, "ticks_ms", None)  # MicroPython


def _real_ms() -> int:
    if _monotonic is not None:
        return int(_monotonic() * 1000)
    return int(_ticks_ms())  # type: ignore[misc]


class VirtualClock:
    def __init__(self, speed: float | None = None, start_ms: int = 0) -> None:
        self.speed = speed
        self._now = start_ms
        self._t0 = start_ms
        self._real0 = _real_ms()
        self._waiters: list = []
        self._n = 0
        self._woken = 0  # sleepers set by the stepper that have not resumed yet

    def now_ms(self) -> int:
        if self.speed is None:
            return self._now
        return self._t0 + int((_real_ms() - self._real0) * self.speed)

    async def sleep_ms(self, ms: int) -> None:
        if ms < 0:
            ms = 0
        if self.speed is not None:
            await asyncio.sleep(ms / 1000 / self.speed)
            return
        ev = asyncio.Event()
        self._n += 1
        item: list = [self._now + ms, self._n, ev]
        if heapq is not None:
            heapq.heappush(self._waiters, item)
        else:
            self._waiters.append(item)
            self._waiters.sort()
        try:
            await ev.wait()
        except BaseException:  # cancelled (or the VM tears down): forget this sleeper
            if item[2] is None:
                self._woken -= 1
            item[2] = None
            raise
        self._woken -= 1

    def _pop(self) -> list:
        if heapq is not None:
            return heapq.heappop(self._waiters)
        return self._waiters.pop(0)

    async def advance(self, ms: int) -> None:
        """Run virtual time forward by ``ms`` (virtual mode); in real-time mode just wait."""
        if self.speed is not None:
            await asyncio.sleep(ms / 1000 / self.speed)
            return
        # The stepping runs in a task of its own: a coroutine awaited from the top
        # level of the WebAssembly VM round-trips through the JS event loop at
        # every yield (about 1 ms each); inside a task it does not.
        await asyncio.create_task(self._run_until(self._now + ms))

    async def _run_until(self, end: int) -> None:
        # One scheduler round per step: the tasks woken by set() are queued ahead
        # of this one and run up to their next wait on the clock.
        await asyncio.sleep(0)
        w = self._waiters
        while w and w[0][0] <= end:
            if w[0][0] > self._now:
                self._now = w[0][0]
            while w and w[0][0] <= self._now:
                item = self._pop()
                ev = item[2]
                if ev is not None:
                    item[2] = None
                    self._woken += 1
                    ev.set()
            # until every woken task has run up to its next wait (bounded: a task
            # may wait on something other than the clock)
            for _ in range(100):
                await asyncio.sleep(0)
                if self._woken <= 0:
                    break
            self._woken = 0
        self._now = end
