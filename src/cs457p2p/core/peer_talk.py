"""A Part 2 peer's exchanges with the tracker beside its QUERYs, sans I/O: when to send
REGISTER (again), whether the tracker is ours, when to report HELD. Held by the peer's
:class:`~cs457p2p.core.peer_state.PeerState` (its :attr:`talk`), whose
``next_timer``/``on_timer`` drive it; time is passed in.

REGISTER goes once a connection; it is sent again (:data:`REGISTER_TRIES` in all,
:data:`REGISTER_PAUSE` seconds apart) only when the tracker refused the connection or
closed it without an answer (:data:`LOST`), never after a silent wait (:data:`SILENT`:
a slow tracker may have registered the first one, and the course's would refuse a
second as a taken handle) or a broken exchange (:data:`BROKEN`;
:meth:`TrackerTalk.register_failed`). A
tracker that answers a QUERY (:meth:`PeerState.probe`) is ours: it hears a ``HELD``
report (how many items the peer holds, for its dashboard) after an exchange that
changed it, at most every :data:`HELD_EVERY` seconds, and once at the end.

The tracker speaks from the addresses its name resolves to (:func:`tracker_addresses`:
for a loopback tracker, from any of 127.0.0.1 and ::1); an UPDATE_NBR from elsewhere
is not the tracker's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .wire2 import BadMessage, Held, Join, Message, QueryResult

__all__ = [
    "BROKEN",
    "HELD_EVERY",
    "LOST",
    "REGISTER_PAUSE",
    "REGISTER_TRIES",
    "SILENT",
    "TrackerTalk",
    "tracker_addresses",
]

#: REGISTER attempts, and the seconds between two.
REGISTER_TRIES = 3
REGISTER_PAUSE = 0.2
#: Seconds between two HELD reports to our tracker, at least.
HELD_EVERY = 0.25
#: How a REGISTER's exchange failed (:meth:`TrackerTalk.register_failed`): the
#: connection refused or reset, or closed without an answer; no answer within the
#: driver's timeout; anything else (an unreachable host, bytes that are no answer).
LOST, SILENT, BROKEN = "lost", "silent", "broken"


class TrackerTalk:
    """What ``handle``, listening on ``port``, sends the tracker beside QUERYs."""

    __slots__ = ("due", "handle", "held_at", "held_sent", "ours", "port", "ready", "tries")

    def __init__(self, handle: str, port: int) -> None:
        self.handle = handle
        self.port = port
        self.tries = 0  # REGISTERs sent
        self.ready = True  # a REGISTER is to be sent now
        self.due: float | None = None  # one is to be sent again at this time
        self.ours = False  # the tracker answers QUERYs: it hears HELD reports
        self.held_sent = -1
        self.held_at = float("-inf")

    def on_timer(self, now: float) -> None:
        """The time is ``now``: a REGISTER due again by then is to be sent."""
        if self.due is not None and now >= self.due:
            self.due = None
            self.ready = True

    def next_register(self) -> Join | None:
        """The REGISTER to send now, alone on a connection (None: none due)."""
        if not self.ready:
            return None
        self.ready = False
        self.tries += 1
        return Join(self.handle, self.port)

    def register_lost(self, now: float) -> bool:
        """The tracker refused the REGISTER's connection, or closed it without an
        answer: True when another is due (at :attr:`due`), False when the tries are
        spent. (A tracker silent until the driver's timeout is not asked again.)"""
        if self.tries >= REGISTER_TRIES:
            return False
        self.due = now + REGISTER_PAUSE
        return True

    def register_failed(self, how: str, now: float) -> bool:
        """The REGISTER's exchange failed ``how``: True when another is due (at
        :attr:`due`). Only a :data:`LOST` one is sent again, while tries are left
        (:meth:`register_lost`); a :data:`SILENT` tracker may have registered it, and
        a :data:`BROKEN` exchange is not one to repeat."""
        return how == LOST and self.register_lost(now)

    def probed(self, replies: Sequence[Message | BadMessage]) -> None:
        """The tracker's answers to the probe QUERY (none: it failed)."""
        self.ours = bool(replies) and isinstance(replies[0], QueryResult)

    def report(self, held: int, now: float, final: bool = False) -> Held | None:
        """The HELD to send now (None: none due): ``held`` items, when that changed
        since the last report, at most every :data:`HELD_EVERY` seconds (``final``:
        the last one, whenever it comes); only to our tracker."""
        if not self.ours or held == self.held_sent:
            return None
        if not final and now - self.held_at < HELD_EVERY:
            return None
        self.held_at, self.held_sent = now, held
        return Held(self.handle, held)


def tracker_addresses(resolved: Iterable[str]) -> frozenset[str]:
    """The addresses the tracker may speak from, given those its name ``resolved`` to:
    those; for a loopback tracker, all of 127.0.0.1 and ::1 (it may speak from either);
    and each IPv4-mapped one (``::ffff:a.b.c.d``) as ``a.b.c.d`` too."""
    found = set(resolved)
    if any(a.startswith("127.") or a == "::1" for a in found):
        found |= {"127.0.0.1", "::1"}
    return frozenset(found | {a[7:] for a in found if a.startswith("::ffff:")})
