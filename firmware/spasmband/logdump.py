"""Print the band's event log over USB, one JSON line per record (a developer tool).

    mpremote connect /dev/ttyUSB0 exec "from spasmband import logdump; logdump.main()"

(`make band-log PORT=/dev/ttyUSB0` runs exactly that.) mpremote interrupts the
running app first. Acks stay as they are, so a host still receives every
record (opening the log pads a torn last record, as every boot does). Each
line: seq, type, boot, t_ms, the type's fields, and whether the record is
acknowledged; then one summary line.
"""

import json

from protocol import codec
from spasmband.event_log import EventLog, record_fields


class _Flash:
    """The few file operations EventLog needs, on the band's flash root."""

    def open(self, name, mode="r"):
        return open("/" + name, mode)

    def exists(self, name):
        try:
            open("/" + name, "rb").close()
            return True
        except OSError:
            return False

    def log(self, msg):
        print("# " + msg)


def main():
    log = EventLog(_Flash())
    log.open()
    seq = log.first_seq()
    n = 0
    while True:
        rec = log.read_from(seq)
        if rec is None:
            break
        d = record_fields(rec, 0) if rec[0] else {}
        d.pop("utc_ms", None)
        d["seq"] = rec[1]
        d["type"] = codec.TYPE_NAMES.get(rec[0], "?")
        d["acked"] = rec[1] <= log.acked_seq
        print(json.dumps(d))
        n += 1
        seq = rec[1] + 1
    print("# %d records, seq %d..%d, acked up to %d, overwritten %d, capacity %d" % (
        n, log.first_seq(), log.last_seq(), log.acked_seq, log.overwritten, log.capacity))
    log.close()
