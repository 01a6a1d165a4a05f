"""The event log in flash (firmware/spasmband/event_log.py), in the MicroPython VM.

Wrap-around, torn writes after a power cut, seq persistence across re-opening,
acks, and garbage in the log's files. Each test uses its own flash directory.
"""

from spasmband.event_log import RECORD_LEN, EventLog, record_fields, segment_name

from protocol import codec
from simulator.virtual_board import PowerCut, VirtualBoard

_n = [0]


def _board():
    _n[0] += 1
    return VirtualBoard("a1b2c3", "/flash_log/%d" % _n[0])


def _log(board, segments=4, per=8):
    log = EventLog(board, segments, per)
    log.open()
    return log


def _event(i):
    # kind, severity, confidence, duration, peak, mean, peak_acc, freq, modalities
    return (1 + i % 3, 1 + i % 3, 50 + i % 50, 100 + i, 30 + i, 20 + i, 500, 0, 3)


def _held(log):
    """All records read back in order, following read_from."""
    out = []
    seq = 1
    while True:
        r = log.read_from(seq)
        if r is None:
            return out
        out.append(r)
        seq = r[1] + 1


def test_append_and_read_back_every_type():
    log = _log(_board(), 17, 128)
    assert log.capacity == 2048 and log.capacity >= 2000
    s1 = log.append(codec.EVENT, 3, 1000, _event(1))
    s2 = log.append(codec.MARKER, 3, 2000, (1,))
    s3 = log.append(codec.FAULT, 3, 3000, (2, 450))
    assert (s1, s2, s3) == (1, 2, 3)
    recs = _held(log)
    assert [r[0] for r in recs] == [codec.EVENT, codec.MARKER, codec.FAULT]
    assert recs[0] == (codec.EVENT, 1, 3, 1000, _event(1))
    assert recs[2][4] == (2, 450)
    # a record becomes a valid frame of its type
    f = record_fields(recs[0], 1700000001000)
    ftype, flags, seq, fields = codec.decode(codec.encode(recs[0][0], recs[0][1], f))
    assert fields["duration_ms"] == 101 and fields["utc_ms"] == 1700000001000
    assert log.unacked() == 3 and log.last_seq() == 3


def test_seq_persists_across_reopen_and_ack_is_kept():
    b = _board()
    log = _log(b)
    for i in range(5):
        log.append(codec.MARKER, 1, i, (1,))
    assert log.ack(3)
    log.close()
    log2 = _log(b)  # the next boot, same flash
    assert log2.next_seq == 6 and log2.acked_seq == 3 and log2.unacked() == 2
    assert log2.append(codec.MARKER, 2, 0, (1,)) == 6
    assert [r[1] for r in _held(log2)] == [1, 2, 3, 4, 5, 6]


def test_ack_beyond_last_seq_is_refused_and_ack_never_goes_back():
    log = _log(_board())
    for i in range(4):
        log.append(codec.MARKER, 1, i, (1,))
    assert not log.ack(5)
    assert log.acked_seq == 0
    assert log.ack(4) and log.acked_seq == 4
    assert log.ack(2) and log.acked_seq == 4  # an old ack changes nothing
    assert log.unacked() == 0


def test_wrap_around_keeps_the_newest_and_counts_overwritten():
    b = _board()
    log = _log(b, 4, 8)  # keeps at least 3 * 8 = 24 records
    assert log.capacity == 24
    for i in range(100):
        assert log.append(codec.EVENT, 1, i * 10, _event(i)) == i + 1
    held = _held(log)
    seqs = [r[1] for r in held]
    assert len(seqs) >= 24, len(seqs)
    assert seqs == list(range(seqs[0], 101)), seqs  # contiguous up to the newest
    assert log.first_seq() == seqs[0]
    assert log.overwritten == seqs[0] - 1  # nothing was acked: every lost record counts
    for r in held:
        assert r[4] == _event(r[1] - 1)
    # the same after a reboot
    log.close()
    log2 = _log(b, 4, 8)
    assert [r[1] for r in _held(log2)] == seqs
    assert log2.overwritten == log.overwritten and log2.next_seq == 101


