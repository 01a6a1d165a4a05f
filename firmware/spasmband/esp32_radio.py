"""The real Radio (part of the hardware seam): MicroPython's low-level ``bluetooth`` on the ESP32.

GATT: the band's service (events, signal, control, status), Battery 0x180F and
Device Information 0x180A, as in protocol/gatt.py. Advertising carries the
flags and the 128-bit service UUID; the name ``SB-<band id>`` goes in the scan
response (both do not fit in 31 bytes).

Security. The ESP32 port (NimBLE) supports pairing and bonding since
MicroPython 1.17: ``BLE.config(bond=True, le_secure=True, io=NoInputNoOutput)``
asks for LE Secure Connections with bonding; the stack reports each link's
state in ``_IRQ_ENCRYPTION_UPDATE`` (encrypted, authenticated, bonded, key
size) and leaves storing the bond keys to the application
(``_IRQ_GET_SECRET``/``_IRQ_SET_SECRET``: kept here in ``ble_secrets.json``).
The band has no display or keyboard, so pairing is "Just Works": the link is
encrypted with an LE Secure Connections key (no passive eavesdropping) but not
MITM-authenticated. The port gives no way to refuse a pairing request or to
learn whether LESC or legacy pairing was used, so ``secure()`` means: encrypted
with a key that was bonded (``bonded`` in the encryption update). Control is
not marked write-encrypted at the GATT level, so that a write over a plain
link reaches the app and is answered with ERROR E_AUTH (protocol/SPEC.md);
the host then pairs (bleak ``pair()``) and repeats the command. On firmware
without pairing support (``config(bond=...)`` raises), no link is ever secure:
the band still logs, notifies and answers reads, and refuses every control
write with E_AUTH.
"""

import binascii
import json

import bluetooth
import micropython

from protocol import gatt

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30

_F_READ = 0x0002
_F_WRITE_NR = 0x0004
_F_WRITE = 0x0008
_F_NOTIFY = 0x0010
_IO_NO_INPUT_OUTPUT = 3
_SECRETS = "ble_secrets.json"
_ADV_INTERVAL_US = 250000
_PREFERRED_MTU = 247


def _adv_field(kind, data):
    return bytes((len(data) + 1, kind)) + data


