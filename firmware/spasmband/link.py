"""The BLE protocol logic (protocol/SPEC.md) on top of the board's Radio.

The Radio calls ``on_connect``, ``on_disconnect`` and ``on_write`` from the BLE
IRQ: they only queue. ``poll()``, run by the link task every 20 ms, does the
work: joins written segments (segmentation.Reassembler), decodes and executes commands,
and sends, one segment per notification, in this order: control replies,
events (live onsets first, then logged records from the cursor), status, signal.
A notification the radio refuses (TX full) is retried on the next poll.

Rules:
- Every command must come over an encrypted, bonded link (``radio.secure()``);
  otherwise it is answered with ERROR E_AUTH (naming its type and seq) and does
  nothing. The check comes after reassembly and decoding, as protocol/SPEC.md
  has it ("answers each command with E_AUTH"): a write that is no readable
  command (bad segment, CRC, length, version, type, range) gets the decoder's
  ERROR on any link. The decoder is public, so its answer tells a prober
  nothing, and bounded work (RX_QUEUE, 512-byte frames) is done either way.
- A write that is not a valid command (bad segment, CRC, length, version, type,
  range; a band-to-host type; an unknown config key or a bad value) is answered
  with an ERROR naming the reason (ref_type/ref_seq name the command when it was
  readable) and changes nothing. The band never raises on received bytes.
- On connect the band sends logged records as they are written (live, flag 0);
  the backlog is sent on REPLAY{from_seq}: every record still held from
  from_seq, in seq order, flag REPLAY, then the live ones. Records are freed
  only by ACK{upto}; an ACK beyond the last seq is refused (E_RANGE).
- Signal streaming stops when the link drops.
"""

from protocol import codec, segmentation
from spasmband import event_log
from spasmband.config import ConfigError

RX_QUEUE = 16  # written segments waiting for the link task
CONTROL_QUEUE = 16  # replies waiting for the radio (CONFIG_GET "*" gives one per key)
ONSET_QUEUE = 4
BUDGET = 24  # notifications per poll at most


def _fit_text(text):
    text = str(text)
    while len(text.encode()) > codec.MAX_TEXT:
        text = text[:-1]
    return text


