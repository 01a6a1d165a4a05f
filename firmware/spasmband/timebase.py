"""Band time: boot id, milliseconds since boot, and UTC offsets of recent boots.

The band has no real-time clock. ``now()`` counts ms since this boot by summing
``board.ticks_diff`` steps, so it keeps counting past the wrap of ``ticks_ms``
(2**30 ms, 12.4 days on the ESP32) as long as it is called at least every few
days (the app calls it every second). The boot id (u16, 1..65535) is read from
``time.json``, incremented and written back at every boot. TIME_SYNC gives UTC
for the current boot; the offset (UTC at boot) is kept in the same file for the
last ``KEEP_BOOTS`` boots so that records of older boots, replayed later, still
get their ``utc_ms``.
"""

from spasmband import json_file

TIME_FILE = "time.json"
KEEP_BOOTS = 8
UTC_MIN = 1577836800000  # 2020-01-01: a TIME_SYNC before this is refused
UTC_MAX = 4102444800000  # 2100-01-01


class TimeBase:
    def __init__(self, board):
        self.board = board
        self._last = board.ticks_ms()
        self._ms = 0
        self.offsets = {}  # boot -> utc_ms at that boot's t_ms == 0
        prev = 0
        d = self._load()
        if d is not None:
            prev = d.get("boot", 0)
            if not isinstance(prev, int) or prev < 0:
                prev = 0
            utc = d.get("utc", {})
            if isinstance(utc, dict):
                for k in utc:
                    try:
                        self.offsets[int(k)] = int(utc[k])
                    except (ValueError, TypeError):
                        pass
        self.boot = prev % 65535 + 1
        self.offsets.pop(self.boot, None)  # an old boot with the same id after wrap-around
        self._save()

    def _load(self):
        return json_file.load(self.board, TIME_FILE)

    def _save(self):
        # keep the newest boots (by distance behind the current id, modulo wrap)
        keys = sorted(self.offsets, key=lambda k: (self.boot - k) % 65536)
        utc = {}
        for k in keys[:KEEP_BOOTS]:
            utc[str(k)] = self.offsets[k]
        json_file.save(self.board, TIME_FILE, {"boot": self.boot, "utc": utc})

    def now(self):
        """Milliseconds since boot (does not wrap for 49 days: the u32 of t_ms)."""
        t = self.board.ticks_ms()
        d = self.board.ticks_diff(t, self._last)
        if d > 0:
            self._ms += d
            self._last = t
        return self._ms

    def synced(self):
        return self.boot in self.offsets

    def sync(self, utc_ms, age_ms=0):
        """Record UTC for the current boot: utc_ms was true ``age_ms`` ago (when the
        command arrived). False if utc_ms is implausible."""
        if utc_ms < UTC_MIN or utc_ms > UTC_MAX:
            return False
        now = self.now()
        if age_ms < 0 or age_ms > now:
            age_ms = 0
        self.offsets[self.boot] = utc_ms - (now - age_ms)
        self._save()
        return True

    def utc(self, boot, t_ms):
        off = self.offsets.get(boot)
        if off is None:
            return 0
        return off + t_ms
