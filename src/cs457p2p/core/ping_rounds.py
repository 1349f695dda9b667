"""When the tracker PINGs its ring (Part 2), sans I/O: rounds of PINGs over a
:class:`~cs457p2p.core.ring.Ring`, in aioquic's shape. A driver (the tracker's
:mod:`~cs457p2p.tracker.ring_keeper`, the simulator's ring run) wakes at
:meth:`PingRounds.next_timer`, calls :meth:`PingRounds.on_timer` with the time, starts
the PINGs :attr:`PingRounds.outbox` then holds, tells the ring how each went
(:meth:`~cs457p2p.core.ring.Ring.ping_result`) and this object that it ended
(:meth:`PingRounds.ping_ended`). Time is passed in; nothing here waits.

* A round PINGs every peer in the ring, in ring order, at once (the driver's caps on
  connections, :mod:`~cs457p2p.core.outbound`, then say when each starts).
* Rounds never overlap: the next one starts ``interval`` seconds after the last one
  ended. A round ends when every PING of it has ended, or ``interval + timeout``
  seconds after it began (a round whose PINGs were merged with others, or whose peers
  left, may never see all of them end).
* A PING not answered within ``timeout`` seconds of its start has failed: the driver
  bounds each PING's connection by :attr:`PingRounds.timeout`.
* An empty ring is not PINGed: the next round is tried ``interval`` seconds later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .ring import RING_DEFAULTS

__all__ = ["PING_INTERVAL", "PING_TIMEOUT", "PingRounds"]

#: Seconds between the end of a round of PINGs and the start of the next, and seconds
#: a PING may take to be answered: the ring's settings (core.ring.RingSettings, where
#: each default is written once).
PING_INTERVAL = RING_DEFAULTS.ping_interval
PING_TIMEOUT = RING_DEFAULTS.ping_timeout

Address = tuple[str, int]


class _Member(Protocol):
    @property
    def handle(self) -> str: ...
    @property
    def address(self) -> Address: ...


class _Members(Protocol):
    """What the rounds need of the ring (:class:`~cs457p2p.core.ring.Ring` is one)."""

    @property
    def members(self) -> Sequence[_Member]: ...


class PingRounds:
    """The rounds of PINGs over ``ring``: :meth:`start`, then wake at
    :meth:`next_timer` and call :meth:`on_timer`; the PINGs to start are then in
    :attr:`outbox` as ``(handle, address)``, oldest first (the driver takes and clears
    it)."""

    def __init__(
        self, ring: _Members, interval: float = PING_INTERVAL, timeout: float = PING_TIMEOUT
    ) -> None:
        if interval < 0 or timeout < 0:
            raise ValueError("the PING interval and timeout cannot be negative")
        self.ring = ring
        self.interval = interval
        self.timeout = timeout
        #: the PINGs to start now: (handle, address)
        self.outbox: list[tuple[str, Address]] = []
        #: when the last round started, and how long it took (the last one that ended)
        self.last_round: float | None = None
        self.round_seconds = 0.0
        #: handles of the open round's PINGs that have not ended
        self._pending: set[str] = set()
        #: when the open round ends at the latest (None: no round open)
        self._ends: float | None = None
        #: when the next round starts (None: not started)
        self._next: float | None = None

    @property
    def in_round(self) -> bool:
        """A round is open: some of its PINGs have not ended."""
        return self._ends is not None

    def start(self, now: float) -> None:
        """The first round starts ``interval`` seconds from ``now``."""
        self._next = now + self.interval

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` has something to do (None: not started)."""
        return self._ends if self._ends is not None else self._next

    def on_timer(self, now: float) -> None:
        """The time is ``now``: a round that has waited long enough ends; a round that
        is due starts (its PINGs go to :attr:`outbox`). Early calls do nothing."""
        if self._ends is not None:
            if now >= self._ends:
                self._close(now)
            return
        if self._next is None or now < self._next:
            return
        members = self.ring.members
        if not members:
            self._next = now + self.interval
            return
        self.last_round = now
        self._ends = now + self.interval + self.timeout
        self._pending = {m.handle for m in members}
        self.outbox.extend((m.handle, m.address) for m in members)

    def ping_ended(self, handle: str, now: float) -> None:
        """A PING to ``handle`` has ended, whatever happened (any PING: one the ring
        asked for on its own counts for the round when it was merged with it)."""
        pending = self._pending
        if handle not in pending:
            return
        pending.discard(handle)
        if not pending:
            self._close(now)

    def _close(self, now: float) -> None:
        assert self.last_round is not None
        self.round_seconds = now - self.last_round
        self._pending = set()
        self._ends = None
        self._next = now + self.interval
