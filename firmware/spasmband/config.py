"""The band's configuration: JSON on flash, defaults, validation.

Keys are the detector's parameters (``DETECTOR_PARAMS``, also ``detector.PARAMS``:
name -> (default, min, max)) plus the band's own (``BAND_PARAMS``). A value's type is its default's:
int keys take ints, float keys ints or floats, bool keys bools. ``set()``
refuses a bad value with a ``ConfigError`` that names the key and the reason
and leaves the running config untouched; only an accepted value is written to
flash (via a temporary file and a rename, so a power cut keeps the old file).
A missing, corrupt or partly invalid file on boot gives the defaults for the
affected keys, with one log line per refused key: the band always starts.
"""

from protocol import codec
from spasmband import json_file

CONFIG_FILE = "config.json"

# The detector's parameters (detector.PARAMS), name: (default, min, max); integers.
DETECTOR_PARAMS = {
    # envelope / resting baseline (tenths) that opens an episode
    "onset_ratio_x10": (17, 12, 100),
    # envelope / resting baseline (tenths) below which an episode is quiet
    "offset_ratio_x10": (13, 11, 80),
    # shorter episodes are dropped
    "min_event_ms": (40, 10, 500),
    # quiet time that ends an episode (bridges the gaps between clonic beats)
    "merge_gap_ms": (300, 50, 1000),
    # dynamic acceleration that opens an episode when EMG is absent
    "acc_jerk_mg": (60, 20, 4000),
    # movement before a sustained contraction that marks it voluntary
    "move_reject_mg": (120, 20, 2000),
    # activation (tenths) above which an episode counts whatever the context
    "strong_x10": (150, 30, 1000),
}


class RuleError(ValueError):
    """A combination of values that breaks a rule. ``why`` maps each key involved
    to the reason as seen from that key (short: it goes into the 64-byte ERROR text)."""

    def __init__(self, text, why):
        super().__init__(text)
        self.why = why


def check_detector_params(params):
    """All detector parameters: the defaults with `params` (a dict or None) applied.

    Raises ValueError naming the parameter and the reason.
    """
    p = {}
    for name in DETECTOR_PARAMS:
        p[name] = DETECTOR_PARAMS[name][0]
    if params:
        for name in params:
            if name not in DETECTOR_PARAMS:
                raise ValueError("unknown detector parameter %s" % name)
            v = params[name]
            lo = DETECTOR_PARAMS[name][1]
            hi = DETECTOR_PARAMS[name][2]
            if not isinstance(v, int) or v < lo or v > hi:
                raise ValueError("detector parameter %s=%r outside %d..%d" % (name, v, lo, hi))
            p[name] = v
    onset = p["onset_ratio_x10"]
    offset = p["offset_ratio_x10"]
    if offset >= onset:
        raise RuleError(
            "offset_ratio_x10 (%d) must be below onset_ratio_x10 (%d)" % (offset, onset),
            {
                "onset_ratio_x10": "must be above offset_ratio_x10 (%d)" % offset,
                "offset_ratio_x10": "must be below onset_ratio_x10 (%d)" % onset,
            },
        )
    return p


# name: (default, min, max)
BAND_PARAMS = {
    "status_s": (60, 5, 3600),  # seconds between periodic STATUS notifications
    "led": (True, False, True),  # LED feedback on markers and events
    "battery_low_mv": (3500, 3000, 4000),  # below this the LED blinks a warning
}


