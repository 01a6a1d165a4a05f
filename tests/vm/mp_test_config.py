"""The band's config (firmware/spasmband/config.py), in the MicroPython VM.

Defaults from detector.PARAMS, validation (range, type, unknown key, the
detector's cross-checks), persistence, and garbage config files on flash.
"""

import json

from spasmband import detector
from spasmband.app import _check_detector_params
from spasmband.config import CONFIG_FILE, Config, ConfigError

from protocol import codec
from simulator.virtual_board import VirtualBoard

_n = [0]


def _board():
    _n[0] += 1
    return VirtualBoard("a1b2c3", "/flash_cfg/%d" % _n[0])


def _config(board):
    c = Config(board, detector.PARAMS, _check_detector_params)
    c.load()
    return c


def _file(board):
    if not board.exists(CONFIG_FILE):
        return None
    f = board.open(CONFIG_FILE, "r")
    s = f.read()
    f.close()
    return s


def _refused(c, key, value, code, words):
    before = dict(c.values)
    try:
        c.set(key, value)
    except ConfigError as e:
        assert e.code == code, (key, value, e.code)
        assert key[:32] in e.text and words in e.text, e.text
        assert len(e.text.encode()) <= codec.MAX_TEXT
        assert c.values == before
        return
    raise AssertionError("%s=%r was accepted" % (key, value))


def test_defaults_come_from_the_detector_params():
    c = _config(_board())
    for k in detector.PARAMS:
        assert c.get(k) == detector.PARAMS[k][0]
    assert c.get("status_s") == 60 and c.get("led") is True
    assert "onset_ratio_x10" in c.keys()


def test_valid_value_is_applied_and_persisted():
    b = _board()
    c = _config(b)
    lo = detector.PARAMS["min_event_ms"][1]
    assert c.set("min_event_ms", lo) == lo
    assert c.set("led", False) is False
    assert c.set("status_s", 30.0) == 30  # an integral float is an int
    c2 = _config(b)  # next boot
    assert c2.get("min_event_ms") == lo and c2.get("led") is False and c2.get("status_s") == 30


def test_bad_values_are_refused_naming_the_key_and_change_nothing():
    b = _board()
    c = _config(b)
    c.set("status_s", 120)
    saved = _file(b)
    hi = detector.PARAMS["merge_gap_ms"][2]
    _refused(c, "merge_gap_ms", hi + 1, codec.E_RANGE, "outside")
    _refused(c, "merge_gap_ms", -5, codec.E_RANGE, "outside")
    _refused(c, "status_s", 2.5, codec.E_RANGE, "integer")
    _refused(c, "status_s", "60", codec.E_RANGE, "number")
    _refused(c, "status_s", True, codec.E_RANGE, "number")
    _refused(c, "status_s", None, codec.E_RANGE, "number")
    _refused(c, "led", 1, codec.E_RANGE, "true or false")
    _refused(c, "no_such_key", 1, codec.E_KEY, "unknown")
    _refused(c, "x" * 70, 1, codec.E_KEY, "x")
    # the detector's own rule: offset must stay below onset
    onset = c.get("onset_ratio_x10")
    _refused(c, "offset_ratio_x10", onset, codec.E_RANGE, "offset_ratio_x10")
    assert _file(b) == saved
    assert c.get("status_s") == 120


def test_missing_or_corrupt_file_gives_defaults():
    for content in ("", "{not json", "[1, 2]", "null", '"text"', "\xff\xfe"):
        b = _board()
        f = b.open(CONFIG_FILE, "w")
        f.write(content)
        f.close()
        c = _config(b)
        assert c.get("status_s") == 60, content
        assert any("config:" in line for line in b.logs), content


def test_bad_keys_in_the_file_fall_back_one_by_one():
    b = _board()
    f = b.open(CONFIG_FILE, "w")
    f.write(json.dumps({"status_s": 99999, "led": False, "bogus": 3, "min_event_ms": "x"}))
    f.close()
    c = _config(b)
    assert c.get("status_s") == 60  # out of range: default
    assert c.get("led") is False  # valid: kept
    assert c.get("min_event_ms") == detector.PARAMS["min_event_ms"][0]
    text = "\n".join(b.logs)
    assert "status_s" in text and "bogus" in text and "min_event_ms" in text


def test_file_violating_the_detector_rules_gives_all_defaults():
    b = _board()
    f = b.open(CONFIG_FILE, "w")
    f.write(json.dumps({"onset_ratio_x10": 20, "offset_ratio_x10": 30}))
    f.close()
    c = _config(b)
    assert c.get("onset_ratio_x10") == detector.PARAMS["onset_ratio_x10"][0]
    assert c.get("offset_ratio_x10") == detector.PARAMS["offset_ratio_x10"][0]


def _refusal(c, key, value):
    try:
        c.set(key, value)
    except ConfigError as e:
        return e
    raise AssertionError("%s=%r was accepted" % (key, value))


def _fits_with_its_reason(e):
    text = e.text
    assert len(text.encode()) <= codec.MAX_TEXT, (text, len(text.encode()))
    assert text.endswith(": " + e.reason), (text, e.reason)
    # the key, whole or cut on a character boundary with "..."
    head = text[: -len(": " + e.reason)]
    assert head == e.key or (head.endswith("...") and e.key.startswith(head[:-3])), text


def test_every_refusal_fits_the_error_text_with_its_reason():
    c = _config(_board())
    bad = (None, "x", True, 2.5, float("nan"), float("inf"), -(10**6), 10**6, 1e30)
    n = 0
    for key in c.keys():
        for v in bad + (0, 1):
            try:
                c.set(key, v)
            except ConfigError as e:
                _fits_with_its_reason(e)
                n += 1
    assert n > 80, n
    # the pair rule names the other key and its value, as seen from the key being set
    e = _refusal(c, "onset_ratio_x10", 12)
    assert e.text == "onset_ratio_x10: must be above offset_ratio_x10 (13)", e.text
    e = _refusal(c, "offset_ratio_x10", 80)
    assert e.text == "offset_ratio_x10: must be below onset_ratio_x10 (17)", e.text
    # the same at the extremes of both ranges (longest numbers)
    c.set("onset_ratio_x10", 100)
    c.set("offset_ratio_x10", 80)
    e = _refusal(c, "onset_ratio_x10", 12)
    assert e.text.endswith("must be above offset_ratio_x10 (80)"), e.text
    _fits_with_its_reason(e)
    # unknown keys of every length and width (1- to 4-byte characters), up to the
    # 64 bytes a key can have on the wire
    for ch in ("x", "\u00e9", "\u20ac", "\U0001f600"):
        w = len(ch.encode())
        for n in range(1, 64 // w + 1):
            e = _refusal(c, ch * n, 1)
            assert e.code == codec.E_KEY
            _fits_with_its_reason(e)
            assert e.text.endswith(": unknown key"), e.text
    e = _refusal(c, "\u20ac" * 21, 1)
    assert e.text.startswith("\u20ac" * 16 + "...") and e.text.endswith(": unknown key"), e.text


def test_a_failed_flash_write_fits_the_error_text():
    c = _config(_board())

    def full():
        raise OSError(28)

    c.save = full
    before = dict(c.values)
    for key in ("offset_ratio_x10", "battery_low_mv", "led"):
        e = _refusal(c, key, c.get(key))
        assert e.code == codec.E_INTERNAL and "flash write failed (errno 28)" in e.text, e.text
        _fits_with_its_reason(e)
    assert c.values == before
