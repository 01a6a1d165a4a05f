"""The feedback LED: short blink patterns played by one task, never blocking.

Patterns: ``marker`` (two short blinks: the press was logged), ``event`` (one
short blink when a spasm was logged; off when the ``led`` config is false),
``low_battery`` (one very short blink every 10 s while the battery is low),
``connected`` (one long blink when a host connects). A new pattern replaces the
one playing. ``step(now_ms)`` is called every 20 ms by the UI task.
"""

MARKER = (80, 120, 80)  # on, off, on ... (ms)
EVENT = (60,)
CONNECTED = (400,)
LOW_BATTERY = (20,)


class Led:
    def __init__(self, board):
        self.board = board
        self._pattern = ()
        self._i = 0
        self._until = 0
        self._on = False
        board.led(False)

    def play(self, pattern, now_ms):
        self._pattern = pattern
        self._i = 0
        self._set(True)
        self._until = now_ms + pattern[0]

    def _set(self, on):
        if on != self._on:
            self._on = on
            self.board.led(on)

    def step(self, now_ms):
        if not self._pattern or now_ms < self._until:
            return
        self._i += 1
        if self._i >= len(self._pattern):
            self._pattern = ()
            self._set(False)
            return
        self._set(self._i % 2 == 0)
        self._until = now_ms + self._pattern[self._i]
