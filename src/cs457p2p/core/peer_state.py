"""A Part 2 peer's state, sans I/O: what it holds, who its neighbour is, what to ask
next and of whom, when, and what to answer. The peer's driver
(:mod:`cs457p2p.peer.node`) moves the bytes, and the simulator runs the same object on
a virtual clock; time is passed in. Its port (:mod:`~cs457p2p.core.peer_port`) answers
with it; neither imports anything of the tracker's.

Asking: every SEQNUM it lacks, of its neighbour (at most ``batch`` at a time), at once
again while the neighbour gives something new; while it gives nothing, after a short
backoff (doubling from ``backoff[0]`` to ``backoff[1]`` seconds), and only ``window``
of the SEQNUMs it lacks a time, in turn (a poll costs a QUERY per SEQNUM asked).

Stalled: when a period of ``patience`` seconds (the first from the REG_INIT or a new
neighbour) ends with no new item, or so few that at that pace what is missing would
take more than :data:`STRETCH` more periods, the ring has nothing more to give soon
(what is missing is hosted by no peer in the ring, or a neighbour is dead or stuck): it
asks the tracker, which ours answers (``('QUERY', seq)``), again at once while it
gives; a tracker that refuses is not asked again, and the SEQNUMs nobody has are
:attr:`PeerState.missing`. The default patience, :data:`PATIENCE`, is longer than a
working ring ever makes a peer wait between two new items (docs/PROTOCOL.md has the
figures: a hop of our peers takes milliseconds, the course's peers pause 2-3 s between
QUERYs) and than the gaps between students joining one after another, so that a ring
whose every item is hosted is peer-to-peer.

With ``pace`` (the course's 2-3 s between item requests, for demonstrations), one
SEQNUM is asked at a time, ``pace`` seconds after the last answer.

Bounds on what it holds: N comes from the tracker (over ``max_items``, refused); the
VALUEs held add up to at most ``max_bytes`` characters (:attr:`PeerState.too_large`
says when an answer would go over, :func:`~cs457p2p.core.peer_rounds.over_limit` what
that means); a neighbour or a REG_INIT naming a port out of 1..65535 or an address that
is not one is ignored and counted.

Talking to the tracker beside QUERYs (REGISTER and its retries, whether the tracker is
ours, HELD reports) is its :attr:`PeerState.talk`
(:class:`~cs457p2p.core.peer_talk.TrackerTalk`); a REG_INIT whose N is over
``max_items`` is refused (:meth:`PeerState.reg_init`).

A neighbour that answered one QUERY of several on a connection, then closed (the
course's sample peer), is asked one QUERY a connection from then on:
:data:`ONE_SHOT_ROUND` a round, :data:`ONE_SHOT_PARALLEL` connections at once.

Time: the driver wakes at :meth:`PeerState.next_timer` and calls
:meth:`PeerState.on_timer`, then asks what to send (``talk.next_register``,
:meth:`PeerState.next_ask`, :meth:`PeerState.next_report`); no clock is read here.

Answering: PING with ``('PING', handle)``, QUERY from what it holds (``(None, None)``
otherwise), UPDATE_NBR taken at once. An UPDATE_NBR can arrive before the REG_INIT that
answers the peer's own REGISTER (the course's tracker sends them right after each
registration): the newer neighbour wins, so REG_INIT's neighbour does not replace one
an UPDATE_NBR gave.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from .errors import LocalProtocolError
from .peer_talk import TrackerTalk
from .wire2 import (
    BadMessage,
    Held,
    Message,
    Ping,
    Pong,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    address_problem,
    bad_request,
    port_problem,
)

__all__ = [
    "MAX_BYTES",
    "MAX_ITEMS",
    "NEIGHBOUR",
    "ONE_SHOT_PARALLEL",
    "ONE_SHOT_ROUND",
    "PATIENCE",
    "REFUSED",
    "REGISTERED",
    "STRETCH",
    "TOO_MANY",
    "TRACKER",
    "Ask",
    "Neighbour",
    "PeerCounters",
    "PeerState",
]

#: The answer for a SEQNUM not held (one object: answers are compared by value anyway).
_NOTHING = QueryResult(None, None)
#: No one-shot target yet (one object for every peer: the simulator keeps 100,000)
_NO_ONE: frozenset[object] = frozenset()

#: QUERY_RESULTs shared by every PeerState of a process (the simulator runs 100,000 that
#: hold the same items: one object per item, not one per item per peer), at most this many.
_SHARED: dict[tuple[int, str], QueryResult] = {}
_SHARED_MAX = 1 << 16


def _result(seq: int, value: str) -> QueryResult:
    r = _SHARED.get((seq, value))
    if r is None:
        r = QueryResult(seq, value)
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[(seq, value)] = r
    return r


#: Seconds of a period after which a peer that got nothing new asks the tracker.
PATIENCE = 5.0
#: A period whose pace would need more than this many periods for what is missing is a
#: stall too.
STRETCH = 8
#: Characters of VALUEs a peer holds, at most (``cs457p2p peer --max-message``).
MAX_BYTES = 16 << 20
#: Items a peer takes on, at most (N from the tracker: it holds a slot for each).
MAX_ITEMS = 1_000_000
#: A neighbour that answers one QUERY a connection: QUERYs asked of it in one round,
#: and connections open to it at once.
ONE_SHOT_ROUND = 8
ONE_SHOT_PARALLEL = 4
#: What :meth:`PeerState.reg_init` says of the tracker's answer to REGISTER.
REGISTERED, REFUSED, TOO_MANY = "registered", "refused", "too many items"

#: Whom an :class:`Ask` is for (and where an item came from: those, or ``HOSTED``).
NEIGHBOUR, TRACKER, HOSTED = "neighbour", "tracker", "hosted"


@dataclass(frozen=True, slots=True)
class Neighbour:
    handle: str
    ip: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


@dataclass(slots=True)  # (not frozen: a frozen dataclass is 2.5x slower to make)
class Ask:
    """QUERY these SEQNUMs of ``target`` (:data:`NEIGHBOUR` at ``neighbour``, or
    :data:`TRACKER`). ``below``, set only by :meth:`PeerState.next_ask`: every SEQNUM
    is in ``range(below)`` (the asker's N), which lets a peer with as many items answer
    the whole ask without checking each one (:meth:`PeerState.answer_ask`); 0 for an
    Ask made elsewhere, whose SEQNUMs are checked. ``parallel``: 0, every QUERY on one
    connection; k, one QUERY a connection, k connections at once (a one-shot target)."""

    target: str
    seqs: tuple[int, ...]
    neighbour: Neighbour | None = None
    below: int = field(default=0, init=False, compare=False)
    parallel: int = field(default=0, init=False, compare=False)


@dataclass(slots=True)
class PeerCounters:
    queries_sent: int = 0
    queries_answered: int = 0  # QUERYs from others that it answered
    from_neighbour: int = 0  # items it got from its neighbours
    from_tracker: int = 0
    #: answers ignored: a SEQNUM out of range, or a second, different value for one held
    ignored: int = 0
    conflicts: int = 0
    failures: int = 0  # asks that failed (refused, timed out, cut short)
    updates: int = 0  # UPDATE_NBRs taken
    untrusted_updates: int = 0  # UPDATE_NBRs from elsewhere than the tracker, ignored
    #: neighbours named with a port or an address that cannot be one, ignored
    bad_neighbours: int = 0
    #: a neighbour's answers to an ask went over ``max_bytes`` (core.peer_rounds)
    asks_over_limit: int = 0


class PeerState:
    # (slots: the simulator keeps 100,000 of them)
    __slots__ = (
        "_asking",
        "_cursor",
        "_flowing",
        "_next",
        "_one_shot",
        "_period",
        "_period_items",
        "_quiet",
        "_results",
        "_tracker_gave",
        "_updated",
        "_wait",
        "_wanted",
        "backoff",
        "batch",
        "counters",
        "done_at",
        "handle",
        "held",
        "hosted",
        "max_bytes",
        "max_items",
        "n",
        "neighbour",
        "pace",
        "patience",
        "talk",
        "too_large",
        "tracker_addresses",
        "tracker_answers_queries",
        "value_bytes",
        "window",
    )

    def __init__(
        self,
        handle: str,
        *,
        batch: int = 1024,
        window: int = 64,
        patience: float = PATIENCE,
        backoff: tuple[float, float] = (0.002, 0.05),
        pace: float = 0.0,
        max_bytes: int = MAX_BYTES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self.handle = handle
        self.max_items = max_items
        #: its exchanges with the tracker beside QUERYs (None: it registers elsewhere,
        #: as the simulator's peers do)
        self.talk: TrackerTalk | None = None
        #: targets that answer one QUERY a connection (TRACKER, a neighbour's address)
        self._one_shot: set[object] | frozenset[object] = _NO_ONE
        self.batch = 1 if pace > 0 else batch
        self.window = 1 if pace > 0 else window
        self.pace = pace
        self.max_bytes = max_bytes
        #: characters of the VALUEs held
        self.value_bytes = 0
        #: an answer would have taken the VALUEs held over ``max_bytes`` (ignored)
        self.too_large = False
        self._flowing = True  # the neighbour's last answers held something new
        self._cursor = 0
        self.patience = patience
        self.backoff = backoff
        self.n: int | None = None
        self.hosted: tuple[int, str] | None = None
        #: the answer to a QUERY for each SEQNUM, once N is known: the item held, or
        #: ``(None, None)`` (a QUERY costs a lookup; the objects are shared, see _result)
        self._results: list[QueryResult] = []
        self._wanted: list[int] = []  # what it lacks, in order
        #: how many it holds
        self.held = 0
        self.neighbour: Neighbour | None = None
        self._updated = False  # an UPDATE_NBR gave the neighbour
        self.tracker_answers_queries = True
        #: the addresses the tracker speaks from (empty: any sender is taken)
        self.tracker_addresses: frozenset[str] = frozenset()
        self.counters = PeerCounters()
        self._wait = 0.0  # the current backoff
        self._next = 0.0  # no ask before this time
        self._period = 0.0  # when the current patience period began
        self._period_items = 0  # items held then
        self._quiet = 0.0  # the last new item, neighbour or REG_INIT
        self._tracker_gave = False  # the tracker's last answers held something new
        self._asking: str | None = None  # an ask is under way (to whom)
        self.done_at: float | None = None

    # --------------------------------------------------------------------- reading

    @property
    def registered(self) -> bool:
        return self.n is not None

    @property
    def done(self) -> bool:
        return self.n is not None and self.held == self.n

    @property
    def items(self) -> dict[int, str]:
        """What it holds, SEQNUM: VALUE (a new dict)."""
        return {s: r.value for s, r in enumerate(self._results) if r.value is not None}

    @property
    def wanted(self) -> list[int]:
        """The SEQNUMs it lacks, lowest first."""
        return list(self._wanted)

    @property
    def missing(self) -> list[int]:
        """What it lacks once neither its neighbour nor the tracker gives more (empty
        while there is someone left to ask)."""
        if self.done or self.tracker_answers_queries or self.n is None:
            return []
        return self.wanted

    def message(self) -> str:
        """The assembled message; :class:`~cs457p2p.core.errors.LocalProtocolError`
        before :attr:`done`."""
        if not self.done:
            raise LocalProtocolError("the message is not whole yet")
        return " ".join(r.value for r in self._results if r.value is not None)

    @property
    def wake_at(self) -> float | None:
        """When :meth:`next_ask` may have something to ask (None: nothing until a
        message or an answer comes)."""
        if self._asking is not None or self.n is None or self.held == self.n:
            return None
        return self._next

    def next_timer(self) -> float | None:
        """When the driver is to call :meth:`on_timer`, then ask what to send (None:
        not until a message or an answer comes): a REGISTER to send again, the next
        ask (:attr:`wake_at`)."""
        talk, ask = self.talk, self.wake_at
        due = None if talk is None else talk.due
        if due is None or (ask is not None and ask < due):
            return ask
        return due

    def on_timer(self, now: float) -> None:
        """The time is ``now``: what was due fires (a REGISTER to send again becomes
        ``talk.next_register``'s; the next ask is :meth:`next_ask`'s at ``now``)."""
        if self.talk is not None:
            self.talk.on_timer(now)

    # --------------------------------------------------------------- from the tracker

    def register(self, port: int) -> TrackerTalk:
        """It listens on ``port``: a REGISTER is due (its :attr:`talk` says what to send
        the tracker, and when)."""
        self.talk = TrackerTalk(self.handle, port)
        return self.talk

    def reg_init(self, reply: Message | BadMessage, now: float) -> str:
        """The tracker's answer to its REGISTER: :data:`REGISTERED` (taken, as
        :meth:`registered_with`), or why it cannot take part: :data:`REFUSED` (not a
        REG_INIT), :data:`TOO_MANY` (N over ``max_items``: a slot is held for each)."""
        if not isinstance(reply, RegInit):
            return REFUSED
        if reply.n > self.max_items:
            return TOO_MANY
        self.registered_with(reply, now)
        return REGISTERED

    def probe(self) -> Query:
        """The QUERY that tells whether the tracker is ours (ours answers it)."""
        return Query(self.hosted[0] if self.hosted else 0)

    def next_report(self, now: float, final: bool = False) -> Held | None:
        """The HELD to send the tracker now, if it is ours (:meth:`TrackerTalk.report`)."""
        return None if self.talk is None else self.talk.report(self.held, now, final)

    def registered_with(self, m: RegInit, now: float) -> None:
        """The REG_INIT that answers its REGISTER."""
        self.n = m.n
        if len(self._results) != m.n:  # (a second REG_INIT keeps what it holds, if N agrees)
            self._results = [_NOTHING] * m.n
            self.held = 0
            self._wanted = list(range(m.n))
        if m.item is not None and 0 <= m.item[0] < m.n:
            self.hosted = m.item
            self._take(_result(*m.item), HOSTED)
        if not self._updated and m.nbr_handle is not None:
            assert m.nbr_ip is not None and m.nbr_port is not None
            if self._reachable(m.nbr_ip, m.nbr_port):
                self.neighbour = Neighbour(m.nbr_handle, m.nbr_ip, m.nbr_port)
        self._new_period(now)
        self._next = now
        self._check_done(now)

    # ------------------------------------------------------------------- answering

    def answer(self, message: Message | BadMessage, now: float, sender: str = "") -> Message | None:
        """The answer to a message that came to its port from ``sender`` (an address;
        None: no answer is due). An UPDATE_NBR is taken only from the tracker's
        addresses (:attr:`tracker_addresses`, when known): anyone else could send the
        peer's QUERYs anywhere."""
        if isinstance(message, Ping):
            return Pong(self.handle)
        if isinstance(message, Query):
            return self.answer_queries((message.seq,))[0]
        if isinstance(message, UpdateNbr):
            trusted = self.tracker_addresses
            if trusted and sender not in trusted:
                self.counters.ignored += 1
                self.counters.untrusted_updates += 1
                return None
            self.update(message, now)
            return None
        return bad_request(f"[{self.handle}]")

    def answer_queries(self, seqs: Sequence[int]) -> list[QueryResult]:
        """The answers to QUERYs for ``seqs``, in order (what :meth:`answer` gives each;
        the simulator asks a batch at once)."""
        self.counters.queries_answered += len(seqs)
        results, n = self._results, len(self._results)
        return [results[s] if 0 <= s < n else _NOTHING for s in seqs]  # (any int)

    def answer_ask(self, ask: Ask) -> Sequence[QueryResult]:
        """The answers to another peer's ``ask``, in order: what :meth:`answer_queries`
        gives for its SEQNUMs, looked up at C speed when they are all known to be
        below this peer's N (the simulator's hottest line)."""
        seqs, results = ask.seqs, self._results
        if len(seqs) > 1 and 0 < ask.below <= len(results):
            self.counters.queries_answered += len(seqs)
            answers: tuple[QueryResult, ...] = itemgetter(*seqs)(results)
            return answers
        return self.answer_queries(seqs)

    def update(self, m: UpdateNbr, now: float) -> None:
        """A new neighbour (UPDATE_NBR): ask it at once (one whose port or address
        cannot be one is ignored and counted)."""
        if not self._reachable(m.ip, m.port):
            return
        self.counters.updates += 1
        self._updated = True
        new = Neighbour(m.handle, m.ip, m.port)
        if new != self.neighbour:
            self.neighbour = new
            self._wait = 0.0
            self._next = now
            self._new_period(now)

    def _reachable(self, ip: str, port: int) -> bool:
        """Can a neighbour be at ``ip``, ``port``? (Counted when not.)"""
        if port_problem(port) is None and address_problem(ip) is None:
            return True
        self.counters.bad_neighbours += 1
        self.counters.ignored += 1
        return False

    # ---------------------------------------------------------------------- asking

    def next_ask(self, now: float) -> Ask | None:
        """What to ask now (None: nothing yet; see :attr:`wake_at`). The driver reports
        how it went with :meth:`answered` or :meth:`failed`."""
        if self._asking is not None or now < self._next or self.n is None or self.held == self.n:
            return None
        missing = self._wanted
        if self._tracker_gave or self._stalled(now, len(missing)):
            self._asking = TRACKER
            return self._vouched(Ask(TRACKER, tuple(missing[: self.batch])))
        if self.neighbour is None or self.neighbour.handle == self.handle:
            self._next = max(now, self._quiet + self.patience)  # alone: the tracker
            if not self.tracker_answers_queries:
                self._next = now + self.backoff[1]
            return None
        if self._flowing or len(missing) <= self.window:
            seqs = missing if len(missing) <= self.batch else missing[: self.batch]
        else:  # (a neighbour with nothing new: a few SEQNUMs a time, in turn)
            k = self._cursor % len(missing)
            seqs = missing[k : k + self.window]
            if len(seqs) < self.window:  # (wrapped round: only the window is copied)
                seqs = seqs + missing[: min(k, self.window - len(seqs))]
            self._cursor = k + self.window
        self._asking = NEIGHBOUR
        return self._vouched(Ask(NEIGHBOUR, tuple(seqs), self.neighbour))

    def _vouched(self, ask: Ask) -> Ask:
        """``ask``, its SEQNUMs vouched for (all of them come from :attr:`_wanted`),
        shaped for a one-shot target, and counted."""
        assert self.n is not None
        ask.below = self.n
        if self._one_shot and _key(ask) in self._one_shot:
            ask.seqs = ask.seqs[:ONE_SHOT_ROUND]
            ask.parallel = ONE_SHOT_PARALLEL
        self.counters.queries_sent += len(ask.seqs)
        return ask

    def answered(
        self,
        ask: Ask,
        results: Sequence[QueryResult | Said | BadMessage],
        now: float,
        *,
        connection: bool = False,
    ) -> int:
        """The answers to ``ask`` (in any number: a neighbour may answer only some);
        how many new items they gave. ``connection``: they are all that one connection
        carrying every QUERY of ``ask`` brought; a target that answered some but fewer,
        then closed, is asked one QUERY a connection from then on."""
        self._asking = None
        if connection and not ask.parallel and 1 <= len(results) < len(ask.seqs):
            if not self._one_shot:
                self._one_shot = set()
            assert isinstance(self._one_shot, set)
            self._one_shot.add(_key(ask))
        new = 0
        nothing = results.count(_NOTHING)  # (C speed: most answers are "not held")
        for r in [r for r in results if r is not _NOTHING] if nothing < len(results) else ():
            if isinstance(r, QueryResult):
                if r.seq is not None and r.value is not None:
                    new += self._take(r, ask.target)
            elif ask.target == TRACKER:
                self.tracker_answers_queries = False  # ('[Tracker]', 'Bad request')
                break
            else:
                self.counters.ignored += 1  # not an answer to a QUERY
        if ask.target == NEIGHBOUR:
            self._flowing = new > 0
        else:
            self._tracker_gave = new > 0 and self.tracker_answers_queries
            self._new_period(now)
        if new:
            self._quiet = now
        if self.pace > 0:
            self._next = now + self.pace
        elif new:
            self._wait = 0.0
            self._next = now
        else:
            self._back_off(now)
        self._check_done(now)
        return new

    def failed(self, ask: Ask, now: float) -> None:
        """``ask`` got nothing (refused, timed out, cut short)."""
        self._asking = None
        self.counters.failures += 1
        self._back_off(now)
        if self.pace > 0:
            self._next = max(self._next, now + self.pace)

    # ------------------------------------------------------------------ internals

    def _take(self, r: QueryResult, source: str) -> int:
        """Hold ``r`` (an item: neither part None). A neighbour's answer is kept as it
        is, so that what peers pass on in one process is shared, not copied; the
        tracker's (a new object each) and the hosted item are shared through
        :func:`_result`."""
        seq, results = r.seq, self._results
        assert seq is not None
        if not 0 <= seq < len(results):
            self.counters.ignored += 1
            return 0
        held = results[seq]
        if held is not _NOTHING:
            if held.value != r.value:
                self.counters.conflicts += 1
                self.counters.ignored += 1
            return 0
        assert r.value is not None
        size = len(r.value)
        if self.value_bytes + size > self.max_bytes:
            self.too_large = True
            self.counters.ignored += 1
            return 0
        self.value_bytes += size
        if source != NEIGHBOUR:
            r = _result(seq, r.value)
        results[seq] = r
        self.held += 1
        wanted = self._wanted
        del wanted[bisect_left(wanted, seq)]  # (it was there: the value was None)
        if source == TRACKER:
            self.counters.from_tracker += 1
        elif source == NEIGHBOUR:
            self.counters.from_neighbour += 1
        return 1

    def _stalled(self, now: float, missing: int) -> bool:
        """Nothing new for ``patience`` seconds, or a period that brought so few that
        the rest would take more than STRETCH periods at that pace? (A period that
        ended on pace starts the next one.)"""
        if not self.tracker_answers_queries:
            return False
        if now >= self._quiet + self.patience:
            return True
        if now < self._period + self.patience:
            return False
        if (self.held - self._period_items) * STRETCH < missing:
            return True
        self._new_period(now)
        return False

    def _new_period(self, now: float) -> None:
        self._period = self._quiet = now
        self._period_items = self.held

    def _back_off(self, now: float) -> None:
        low, high = self.backoff
        self._wait = min(high, max(low, self._wait * 2))
        self._next = now + self._wait

    def _check_done(self, now: float) -> None:
        if self.done and self.done_at is None:
            self.done_at = now


def _key(ask: Ask) -> object:
    """Whom ``ask`` goes to: :data:`TRACKER`, or its neighbour's address."""
    return TRACKER if ask.neighbour is None else ask.neighbour.address
