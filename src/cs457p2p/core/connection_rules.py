"""The rules of one TCP connection, sans I/O: framing, budgets and timeouts, the same
whoever answers. Bytes, the time and how much is already queued for the client go in;
the answers to write, whether to close, whether to keep reading and the next deadline
come out. The answers come from a :class:`Responder`: the tracker's database and ring
(:class:`~cs457p2p.core.tracker_responder.TrackerResponder`), or a peer's state
(:class:`~cs457p2p.core.peer_port.PeerPort`); the drivers (:mod:`cs457p2p.tracker.server`,
:mod:`cs457p2p.peer.node`) only move the bytes.

One :class:`ConnectionRules` per connection:

* a connection whose first read holds one request alone is reference-style: its answer,
  then EOF at once (as the reference, which reads one ``recv`` per connection);
* a connection that carries a second request (bytes after the first, or two requests in
  its first read) is pipelining: every answer, in order, until the client closes, goes
  quiet for ``idle_timeout`` seconds, or sends something the stream cannot recover from
  (answered ``'Bad request'``, then closed);
* a first read of nothing but ASCII digits is one whole position (as the reference's
  single ``recv`` takes it); later, an unterminated digit run is complete after
  ``digit_wait`` seconds of silence (``b"1"`` then ``b"2"`` is position 12), or at EOF;
* a request must be whole within ``request_timeout`` seconds of its first byte: then it
  is answered ``'Bad request'`` and the connection closed (aborted, if answers are still
  being written).

Answers are made when a step takes them (:class:`Pending`), not when the requests are
parsed: a Part 2 message, stamped with who sent it and when as it is parsed, is acted on
by the responder then, exactly once and in order, however many steps its answer waits.

Budgets, so that one client's flood never reaches another:

* each step parses at most ``turn_input`` bytes and answers at most ``turn_output``
  bytes; what is left waits for the next step (:attr:`ConnectionRules.has_work`), which
  the driver takes on a later turn of its loop, after the other connections' turns;
* answers queued for the client (not yet read by it) stay under ``queue`` bytes (one
  answer larger than that is written alone), and under the tracker's total (``spare``);
* received bytes not yet parsed stay under ``backlog``: beyond it the driver stops
  reading (:attr:`ConnectionRules.wants_input`) until they are parsed.

One UDP datagram's rules, which hold its answers to a budget of their own, are in
:mod:`~cs457p2p.core.datagram_rules`.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .requests import (
    BadRequest,
    PositionRun,
    Request,
    RequestParser,
    RingMessage,
    lone_digits,
)
from .wire import BAD_REQUEST, MAX_REQUEST

__all__ = [
    "ABORT",
    "CLOSE",
    "KEEP",
    "UNLIMITED",
    "ConnectionRules",
    "Limits",
    "Pending",
    "Responder",
    "Step",
    "request_count",
]

#: What a :class:`Step` tells the driver to do after writing its answers.
KEEP, CLOSE, ABORT = "keep", "close", "abort"
#: ``spare`` when the tracker sets no total.
UNLIMITED = sys.maxsize
#: Bytes of a connection's backlog parsed at a time.
_SLICE = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The per-connection limits: each default here is the tracker's (and its command
    line's), written nowhere else. Built by keyword."""

    #: bytes of one request, at most
    max_request: int = MAX_REQUEST
    #: seconds a request may take to arrive whole, from its first byte
    request_timeout: float = 10.0
    #: seconds a connection may stay silent
    idle_timeout: float = 60.0
    #: seconds of silence that end an unterminated ASCII digit run
    digit_wait: float = 0.010
    #: bytes of answers queued for one client, at most
    queue: int = 256 * 1024
    #: bytes of requests parsed in one step, at most
    turn_input: int = 64 * 1024
    #: requests parsed in one step, at most (a run of positions counts as one): what
    #: bounds a step's work, since a byte of single positions costs forty times a byte
    #: of a run
    turn_requests: int = 256
    #: bytes of answers produced in one step, at most (cheap: a run of positions is
    #: answered with one slice of the database's buffer)
    turn_output: int = 256 * 1024
    #: bytes received but not yet parsed before the driver stops reading
    backlog: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Step:
    """What the driver does now: write ``answers`` (the answers to ``requests``), then
    ``then`` (``KEEP`` the connection, ``CLOSE`` it once the answers are written, or
    ``ABORT`` it at once, answers unwritten). ``why`` names a timeout that ended it."""

    requests: Sequence[Request] = ()
    answers: list[bytes | memoryview] = field(default_factory=list)
    then: str = KEEP
    why: str = ""


