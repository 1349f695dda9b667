"""The client's fetch, sans I/O: every decision of a TCP client session, made once, for
the blocking driver (:mod:`cs457p2p.client.blocking`) and the asyncio one
(:mod:`cs457p2p.client.pipeline`) alike. The drivers only move bytes.

A session goes through phases (:attr:`Fetch.phase`):

1. ``register``: REGISTER on a connection of its own (the reference closes after one
   answer); :class:`Registration` reads N.
2. ``probe``: one connection asks for two positions at once (:class:`Probe`). Both
   answered: the tracker keeps connections open (ours). One answered then EOF, or
   ``'Bad request'`` first: it reads one request per connection (reference-style).
3. ``pipeline`` (the rest asked in runs over a few persistent connections, read by
   :class:`PipelineReader`) or ``oneshot`` (one request per connection, as a reference
   client, :meth:`Fetch.place_one`).
4. ``done``: :meth:`Fetch.result` assembles and checks the message.

Connections that answer nothing count as failures: :meth:`Fetch.retry_delay` and
:meth:`Fetch.count_connection` end the run after ``max_retries`` in a row. Everything the
tracker does wrong surfaces as a :class:`~cs457p2p.core.errors.RemoteProtocolError`;
:meth:`Fetch.client_error` words it for the phase it happened in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .addresses import format_address
from .answers import AnswerParser, decode_items_fast, interpret_count, interpret_item
from .collection import Collection
from .decoder import DecodeError, NeedData, Value, decode_prefix, describe
from .errors import LocalProtocolError, RemoteProtocolError
from .wire import (
    BAD_REQUEST_TEXT,
    ITEM_HEAD_SIZE,
    ITEM_TAIL,
    MAX_ANSWER,
    encode_position,
    position_run_bytes,
)

if TYPE_CHECKING:
    from .trace import Tracer

__all__ = [
    "DONE",
    "MAX_ITEMS",
    "ONESHOT",
    "PERSISTENT",
    "PIPELINE",
    "PROBE",
    "REFERENCE",
    "REGISTER_PHASE",
    "UNKNOWN",
    "ClientConfig",
    "ClientError",
    "Fetch",
    "FetchResult",
    "PipelineReader",
    "Probe",
    "Progress",
    "Registration",
    "check_count",
    "client_error",
]

Progress = Callable[[int, int], None]
#: The largest N a client or a peer takes from the tracker (a lying tracker cannot make
#: it allocate for more).
MAX_ITEMS = 10_000_000
#: Bytes of one of our item answers beyond its VALUE (the head and the tail).
ANSWER_FRAME = ITEM_HEAD_SIZE + len(ITEM_TAIL)

#: What a session knows of the tracker: nothing yet, that it keeps connections open
#: (pipelining), or that it answers one request per connection (reference-style).
UNKNOWN, PERSISTENT, REFERENCE = "unknown", "persistent", "reference"
#: The phases of a session (:attr:`Fetch.phase`).
REGISTER_PHASE, PROBE, PIPELINE, ONESHOT, DONE = "register", "probe", "pipeline", "oneshot", "done"


class ClientError(Exception):
    """The client could not get a correct, complete message; the text says why."""


@dataclass(frozen=True)
class ClientConfig:
    host: str = "localhost"
    port: int = 7777
    transport: str = "tcp"
    #: seconds to wait for any one step: a connection, or the next bytes of an answer
    timeout: float = 10.0
    #: local address to connect from (127.0.0.2 looks like another host on loopback)
    bind: str | None = None
    #: requests in flight on one persistent connection
    window: int = 1 << 17
    #: persistent connections used against a pipelining tracker
    connections: int = 2
    #: threads, each with one blocking one-request connection at a time, against a
    #: reference-style tracker (2 to 4 measured alike, 1 and 6 slower)
    reference_connections: int = 4
    #: refuse a REGISTER answer larger than this (a lying tracker cannot exhaust memory)
    max_items: int = MAX_ITEMS
    #: refuse VALUEs that add up to more than this many bytes (valid but huge answers)
    max_message: int = Collection.MAX_BYTES
    #: consecutive connections that answer nothing before giving up
    max_retries: int = 5
    #: seconds between two item requests (0: none): with a pause, one request a
    #: connection, one connection at a time, as the course's clients do
    pace: float = 0.0
    #: UDP: sockets with a request in flight at once
    udp_lanes: int = 16
    #: UDP: aim for answer datagrams of about this many bytes
    udp_datagram: int = 8192
    #: --trace: each message sent and received, as a line (None: off)
    trace: Tracer | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FetchResult:
    message: str
    n: int
    connections: int  # TCP connections, or UDP sockets, opened
    reference_style: bool
    transport: str = "tcp"

    def __repr__(self) -> str:
        # Short: asyncio.run() formats its task's repr (and so its result's) while it
        # restores the SIGINT handler; a million-item message took 43 ms to repr.
        return (
            f"FetchResult(message=<{len(self.message)} characters>, n={self.n},"
            f" connections={self.connections}, reference_style={self.reference_style},"
            f" transport={self.transport!r})"
        )


def client_error(error: RemoteProtocolError, registering: bool = False) -> ClientError:
    """The tracker broke the protocol: the one line a client says about it."""
    if isinstance(error, DecodeError):
        what = "the tracker's REGISTER answer" if registering else "an answer from the tracker"
        return ClientError(f"refused {what}: {error}")
    return ClientError(str(error))


def check_count(n: int, max_items: int) -> int:
    """``n`` from a REGISTER answer, unless it is more than the client accepts."""
    if n > max_items:
        raise RemoteProtocolError(
            f"tracker says N = {describe(n)}, more than the limit of {max_items} (--max-items)"
        )
    return n


class Registration:
    """The answer to REGISTER, read as it arrives; ``n`` once it is whole."""

    def __init__(self, max_items: int) -> None:
        self.parser = AnswerParser()
        self.max_items = max_items
        self.n: int | None = None

    def feed(self, data: bytes) -> int | None:
        """Add bytes; N once the answer is whole. Raises RemoteProtocolError."""
        answers = self.parser.feed(data)
        if not answers:
            return None
        self.n = check_count(interpret_count(answers[0]), self.max_items)
        return self.n

    @staticmethod
    def closed() -> RemoteProtocolError:
        return RemoteProtocolError("tracker closed the connection without answering REGISTER")


class Probe:
    """The first exchange of a collection. Two positions are asked at once on one
    connection (:meth:`request`); the answers (:meth:`feed`, then :meth:`finish` when the
    connection ends or :attr:`done`) say how the tracker wants to be asked. Answered
    items are placed; the rest go back to the collection."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll
        self.outstanding: deque[int] = deque(coll.take(2))
        self.sent = len(self.outstanding)
        self.answered = 0
        self.mode = UNKNOWN
        self.parser = AnswerParser()

    def request(self) -> bytes:
        return b"".join(map(encode_position, self.outstanding))

    @property
    def done(self) -> bool:
        """Nothing more to read: all answered, or the tracker's way is known."""
        return not self.outstanding or self.mode != UNKNOWN

    @property
    def waiting_for(self) -> int:
        return self.outstanding[0] if self.outstanding else -1

    def feed(self, data: bytes) -> None:
        """Read answers; raises RemoteProtocolError on any fault of the tracker."""
        coll = self.coll
        for value in self.parser.feed(data):
            if not self.outstanding:
                raise RemoteProtocolError("tracker sent more answers than requests")
            if not self.answered and value == BAD_REQUEST_TEXT:
                # A tracker that reads one request per connection but refuses two back
                # to back: ask one at a time (a real refusal of a position then shows up
                # there).
                self.mode = REFERENCE
                return
            position = self.outstanding.popleft()
            seq, text = interpret_item(value, coll.n)
            coll.place(position, seq, text)
            self.answered += 1
        if self.answered >= 2:
            self.mode = PERSISTENT

    def finish(self) -> bool | None:
        """The connection has ended: learn what one answer then EOF says, give back what
        was not answered. Returns whether the connection counts as answering (None: it
        does not count either way)."""
        unanswered = bool(self.outstanding)
        if unanswered:
            if self.answered == 1 and self.sent >= 2:
                self.mode = REFERENCE  # one answer, then EOF: one request per connection
            self.coll.give_back(self.outstanding)
        answering = bool(self.answered) or self.mode != UNKNOWN
        return answering if answering or unanswered else None


