"""A Part 2 ring simulated in one process: the tracker's :class:`~cs457p2p.core.ring.Ring`
and P :class:`~cs457p2p.core.peer_state.PeerState` objects, the same sans-I/O code the
real tracker and peers run, driven on a virtual clock over a simulated network
(:mod:`.network`).

What the drivers do, the simulator does: a peer registers (the REG_INIT and the
UPDATE_NBRs the ring sends come back after a delay), asks what ``next_ask`` says of
whom it says (its neighbour answers the QUERYs with ``answer_ask`` when they
arrive, the tracker with ``Ring.answer``), and reports back with ``answered`` or
``failed``; the tracker PINGs every peer each ``ping_interval`` and prunes the ones that
do not answer. Under churn, peers go down at random (a Poisson process of ``churn`` per
second), come back ``downtime`` seconds later with nothing, and register again.

Not simulated: CPU time (a message is handled the instant it arrives), the HELD reports
our peers send our tracker for its dashboard, bandwidth.
"""

from __future__ import annotations

import gc
import random
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from heapq import heappop
from typing import Any

from ..core.database import Database
from ..core.peer_state import NEIGHBOUR, Ask, Neighbour, PeerState
from ..core.ring import Ring
from ..core.wire2 import Query, QueryResult, RegInit, Said, UpdateNbr
from .network import Clock, Network

__all__ = ["SimConfig", "SimResult", "simulate"]

TRACKER_IP = "10.255.255.254"
PEER_PORT = 9000

# event kinds
_REGISTER, _REG_INIT, _UPDATE, _WAKE, _ASK, _ANSWERS, _FAILED = range(7)
_TRACKER_ASK, _PING_ROUND, _PINGED, _CHURN, _REJOIN = range(7, 12)


@dataclass(frozen=True)
class SimConfig:
    peers: int
    items: int
    latency: float = 0.010  # one way, seconds
    jitter: float = 0.0
    loss: float = 0.0
    churn: float = 0.0  # peers going down per second
    downtime: float = 5.0  # seconds a peer stays down
    seed: int = 0
    join_window: float = 1.0  # peers register at random times in [0, this)
    ping_interval: float = 20.0
    ping_timeout: float = 5.0
    limit: float = 3600.0  # virtual seconds at most


@dataclass
class SimResult:
    config: SimConfig
    #: virtual seconds until every peer up at that moment held the message (None: not
    #: within the limit)
    converged: float | None
    first_done: float | None
    median_done: float | None
    messages: dict[str, int]
    lost: int
    rejoined: int
    pruned: int
    down_at_end: int
    real_seconds: float
    peak_rss_mb: float
    events: int
    #: the message every peer assembled was the database's, in order
    messages_right: bool = True
    done_times: list[float] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "peers": c.peers,
            "items": c.items,
            "latency_ms": c.latency * 1000,
            "jitter_ms": c.jitter * 1000,
            "loss": c.loss,
            "churn": c.churn,
            "seed": c.seed,
            "converged_s": self.converged,
            "first_done_s": self.first_done,
            "median_done_s": self.median_done,
            "messages": self.messages,
            "messages_total": sum(self.messages.values()),
            "lost": self.lost,
            "rejoined": self.rejoined,
            "pruned": self.pruned,
            "down_at_end": self.down_at_end,
            "messages_right": self.messages_right,
            "real_seconds": round(self.real_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "events": self.events,
        }


class _Peer:
    __slots__ = ("address", "alive", "done", "handle", "inc", "nbr", "nbr_k", "state", "wake")

    def __init__(self, k: int) -> None:
        self.handle = f"p{k}"
        self.address = (f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}", PEER_PORT)
        self.alive = True
        self.inc = 0  # which life (events of an earlier one are dropped)
        self.state = _new_state(self.handle)
        self.wake: float | None = None  # the wake-up scheduled
        self.done = False
        #: the last neighbour asked, and which peer is at its address (None: nobody)
        self.nbr: Neighbour | None = None
        self.nbr_k: int | None = None


_FROM_TRACKER = frozenset({TRACKER_IP})  # (one for all the peers)


def _new_state(handle: str) -> PeerState:
    state = PeerState(handle)
    state.tracker_addresses = _FROM_TRACKER
    return state


