"""The tracker's rules for one TCP connection and for one UDP datagram, sans I/O: bytes
and the time go in; the requests to answer, whether to close, and the next deadline come
out. The asyncio tracker (:mod:`cs457p2p.tracker.server`) only moves the bytes.

TCP, one :class:`ConnectionRules` per connection:

* a connection whose first read holds one request alone is reference-style: its answer,
  then EOF at once (as the reference, which reads one ``recv`` per connection);
* a connection that carries a second request (bytes after the first, or two requests in
  its first read) is pipelining: every answer, in order, until the client closes, goes
  quiet for ``idle_timeout`` seconds, or sends something the stream cannot recover from
  (answered ``'Bad request'``, then closed);
* an unterminated ASCII digit run is complete after ``digit_wait`` seconds of silence
  (``b"1"`` then ``b"2"`` is position 12), or at EOF;
* a request must be whole within ``request_timeout`` seconds of its first byte: then it
  is answered ``'Bad request'`` and the connection closed (aborted, if answers are still
  being written).

UDP, :func:`answer_datagram`: one datagram is one request, or several back to back; the
answer is one datagram holding the bytes TCP would send, cut after the last whole answer
that fits (the client asks again for the rest); an empty datagram is a bad request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .database import Database
from .requests import BadRequest, Position, PositionRun, Register, Request, RequestParser
from .wire import BAD_REQUEST, MAX_DATAGRAM, MAX_REQUEST

__all__ = [
    "ABORT",
    "CLOSE",
    "KEEP",
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


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-connection limits (the tracker's ``--request-timeout`` and friends)."""

    max_request: int = MAX_REQUEST
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    digit_wait: float = 0.010


@dataclass(frozen=True, slots=True)
class Step:
    """What the driver does now: answer ``requests`` in order, then ``then`` (``KEEP``
    the connection, ``CLOSE`` it once the answers are written, or ``ABORT`` it at once,
    answers unwritten). ``why`` names a timeout that ended the connection."""

    requests: Sequence[Request] = ()
    then: str = KEEP
    why: str = ""


NOTHING = Step()


def request_count(requests: Sequence[Request]) -> int:
    """Requests in ``requests``, a run counting each of its positions."""
    return sum(r.count if isinstance(r, PositionRun) else 1 for r in requests)