class PipelineReader:
    """One persistent connection's requests in flight and the answers to them: runs of
    consecutive positions are asked (:meth:`requests`) and answered in order
    (:meth:`feed`). Answers in our tracker's own shape are read in bulk
    (:func:`~cs457p2p.core.answers.decode_items_fast`); any other answer goes through
    the restricted decoder, one at a time."""

    __slots__ = ("answered", "buf", "coll", "given_back", "outstanding", "runs", "window")

    def __init__(self, coll: Collection, window: int) -> None:
        self.coll = coll
        self.window = window
        self.buf = b""
        self.runs: deque[list[int]] = deque()  # [next position, still to answer]
        self.outstanding = 0
        self.answered = 0
        self.given_back = 0

    @property
    def waiting_for(self) -> int:
        """The position whose answer comes next (0 when none is awaited)."""
        return self.runs[0][0] if self.runs else 0

    @property
    def wants_more(self) -> bool:
        """Half the window or more is free: time to ask for more."""
        return self.outstanding <= self.window // 2

    def requests(self) -> bytes:
        """The requests that fill the window again (b"" when there is nothing to ask)."""
        runs = self.coll.take_runs(self.window - self.outstanding)
        for start, count in runs:
            self.runs.append([start, count])
            self.outstanding += count
        return b"".join([position_run_bytes(a, m) for a, m in runs])

    def feed(self, data: bytes) -> None:
        """Place the answers in ``data``; raises RemoteProtocolError."""
        buf = self.buf + data if self.buf else data
        coll = self.coll
        n = coll.n
        runs = self.runs
        pos = 0
        size = len(buf)
        while runs and pos < size:
            head = runs[0]
            seqs, texts, end = decode_items_fast(buf, pos, head[1], n)
            got = len(seqs)
            if got:
                # (our answers' VALUEs are what their bytes hold beyond head and tail)
                coll.place_run(head[0], seqs, texts, end - pos - ANSWER_FRAME * got)
                pos = end
            else:  # not our shape, or not all here: the restricted decoder decides
                decoded = decode_prefix(buf, pos, max_size=MAX_ANSWER)
                if isinstance(decoded, NeedData):
                    break
                value, end = decoded
                seq, text = interpret_item(value, n)
                coll.place(head[0], seq, text)
                pos, got = end, 1
            head[0] += got
            head[1] -= got
            self.outstanding -= got
            self.answered += got
            if not head[1]:
                runs.popleft()
        if pos < size and not runs:
            raise RemoteProtocolError("tracker sent more answers than requests")
        self.buf = buf[pos:]

    def give_back(self) -> int:
        """The connection has ended: its unanswered positions go back to be asked again
        (returns how many)."""
        positions = [p for a, m in self.runs for p in range(a, a + m)]
        if positions:
            self.given_back += len(positions)
            self.coll.give_back(positions)
        self.runs.clear()
        self.outstanding = 0
        return len(positions)


