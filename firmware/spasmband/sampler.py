"""The sampling task: drain the board's sample rings and feed the detector in order.

The board fills its rings from a hardware timer (EMG at 1 kHz, accelerometer at
100 Hz); this task wakes every ``PERIOD_MS`` and drains them, so the sampling
cadence never depends on how busy the app is (the ring holds 0.5 s; anything
older is counted in ``board.overruns``). Samples are fed to the detector in
10 ms frames, the order its interface asks for: 10 EMG samples, then the
accelerometer sample of the same 10 ms. When one sensor stalls (the
accelerometer's I2C bus hangs), the other is fed alone after ``LAG_FRAMES``
frames, and the detector reports the dropout as a fault.

Detector time (ms since it started) is mapped to band time (ms since boot) by
``t0``: band time of the first sample. A config change re-creates the detector;
``t0`` then moves to the frame where the new one starts.
"""

from array import array

from spasmband import detector

PERIOD_MS = 20
LAG_FRAMES = 20  # 200 ms: feed one sensor alone when the other has stalled this long
_EMG_BUF = 256  # samples (1 KB); poll() drains in rounds when more is pending
_ACC_BUF = 96  # 32 triples
_ROUNDS = 4


class Sampler:
    def __init__(self, board, params, on_result, signal, has_emg=True, has_acc=True):
        self.board = board
        self.on_result = on_result  # called with (result tuple, band ms of detector t=0)
        self.signal = signal
        self.has_emg = has_emg
        self.has_acc = has_acc
        self._emg = array("i", bytes(4 * _EMG_BUF))
        self._acc = array("h", bytes(2 * _ACC_BUF))
        self._emv = memoryview(self._emg)
        self._amv = memoryview(self._acc)
        self._en = 0
        self._an = 0  # triples
        self.emg_count = 0
        self.acc_count = 0
        self.frames = 0  # 10 ms frames fed to the current detector
        self.t0 = 0
        self._params = params
        self.det = detector.Detector(params=params, emg=has_emg, acc=has_acc)
        self._ax = 0
        self._ay = 0
        self._az = 0

    def set_params(self, params):
        """(Re)create the detector with these parameters (a dict of PARAMS values)."""
        self.finish()  # a spasm going on now is reported, not lost with the old detector
        self.t0 += self.frames * 10
        self.frames = 0
        self._params = params
        self.det = detector.Detector(params=params, emg=self.has_emg, acc=self.has_acc)

    def start(self, now_ms):
        self.t0 = now_ms
        self.board.start_sampling(detector.EMG_HZ, detector.ACC_HZ if self.has_acc else 0)

    def poll(self):
        """Drain the rings and run the detector over every complete frame."""
        for _ in range(_ROUNDS):
            full = self._read()
            self._feed()
            if not full:
                break
        self._results()

    def _read(self):
        """Read into the free space of the buffers; True if one filled up (more may wait)."""
        b = self.board
        if self.has_emg:
            while self._en < _EMG_BUF:
                n = b.read_emg(self._emv[self._en:])
                if n <= 0:
                    break
                self._en += n
        if self.has_acc:
            while self._an * 3 < _ACC_BUF:
                n = b.read_acc(self._amv[self._an * 3:])
                if n <= 0:
                    break
                self._an += n
        return self._en >= _EMG_BUF or self._an * 3 >= _ACC_BUF

    def _feed(self):
        det = self.det
        emg = self._emg
        acc = self._acc
        en = self._en
        an = self._an
        ei = 0
        ai = 0
        sig = self.signal
        if self.has_emg and self.has_acc:
            while True:
                if en - ei >= 10 and (ai < an or en - ei >= LAG_FRAMES * 10):
                    det.emg_samples(emg, ei, ei + 10)
                    ei += 10
                    self.emg_count += 10
                    if ai < an:
                        self._acc_one(det, acc, ai)
                        ai += 1
                elif ai < an and (an - ai) * 3 >= _ACC_BUF - 3:
                    # EMG stalled and the acc buffer is full: keep the accelerometer going
                    self._acc_one(det, acc, ai)
                    ai += 1
                else:
                    break
                self._frame(sig, det)
        elif self.has_emg:
            while en - ei >= 10:
                det.emg_samples(emg, ei, ei + 10)
                ei += 10
                self.emg_count += 10
                self._frame(sig, det)
        else:
            while ai < an:
                self._acc_one(det, acc, ai)
                ai += 1
                self._frame(sig, det)
        # keep the unfed tail at the front of the buffers
        if ei:
            for i in range(ei, en):
                emg[i - ei] = emg[i]
            self._en = en - ei
        if ai:
            for i in range(ai * 3, an * 3):
                acc[i - ai * 3] = acc[i]
            self._an = an - ai

    def _acc_one(self, det, acc, ai):
        k = ai * 3
        self._ax = acc[k]
        self._ay = acc[k + 1]
        self._az = acc[k + 2]
        det.acc(self._ax, self._ay, self._az)
        self.acc_count += 1

    def _frame(self, sig, det):
        self.frames += 1
        if sig.on:
            sig.frame(self.t0 + self.frames * 10, det.envelope_uv, self._ax, self._ay, self._az)

    def finish(self):
        """Report what the detector holds (an open or held-back episode) now."""
        self.det.finish()
        self._results()

    def _results(self):
        det = self.det
        while True:
            r = det.pop()
            if r is None:
                return
            self.on_result(r, self.t0)

    def now_ms(self):
        """Band time of the last sample fed."""
        return self.t0 + self.frames * 10
