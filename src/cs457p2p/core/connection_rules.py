"""The tracker's rules for one TCP connection and for one UDP datagram, sans I/O: bytes,
the time and how much is already queued for the client go in; the answers to write,
whether to close, whether to keep reading and the next deadline come out. The asyncio
tracker (:mod:`cs457p2p.tracker.server`) only moves the bytes.

TCP, one :class:`ConnectionRules` per connection:

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

Budgets, so that one client's flood never reaches another:

* each step parses at most ``turn_input`` bytes and answers at most ``turn_output``
  bytes; what is left waits for the next step (:attr:`ConnectionRules.has_work`), which
  the driver takes on a later turn of its loop, after the other connections' turns;
* answers queued for the client (not yet read by it) stay under ``queue`` bytes (one
  answer larger than that is written alone), and under the tracker's total (``spare``);
* received bytes not yet parsed stay under ``backlog``: beyond it the driver stops
  reading (:attr:`ConnectionRules.wants_input`) until they are parsed.

UDP, :func:`answer_datagram`: one datagram is one request, or several back to back; the
answer is one datagram holding the bytes TCP would send, cut after the last whole answer
that fits in three times the request datagram (RFC 9000's amplification limit: a forged
source address cannot make the tracker a reflector) and in a datagram. Padding a request
with spaces buys room for longer answers. An empty datagram is answered by nothing.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .database import Database
from .requests import (
    BadRequest,
    Position,
    PositionRun,
    Register,
    Request,
    RequestParser,
    RingMessage,
    lone_digits,
)
from .ring import Ring
from .wire import BAD_REQUEST, BAD_REQUEST_TEXT, MAX_DATAGRAM, MAX_REQUEST
from .wire2 import TRACKER_NAME, Said, encode_message, parse

__all__ = [
    "ABORT",
    "AMPLIFICATION",
    "CLOSE",
    "KEEP",
    "UNLIMITED",
    "ConnectionRules",
    "Datagram",
    "Limits",
    "Responder",
    "Step",
    "answer_datagram",
    "request_count",
]

#: What a :class:`Step` tells the driver to do after writing its answers.
KEEP, CLOSE, ABORT = "keep", "close", "abort"
#: The most a request datagram may bring back, in multiples of its own size.
AMPLIFICATION = 3
#: ``spare`` when the tracker sets no total.
UNLIMITED = sys.maxsize
#: Bytes of a connection's backlog parsed at a time.
_SLICE = 1024
#: Bytes of a request datagram parsed at a time (parsing stops once the answers to what
#: is parsed fill the answer datagram).
_DATAGRAM_SLICE = 2048


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


class Responder:
    """The tracker's answer to each request, from its database's pre-encoded answers,
    and for Part 2 messages from its :class:`~cs457p2p.core.ring.Ring` (None: Part 2 is
    off, and ``ring_off`` says why to whoever sends one)."""

    __slots__ = ("count_answer", "db", "n", "ring", "ring_off")

    def __init__(self, db: Database, ring: Ring | None = None, ring_off: str = "") -> None:
        self.db = db
        self.n = len(db)
        self.count_answer = db.count_answer
        self.ring = ring
        self.ring_off = ring_off

    def answer(self, request: Request) -> bytes | memoryview:
        """The bytes that answer one request (a run: all its answers, back to back)."""
        if isinstance(request, PositionRun):
            return self.db.answer_run(request.start, request.count)
        if isinstance(request, Position):
            if 0 <= request.index < self.n:
                return self.db.answer(request.index)
            return BAD_REQUEST
        if isinstance(request, Register):
            return self.count_answer
        if isinstance(request, RingMessage):
            return self.ring_answer(request) if request.answer is None else request.answer
        return BAD_REQUEST

    def ring_answer(self, message: RingMessage) -> bytes:
        """What the ring answers ``message`` (it acts on it: call once per message).
        Without a ring, or without the sender's address (a datagram: Part 2 is TCP
        only), it is refused."""
        if self.ring is None or not message.peer:
            return encode_message(Said(TRACKER_NAME, self.ring_off or BAD_REQUEST_TEXT))
        reply = self.ring.answer(parse(message.value), message.peer, message.at, message.registers)
        return encode_message(reply)

    def answers(self, requests: Sequence[Request]) -> list[bytes | memoryview]:
        return [self.answer(r) for r in requests]

    def size(self, requests: Sequence[Request]) -> int:
        """Bytes that the answers to ``requests`` take (without building them)."""
        off = self.db.offsets
        total = 0
        for r in requests:
            if isinstance(r, PositionRun):
                total += off[r.start + r.count] - off[r.start]
            else:
                total += len(self.answer(r))
        return total

    def take(
        self, pending: deque[Request], budget: int, at_least_one: bool
    ) -> tuple[list[Request], list[bytes | memoryview]]:
        """Answer the requests at the front of ``pending`` whose answers fit in
        ``budget`` bytes (a run is cut after the last whole answer that fits; with
        ``at_least_one``, the first answer is given even when it alone is larger).
        Removes what it answers from ``pending``."""
        taken: list[Request] = []
        answers: list[bytes | memoryview] = []
        db = self.db
        while pending:
            request = pending[0]
            if isinstance(request, PositionRun):
                fit = db.run_fitting(request.start, request.count, budget) if budget > 0 else 0
                if not fit and at_least_one and not answers:
                    fit = 1
                if not fit:
                    break
                run = db.answer_run(request.start, fit)
                if fit < request.count:
                    pending[0] = PositionRun(request.start + fit, request.count - fit)
                    taken.append(PositionRun(request.start, fit))
                    answers.append(run)
                    break
                pending.popleft()
                taken.append(request)
                answers.append(run)
                budget -= len(run)
                continue
            answer = self.answer(request)
            if len(answer) > budget and not (at_least_one and not answers):
                break
            pending.popleft()
            taken.append(request)
            answers.append(answer)
            budget -= len(answer)
        return taken, answers


# ---------------------------------------------------------------------------- TCP


class ConnectionRules:
    """The rules of one TCP connection (see the module's docstring).

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
        #: Part 2 messages of the parser already answered by the ring
        self.ring_seen = 0
        #: Part 2 REGISTERs received (the ring takes one a connection)
        self.registers = 0
        self.parser = RequestParser(limits.max_request, responder.n)
        #: bytes received, not yet parsed
        self.backlog = bytearray()
        #: requests parsed, not yet answered (in order)
        self.pending: deque[Request] = deque()
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
            requests = [self._ring(r) if type(r) is RingMessage else r for r in requests]
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

    def _ring(self, message: Request) -> Request:
        """A Part 2 message, stamped with who sent it and when, and answered by the ring
        now, in the order messages come."""
        assert isinstance(message, RingMessage)
        stamped = RingMessage(message.value, self.peer, self.last, registers=self.registers)
        if message.is_register:
            self.registers += 1
        answer = self.responder.ring_answer(stamped)
        return RingMessage(stamped.value, stamped.peer, stamped.at, answer)

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
        requests, answers = self.responder.take(self.pending, budget, at_least_one=queued == 0)
        then = KEEP
        if self.closing and not self.pending:
            self.closed = True
            then = CLOSE
        return Step(requests, answers, then)


# ---------------------------------------------------------------------------- UDP


@dataclass(frozen=True, slots=True)
class Datagram:
    """The answer to one request datagram: the ``payload`` to send back (b"": send
    nothing), the requests it answers (a prefix of those asked) and how many answers it
    holds."""

    payload: bytes
    answered: list[Request]
    count: int


def answer_datagram(
    data: bytes, responder: Responder, max_request: int = MAX_REQUEST, room: int = MAX_DATAGRAM
) -> Datagram:
    """Parse one request datagram and pack its answers into one datagram of at most
    ``room`` bytes and at most :data:`AMPLIFICATION` times the request's size, cut after
    the last whole answer that fits (nothing, when not even the first fits)."""
    budget = min(room, AMPLIFICATION * len(data))
    request = data.rstrip(b" ")  # (padding, which buys room: skipped in one go)
    parser = RequestParser(max_request, run_limit=responder.n)
    # Parsed a slice at a time, and no further than what can be answered: a datagram of
    # requests costs in proportion to the answers it can get, not to its length.
    requests: list[Request] = []
    wanted = 0
    for k in range(0, len(request), _DATAGRAM_SLICE):
        parsed = parser.feed(request[k : k + _DATAGRAM_SLICE])
        requests += parsed
        wanted += responder.size(parsed)
        if wanted > budget:
            break
    else:
        requests += parser.flush()
    if not requests:
        requests = [BadRequest("empty datagram", fatal=True)]
    taken, answers = responder.take(deque(requests), budget, at_least_one=False)
    payload = bytes(answers[0]) if len(answers) == 1 else b"".join(answers)
    return Datagram(payload, taken, request_count(taken))