class Radio:
    def __init__(self, board):
        self.board = board
        self._ble = bluetooth.BLE()
        self._ble.active(True)
        self._conn = None
        self._mtu = 23
        self._secure = False
        self._handler = None
        self._handles = {}
        self._secrets = {}
        self._dirty = False
        self.pairing = True
        self._load_secrets()
        self._ble.irq(self._irq)
        try:
            self._ble.config(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        except (ValueError, OSError, TypeError):
            self.pairing = False
            board.log("radio: this firmware cannot pair: control writes will be refused")
        try:
            self._ble.config(mtu=_PREFERRED_MTU)
        except (ValueError, OSError):
            pass

    # ------------------------------------------------------------ Radio interface

    def start(self, name, handler):
        self._handler = handler
        self._name = name
        self._ble.config(gap_name=name)
        U = bluetooth.UUID
        band = (U(gatt.SERVICE), (
            (U(gatt.EVENTS), _F_NOTIFY),
            (U(gatt.SIGNAL), _F_NOTIFY),
            (U(gatt.CONTROL), _F_WRITE | _F_WRITE_NR | _F_NOTIFY),
            (U(gatt.STATUS), _F_READ | _F_NOTIFY),
        ))
        battery = (U(0x180F), ((U(0x2A19), _F_READ | _F_NOTIFY),))
        info = (U(0x180A), (
            (U(0x2A29), _F_READ), (U(0x2A24), _F_READ), (U(0x2A26), _F_READ),
        ))
        ((ev, sig, ctl, st), (bat,), (man, mod, fw)) = self._ble.gatts_register_services(
            (band, battery, info))
        self._handles = {"events": ev, "signal": sig, "control": ctl, "status": st,
                         "battery": bat, "manufacturer": man, "model": mod, "firmware": fw}
        self._control = ctl
        self._ble.gatts_set_buffer(ctl, _PREFERRED_MTU)  # one segment per write, up to MTU-3
        self._ble.gatts_set_buffer(st, 64)
        self._adv = (_adv_field(0x01, b"\x06")
                     + _adv_field(0x07, bytes(reversed(_uuid_bytes(gatt.SERVICE)))))
        self._resp = _adv_field(0x09, name.encode())

    def advertise(self, on):
        if on:
            self._ble.gap_advertise(_ADV_INTERVAL_US, adv_data=self._adv, resp_data=self._resp,
                                    connectable=True)
        else:
            self._ble.gap_advertise(None)

    def connected(self):
        return self._conn is not None

    def mtu(self):
        return self._mtu if self._conn is not None else 23

    def secure(self):
        return self._conn is not None and self._secure

    def notify(self, char, data):
        if self._conn is None:
            return False
        try:
            self._ble.gatts_notify(self._conn, self._handles[char], data)
            return True
        except OSError:  # ENOMEM: TX buffers full, retry later
            return False

    def set_value(self, char, data):
        self._ble.gatts_write(self._handles[char], data)

    def disconnect(self):
        if self._conn is not None:
            self._ble.gap_disconnect(self._conn)

    # ------------------------------------------------------------ IRQ

    def _irq(self, event, data):
        if self._handler is None and event <= _IRQ_GATTS_WRITE:
            return None  # before start(): nothing to tell
        if event == _IRQ_CENTRAL_CONNECT:
            self._conn = data[0]
            self._mtu = 23
            self._secure = False
            self._handler.on_connect()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if self._conn == data[0]:
                self._conn = None
                self._secure = False
                self._handler.on_disconnect()
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data[0], data[1]
            if conn == self._conn and handle == self._control:
                self._handler.on_write("control", self._ble.gatts_read(handle))
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self._conn:
                self._mtu = data[1]
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, _auth, bonded, _key_size = data
            if conn == self._conn:
                self._secure = bool(encrypted and bonded)
        elif event == _IRQ_SET_SECRET:
            return self._set_secret(data[0], data[1], data[2])
        elif event == _IRQ_GET_SECRET:
            return self._get_secret(data[0], data[1], data[2])
        return None

    # ------------------------------------------------------------ bond keys

    def _load_secrets(self):
        try:
            with open("/" + _SECRETS) as f:
                for t, k, v in json.loads(f.read()):
                    self._secrets.setdefault(t, []).append(
                        (binascii.a2b_base64(k), binascii.a2b_base64(v)))
        except (OSError, ValueError):
            pass

    def _save_secrets(self, _arg=None):
        if not self._dirty:
            return
        self._dirty = False
        out = []
        for t in self._secrets:
            for k, v in self._secrets[t]:
                out.append((t, binascii.b2a_base64(k).strip(), binascii.b2a_base64(v).strip()))
        try:
            with open("/" + _SECRETS, "w") as f:
                f.write(json.dumps(out))
        except OSError as e:
            self.board.log("radio: cannot save bond keys: %s" % e)

    def _set_secret(self, sec_type, key, value):
        key = bytes(key)
        lst = self._secrets.setdefault(sec_type, [])
        found = False
        for e in lst:
            if e[0] == key:
                lst.remove(e)
                found = True
                break
        if value is not None:
            lst.append((key, bytes(value)))
        elif not found:
            return False
        if not self._dirty:
            self._dirty = True
            micropython.schedule(self._save_secrets, None)  # not from the IRQ itself
        return True

    def _get_secret(self, sec_type, index, key):
        lst = self._secrets.get(sec_type, [])
        if key is None:
            return lst[index][1] if index < len(lst) else None
        key = bytes(key)
        for k, v in lst:
            if k == key:
                return v
        return None


def _uuid_bytes(s):
    """A 128-bit UUID string as 16 bytes, most significant first."""
    return binascii.unhexlify(s.replace("-", ""))
