"""What one link's notifications become: UTC-stamped records, command replies, or drops.

Segments are joined per characteristic, decoded and checked against the types that
characteristic may carry. Replies to host commands (CONFIG_VALUE, ERROR) go to the
session; every other frame is counted and becomes a record stamped with the link's
clock map (logged records sent unstamped wait until the band has taken this link's
TIME_SYNC, or the session gives up waiting). The first replayed frame shows
whether the band still has what the REPLAY asked for. A bad frame is counted and
dropped; past ``ble.max_bad_frames`` the link is marked to be kicked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from host.link import ALLOWED, ClockMap, Link, drop_reason
from host.records import BandError, ConfigValue, Record, Status, from_frame
from host.stats import Stats
from protocol import codec

# The session's logger: these lines are part of one band link's story.
log = logging.getLogger("spasm.session")


class FrameIntake:
    """One link's frames into records; made afresh for each link."""

    def __init__(
        self,
        band: str,
        stats: Stats,
        clock: ClockMap,
        replay_from: int,
        max_bad_frames: int,
        on_reply: Callable[[ConfigValue | BandError], None],
    ) -> None:
        self.band = band
        self.stats = stats
        self.clock = clock
        self.replay_from = replay_from  # the seq this link's REPLAY asked for
        self.replay_open = True  # no replayed frame seen yet on this link
        self.max_bad_frames = max_bad_frames
        self.on_reply = on_reply
        # Records the band sent unstamped before it took this link's TIME_SYNC wait
        # (briefly) for the STATUS that answers it: a fresh clock observation, where
        # the readable STATUS value may be a second old.
        self.held: list[tuple[Record, int]] = []
        self.synced = False

    def take(
        self, link: Link, item: tuple[str, bytes, int], batch: list[Record], skip: dict[str, int]
    ) -> None:
        """One notification: a record into ``batch``, or a replay gap into ``skip``."""
        name, data, received = item
        if len(data) > link.mtu - 3:
            self._bad(link, "oversized", f"{len(data)}-byte notification on {name}")
            link.joiners[name].reset()
            return
        try:
            frame_bytes = link.joiners[name].feed(data)
            if frame_bytes is None:
                return
            decoded = codec.decode(frame_bytes)
            if decoded[0] not in ALLOWED[name]:
                raise codec.UnknownTypeError(
                    f"type 0x{decoded[0]:02x} not expected on {name}", decoded[0]
                )
            frame = from_frame(self.band, decoded)
        except codec.FrameError as e:
            self._bad(link, drop_reason(e), f"{name}: {e.detail}")
            return
        except Exception as e:  # a bug here must cost one frame, not the link
            log.exception("band %s: cannot take a frame on %s", self.band, name)
            self._bad(link, "internal", f"{name}: {type(e).__name__}")
            return
        if isinstance(frame, ConfigValue | BandError):
            self.on_reply(frame)
            return
        flags = decoded[1]
        self.stats.received[frame.rtype] += 1
        if isinstance(frame, Status):
            self.clock.observe(frame.boot, frame.uptime_ms, received)
            if frame.state & codec.STATE_SYNCED:
                self.synced = True
                self.release_held(batch)
        if frame.logged and flags & codec.FLAG_REPLAY and self.replay_open:
            self.replay_open = False
            if frame.seq > self.replay_from:
                if self.replay_from > 1:  # (1: first contact, nothing expected yet)
                    log.warning(
                        "band %s: band no longer has seq %d..%d (log overwritten)",
                        self.band,
                        self.replay_from,
                        frame.seq - 1,
                    )
                skip[self.band] = frame.seq
        if frame.logged and frame.utc_ms == 0 and not self.synced:
            self.held.append((frame, received))
            return
        batch.append(replace(frame, utc_ms=self.clock.stamp(frame, received)))

    def release_held(self, batch: list[Record]) -> None:
        """Stamp the held records with what the clock map knows now, into ``batch``."""
        for frame, received in self.held:
            batch.append(replace(frame, utc_ms=self.clock.stamp(frame, received)))
        self.held = []

    def _bad(self, link: Link, reason: str, detail: str) -> None:
        self.stats.drop(reason)
        link.bad += 1
        log.warning("band %s: dropped frame (%s): %s", self.band, reason, detail)
        if link.bad >= self.max_bad_frames and not link.kick:
            link.kick = f"bad_frames:{reason}"