class Fetch:
    """One TCP client session's state and decisions (see the module's docstring).

    A driver runs it as: :meth:`registered` with N; :meth:`probe` and
    :meth:`probe_finished` while :attr:`phase` is ``probe``; then the pipelined or the
    one-request-per-connection fetch, telling :meth:`count_connection` how each
    connection went; finally :meth:`result`."""

    def __init__(self, config: ClientConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.coll: Collection | None = None
        self.mode = UNKNOWN
        self.connections = 0
        self.failures = 0

    @property
    def address(self) -> str:
        return format_address(self.config.host, self.config.port)

    @property
    def phase(self) -> str:
        coll = self.coll
        if coll is None:
            return REGISTER_PHASE
        if coll.complete:
            return DONE
        if self.mode == UNKNOWN:
            return PROBE
        return ONESHOT if self.mode == REFERENCE else PIPELINE

    def registration(self) -> Registration:
        return Registration(self.config.max_items)

    def registered(self, n: int) -> Collection:
        """REGISTER answered N: the collection of N slots (with a pace: no probe, one
        request a connection)."""
        self.coll = Collection(n, self.config.max_message)
        if self.config.pace > 0:
            self.mode = REFERENCE
        return self.coll

    def _collection(self) -> Collection:
        if self.coll is None:
            raise LocalProtocolError("the session has not registered yet")
        return self.coll

    # -------------------------------------------------------------------- the probe

    def probe(self) -> Probe:
        return Probe(self._collection())

    def probe_finished(self, probe: Probe) -> None:
        """The probe's connection has ended: learn the tracker's way, count it."""
        answered = probe.finish()
        self.mode = probe.mode
        if answered is not None:
            self.count_connection(answered)
        self.report_progress()

    # --------------------------------------------------------- one request per connection

    def place_one(self, position: int, value: Value) -> None:
        """A reference-style exchange answered ``value`` to ``position``."""
        coll = self._collection()
        seq, text = interpret_item(value, coll.n)
        coll.place(position, seq, text)
        self.count_connection(answered=True)
        self.report_progress()

    # ------------------------------------------------------------- the failure rules

    def retry_delay(self, error: ClientError) -> float:
        """A connection could not be opened: how long to wait before the next try
        (longer each time), or raise ``error`` after ``max_retries`` failures in a row."""
        if self.failures >= self.config.max_retries:
            raise error
        self.failures += 1
        return 0.05 * (1 << self.failures)

    def count_connection(self, answered: bool) -> None:
        """Note whether a connection answered anything; too many silent ones in a row
        end the run."""
        if answered:
            self.failures = 0
            return
        self.failures += 1
        if self.failures > self.config.max_retries:
            raise ClientError(
                f"tracker at {self.address} closed {self.failures} connections in a row "
                "without answering"
            )

    # ------------------------------------------------------------------ the outcome

    def waiting_error(self, what: str) -> ClientError:
        """Nothing came for ``--timeout`` seconds while waiting for ``what``."""
        return ClientError(
            f"timed out after {self.config.timeout:g} s waiting for {what} from {self.address}"
        )

    def client_error(self, error: RemoteProtocolError) -> ClientError:
        """The tracker broke the protocol: the one line that says so."""
        return client_error(error, registering=self.phase == REGISTER_PHASE)

    def report_progress(self) -> None:
        coll = self.coll
        if self.progress is not None and coll is not None:
            self.progress(coll.answered, coll.n)

    def result(self) -> FetchResult:
        """The assembled message; raises RemoteProtocolError (CollectionError) when the
        answers cannot make a correct one."""
        coll = self._collection()
        return FetchResult(coll.message(), coll.n, self.connections, self.mode == REFERENCE)