class ConfigError(ValueError):
    """``text`` is "key: reason" in at most codec.MAX_TEXT UTF-8 bytes (the ERROR
    text): a long key is cut (on a character boundary, with "...") so that the
    reason always survives whole."""

    def __init__(self, code, key, reason):
        super().__init__("%s: %s" % (key, reason))
        self.code = code
        self.key = key
        self.reason = reason
        kb = key.encode()
        room = codec.MAX_TEXT - 2 - len(reason.encode())  # bytes left for the key
        if len(kb) > room:
            n = max(0, room - 3)
            while n > 0 and (kb[n] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
                n -= 1
            key = str(kb[:n], "utf-8") + "..."
        text = "%s: %s" % (key, reason)
        while len(text.encode()) > codec.MAX_TEXT:  # only if the reason alone is too long
            text = text[:-1]
        self.text = text


def _is_bool(v):
    return v is True or v is False


class Config:
    """``values`` is the running config. ``check`` (optional) is called with a
    candidate values dict and raises ValueError to refuse a combination."""

    def __init__(self, board, params, check=None):
        self.board = board
        self.spec = {}
        for k in params:
            self.spec[k] = params[k]
        for k in BAND_PARAMS:
            self.spec[k] = BAND_PARAMS[k]
        self.check = check
        self.values = {}
        for k in self.spec:
            self.values[k] = self.spec[k][0]

    def keys(self):
        return sorted(self.spec)

    def get(self, key):
        if key not in self.spec:
            raise ConfigError(codec.E_KEY, key, "unknown key")
        return self.values[key]

    def validate(self, key, value):
        """The value converted to the key's type, or ConfigError."""
        spec = self.spec.get(key)
        if spec is None:
            raise ConfigError(codec.E_KEY, key, "unknown key")
        default, lo, hi = spec
        if _is_bool(default):
            if not _is_bool(value):
                raise ConfigError(codec.E_RANGE, key, "must be true or false")
            return value
        if value is None or _is_bool(value) or isinstance(value, str):
            raise ConfigError(codec.E_RANGE, key, "must be a number")
        if isinstance(default, int):
            if isinstance(value, float):
                # NaN (v != v) and infinities (v - v is NaN) have no integer value
                if value != value or value - value != 0 or value != int(value):
                    raise ConfigError(codec.E_RANGE, key, "must be an integer")
                value = int(value)
            if not isinstance(value, int):
                raise ConfigError(codec.E_RANGE, key, "must be an integer")
        else:
            value = float(value)
            if value != value:  # NaN
                raise ConfigError(codec.E_RANGE, key, "not a number")
        if value < lo or value > hi:
            raise ConfigError(codec.E_RANGE, key, "outside %s..%s" % (lo, hi))
        return value

    def set(self, key, value):
        """Validate, apply and persist one value; returns the stored value."""
        value = self.validate(key, value)
        cand = {}
        for k in self.values:
            cand[k] = self.values[k]
        cand[key] = value
        if self.check is not None:
            try:
                self.check(cand)
            except ValueError as e:
                why = getattr(e, "why", None)
                reason = why.get(key) if why else None
                raise ConfigError(codec.E_RANGE, key, reason or str(e))
        old = self.values
        self.values = cand
        try:
            self.save()
        except OSError as e:
            self.values = old
            # the errno only: CPython's strerror would push the reason past 64 bytes
            errno = e.args[0] if e.args else "?"
            raise ConfigError(codec.E_INTERNAL, key, "flash write failed (errno %s)" % errno)
        return value

    def load(self):
        """Read the file; keys that are missing or invalid keep their defaults."""
        b = self.board
        d = json_file.load(b, CONFIG_FILE)
        if d is None:
            if b.exists(CONFIG_FILE):
                b.log("config: %s unreadable, using defaults" % CONFIG_FILE)
            return
        for k in d:
            try:
                self.values[k] = self.validate(k, d[k])
            except ConfigError as e:
                b.log("config: %s, using the default" % e.text)
        if self.check is not None:
            try:
                self.check(self.values)
            except ValueError as e:
                b.log("config: %s, using all defaults" % e)
                for k in self.spec:
                    self.values[k] = self.spec[k][0]

    def save(self):
        json_file.save(self.board, CONFIG_FILE, self.values)

    def subset(self, names):
        d = {}
        for k in names:
            d[k] = self.values[k]
        return d
