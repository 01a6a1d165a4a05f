"""The whole band app (firmware/spasmband/app.py) on the simulated seam, in the MicroPython VM.

Every test boots `App(board).run()` on a VirtualBoard with its own flash and
virtual clock, and talks to it through the LoopbackRadio as a host would:
sampling cadence, detection to the event log to notifications, the marker
button, ack and replay, time sync, reboot and power cut, streaming, overflow,
and the heap the running app takes.
"""

from band_sim import UTC, Band, RestEmg, of_type

from protocol import codec


async def test_sampling_cadence_over_simulated_time():
    band = Band()
    await band.boot(0)
    await band.run(120000)  # two simulated minutes
    s = band.app.sampler
    # every sample due by now was fed to the detector (the last 20 ms poll may be pending)
    assert 120000 - 20 <= s.emg_count <= 120000, s.emg_count
    assert 12000 - 2 <= s.acc_count <= 12000, s.acc_count
    assert band.board.overruns == 0
    assert s.frames == s.acc_count
    assert band.app.timebase.now() == 120000
    assert band.app.events == 0 and band.app.log.last_seq() == 0  # rest: no false alarm
    await band.shutdown()


async def test_overruns_are_counted_when_the_app_stalls():
    band = Band(ring_ms=100)
    await band.boot(1000)
    # a 1 s stall: the sampler is not scheduled, the rings overflow
    s = band.app.sampler
    s.poll = lambda: None
    await band.run(1000)
    del s.poll  # the sampler runs again and finds its rings overflowed
    await band.run(100)
    # ~920 EMG samples (1 s less the 100 ms ring) and ~92 accelerometer samples
    assert 900 <= band.board.overruns <= 1100, band.board.overruns
    assert 0 < s.emg_count < 1200 and band.app.running
    await band.shutdown()


async def test_detected_spasm_is_logged_and_notified():
    band = Band(emg=RestEmg(3, bursts=((8000, 300, 10),)))
    await band.boot(1000)
    band.connect(mtu=247)
    await band.run(500)
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC})
    await band.run(9000)
    frames = band.events()
    onsets = of_type(frames, codec.ONSET)
    events = of_type(frames, codec.EVENT)
    assert len(onsets) == 1 and len(events) == 1, frames
    ev = events[0]
    assert ev[2] == 1 and ev[1] == 0  # first logged seq, live
    f = ev[3]
    # the burst starts 8 s after sampling started (at boot): band time 8000 ms
    assert 7900 <= f["t_ms"] <= 8100, f
    assert f["boot"] == band.app.timebase.boot
    assert f["utc_ms"] == band.app.timebase.utc(f["boot"], f["t_ms"]) != 0
    # a 300 ms burst; the detector may add its offset hold to the duration
    assert f["kind"] in (1, 2, 3) and 200 <= f["duration_ms"] <= 2000, f
    assert band.app.log.last_seq() == 1 and band.app.log.unacked() == 1
    await band.shutdown()


async def test_marker_button_is_debounced():
    band = Band()
    await band.boot(500)
    b = band.board
    # contact bounce: toggling every 10 ms for 60 ms, then held: one marker
    for i in range(6):
        b.button_level = i % 2 == 0
        await band.run(10)
    await band.press(hold_ms=300, after_ms=300)
    assert band.app.markers == 1, band.app.markers
    # a 20 ms brush against the button: no marker
    await band.press(hold_ms=20, after_ms=300)
    assert band.app.markers == 1
    # held for 5 s: still one marker
    await band.press(hold_ms=5000, after_ms=300)
    assert band.app.markers == 2
    # two distinct presses: two markers
    await band.press()
    await band.press()
    assert band.app.markers == 4
    assert band.app.log.last_seq() == 4
    assert b.led_changes > 0  # the LED confirmed the presses
    await band.shutdown()


