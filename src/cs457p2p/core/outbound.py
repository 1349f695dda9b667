"""The tracker's connections to its peers (Part 2), sans I/O: which UPDATE_NBR and PING
to start now, so that no sequence of messages can make the tracker open more than a
bounded number of connections, at once or per second. The tracker's driver
(:mod:`cs457p2p.tracker.ring_keeper`) starts what :meth:`Outbound.due` gives, reports
each end with :meth:`Outbound.done`, and wakes at :attr:`Outbound.wake_at`; time is
passed in.

* **Per peer** (by handle): at most one connection in flight, and two starts at least
  ``gap`` seconds apart. UPDATE_NBRs are coalesced: one waiting for a peer is replaced
  by a newer one (the latest neighbour wins; the peer never needs the ones between). A
  PING waits behind a notice to the same peer, never twice.
* **In all**: at most ``max_open`` connections open at once, and starts at ``rate`` a
  second at most (a token bucket holding ``burst``: a PING round of a thousand peers
  starts within ``burst / rate`` seconds, a flood of REGISTERs cannot go faster).
* **Fair**: peers with something to send are served in the order they became ready,
  so a peer whose messages never stop coming waits its turn like the others; what
  waits is at most one notice and one PING per peer in the ring.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .wire2 import UpdateNbr

__all__ = ["BURST", "GAP", "MAX_OPEN", "NOTICE", "PING", "RATE", "Call", "Outbound"]

#: Connections to peers open at once, at most.
MAX_OPEN = 128
#: Connections to peers started per second, at most, and how many may start at once.
RATE = 500.0
BURST = 500
#: Seconds between two connections to the same peer, at least.
GAP = 0.2

NOTICE, PING = "notice", "ping"

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Call:
    """One connection to start: an UPDATE_NBR (``message``) or a PING, to ``handle`` at
    ``to``."""

    kind: str
    handle: str
    to: Address
    message: UpdateNbr | None = None


class _Peer:
    """What waits for one peer, and when it may be sent."""

    __slots__ = ("busy", "last_start", "notice", "ping", "pinging", "queued", "to")

    def __init__(self, to: Address) -> None:
        self.to = to
        self.notice: UpdateNbr | None = None
        self.ping: Address | None = None
        self.busy = False  # a connection to it is open
        self.pinging = False  # ... and it is a PING
        self.queued = False  # it is in the heap
        self.last_start = float("-inf")

    @property
    def waiting(self) -> bool:
        return self.notice is not None or self.ping is not None


class Outbound:
    """The connections to peers waiting to start, and the limits they start under."""

    def __init__(
        self,
        max_open: int = MAX_OPEN,
        rate: float = RATE,
        burst: int = BURST,
        gap: float = GAP,
    ) -> None:
        if max_open < 1 or rate <= 0 or burst < 1 or gap < 0:
            raise ValueError("limits must be positive")
        self.max_open = max_open
        self.rate = rate
        self.burst = burst
        self.gap = gap
        self.open = 0
        self._tokens = float(burst)
        self._filled_at: float | None = None
        self._peers: dict[str, _Peer] = {}
        self._heap: list[tuple[float, int, str]] = []  # (ready at, order, handle)
        self._order = 0
        #: counters: started, notices replaced by a newer one before they went, PINGs
        #: asked for a peer that already had one waiting or open
        self.started = 0
        self.coalesced = 0
        self.pings_merged = 0

    # -------------------------------------------------------------------- reading

    @property
    def waiting(self) -> int:
        """Peers with something waiting to start."""
        return sum(1 for p in self._peers.values() if p.waiting)

    def wake_at(self, now: float) -> float | None:
        """When :meth:`due` may have something to start (None: nothing until a new
        message or a :meth:`done`)."""
        if not self._heap or self.open >= self.max_open:
            return None
        at = self._heap[0][0]
        self._refill(now)
        if self._tokens < 1:
            at = max(at, now + (1 - self._tokens) / self.rate)
        return max(at, now)

    # ----------------------------------------------------------------- what comes

    def notice(self, handle: str, to: Address, message: UpdateNbr, now: float) -> None:
        """An UPDATE_NBR for ``handle`` at ``to``: it replaces one still waiting."""
        peer = self._peer(handle, to)
        if peer.notice is not None:
            self.coalesced += 1
        peer.notice = message
        self._ready(handle, peer, now)

    def ping(self, handle: str, to: Address, now: float) -> None:
        """A PING for ``handle`` at ``to``, unless one is waiting or open already."""
        peer = self._peer(handle, to)
        if peer.ping is not None or peer.pinging:
            self.pings_merged += 1
            return
        peer.ping = to
        self._ready(handle, peer, now)

    def forget(self, handle: str) -> None:
        """``handle`` left the ring: what waits for it is dropped (an open connection
        ends as it will)."""
        peer = self._peers.get(handle)
        if peer is None:
            return
        peer.notice = peer.ping = None
        if not peer.busy:
            del self._peers[handle]

    # ------------------------------------------------------------------ what goes

    def due(self, now: float) -> list[Call]:
        """The connections to start now, each counted open until :meth:`done`."""
        calls: list[Call] = []
        heap = self._heap
        self._refill(now)
        while heap and heap[0][0] <= now and self.open < self.max_open and self._tokens >= 1:
            _, _, handle = heapq.heappop(heap)
            peer = self._peers.get(handle)
            if peer is None:
                continue
            peer.queued = False
            if peer.busy or not peer.waiting:
                continue  # (it gets back in line when its connection ends)
            if peer.notice is not None:
                call = Call(NOTICE, handle, peer.to, peer.notice)
                peer.notice = None
            else:
                assert peer.ping is not None
                call = Call(PING, handle, peer.ping)
                peer.ping = None
                peer.pinging = True
            peer.busy = True
            peer.last_start = now
            self.open += 1
            self._tokens -= 1
            self.started += 1
            calls.append(call)
        return calls

    def done(self, call: Call, now: float) -> None:
        """``call``'s connection has ended (whatever happened)."""
        self.open -= 1
        peer = self._peers.get(call.handle)
        if peer is None:
            return
        peer.busy = peer.pinging = False
        if peer.waiting:
            self._ready(call.handle, peer, now)
        # (kept, with when it last started, until :meth:`forget`: at most one per peer)

    # ------------------------------------------------------------------ internals

    def _peer(self, handle: str, to: Address) -> _Peer:
        peer = self._peers.get(handle)
        if peer is None:
            peer = self._peers[handle] = _Peer(to)
        peer.to = to  # (its latest address)
        return peer

    def _ready(self, handle: str, peer: _Peer, now: float) -> None:
        if peer.queued or peer.busy:
            return
        peer.queued = True
        self._order += 1
        heapq.heappush(self._heap, (max(now, peer.last_start + self.gap), self._order, handle))

    def _refill(self, now: float) -> None:
        if self._filled_at is None:
            self._filled_at = now
        elapsed = now - self._filled_at
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._filled_at = now
