"""The marker button: debounced from raw polls of ``board.button()``.

The patient presses the button when they feel a spasm; the band logs a MARKER
(source 1). The app polls the raw level every ``POLL_MS`` (20 ms); a level
counts only after it has been read ``STABLE`` times in a row (3 polls: 40 to
60 ms), so contact bounce and a brush against the button give no marker. One
press gives one marker, at the time the press was first seen, however long it
is held; the next marker needs a release first.
"""

POLL_MS = 20
STABLE = 3


class Button:
    def __init__(self):
        self.pressed = False  # debounced level
        self._raw = False
        self._count = 0
        self._since = 0  # time the raw level last changed
        self.presses = 0

    def poll(self, raw, now_ms):
        """Feed one raw reading; returns the press time (ms) on a debounced press, else None."""
        if raw != self._raw:
            self._raw = raw
            self._count = 1
            self._since = now_ms
            return None
        if self._count < STABLE:
            self._count += 1
            if self._count == STABLE and raw != self.pressed:
                self.pressed = raw
                if raw:
                    self.presses += 1
                    return self._since
        return None