async def test_ack_and_replay():
    band = Band()
    await band.boot(500)
    for _ in range(3):
        await band.press()
    band.connect()  # MTU 23: every record needs two segments
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC})
    assert of_type(band.events(), codec.MARKER) == []  # logged before the link: only on REPLAY
    await band.press()  # logged while connected: sent live
    live = of_type(band.events(), codec.MARKER)
    assert [(f[2], f[1]) for f in live] == [(4, 0)]
    frames = await band.command(codec.REPLAY, {"from_seq": 2})
    assert frames == []
    rep = of_type(band.events(), codec.MARKER)
    assert [(f[2], f[1]) for f in rep] == [(2, codec.FLAG_REPLAY), (3, 1), (4, 1)]
    for f in rep:
        assert f[3]["utc_ms"] == band.app.timebase.utc(f[3]["boot"], f[3]["t_ms"]) > UTC - 10000
    await band.command(codec.ACK, {"upto": 3})
    assert band.app.log.acked_seq == 3 and band.app.log.unacked() == 1
    # acked records stay replayable until overwritten; REPLAY 0 means from the oldest
    await band.command(codec.REPLAY, {"from_seq": 0})
    assert [f[2] for f in of_type(band.events(), codec.MARKER)] == [1, 2, 3, 4]
    # a REPLAY beyond the last seq sends nothing, and live records still flow
    await band.command(codec.REPLAY, {"from_seq": 1000})
    await band.press()
    assert [(f[2], f[1]) for f in of_type(band.events(), codec.MARKER)] == [(5, 0)]
    # STATUS reports the log
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC + 60000})
    st = band.status()
    assert st["last_seq"] == 5 and st["acked_seq"] == 3 and st["log_used"] == 2, st
    assert st["state"] & codec.STATE_SYNCED and st["state"] & codec.STATE_BONDED
    await band.shutdown()


async def test_records_logged_while_away_wait_for_replay():
    band = Band()
    await band.boot(500)
    band.connect()
    await band.press()
    assert len(of_type(band.events(), codec.MARKER)) == 1
    band.radio.drop()  # out of range
    await band.run(200)
    assert band.radio.advertising  # the band advertises again
    await band.press()
    await band.press()
    band.connect()
    await band.run(300)
    assert of_type(band.events(), codec.MARKER) == []
    await band.command(codec.REPLAY, {"from_seq": 2})
    assert [f[2] for f in of_type(band.events(), codec.MARKER)] == [2, 3]
    await band.shutdown()


async def test_notify_backpressure_loses_nothing():
    band = Band()
    await band.boot(500)
    for _ in range(30):
        band.app.log_marker(band.app.timebase.now())
    band.connect()
    band.radio.tx_slots = 2  # a slow link: two notifications at a time
    band.radio.per_ms = 0.05
    await band.command(codec.REPLAY, {"from_seq": 1}, ms=5000)
    got = [f[2] for f in of_type(band.events(), codec.MARKER)]
    assert band.radio.rejected > 0  # the band met a full TX buffer and retried
    assert got == list(range(1, 31)), got
    await band.shutdown()


async def test_seq_and_time_survive_reboot():
    band = Band()
    await band.boot(500)
    band.connect()
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC})
    await band.press()
    boot1 = band.app.timebase.boot
    t1 = of_type(band.events(), codec.MARKER)[0][3]
    await band.command(codec.REBOOT, ms=500)
    assert band.board.resets == 1 and band.board.boots == 2
    assert band.app.timebase.boot == boot1 + 1
    assert not band.radio.connected()
    await band.press()  # boot 2, no time sync yet
    band.connect()
    await band.run(200)
    await band.command(codec.REPLAY, {"from_seq": 1})
    recs = of_type(band.events(), codec.MARKER)
    assert [f[2] for f in recs] == [1, 2]
    assert recs[0][3] == t1, (
        recs[0][3],
        t1,
    )  # boot 1's record still maps to UTC from the kept offset
    assert recs[1][3]["boot"] == boot1 + 1 and recs[1][3]["utc_ms"] == 0
    # a sync in boot 2 maps its earlier record on the next send
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC + 3600000})
    await band.command(codec.REPLAY, {"from_seq": 2})
    f = of_type(band.events(), codec.MARKER)[0][3]
    assert f["utc_ms"] == band.app.timebase.utc(f["boot"], f["t_ms"]) > UTC + 3000000
    await band.shutdown()


async def test_a_spasm_going_on_at_a_reboot_is_logged_before_the_reset():
    # a tonic contraction from 6 s that the REBOOT at ~9.5 s cuts short
    band = Band(emg=RestEmg(3, bursts=((6000, 60000, 8),)))
    await band.boot(500)
    band.connect()
    await band.run(9000)
    assert band.app.log.last_seq() == 0  # still going: no event yet
    await band.command(codec.REBOOT, ms=500)
    assert band.board.resets == 1
    band.connect()
    await band.run(200)
    await band.command(codec.REPLAY, {"from_seq": 1})
    evs = of_type(band.events(), codec.EVENT)
    assert len(evs) >= 1, band.events()
    f = evs[0][3]
    assert f["boot"] == 1 and 5900 <= f["t_ms"] <= 6100 and f["duration_ms"] >= 3000, f
    await band.shutdown()