def request_count(requests: Sequence[Request]) -> int:
    """Requests in ``requests``, a run counting each of its positions."""
    return sum(r.count if isinstance(r, PositionRun) else 1 for r in requests)


# ------------------------------------------------------------------ the answers


class Responder(Protocol):
    """Whoever answers a connection's requests: what :class:`ConnectionRules` needs of
    it (the tracker's :class:`~cs457p2p.core.tracker_responder.TrackerResponder`, a
    peer's :class:`~cs457p2p.core.peer_port.PeerPort`)."""

    @property
    def run_limit(self) -> int:
        """The parser makes runs of positions (:class:`PositionRun`) below this
        position only (0: none; then :meth:`run_fitting` is never asked)."""
        ...

    def answer(self, request: Request) -> bytes | memoryview:
        """The bytes that answer ``request`` (a run: all its answers, back to back),
        made now. A Part 2 message is acted on as it is answered: the rules ask once
        per message, in the order messages came."""
        ...

    def run_fitting(self, run: PositionRun, budget: int) -> int:
        """How many of ``run``'s first answers fit in ``budget`` bytes."""
        ...


class Pending:
    """The requests parsed and not yet answered, in order, each answered when it is
    taken. An answer made that did not fit the budget of its turn is kept here for the
    next (so a Part 2 message is never acted on twice)."""

    __slots__ = ("_made", "requests", "responder")

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: deque[Request] = deque()
        #: the answer to ``requests[0]``, made already (None: not yet)
        self._made: bytes | memoryview | None = None

    def __bool__(self) -> bool:
        return bool(self.requests)

    def __len__(self) -> int:
        return len(self.requests)

    def extend(self, requests: Iterable[Request]) -> None:
        self.requests.extend(requests)

    def take(
        self, budget: int, at_least_one: bool
    ) -> tuple[list[Request], list[bytes | memoryview]]:
        """Answer the requests at the front whose answers fit in ``budget`` bytes (a run
        is cut after the last whole answer that fits; with ``at_least_one``, the first
        answer is given even when it alone is larger), and remove them."""
        taken: list[Request] = []
        answers: list[bytes | memoryview] = []
        pending, responder = self.requests, self.responder
        while pending:
            request = pending[0]
            if isinstance(request, PositionRun):
                fit = responder.run_fitting(request, budget) if budget > 0 else 0
                if not fit and at_least_one and not answers:
                    fit = 1
                if not fit:
                    break
                if fit < request.count:
                    part = PositionRun(request.start, fit)
                    pending[0] = PositionRun(request.start + fit, request.count - fit)
                    taken.append(part)
                    answers.append(responder.answer(part))
                    break
                pending.popleft()
                run = responder.answer(request)
                taken.append(request)
                answers.append(run)
                budget -= len(run)
                continue
            answer = self._made
            if answer is None:
                answer = responder.answer(request)
            if len(answer) > budget and not (at_least_one and not answers):
                self._made = answer  # (made: given on a later turn, not made again)
                break
            self._made = None
            pending.popleft()
            taken.append(request)
            answers.append(answer)
            budget -= len(answer)
        return taken, answers


# ---------------------------------------------------------------------------- TCP