def test_overwriting_acked_records_is_not_counted():
    log = _log(_board(), 4, 8)
    for i in range(100):
        log.append(codec.MARKER, 1, i, (1,))
        if i % 10 == 9:
            log.ack(i + 1)  # a host keeps up: everything written so far is acked
    assert log.overwritten == 0
    log2 = _log(_board(), 4, 8)
    for i in range(40):
        log2.append(codec.MARKER, 1, i, (1,))
    assert log2.overwritten == 8  # records 1-8 went before any ack
    log2.ack(10)  # 9 and 10 are acked; 1-8 are gone already
    for i in range(40):
        log2.append(codec.MARKER, 1, i, (1,))
    assert log2.overwritten == log2.first_seq() - 1 - 2


def test_torn_write_is_skipped_and_its_seq_reused():
    b = _board()
    log = _log(b)
    for i in range(5):
        log.append(codec.MARKER, 1, i, (1,))
    b.power_cut(after_bytes=RECORD_LEN // 2)  # the power fails half way through a record
    try:
        log.append(codec.MARKER, 1, 99, (1,))
        raise AssertionError("the write should have been cut")
    except PowerCut:
        pass
    b2 = VirtualBoard("a1b2c3", b.flash_dir)  # power back on, same flash
    log2 = _log(b2)
    assert log2.torn == 1, log2.torn
    assert log2.next_seq == 6  # the torn record was never complete, never sent
    assert [r[1] for r in _held(log2)] == [1, 2, 3, 4, 5]
    assert log2.append(codec.MARKER, 2, 7, (1,)) == 6
    assert [r[1] for r in _held(log2)] == [1, 2, 3, 4, 5, 6]
    assert log2.read_from(6)[3] == 7
    # the padded slot keeps the file a whole number of records
    f = b2.open(segment_name(0), "rb")
    size = f.seek(0, 2)
    f.close()
    assert size % RECORD_LEN == 0 and size == 7 * RECORD_LEN


def test_power_cut_between_records_loses_nothing():
    b = _board()
    log = _log(b)
    for i in range(3):
        log.append(codec.MARKER, 1, i, (1,))
    b.power_cut(after_bytes=RECORD_LEN)  # exactly one more whole record fits
    log.append(codec.MARKER, 1, 3, (1,))
    try:
        log.append(codec.MARKER, 1, 4, (1,))
    except PowerCut:
        pass
    log2 = _log(VirtualBoard("a1b2c3", b.flash_dir))
    assert [r[1] for r in _held(log2)] == [1, 2, 3, 4] and log2.next_seq == 5


def test_corrupt_record_in_the_middle_is_skipped():
    b = _board()
    log = _log(b)
    for i in range(6):
        log.append(codec.MARKER, 1, i, (1,))
    log.close()
    f = b.open(segment_name(0), "r+b")
    f.seek(2 * RECORD_LEN + 9)  # a bit flip inside record 3
    f.write(b"\x55")
    f.close()
    log2 = _log(b)
    assert [r[1] for r in _held(log2)] == [1, 2, 4, 5, 6]
    assert log2.next_seq == 7


def test_garbage_state_file_and_segment_are_survived():
    b = _board()
    log = _log(b)
    for i in range(3):
        log.append(codec.MARKER, 1, i, (1,))
    log.ack(2)
    log.close()
    f = b.open("logstate.json", "w")
    f.write("{not json")
    f.close()
    f = b.open(segment_name(2), "wb")
    f.write(b"\x00\xa5" * 50)  # garbage of no whole record
    f.close()
    log2 = _log(b)
    # seq still comes from the records; the ack is lost (safe: records are re-sent, never dropped)
    assert log2.next_seq == 4 and log2.acked_seq == 0
    assert [r[1] for r in _held(log2)] == [1, 2, 3]
    assert log2.append(codec.MARKER, 1, 9, (1,)) == 4


def test_logdump_prints_every_record_over_usb():
    import json

    from spasmband import logdump

    b = VirtualBoard("a1b2c3", "/")  # logdump reads the flash root, as on the band
    log = _log(b, 17, 128)
    log.append(codec.MARKER, 4, 1234, (1,))
    log.append(codec.FAULT, 4, 2000, (1, 300))
    log.ack(1)
    log.close()
    lines = []
    logdump.print = lines.append  # capture what would go to the USB serial
    try:
        logdump.main()
    finally:
        del logdump.print
    recs = [json.loads(x) for x in lines if not x.startswith("#")]
    assert [(r["seq"], r["type"], r["acked"]) for r in recs] == [
        (1, "marker", True),
        (2, "fault", False),
    ]
    assert recs[0]["t_ms"] == 1234 and recs[1]["duration_ms"] == 300
    assert "2 records" in lines[-1]
