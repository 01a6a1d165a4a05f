"""Live signal streaming: EMG envelope and acceleration, decimated, in SIGNAL chunks.

On STREAM{on, rate_hz} the sampler hands every 10 ms frame (the detector's EMG
envelope and the latest accelerometer sample) to ``frame()``; a phase
accumulator keeps ``rate_hz`` of every 100 frames (1 to 50 Hz: 50 Hz keeps
every second frame, 25 Hz every fourth, 7 Hz an evenly spread 7 of 100).
Samples are collected into chunks of ``rate_hz // 5`` samples (200 ms of
signal, at least 1) and each chunk is encoded as one SIGNAL frame
(``t_ms`` = time of its first sample). The stream is live and lossy: at most
``QUEUE`` chunks wait for the radio; when the link cannot keep up the oldest
chunk is dropped and counted in ``dropped``.
"""

from protocol import codec

FRAME_HZ = 100  # the sampler's frame rate (one per accelerometer sample)
QUEUE = 4


def _clamp(v, lo, hi):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


def _no_seq():
    return 0


class SignalStream:
    def __init__(self):
        self.on = False
        self.rate_hz = 0
        self.chunk = 1
        self._phase = 0
        self._t0 = 0
        self._emg = [0] * codec.MAX_SAMPLES
        self._ax = [0] * codec.MAX_SAMPLES
        self._ay = [0] * codec.MAX_SAMPLES
        self._az = [0] * codec.MAX_SAMPLES
        self._n = 0
        self.queue = []  # encoded SIGNAL frames waiting for the radio
        self.dropped = 0
        self.sent = 0
        self._seq = _no_seq  # start() sets the app's live seq counter
        self.boot = 0

    def start(self, rate_hz, boot, next_seq):
        self.rate_hz = rate_hz
        self.chunk = max(1, min(codec.MAX_SAMPLES, rate_hz // 5))
        self.boot = boot
        self._seq = next_seq
        self._phase = 0
        self._n = 0
        self.on = True

    def stop(self):
        self.on = False
        self._n = 0
        self.queue = []

    def frame(self, t_ms, env_uv, ax, ay, az):
        """One 10 ms frame of signal (called by the sampler only while ``on``)."""
        self._phase += self.rate_hz
        if self._phase < FRAME_HZ:
            return
        self._phase -= FRAME_HZ
        n = self._n
        if n == 0:
            self._t0 = t_ms
        self._emg[n] = _clamp(env_uv, 0, 0xFFFF)
        self._ax[n] = _clamp(ax, -32768, 32767)
        self._ay[n] = _clamp(ay, -32768, 32767)
        self._az[n] = _clamp(az, -32768, 32767)
        n += 1
        if n < self.chunk:
            self._n = n
            return
        self._n = 0
        samples = []
        for i in range(n):
            samples.append((self._emg[i], self._ax[i], self._ay[i], self._az[i]))
        frame = codec.encode(codec.SIGNAL, self._seq(), {
            "boot": self.boot, "t_ms": self._t0 & 0xFFFFFFFF, "rate_hz": self.rate_hz,
            "count": n, "samples": samples})
        if len(self.queue) >= QUEUE:
            self.queue.pop(0)
            self.dropped += 1
        self.queue.append(frame)