class ConnectionRules:
    """The rules of one TCP connection (see the module's docstring).

    Feed it what the connection brings: :meth:`received` (bytes), :meth:`ended` (EOF
    from the client) and :meth:`expired` (the time has reached :attr:`deadline`, or the
    digit wait :attr:`digit_at`). Each returns the :class:`Step` to take. Once a step
    has said ``CLOSE`` or ``ABORT``, everything after is ignored."""

    __slots__ = (
        "closed",
        "digit_at",
        "last",
        "limits",
        "parser",
        "partial_since",
        "persistent",
        "requests",
    )

    def __init__(self, limits: Limits, run_limit: int, now: float) -> None:
        self.limits = limits
        self.parser = RequestParser(limits.max_request, run_limit)
        #: requests answered so far (a run counts each position)
        self.requests = 0
        #: a pipelining client: bytes came after its first request
        self.persistent = False
        self.closed = False
        #: when bytes last arrived
        self.last = now
        #: when the first byte of the unfinished request arrived (None: none pending)
        self.partial_since: float | None = None
        #: when a pending digit run counts as complete (None: no digit run pending)
        self.digit_at: float | None = None

    @property
    def deadline(self) -> float:
        """The earliest time at which :meth:`expired` has something to do."""
        due = self.last + self.limits.idle_timeout
        if self.partial_since is not None:
            due = min(due, self.partial_since + self.limits.request_timeout)
        if self.digit_at is not None:
            due = min(due, self.digit_at)
        return due

    def received(self, data: bytes, now: float) -> Step:
        """Bytes from the client, at ``now``."""
        if self.closed:
            return NOTHING
        self.last = now
        if self.requests and not self.persistent:
            self.persistent = True  # bytes after the first request: a pipelining client
        step = self._decide(self.parser.feed(data), at_eof=False)
        parser = self.parser
        if parser.buffered:
            if self.partial_since is None:
                self.partial_since = now
            waiting = parser.holds_digits and not self.closed
            self.digit_at = now + self.limits.digit_wait if waiting else None
        else:
            self.partial_since = self.digit_at = None
        return step

    def ended(self) -> Step:
        """The client will send nothing more: answer a trailing digit run (or refuse a
        cut-off request), then close once the answers are written."""
        if self.closed:
            return NOTHING
        step = self._decide(self.parser.flush(), at_eof=True)
        self.closed = True
        return Step(step.requests, CLOSE)

    def expired(self, now: float, writing: bool = False) -> Step:
        """The time is ``now`` (at or after :attr:`deadline` or :attr:`digit_at`);
        ``writing``: answers are still queued for the client."""
        if self.closed:
            return NOTHING
        limits = self.limits
        if self.digit_at is not None and now >= self.digit_at:
            self.digit_at = None
            step = self._decide(self.parser.flush(), at_eof=False)
            if not self.parser.buffered:
                self.partial_since = None
            if step.requests:
                return step
        if now - self.last >= limits.idle_timeout:
            self.closed = True  # silent, or not reading its answers, for too long
            return Step((), ABORT, "idle")
        if self.partial_since is not None and now - self.partial_since >= limits.request_timeout:
            # A request trickling in too slowly (or one that never ends, like b"I5"):
            # answered as the reference would answer a cut-off request, then closed.
            self.closed = True
            if writing:
                return Step((), ABORT, "slow")
            late = BadRequest(
                f"request not complete within {limits.request_timeout:g} s", fatal=True
            )
            return Step((late,), CLOSE, "slow")
        return NOTHING

    def _decide(self, requests: list[Request], at_eof: bool) -> Step:
        if not requests:
            return NOTHING
        before = self.requests
        self.requests = before + request_count(requests)
        then = KEEP
        if self.parser.finished:
            then = CLOSE  # a fatal bad request: the stream cannot be resynchronised
        elif not self.persistent:
            if self.requests > 1 or self.parser.buffered:
                self.persistent = True
            elif before == 0 and not at_eof:
                # Reference style: the first read held one request alone: its answer,
                # then EOF at once. (A client that wants several answers on one
                # connection sends two requests in its first write, as ours does.)
                then = CLOSE
        if then != KEEP:
            self.closed = True
        return Step(requests, then)


# ------------------------------------------------------------------ the answers


class Responder:
    """The tracker's answer to each request, from its database's pre-encoded answers."""

    __slots__ = ("count_answer", "db", "n")

    def __init__(self, db: Database) -> None:
        self.db = db
        self.n = len(db)
        self.count_answer = db.count_answer

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
        return BAD_REQUEST

    def answers(self, requests: Sequence[Request]) -> list[bytes | memoryview]:
        return [self.answer(r) for r in requests]


# ---------------------------------------------------------------------------- UDP


@dataclass(frozen=True, slots=True)
class Datagram:
    """The answer to one request datagram: the ``payload`` to send back, the requests
    it answers (a prefix of those asked) and how many answers it holds."""

    payload: bytes
    answered: list[Request]
    count: int


def answer_datagram(
    data: bytes, responder: Responder, max_request: int = MAX_REQUEST, room: int = MAX_DATAGRAM
) -> Datagram:
    """Parse one request datagram and pack the answers into one datagram of at most
    ``room`` bytes, cut after the last whole answer that fits (one answer larger than
    that is sent whole, alone)."""
    parser = RequestParser(max_request, run_limit=responder.n)
    requests = parser.feed(data) + parser.flush() if data else []
    if not requests:
        requests = [BadRequest("empty datagram", fatal=True)]
    db = responder.db
    answers: list[bytes | memoryview] = []
    answered: list[Request] = []
    count = 0
    for request in requests:
        if isinstance(request, PositionRun):
            fit = db.run_fitting(request.start, request.count, room)
            if fit < request.count:
                if not fit and not answers:  # one answer larger than a datagram:
                    fit = 1  # send it anyway
                if fit:
                    answers.append(db.answer_run(request.start, fit))
                    answered.append(PositionRun(request.start, fit))
                    count += fit
                break
        answer = responder.answer(request)
        if len(answer) > room and answers:
            break
        answers.append(answer)
        answered.append(request)
        count += request.count if isinstance(request, PositionRun) else 1
        room -= len(answer)
    payload = bytes(answers[0]) if len(answers) == 1 else b"".join(answers)
    return Datagram(payload, answered, count)