def simulate(config: SimConfig) -> SimResult:
    """Run the ring of ``config`` until every peer that is up holds the message (or the
    virtual ``limit`` passes).

    The cyclic garbage collector is paused meanwhile: the run makes millions of small
    objects and no cycles that matter, and every full collection would walk all of the
    peers' state (at 10,000 peers it made the run twice as slow)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Run(config).run()
    finally:
        if enabled:
            gc.enable()


class _Run:
    def __init__(self, c: SimConfig) -> None:
        self.c = c
        self.rng = random.Random(c.seed)
        self.net = Network(c.latency, c.jitter, c.loss)
        self._fixed = c.latency if not c.jitter and not c.loss else None
        self.clock = Clock(self._fixed)
        #: schedule the arrival of a message sent now: (kind, args)
        self._post = self.clock.after_fixed if self._fixed is not None else self._post_late
        self.words = [f"w{i}" for i in range(c.items)]
        order = list(range(c.items))
        self.rng.shuffle(order)
        self.db = Database([(s, self.words[s]) for s in order])
        self.ring = Ring(self.db, max_peers=max(c.peers, 1))
        self.peers = [_Peer(k) for k in range(c.peers)]
        self.by_address = {p.address: k for k, p in enumerate(self.peers)}
        self.by_handle = {p.handle: k for k, p in enumerate(self.peers)}
        self.msgs = dict.fromkeys(
            (
                "REGISTER",
                "REG_INIT",
                "UPDATE_NBR",
                "PING",
                "PING answer",
                "QUERY to a neighbour",
                "QUERY_RESULT from a neighbour",
                "QUERY to the tracker",
                "QUERY_RESULT from the tracker",
                "refused connection",
            ),
            0,
        )
        self._queries = self._results = 0  # (QUERYs between peers, their answers: hot)
        self.alive = c.peers
        self.done_alive = 0
        self.done_times: list[float] = []
        self.converged: float | None = None
        self.lost = self.rejoined = 0
        self.right = True
        self.message = " ".join(self.words)

    # ------------------------------------------------------------------ running

    def run(self) -> SimResult:
        started = time.perf_counter()
        c, clock = self.c, self.clock
        for k, p in enumerate(self.peers):
            clock.at(self.rng.random() * c.join_window, _REGISTER, k, p.inc)
        clock.at(c.ping_interval, _PING_ROUND)
        if c.churn > 0:
            clock.at(self.rng.expovariate(c.churn), _CHURN)
        events = 0
        handlers = (
            self._register,
            self._reg_init,
            self._update,
            self._wake,
            self._ask,
            self._answers,
            self._failed,
            self._tracker_ask,
            self._ping_round,
            self._pinged,
            self._churn,
            self._rejoin,
        )
        if not c.peers:
            self.converged = 0.0
        limit, fifo, heap = c.limit, clock.fifo, clock.heap
        while self.converged is None:  # (Clock.next, inlined: the hottest loop)
            if fifo and (not heap or fifo[0] < heap[0]):
                when, _, kind, args = fifo.popleft()
            elif heap:
                when, _, kind, args = heappop(heap)
            else:  # (nothing left to happen)
                break
            if when > limit:
                break
            clock.now = when
            events += 1
            handlers[kind](*args)
        self.msgs["QUERY to a neighbour"] = self._queries
        self.msgs["QUERY_RESULT from a neighbour"] = self._results
        times = sorted(self.done_times)
        return SimResult(
            c,
            self.converged,
            times[0] if times else None,
            times[len(times) // 2] if times else None,
            dict(self.msgs),
            self.lost,
            self.rejoined,
            self.ring.counters.pruned,
            sum(not p.alive for p in self.peers),
            time.perf_counter() - started,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            events,
            self.right,
            times,
        )

    def _send(self, kind: int, *args: Any) -> None:
        """Schedule the arrival of a message sent now."""
        self._post(kind, args)

    def _post_late(self, kind: int, args: tuple[Any, ...]) -> None:
        self.clock.after(self.net.delay(self.rng), kind, args)

    def _schedule_wake(self, k: int, direct: bool = True) -> None:
        """A wake-up when the peer's state wants one (``direct``: one due now is done at
        once, not queued)."""
        p = self.peers[k]
        when = p.state.wake_at
        if when is None or (p.wake is not None and p.wake <= when):
            return
        if direct and when <= self.clock.now and p.wake is None:
            self._wake(k, p.inc)
            return
        p.wake = max(when, self.clock.now)
        self.clock.at(p.wake, _WAKE, k, p.inc)

    def _current(self, k: int, inc: int) -> _Peer | None:
        p = self.peers[k]
        return p if p.alive and p.inc == inc else None

    # ------------------------------------------------------------------ the tracker

    def _register(self, k: int, inc: int) -> None:
        p = self._current(k, inc)
        if p is None:
            return
        self.msgs["REGISTER"] += 1
        reply = self.ring.join(p.handle, p.address[0], p.address[1], self.clock.now)
        self.msgs["REG_INIT"] += 1
        self._send(_REG_INIT, k, inc, reply)
        self._flush()

    def _flush(self) -> None:
        """The UPDATE_NBRs the ring wants sent."""
        for notice in self.ring.outbox:
            self.msgs["UPDATE_NBR"] += 1
            target = self.by_address.get(notice.to)
            if target is not None:
                self._send(_UPDATE, target, self.peers[target].inc, notice.message)
        self.ring.outbox.clear()

    def _tracker_ask(self, k: int, inc: int, ask: Ask) -> None:
        p = self.peers[k]
        now = self.clock.now
        results = [self.ring.answer(Query(s), p.address[0], now) for s in ask.seqs]
        self.msgs["QUERY_RESULT from the tracker"] += len(results)
        answers = [r for r in results if isinstance(r, (QueryResult, Said))]
        self._send(_ANSWERS, k, inc, ask, answers)

    def _ping_round(self) -> None:
        now = self.clock.now
        results = []
        for member in self.ring.members:
            self.msgs["PING"] += 1
            k = self.by_address.get(member.address)
            ok = k is not None and self.peers[k].alive
            if ok:
                self.msgs["PING answer"] += 1
            results.append((member.handle, ok))
        rtt = 2 * self.c.latency
        self.clock.at(now + min(rtt, self.c.ping_timeout), _PINGED, results)
        self.clock.at(now + self.c.ping_interval, _PING_ROUND)

    def _pinged(self, results: list[tuple[str, bool]]) -> None:
        for handle, ok in results:
            self.ring.ping_result(handle, ok, self.clock.now)
        self._flush()

    # ------------------------------------------------------------------ the peers

    def _reg_init(self, k: int, inc: int, reply: RegInit | Said) -> None:
        p = self._current(k, inc)
        if p is None or not isinstance(reply, RegInit):
            return
        p.state.registered_with(reply, self.clock.now)
        self._check_done(k)
        self._schedule_wake(k)

    def _update(self, k: int, inc: int, message: UpdateNbr) -> None:
        p = self._current(k, inc)
        if p is None:
            return
        p.state.answer(message, self.clock.now, TRACKER_IP)
        self._schedule_wake(k)

    def _wake(self, k: int, inc: int) -> None:
        p = self.peers[k]
        if not p.alive or p.inc != inc:
            return
        p.wake = None
        state, now = p.state, self.clock.now
        ask = state.next_ask(now)
        if ask is None:
            when = state.wake_at
            if when is not None:
                p.wake = max(when, now)
                self.clock.at(p.wake, _WAKE, k, inc)
            return
        if ask.target == NEIGHBOUR:
            self._queries += len(ask.seqs)
            if ask.neighbour is not p.nbr:  # (a new neighbour: which peer is there?)
                nbr = p.nbr = ask.neighbour
                assert nbr is not None
                # (by its handle, unique here, then its address checked)
                p.nbr_k = self.by_handle.get(nbr.handle)
                if p.nbr_k is not None and self.peers[p.nbr_k].address != nbr.address:
                    p.nbr_k = None
            self._post(_ASK, (p.nbr_k, k, inc, ask))
        else:
            self.msgs["QUERY to the tracker"] += len(ask.seqs)
            self._send(_TRACKER_ASK, k, inc, ask)

    def _ask(self, target: int | None, k: int, inc: int, ask: Ask) -> None:
        """QUERYs arrive at ``target`` (a peer that is down: refused)."""
        holder = self.peers[target] if target is not None else None
        if holder is None or not holder.alive:
            self.msgs["refused connection"] += 1
            self._send(_FAILED, k, inc, ask)
            return
        results = holder.state.answer_ask(ask)
        self._results += len(results)
        self._post(_ANSWERS, (k, inc, ask, results))

    def _answers(self, k: int, inc: int, ask: Ask, results: Sequence[QueryResult | Said]) -> None:
        p = self.peers[k]
        if not p.alive or p.inc != inc:
            return
        state = p.state
        if state.answered(ask, results, self.clock.now) and state.held == state.n:
            self._check_done(k)
        if p.wake is None:  # (as _schedule_wake would: ask again now, or wake later)
            self._wake(k, inc)
        else:
            self._schedule_wake(k)

    def _failed(self, k: int, inc: int, ask: Ask) -> None:
        p = self._current(k, inc)
        if p is None:
            return
        p.state.failed(ask, self.clock.now)
        self._schedule_wake(k)

    def _check_done(self, k: int) -> None:
        p = self.peers[k]
        if p.done or not p.state.done:
            return
        p.done = True
        if p.state.message() != self.message:
            self.right = False
        self.done_alive += 1
        self.done_times.append(self.clock.now)
        if self.done_alive == self.alive:
            self.converged = self.clock.now

    # ------------------------------------------------------------------ churn

    def _churn(self) -> None:
        tries = [self.rng.randrange(len(self.peers)) for _ in range(8)]
        k = next((k for k in tries if self.peers[k].alive), None)
        if k is not None:
            p = self.peers[k]
            p.alive = False
            p.inc += 1
            p.wake = None
            self.alive -= 1
            if p.done:
                self.done_alive -= 1
            self.lost += 1
            self.clock.at(self.clock.now + self.c.downtime, _REJOIN, k)
            if self.done_alive == self.alive and self.done_times:
                self.converged = self.clock.now
        self.clock.at(self.clock.now + self.rng.expovariate(self.c.churn), _CHURN)

    def _rejoin(self, k: int) -> None:
        p = self.peers[k]
        p.alive = True
        p.done = False
        p.state = _new_state(p.handle)
        self.alive += 1
        self.rejoined += 1
        self._send(_REGISTER, k, p.inc)