class Link:
    def __init__(self, app):
        self.app = app
        self.radio = app.board.radio
        self._rx = []  # (ticks_ms at arrival, segment)
        self._rx_ticks = 0  # arrival of the segment being handled
        self.rx_dropped = 0
        self._conn_gen = 0  # bumped by on_connect (IRQ)
        self._conn_next = 1  # log.next_seq when the link came up
        self._seen_gen = 0
        self._dropped = False  # set by on_disconnect (IRQ)
        self._reasm = segmentation.Reassembler()
        self._live_seq = 0
        self.cursor = 0  # next logged seq to send
        self.replay_upto = 0  # records below this seq go out flagged REPLAY
        self.control_q = []
        self.onset_q = []
        self.status_due = False
        # per characteristic: [segments, index] of the frame being sent, or None
        self._cur = {"control": None, "events": None, "status": None, "signal": None}  # type: dict
        self.errors = {}  # ERROR code -> count of refused writes
        self.sent = 0
        self.connected = False

    # ------------------------------------------------- Radio handler (IRQ context)

    def on_connect(self):
        # records written from now on are live for this link
        self._conn_next = self.app.log.next_seq
        self._conn_gen += 1

    def on_disconnect(self):
        self._dropped = True

    def on_write(self, char, data):
        if len(self._rx) < RX_QUEUE:
            # the arrival time, so TIME_SYNC is not late by the link task's poll
            self._rx.append((self.app.board.ticks_ms(), bytes(data)))
        else:
            self.rx_dropped += 1

    # ------------------------------------------------- helpers

    def next_live_seq(self):
        s = self._live_seq
        self._live_seq = (s + 1) & 0xFFFFFFFF
        return s

    def _queue_control(self, frame):
        if len(self.control_q) >= CONTROL_QUEUE:
            self.control_q.pop(0)
        self.control_q.append(frame)

    def error(self, code, ref_type, ref_seq, text):
        self.errors[code] = self.errors.get(code, 0) + 1
        self.app.board.log("link: refused type 0x%02x seq %d: E%d %s" % (
            ref_type, ref_seq, code, text))
        try:
            frame = codec.encode(codec.ERROR, self.next_live_seq(), {
                "code": code, "ref_type": ref_type & 0xFF, "ref_seq": ref_seq & 0xFFFFFFFF,
                "text": _fit_text(text)})
        except codec.FrameError:
            return
        self._queue_control(frame)

    def queue_onset(self, fields):
        if not self.connected:
            return
        if len(self.onset_q) >= ONSET_QUEUE:
            self.onset_q.pop(0)
        self.onset_q.append(codec.encode(codec.ONSET, self.next_live_seq(), fields))

    # ------------------------------------------------- the link task's work

    def poll(self):
        if self._dropped:
            self._dropped = False
            self._on_drop()
        if self._conn_gen != self._seen_gen:
            self._seen_gen = self._conn_gen
            self._on_connect()
        while self._rx:
            self._rx_ticks, seg = self._rx.pop(0)
            self._handle_segment(seg)
        if self.connected and self.radio.connected():
            budget = BUDGET
            for char in ("control", "events", "status", "signal"):
                budget = self._pump(char, budget)
                if budget <= 0:
                    break

    def _on_connect(self):
        self.connected = True
        self._reasm.reset()
        self.cursor = self._conn_next
        self.replay_upto = 0
        self.status_due = True
        self.app.on_connect()

    def _on_drop(self):
        self.connected = False
        self._reasm.reset()
        for k in self._cur:
            self._cur[k] = None
        self.control_q = []
        self.onset_q = []
        self._rx = []
        self.app.signal.stop()
        self.app.on_disconnect()

    def _pump(self, char, budget):
        cur = self._cur[char]
        radio = self.radio
        while budget > 0:
            if cur is None:
                frame = self._next_frame(char)
                if frame is None:
                    break
                cur = [segmentation.segments(frame, radio.mtu()), 0]
            if not radio.notify(char, cur[0][cur[1]]):
                break
            budget -= 1
            cur[1] += 1
            if cur[1] >= len(cur[0]):
                cur = None
                self.sent += 1
        self._cur[char] = cur
        return budget

    def _next_frame(self, char):
        app = self.app
        if char == "control":
            if self.control_q:
                return self.control_q.pop(0)
            return None
        if char == "events":
            if self.onset_q:
                return self.onset_q.pop(0)
            return self._next_record()
        if char == "status":
            if self.status_due:
                self.status_due = False
                return app.status_frame()
            return None
        q = app.signal.queue
        if q:
            return q.pop(0)
        return None

    def _next_record(self):
        log = self.app.log
        if self.cursor > log.last_seq():
            return None
        rec = log.read_from(self.cursor)
        if rec is None or rec[0] == 0:
            self.cursor = log.last_seq() + 1 if rec is None else rec[1] + 1
            return None
        seq = rec[1]
        self.cursor = seq + 1
        fields = event_log.record_fields(rec, self.app.timebase.utc(rec[2], rec[3]))
        flags = codec.FLAG_REPLAY if seq < self.replay_upto else 0
        try:
            return codec.encode(rec[0], seq, fields, flags)
        except codec.FrameError as e:
            self.app.board.log("link: record %d not encodable: %s" % (seq, e.detail))
            return None

    # ------------------------------------------------- commands

    def _handle_segment(self, seg):
        try:
            frame = self._reasm.feed(seg)
        except codec.SegmentError as e:
            self.error(e.code, 0, 0, e.detail)
            return
        if frame is None:
            return
        try:
            ftype, _flags, seq, f = codec.decode(frame)
        except codec.FrameError as e:
            self.error(e.code, e.ftype, e.seq, e.detail)
            return
        if not self.radio.secure():
            self.error(codec.E_AUTH, ftype, seq, "link not encrypted and bonded")
            return
        try:
            self._command(ftype, seq, f)
        except ConfigError as e:
            self.error(e.code, ftype, seq, e.text)
        except Exception as e:  # a bug must not take the band down: report it
            self.error(codec.E_INTERNAL, ftype, seq, "internal: %r" % e)

    def _command(self, ftype, seq, f):
        app = self.app
        if ftype == codec.ACK:
            if not app.log.ack(f["upto"]):
                self.error(codec.E_RANGE, ftype, seq,
                           "upto: beyond last seq %d" % app.log.last_seq())
        elif ftype == codec.TIME_SYNC:
            board = app.board
            waited = board.ticks_diff(board.ticks_ms(), self._rx_ticks)
            if not app.timebase.sync(f["utc_ms"], waited):
                self.error(codec.E_RANGE, ftype, seq, "utc_ms: not between 2020 and 2100")
                return
            self.status_due = True
        elif ftype == codec.REPLAY:
            last = app.log.last_seq()
            self.cursor = max(1, min(f["from_seq"], last + 1))
            self.replay_upto = last + 1
        elif ftype == codec.CONFIG_GET:
            key = f["key"]
            if key == "*":
                for k in app.config.keys():
                    self._config_value(k, app.config.get(k))
            else:
                self._config_value(key, app.config.get(key))
        elif ftype == codec.CONFIG_SET:
            key = f["key"]
            app.config.get(key)  # an unknown key is the first thing wrong (E_KEY)
            if f.get("value") is None:
                raise ConfigError(codec.E_RANGE, key, "missing value")
            self._config_value(key, app.config_set(key, f["value"]))
        elif ftype == codec.STREAM:
            if f["on"]:
                app.signal.start(f["rate_hz"], app.timebase.boot, self.next_live_seq)
            else:
                app.signal.stop()
            self.status_due = True
        elif ftype == codec.REBOOT:
            app.request_reboot()
        else:
            self.error(codec.E_TYPE, ftype, seq, "type 0x%02x is not a command" % ftype)

    def _config_value(self, key, value):
        self._queue_control(codec.encode(codec.CONFIG_VALUE, self.next_live_seq(),
                                         {"status": 0, "key": key, "value": value}))