async def test_power_cut_mid_write_then_boot():
    band = Band()
    await band.boot(500)
    for _ in range(3):
        await band.press()
    band.board.power_cut(after_bytes=10)  # the next flash write is torn
    band.board.button_level = True
    await band.run(300)
    assert band.board.dead
    band.board.button_level = False
    await band.run(1000)
    band.board.power_on()
    await band.run(500)
    log = band.app.log
    assert log.torn == 1 and log.next_seq == 4, (log.torn, log.next_seq)
    await band.press()
    assert log.last_seq() == 4
    band.connect()
    await band.command(codec.REPLAY, {"from_seq": 1})
    assert [f[2] for f in of_type(band.events(), codec.MARKER)] == [1, 2, 3, 4]
    await band.shutdown()


async def test_log_overflow_overwrites_oldest_and_reports_it():
    band = Band(app_kwargs={"log_segments": 3, "log_per_segment": 4})
    await band.boot(500)
    for _ in range(20):
        band.app.log_marker(band.app.timebase.now())
    log = band.app.log
    assert log.overwritten > 0 and log.first_seq() == log.overwritten + 1
    band.connect()
    await band.command(codec.TIME_SYNC, {"utc_ms": UTC})
    st = band.status()
    assert st["log_overwritten"] == log.overwritten and st["log_capacity"] == 8, st
    await band.command(codec.REPLAY, {"from_seq": 1})
    seqs = [f[2] for f in of_type(band.events(), codec.MARKER)]
    assert seqs == list(range(log.first_seq(), 21)), seqs
    # sampling never stopped
    assert band.app.sampler.emg_count >= 900 and band.board.overruns == 0
    await band.shutdown()


async def test_signal_streaming():
    band = Band()
    await band.boot(500)
    band.connect(mtu=247)
    await band.command(codec.STREAM, {"on": 1, "rate_hz": 25})
    assert band.status()["state"] & codec.STATE_STREAMING
    await band.run(2000)
    sig = band.radio.frames("signal")
    samples = sum(f[3]["count"] for f in sig)
    assert 45 <= samples <= 55, samples  # 25 Hz for 2 s
    assert all(f[3]["rate_hz"] == 25 and f[3]["count"] == 5 for f in sig)
    ts = [f[3]["t_ms"] for f in sig]
    assert all(ts[i + 1] - ts[i] == 200 for i in range(len(ts) - 1)), ts
    az = [s[3] for f in sig for s in f[3]["samples"]]
    assert min(az) >= 990 and max(az) <= 1010  # the resting wrist's gravity
    await band.command(codec.STREAM, {"on": 0, "rate_hz": 1})
    band.radio.frames("signal")
    await band.run(1000)
    assert band.radio.frames("signal") == []
    # 50 Hz at MTU 23: chunks are segmented and still arrive whole
    band.radio.drop()
    await band.run(200)
    band.connect(mtu=23)
    await band.command(codec.STREAM, {"on": 1, "rate_hz": 50})
    await band.run(1000)
    sig = band.radio.frames("signal")
    assert all(f[0] == codec.SIGNAL for f in sig) and sum(f[3]["count"] for f in sig) >= 45
    # the stream stops with the link
    band.radio.drop()
    await band.run(300)
    assert not band.app.signal.on
    await band.shutdown()


async def test_status_read_value_and_periodic_notify():
    band = Band()
    await band.boot(500)
    band.connect()
    await band.run(300)
    band.status()
    await band.command(codec.CONFIG_SET, {"key": "status_s", "value": 5})
    await band.run(12000)
    n = len(of_type(band.radio.frames("status"), codec.STATUS))
    assert 2 <= n <= 3, n
    raw = band.radio.read("status")
    f = codec.decode(raw)
    assert f[0] == codec.STATUS and f[3]["boot"] == band.app.timebase.boot
    assert band.radio.read("battery") == bytes((band.app.battery.pct,))
    assert band.radio.read("model") == b"SB-1" and band.radio.read("firmware") == b"1.0.0"
    assert band.radio.name == "SB-a1b2c3"
    await band.shutdown()


async def test_band_time_survives_the_ticks_wrap():
    from simulator.virtual_board import TICKS_PERIOD

    # ticks_ms on the ESP32 wraps every 2**30 ms (12.4 days): start 5 s before it
    band = Band(ticks_offset=TICKS_PERIOD - 5000)
    await band.boot(0)
    await band.run(12000)
    assert band.app.timebase.now() == 12000
    assert 12000 - 20 <= band.app.sampler.emg_count <= 12000
    await band.press()
    band.connect()
    await band.command(codec.REPLAY, {"from_seq": 1})
    f = of_type(band.events(), codec.MARKER)[0][3]
    assert 12000 <= f["t_ms"] <= 12100, f
    await band.shutdown()
