"""What the tracker has seen, sans I/O: the table of clients, the counters, the request
rate history and the latency histogram, for the dashboard, ``/metrics`` and the logs.

A :class:`Monitor` is the tracker's observer (``Tracker.observer``): the tracker calls
:meth:`Monitor.observe` once per batch of requests it answers. Nothing here touches a
socket or a logger, and time comes from the clock it is given (the wall clock in the
tracker, a fake one in tests). The driver calls :meth:`Monitor.tick` about twice a
second with a snapshot of the tracker's own counters; what is worth a log line comes
out as event dicts in :attr:`Monitor.events`, for the driver to write, and, said in
words, in the event feed (:attr:`Monitor.feed`) the dashboard shows. The ring (Part 2)
tells :meth:`Monitor.ring_event` what happens to it.

A client is a source IP address (every port of it, TCP and UDP alike). It has
*finished* when it has fetched every position ``0..N-1`` since its last REGISTER (or
since it was first seen, if it never registered). The table holds at most
``max_clients`` clients; beyond that the least recently seen is forgotten. A client
that is still fetching holds one byte per position (N bytes); a finished one holds none.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .feed import FEED_SIZE, Feed, finished_words, registered_words, ring_words
from .refusals import explain, out_of_range
from .requests import BadRequest, Position, PositionRun, Register, Request, RingMessage
from .ring import RingEvent

__all__ = [
    "FAULT_KINDS",
    "LATENCY_BUCKETS",
    "MAX_CLIENTS",
    "MAX_CLIENT_BYTES",
    "ClientState",
    "Monitor",
    "Observer",
    "TrackerCounters",
]

#: Upper bounds (seconds) of the latency histogram's buckets; +Inf is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
#: The kinds of fault the tracker counts in ``Faults.injected``.
FAULT_KINDS = ("loss", "duplicate", "reorder", "delay", "chunk", "reset")
#: Seconds of request-rate history kept (one point a second).
HISTORY_SECONDS = 300
#: The rate shown as "now" is the average over this many seconds.
RATE_WINDOW = 10.0
#: Event dicts waiting for the driver, at most; the rest are only counted.
MAX_PENDING_EVENTS = 200
#: Longest reason kept for a refused request.
MAX_REASON = 120
#: Clients remembered, at most, and the memory their table may use (the tracker's
#: defaults): beyond either, the least recently seen are forgotten.
MAX_CLIENTS = 1000
MAX_CLIENT_BYTES = 64 << 20
#: What one client's row costs, about, beyond its positions (the object, its strings,
#: the table's entry), in bytes: counted against the monitor's memory limit.
CLIENT_COST = 600


class Observer(Protocol):
    """Monitoring hook (``Tracker.observer``; :class:`Monitor` is one): sees
    each batch of requests answered at once (one read from a connection, or one
    datagram)."""

    def observe(
        self,
        peer: tuple[Any, ...],
        transport: str,
        requests: Sequence[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        """``latency``: seconds from the batch's last bytes arriving to its answers
        being handed to the transport."""


@dataclass(frozen=True)
class TrackerCounters:
    """A snapshot of the tracker's own counters, taken by the driver at each tick."""

    accepted: int = 0
    refused: int = 0
    evicted: int = 0
    open_connections: int = 0
    dropped_idle: int = 0
    dropped_slow: int = 0
    datagrams: int = 0
    unanswered_datagrams: int = 0
    faults: Mapping[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class ClientState:
    """One source address."""

    address: str
    first_seen: float
    last_seen: float
    transports: str
    registrations: int = 0
    #: when the last REGISTER came (or ``first_seen``)
    since: float = 0.0
    requests: int = 0
    #: distinct positions fetched since the last REGISTER
    fetched: int = 0
    finished: bool = False
    finished_at: float | None = None
    bad: int = 0
    last_bad: str = ""
    #: the last bad request, in words (when the feed or the log said it)
    last_why: str = ""
    #: one byte per position while fetching; None before the first position and once
    #: finished
    seen: bytearray | None = field(default=None, repr=False)

    def to_json(self, n: int) -> dict[str, Any]:
        return {
            "address": self.address,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "registrations": self.registrations,
            "requests": self.requests,
            "fetched": self.fetched,
            "items": n,
            "finished": self.finished,
            "seconds": (
                round(self.finished_at - self.since, 3) if self.finished_at is not None else None
            ),
            "bad": self.bad,
            "last_bad": self.last_bad,
            "last_why": self.last_why,
            "transport": self.transports,
        }


def _host(peer: Sequence[Any]) -> str:
    host = str(peer[0]) if peer else "?"
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class Monitor:
    """The tracker's observer: a bounded table of clients and the counters."""

    def __init__(
        self,
        n: int,
        clock: Callable[[], float],
        max_clients: int = MAX_CLIENTS,
        events: bool = True,
        info: Mapping[str, Any] | None = None,
        max_bytes: int = MAX_CLIENT_BYTES,
        feed: int = FEED_SIZE,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.n = n
        self.max_clients = max_clients
        #: bytes the table may hold: each client's row and, while it fetches, one byte
        #: per position; beyond it the least recently seen clients are forgotten
        self.max_bytes = max(max_bytes, CLIENT_COST + n)
        self.held = 0
        #: static facts shown with the status (listening address, faults in force...)
        self.info: dict[str, Any] = dict(info or {})
        self.clock = clock
        self.started = now = clock()
        #: the time of the last tick
        self.now = now
        self.clients: OrderedDict[str, ClientState] = OrderedDict()
        self.forgotten = 0
        # counters of requests and answers
        self.batches = 0
        self.registrations = 0
        self.positions = 0
        self.bad = 0
        #: Part 2 messages (the ring's; their peers are shown with the ring, not here)
        self.ring_messages = 0
        self.answers = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.finished_total = 0
        # latency histogram: counts per bucket (the last one is +Inf), and the sum
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        # the tracker's own counters, as of the last tick
        self.tracker = TrackerCounters()
        # request rate: (time, requests per second) for each second
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY_SECONDS)
        self._mark_time = now
        self._mark_requests = 0
        # log events for the driver (register, finished, refused: the info ones)
        self.record_events = events
        self.events: list[dict[str, Any]] = []
        self.suppressed = 0
        #: the last ``feed`` events in words, for the dashboard (None: ``feed`` 0)
        self.feed = Feed(feed) if feed else None

    # -------------------------------------------------------------- the hot path

    @property
    def requests(self) -> int:
        return self.registrations + self.positions + self.bad + self.ring_messages

    def observe(
        self,
        peer: Sequence[Any],
        transport: str,
        requests: Sequence[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        """One batch of requests from ``peer`` (an address tuple), answered at once."""
        self.batches += 1
        self.answers += answers
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.latency_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
        self.latency_sum += latency
        if requests and all(type(r) is RingMessage for r in requests):
            self.ring_messages += len(requests)
            return  # a peer of the ring, not a client of Part 1
        host = _host(peer)
        c = self.clients.get(host)
        if c is None:
            c = self._new_client(host, transport)
        else:
            self.clients.move_to_end(host)
            c.last_seen = self.clock()
            if transport not in c.transports:
                c.transports = "tcp+udp"
        before = self.registrations + self.bad
        n = self.n
        seen = c.seen
        fetched = c.fetched
        positions = 0
        for r in requests:
            if isinstance(r, Position):
                i = r.index
                if 0 <= i < n:
                    positions += 1
                    if not c.finished:
                        if seen is None:
                            seen = self._positions(c)
                        if not seen[i]:
                            seen[i] = 1
                            fetched += 1
                            if fetched == n:
                                c.fetched = fetched
                                self._finish(c, transport)
                                seen = None
                    continue
                self._refuse(
                    c,
                    transport,
                    f"position {i} is out of range 0..{n - 1}",
                    False,
                    words=out_of_range(i, i, n),
                )
            elif isinstance(r, Register):
                self._register(c, transport)
                seen, fetched = None, 0
            elif isinstance(r, BadRequest):
                self._refuse(c, transport, r.reason, r.fatal, r.data)
            elif isinstance(r, PositionRun):
                # A run of consecutive positions: marked with two C-level calls.
                start, count = r.start, r.count
                end = start + count
                if start < 0 or end > n:
                    why = out_of_range(start, end - 1, n)
                    self._refuse(
                        c, transport, f"positions {start}..{end - 1} out of range", False, words=why
                    )
                    continue
                positions += count
                if c.finished:
                    continue
                if seen is None:
                    seen = self._positions(c)
                new = seen.count(0, start, end)
                if new:
                    seen[start:end] = bytes([1]) * count
                    fetched += new
                    if fetched == n:
                        c.fetched = fetched
                        self._finish(c, transport)
                        seen = None
        c.fetched = fetched
        self.positions += positions
        c.requests += positions + self.registrations + self.bad - before

    def _new_client(self, host: str, transport: str) -> ClientState:
        now = self.clock()
        self._make_room(CLIENT_COST)
        c = ClientState(host, now, now, transport, since=now)
        self.clients[host] = c
        self.held += CLIENT_COST
        if len(self.clients) > self.max_clients:
            self._forget_oldest()
        return c

    def _positions(self, c: ClientState) -> bytearray:
        """A client starts fetching: one byte per position, within the memory limit."""
        self._make_room(self.n, keep=c)
        c.seen = seen = bytearray(self.n)
        self.held += self.n
        return seen

    def _drop_positions(self, c: ClientState) -> None:
        if c.seen is not None:
            self.held -= len(c.seen)
            c.seen = None

    def _make_room(self, size: int, keep: ClientState | None = None) -> None:
        """Forget the least recently seen clients until ``size`` more bytes fit."""
        while self.held + size > self.max_bytes and self.clients:
            oldest = next(iter(self.clients.values()))
            if oldest is keep:
                if len(self.clients) == 1:
                    return
                self.clients.move_to_end(oldest.address)
                continue
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, c = self.clients.popitem(last=False)
        self._drop_positions(c)
        self.held -= CLIENT_COST
        self.forgotten += 1

    def _register(self, c: ClientState, transport: str) -> None:
        self.registrations += 1
        c.registrations += 1
        c.since = self.clock()
        self._drop_positions(c)
        c.fetched = 0
        c.finished = False
        c.finished_at = None
        self._event("register", c, transport, registrations=c.registrations, items=self.n)
        if self.feed is not None:
            self.feed.add(
                self.clock(), "register", c.address, registered_words(self.n, c.registrations)
            )
        if self.n == 0:
            self._finish(c, transport)

    def _finish(self, c: ClientState, transport: str) -> None:
        c.finished = True
        c.finished_at = now = self.clock()
        self._drop_positions(c)
        self.finished_total += 1
        seconds = round(now - c.since, 3)
        self._event(
            "finished",
            c,
            transport,
            items=self.n,
            seconds=seconds,
            registrations=c.registrations,
        )
        if self.feed is not None:
            self.feed.add(now, "finished", c.address, finished_words(self.n, seconds))

    def _refuse(
        self,
        c: ClientState,
        transport: str,
        reason: str,
        fatal: bool,
        data: bytes = b"",
        words: str = "",
    ) -> None:
        self.bad += 1
        c.bad += 1
        if len(reason) > MAX_REASON:
            reason = reason[: MAX_REASON - 3] + "..."
        c.last_bad = reason

        def why() -> str:
            return words or explain(data, reason)

        if self._log_room():
            c.last_why = why()
            self._log("refused", c, transport, reason=reason, why=c.last_why, closed=fatal)
        if self.feed is not None:
            entry = self.feed.add(self.clock(), "refused", c.address, why, reason)
            c.last_why = entry.text

    def _log_room(self) -> bool:
        """True if an event may be recorded for the log now (else it is counted)."""
        if not self.record_events:
            return False
        if len(self.events) >= MAX_PENDING_EVENTS:
            self.suppressed += 1
            return False
        return True

    def _log(self, name: str, c: ClientState, transport: str, **fields: Any) -> None:
        self.events.append(
            {
                "time": self.clock(),
                "event": name,
                "client": c.address,
                "transport": transport,
                **fields,
            }
        )

    def _event(self, name: str, c: ClientState, transport: str, **fields: Any) -> None:
        if self._log_room():
            self._log(name, c, transport, **fields)

    def ring_event(self, e: RingEvent) -> None:
        """Something happened to the ring (Part 2): a log event and a line of the feed."""
        now = self.clock()
        if self._log_room():
            fields: dict[str, Any]
            if e.kind == "refused":
                fields = {"client": e.ip, "transport": "tcp", "handle": e.handle}
                fields.update(why=e.why, closed=False)
            else:
                fields = {"handle": e.handle, "address": e.address}
                if e.kind in ("join", "refresh"):
                    fields["neighbour"] = e.neighbour
                if e.kind == "join":
                    fields["hosts"] = None if e.hosts is None else e.hosts[0]
                if e.kind == "prune":
                    fields["why"] = e.why
                if e.kind == "peer_finished":
                    fields["items"] = self.n
                fields["peers"] = e.peers
            self.events.append({"time": now, "event": e.kind, **fields})
        if self.feed is not None:
            who = e.ip if e.kind == "refused" else e.handle
            key = e.why if e.kind == "refused" else ""
            self.feed.add(now, e.kind, who, lambda: ring_words(e, self.n), key)

    # ------------------------------------------------------------------- the driver

    def tick(self, tracker: TrackerCounters | None = None) -> None:
        """Record the request rate once a second; take the tracker's counters (and an
        event when it refused connections)."""
        self.now = now = self.clock()
        if tracker is not None:
            refused = tracker.refused - self.tracker.refused
            if refused > 0:  # (a warning: recorded even when other events are not)
                self.events.append(
                    {
                        "time": now,
                        "event": "refused_connections",
                        "count": refused,
                        "reason": "too many open connections",
                        "open_connections": tracker.open_connections,
                    }
                )
                if self.feed is not None:
                    open_now = f"{tracker.open_connections:,} open"
                    self.feed.add(
                        now,
                        "refused_connections",
                        "tracker",
                        f"refused {refused:,} connections: too many open ({open_now})",
                    )
            self.tracker = tracker
        elapsed = now - self._mark_time
        if elapsed >= 1.0 or elapsed < 0:
            total = self.requests
            rate = (total - self._mark_requests) / elapsed if elapsed > 0 else 0.0
            self.history.append((now, rate))
            self._mark_time, self._mark_requests = now, total

    def drain_events(self) -> tuple[list[dict[str, Any]], int]:
        """The events since the last call (each a dict with its ``time`` and ``event``
        name), and how many more were dropped."""
        events, self.events = self.events, []
        suppressed, self.suppressed = self.suppressed, 0
        return events, suppressed

    def rate(self, window: float = RATE_WINDOW) -> float:
        """Requests per second over the last ``window`` seconds of history."""
        if not self.history:
            return 0.0
        newest = self.history[-1][0]
        points = [r for t, r in self.history if t > newest - window]
        return sum(points) / len(points)

    def counts(self) -> dict[str, int]:
        """Clients known, fetching and finished."""
        finished = sum(1 for c in self.clients.values() if c.finished)
        fetching = sum(
            1 for c in self.clients.values() if not c.finished and (c.registrations or c.fetched)
        )
        return {
            "known": len(self.clients),
            "fetching": fetching,
            "finished": finished,
            "forgotten": self.forgotten,
            "max": self.max_clients,
        }

    def summary(self) -> dict[str, Any]:
        """The periodic summary log line's fields."""
        t = self.tracker
        return {
            "time": self.now,
            "event": "summary",
            "clients": len(self.clients),
            "finished": sum(1 for c in self.clients.values() if c.finished),
            "requests": self.requests,
            "registrations": self.registrations,
            "bad": self.bad,
            "rate": round(self.rate(), 1),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "open_connections": t.open_connections,
            "refused_connections": t.refused,
        }

    def status(self) -> dict[str, Any]:
        """Everything the dashboard shows, as JSON-ready data."""
        t = self.tracker
        n = self.n
        return {
            **self.info,
            "time": self.now,
            "started": self.started,
            "uptime": round(self.now - self.started, 3),
            "items": n,
            "rate": round(self.rate(), 3),
            "rate_window": RATE_WINDOW,
            "history": [[round(ts, 3), round(r, 3)] for ts, r in self.history],
            "requests": {
                "total": self.requests,
                "register": self.registrations,
                "position": self.positions,
                "bad": self.bad,
                "ring": self.ring_messages,
            },
            "answers": self.answers,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "connections": {
                "open": t.open_connections,
                "accepted": t.accepted,
                "refused": t.refused,
                "evicted": t.evicted,
                "dropped_idle": t.dropped_idle,
                "dropped_slow": t.dropped_slow,
            },
            "datagrams": t.datagrams,
            "unanswered_datagrams": t.unanswered_datagrams,
            "faults_injected": {kind: int(t.faults.get(kind, 0)) for kind in FAULT_KINDS},
            "latency": {
                "buckets": list(LATENCY_BUCKETS),
                "counts": list(self.latency_counts),
                "sum": self.latency_sum,
                "count": self.batches,
            },
            "clients": self.counts(),
            "client_list": [
                c.to_json(n) for c in sorted(self.clients.values(), key=_by_first_seen)
            ],
            "feed": self.feed.to_json() if self.feed is not None else [],
        }


def _by_first_seen(c: ClientState) -> tuple[float, str]:
    return (c.first_seen, c.address)
