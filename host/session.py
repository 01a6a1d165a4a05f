"""One band link, through bleak's public API only (BleakClient with ``backend=``).

Per connection: subscribe to EVENTS, SIGNAL, CONTROL and STATUS; TIME_SYNC with
the host's UTC; read STATUS to map this boot's band time to UTC; REPLAY from the
spool's contiguous seq + 1; then pump notifications into the spool (group commit;
host/frame_intake.py turns them into stamped records) and ACK only what the spool
has durably stored. A link that drops is retried with exponential backoff and
jitter once the band is heard advertising again (a dial to a band nobody heard,
after waiting ``ble.backoff_max_s``, does not grow the backoff). A peer that
floods, or sends garbage or oversized frames past ``ble.max_bad_frames``, is
counted and disconnected. Nothing raised by one band leaves its task: other bands
never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bleak import BleakClient
from bleak.backends.device import BLEDevice

from host.async_spool import AsyncSpool
from host.config import BleSection
from host.frame_intake import FrameIntake
from host.link import CHARS, ClockMap, Kick, Link, backoff_delay, now_ms
from host.records import BandError, ConfigValue, Frame, Record, Status, from_frame
from host.spool import SpoolFull
from host.stats import Stats
from protocol import codec, gatt, segmentation

log = logging.getLogger("spasm.session")
HOLD_UNSTAMPED_S = 1.0  # how long unstamped records wait for the answer to TIME_SYNC
SYNC_RTT_MS = 20  # a TIME_SYNC whose write took longer is sent again ...
SYNC_TRIES = 4  # ... this many times at most

__all__ = ["BandSession", "ClockMap", "CommandError", "backoff_delay"]


class CommandError(RuntimeError):
    """A host->band command could not be carried out."""


class BandSession:
    """Keeps one band linked for as long as the bridge runs."""

    def __init__(
        self,
        band: str,
        cfg: BleSection,
        backend: type | None,
        spool: AsyncSpool,
        stats: Stats,
        on_link: Callable[[str, bool], None] | None = None,
        on_spooled: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.band = band
        self.cfg = cfg
        self.backend = backend
        self.spool = spool
        self.stats = stats
        self.on_link = on_link or (lambda band, up: None)
        self.on_spooled = on_spooled or (lambda: None)
        self.rng = rng or random.Random()
        self.device: BLEDevice | None = None
        self._seen = asyncio.Event()
        self._client: BleakClient | None = None
        self._mtu = segmentation.MIN_MTU
        self._cmd_seq = 0
        self._write_lock = asyncio.Lock()
        self._waiters: list[tuple[Callable[[Frame], bool], asyncio.Future[Frame]]] = []
        self.connected = False
        self.links = 0  # connections that completed set-up
        self.sync_rtt_ms = 0  # round trip of the TIME_SYNC the band kept

    # ------------------------------------------------------------ outside API

    def offer(self, device: BLEDevice) -> None:
        """Discovery saw the band advertising: (re)connect to this device."""
        self.device = device
        self._seen.set()

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff, until cancelled. Never raises."""
        attempt = 0
        heard = True  # this attempt follows a sighting (not a dial after waiting in vain)
        loop = asyncio.get_running_loop()
        while True:
            await self._seen.wait()  # the first sighting; later ones only shorten the wait
            device = self.device
            assert device is not None
            started = loop.time()
            links_before = self.links
            try:
                await self._link(device)
                log.info("band %s: link closed", self.band)
            except asyncio.CancelledError:
                raise
            except Kick as e:
                self.stats.disconnects[str(e)] += 1
                log.warning("band %s: disconnected the peer: %s", self.band, e)
            except Exception as e:
                log.warning("band %s: link failed: %s: %s", self.band, type(e).__name__, e)
            finally:
                if self.connected:
                    self.connected = False
                    self.stats.bands_linked.discard(self.band)
                    self.on_link(self.band, False)
                self._fail_waiters(CommandError("link lost"))
            self.stats.reconnects += 1
            if self.links > links_before and loop.time() - started >= self.cfg.stable_link_s:
                attempt = 0
            delay = backoff_delay(
                attempt, self.cfg.backoff_initial_s, self.cfg.backoff_max_s, self.rng
            )
            if heard:
                # A band that was heard and still failed backs off further. A dial to a
                # band nobody heard (away) does not: it links soon after it is back.
                attempt += 1
            log.info("band %s: reconnecting in %.2f s", self.band, delay)
            # Connect again once the band is heard advertising: connection attempts are
            # serialised by the controller, so dialling an absent band would hold the others.
            self._seen.clear()
            await asyncio.sleep(delay)
            heard = self._seen.is_set()
            if not heard:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._seen.wait(), self.cfg.backoff_max_s)
                    heard = True
            self._seen.set()

    async def command(self, ftype: int, fields: dict[str, Any]) -> Frame | None:
        """Send a host command; for CONFIG_GET/SET wait for the band's reply."""
        if self._client is None or not self.connected:
            raise CommandError(f"band {self.band} is not connected")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Frame] = loop.create_future()
        sent = [-1]  # the command's seq, known once written
        key = fields.get("key")

        def match(f: Frame) -> bool:
            if isinstance(f, BandError):
                return f.ref_seq == sent[0]
            return isinstance(f, ConfigValue) and key is not None and f.key == key

        waiter = (match, fut)
        self._waiters.append(waiter)
        try:
            await self._write(ftype, fields, sent)
            if ftype not in (codec.CONFIG_GET, codec.CONFIG_SET):
                return None
            return await asyncio.wait_for(fut, self.cfg.command_timeout_s)
        except TimeoutError:
            raise CommandError(f"band {self.band} did not answer in time") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    # ------------------------------------------------------------ one link

    async def _link(self, device: BLEDevice) -> None:
        gone = asyncio.Event()
        link = Link(segmentation.MIN_MTU, self.cfg.max_notifications_per_s, self.cfg.inbox_size)

        def on_disconnect(_c: BleakClient) -> None:
            gone.set()
            link.inbox.put_nowait(None)

        kwargs: dict[str, Any] = dict(self.cfg.options)
        if self.backend is not None:
            kwargs["backend"] = self.backend
        client = BleakClient(
            device,
            disconnected_callback=on_disconnect,
            pair=self.cfg.pair,
            timeout=self.cfg.connect_timeout_s,
            **kwargs,
        )
        log.info("band %s: connecting", self.band)
        await asyncio.wait_for(client.connect(), self.cfg.connect_timeout_s + 1)
        try:
            self._client = client
            await self._serve(client, link, gone)
        finally:
            self._client = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)

    async def _serve(self, client: BleakClient, link: Link, gone: asyncio.Event) -> None:
        self._mtu = link.mtu = max(segmentation.MIN_MTU, int(client.mtu_size))
        link.joiners = {name: segmentation.Reassembler() for name in CHARS}
        clock = ClockMap()
        for name, uuid in CHARS.items():
            await client.start_notify(uuid, link.callback(name))
        await self._sync_time()
        t0 = now_ms()
        raw = await client.read_gatt_char(gatt.STATUS)
        t1 = now_ms()
        status = self._read_status(bytes(raw))
        contig = await self.spool.contig(self.band)
        if status is not None:
            clock.observe(status.boot, status.uptime_ms, (t0 + t1) // 2)
            if status.acked_seq > contig and status.acked_seq > 0:
                # The band erased these after a durable ack (ours, from a spool since pruned).
                contig = await self.spool.raise_contig(self.band, status.acked_seq)
        intake = FrameIntake(
            self.band, self.stats, clock, contig + 1, self.cfg.max_bad_frames, self._reply
        )
        await self._write(codec.REPLAY, {"from_seq": intake.replay_from})
        self._acked = 0  # seq 0 is never used: ACK 0 would free nothing
        if contig > 0:
            # Re-ack on every link: the band may have lost our last ACK with the link.
            await self._ack(contig)
        if self.cfg.stream_rate_hz:
            await self._write(codec.STREAM, {"on": 1, "rate_hz": self.cfg.stream_rate_hz})
        self.connected = True
        self.links += 1
        self.stats.bands_linked.add(self.band)
        self.on_link(self.band, True)
        log.info(
            "band %s: linked (mtu %d, boot %s, replay from %d)",
            self.band,
            link.mtu,
            status.boot if status else "?",
            intake.replay_from,
        )
        first: list[Record] = []
        if status is not None:
            first.append(replace(status, utc_ms=clock.stamp(status, t1)))
        self.stats.received["status"] += len(first)
        await self._pump(link, intake, gone, first)

    async def _sync_time(self) -> None:
        """TIME_SYNC; again while the write's round trip is slow.

        The band takes the UTC as true when the write arrives, so its clock is late
        by the write's one-way delay, less than the round trip; the last TIME_SYNC
        sent is the one it keeps.
        """
        for _ in range(SYNC_TRIES):
            t0 = now_ms()
            await self._write(codec.TIME_SYNC, {"utc_ms": t0})
            self.sync_rtt_ms = now_ms() - t0
            if self.sync_rtt_ms <= SYNC_RTT_MS:
                return
        log.info("band %s: time synced within %d ms", self.band, self.sync_rtt_ms)

    def _read_status(self, raw: bytes) -> Status | None:
        # The readable value is one whole frame; accept a single segment too.
        for data in (raw, raw[1:]):
            try:
                frame = from_frame(self.band, codec.decode(data))
            except codec.FrameError:
                continue
            if isinstance(frame, Status):
                return frame
        self.stats.drop("bad_status_read")
        log.warning("band %s: unreadable STATUS value (%d bytes)", self.band, len(raw))
        return None

    async def _pump(
        self, link: Link, intake: FrameIntake, gone: asyncio.Event, first: list[Record]
    ) -> None:
        need_replay = False
        batch: list[Record] = first
        while True:
            if batch:
                item = None
            elif intake.held:
                try:
                    item = await asyncio.wait_for(link.inbox.get(), HOLD_UNSTAMPED_S)
                except TimeoutError:  # no answer to TIME_SYNC: stamp with what we know
                    item = None
                    intake.release_held(batch)
            else:
                item = await link.inbox.get()
            items = [item]
            while len(items) < 512 and not link.inbox.empty():
                items.append(link.inbox.get_nowait())
            skip: dict[str, int] = {}
            for it in items:
                if it is None:
                    continue
                intake.take(link, it, batch, skip)
            if link.kick:
                raise Kick(link.kick)
            if batch or skip:
                try:
                    res = await self._store(batch, skip)
                except SpoolFull:
                    self.stats.spool_full = True
                    self.stats.drop("spool_full", len(batch))
                    log.error(
                        "band %s: spool full, %d records not stored and not acked",
                        self.band,
                        len(batch),
                    )
                    # Intake pauses; the band keeps the unacked records and replays
                    # them once a later write succeeds (each batch probes the disk).
                    need_replay = True
                    batch = []
                    await asyncio.sleep(0.5)
                    continue
                self.stats.spool_full = False
                contig = res.contig.get(self.band, self._acked)
                if contig > self._acked:
                    await self._ack(contig)
                if need_replay:
                    need_replay = False
                    if self.band not in res.contig:  # a batch of live records only
                        contig = await self.spool.contig(self.band)
                    log.info(
                        "band %s: spool has room again; replaying from %d", self.band, contig + 1
                    )
                    await self._write(codec.REPLAY, {"from_seq": contig + 1})
            batch = []
            if gone.is_set():
                return

    def _reply(self, frame: ConfigValue | BandError) -> None:
        if isinstance(frame, BandError):
            log.warning(
                "band %s: error %d for command type 0x%02x seq %d: %s",
                self.band,
                frame.code,
                frame.ref_type,
                frame.ref_seq,
                frame.text,
            )
        for match, fut in list(self._waiters):
            if not fut.done() and match(frame):
                fut.set_result(frame)
                return

    def _fail_waiters(self, exc: Exception) -> None:
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)

    async def _store(self, batch: list[Record], skip: dict[str, int]) -> Any:
        res = await self.spool.add(batch, skip)
        self.on_spooled()
        return res

    async def _ack(self, upto: int) -> None:
        await self._write(codec.ACK, {"upto": upto})
        self._acked = upto
        self.stats.acked += 1

    async def _write(
        self, ftype: int, fields: dict[str, Any], sent: list[int] | None = None
    ) -> None:
        client = self._client
        if client is None:
            raise CommandError("not connected")
        async with self._write_lock:
            self._cmd_seq = (self._cmd_seq + 1) & 0xFFFFFFFF
            if sent is not None:
                sent[0] = self._cmd_seq
            frame = codec.encode(ftype, self._cmd_seq, fields)
            for seg in segmentation.segments(frame, self._mtu):
                await client.write_gatt_char(gatt.CONTROL, seg, response=True)