class ConnectionRules:
    """The rules of one TCP connection (see the module's docstring), its answers from
    ``responder``.

    Feed it what the connection brings: :meth:`received` (bytes), :meth:`ended` (EOF
    from the client), :meth:`expired` (the time has reached :attr:`deadline`, or the
    digit wait :attr:`digit_at`) and :meth:`resume` (a later turn, for the work left).
    Each takes what is already queued for the client (``queued``) and what the tracker
    can still queue in all (``spare``), and returns the :class:`Step` to take. Once a
    step has said ``CLOSE`` or ``ABORT``, everything after is ignored."""

    __slots__ = (
        "backlog",
        "closed",
        "closing",
        "digit_at",
        "eof",
        "last",
        "limits",
        "parser",
        "partial_since",
        "peer",
        "pending",
        "persistent",
        "registers",
        "requests",
        "responder",
        "ring_seen",
    )

    def __init__(self, limits: Limits, responder: Responder, now: float, peer: str = "") -> None:
        self.limits = limits
        self.responder = responder
        #: the client's address (what a Part 2 REGISTER's neighbour address is)
        self.peer = peer
        #: Part 2 messages of the parser already stamped
        self.ring_seen = 0
        #: Part 2 REGISTERs received (the ring takes one a connection)
        self.registers = 0
        self.parser = RequestParser(limits.max_request, responder.run_limit)
        #: bytes received, not yet parsed
        self.backlog = bytearray()
        #: requests parsed, not yet answered (in order)
        self.pending = Pending(responder)
        #: requests parsed so far (a run counts each position)
        self.requests = 0
        #: a pipelining client: bytes came after its first request
        self.persistent = False
        #: the connection is to close once everything pending is answered
        self.closing = False
        self.eof = False
        self.closed = False
        #: when bytes last arrived
        self.last = now
        #: when the first byte of the unfinished request arrived (None: none pending)
        self.partial_since: float | None = None
        #: when a pending digit run counts as complete (None: no digit run pending)
        self.digit_at: float | None = None

    # ----------------------------------------------------------------- what it says

    @property
    def deadline(self) -> float:
        """The earliest time at which :meth:`expired` has something to do."""
        due = self.last + self.limits.idle_timeout
        if self.partial_since is not None:
            due = min(due, self.partial_since + self.limits.request_timeout)
        if self.digit_at is not None:
            due = min(due, self.digit_at)
        return due

    @property
    def has_work(self) -> bool:
        """Bytes to parse or requests to answer are left: call :meth:`resume` on a later
        turn (once the client has read, when it is answers that wait)."""
        return not self.closed and bool(self.backlog or self.pending)

    @property
    def wants_input(self) -> bool:
        """Keep reading from the client (False: its unparsed bytes are over the
        backlog limit; stop reading until :meth:`resume` has parsed them)."""
        return not self.closed and len(self.backlog) < self.limits.backlog

    # ---------------------------------------------------------------- what goes in

    def received(self, data: bytes, now: float, queued: int = 0, spare: int = UNLIMITED) -> Step:
        """Bytes from the client, at ``now``."""
        if self.closed or self.eof:
            return Step()
        self.last = now
        if self.requests and not self.persistent:
            self.persistent = True  # bytes after the first request: a pipelining client
        if not self.requests and not self.backlog and not self.parser.buffered:
            lone = lone_digits(data)
            if lone is not None:  # a first read of digits alone: one whole position,
                self._parsed([lone], at_eof=False)  # as the reference's recv takes it
                return self._answer(queued, spare)
        self.backlog += data
        return self._work(now, queued, spare)

    def resume(self, now: float, queued: int = 0, spare: int = UNLIMITED) -> Step:
        """A later turn: go on with the work left."""
        if self.closed:
            return Step()
        return self._work(now, queued, spare)

    def ended(self, queued: int = 0, spare: int = UNLIMITED) -> Step:
        """The client will send nothing more: once what it sent is parsed, answer a
        trailing digit run (or refuse a cut-off request), then close once the answers
        are written."""
        if self.closed or self.eof:
            return Step()
        self.eof = True
        return self._work(self.last, queued, spare)

    def expired(
        self, now: float, writing: bool = False, queued: int = 0, spare: int = UNLIMITED
    ) -> Step:
        """The time is ``now`` (at or after :attr:`deadline` or :attr:`digit_at`);
        ``writing``: answers are still queued for the client."""
        if self.closed:
            return Step()
        limits = self.limits
        if self.digit_at is not None and now >= self.digit_at:
            self.digit_at = None
            self._parsed(self.parser.flush(), at_eof=False)
            if not self.parser.buffered:
                self.partial_since = None
            step = self._answer(queued, spare)
            if step.requests or step.then != KEEP:
                return step
        if now - self.last >= limits.idle_timeout:
            self.closed = True  # silent, or not reading its answers, for too long
            return Step((), [], ABORT, "idle")
        if self.partial_since is not None and now - self.partial_since >= limits.request_timeout:
            # A request trickling in too slowly (or one that never ends, like b"I5"):
            # answered as the reference would answer a cut-off request, then closed.
            self.closed = True
            if writing or self.pending:
                return Step((), [], ABORT, "slow")
            late = BadRequest(
                f"request not complete within {limits.request_timeout:g} s",
                True,
                self.parser.pending(),
            )
            return Step((late,), [BAD_REQUEST], CLOSE, "slow")
        return Step()

    # ------------------------------------------------------------------ the work

    def _work(self, now: float, queued: int, spare: int) -> Step:
        self._parse()
        parser = self.parser
        if self.eof and not self.backlog:
            self._parsed(parser.flush(), at_eof=True)
            self.closing = True
        if not self.backlog and parser.buffered and not self.closing:
            if self.partial_since is None:
                self.partial_since = now  # (the client's slowness, not ours)
            # (the wait runs from the client's last bytes, however late they are parsed)
            self.digit_at = self.last + self.limits.digit_wait if parser.holds_digits else None
        else:
            self.partial_since = self.digit_at = None
        return self._answer(queued, spare)

    def _parse(self) -> None:
        """Parse the backlog a slice at a time, up to ``turn_input`` bytes or
        ``turn_requests`` requests, once every request parsed before is answered (so
        that what waits is bytes, bounded by ``backlog``, not requests)."""
        backlog = self.backlog
        if not backlog or self.closing or self.pending:
            return
        limits = self.limits
        parsed = objects = 0
        size = _SLICE
        view = memoryview(backlog)
        try:
            while parsed < len(backlog) and parsed < limits.turn_input:
                if objects >= limits.turn_requests:
                    break
                # (slices grow while they are cheap: runs of positions come out as one
                # request each, single positions cost a request every 5 bytes)
                piece = bytes(view[parsed : parsed + min(size, limits.turn_input - parsed)])
                parsed += len(piece)
                requests = self.parser.feed(piece)
                objects += len(requests)
                self._parsed(requests, at_eof=False, more=parsed < len(backlog))
                if self.closing:
                    break
                size *= 2
        finally:
            view.release()
        if self.closing and self.parser.finished:
            backlog.clear()
        else:
            del backlog[:parsed]

    def _parsed(self, requests: list[Request], at_eof: bool, more: bool = False) -> None:
        """Requests parsed (``more``: bytes received after them wait to be parsed)."""
        if self.closing or not requests:
            if self.parser.finished:
                self.closing = True
            return
        if self.parser.ring_messages != self.ring_seen:
            self.ring_seen = self.parser.ring_messages
            requests = [self._stamp(r) if type(r) is RingMessage else r for r in requests]
        before = self.requests
        self.requests = before + request_count(requests)
        self.pending.extend(requests)
        if self.parser.finished:
            self.closing = True  # a fatal bad request: the stream cannot be resynchronised
        elif not self.persistent:
            if self.requests > 1 or self.parser.buffered or more:
                self.persistent = True
            elif before == 0 and not at_eof:
                # Reference style: the first read held one request alone: its answer,
                # then EOF at once. (A client that wants several answers on one
                # connection sends two requests in its first write, as ours does.)
                self.closing = True

    def _stamp(self, message: Request) -> Request:
        """A Part 2 message, stamped with who sent it, when, and the REGISTERs this
        connection sent before it (it is answered, and acted on, when taken)."""
        assert isinstance(message, RingMessage)
        stamped = RingMessage(message.value, self.peer, self.last, self.registers)
        if message.is_register:
            self.registers += 1
        return stamped

    def _answer(self, queued: int, spare: int) -> Step:
        """Answer what fits in this turn and in the client's and the tracker's room."""
        if not self.pending:
            if self.closing:
                self.closed = True
                return Step((), [], CLOSE)
            return Step()
        if spare <= 0:
            return Step()  # the tracker's total is reached: wait for room
        budget = max(0, min(self.limits.turn_output, self.limits.queue - queued, spare))
        requests, answers = self.pending.take(budget, at_least_one=queued == 0)
        then = KEEP
        if self.closing and not self.pending:
            self.closed = True
            then = CLOSE
        return Step(requests, answers, then)
