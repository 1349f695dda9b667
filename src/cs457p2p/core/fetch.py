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

The session's one loop is :meth:`Fetch.next_step`: the drivers (blocking sockets, asyncio)
ask it what to do next and do it, nothing more: run an :class:`Exchange` (REGISTER, the
probe) on a new connection and report its end (:meth:`Fetch.ended`, or
:meth:`Fetch.not_connected`), wait until :meth:`Fetch.next_timer` (the backoff before a
connection is tried again), or collect the rest the tracker's way.

Time is passed in, in aioquic's shape: every exchange (a connection's request and the
answers to it: :class:`Registration`, :class:`Probe`, :class:`OneAnswer`,
:class:`PipelineReader`) says until when it waits (:meth:`Exchange.next_timer`), and
:meth:`Exchange.on_timer` raises the :class:`ClientError` of a wait that has run out:
each answer must be whole within ``timeout`` seconds of its request or of the answer
before it, however its bytes trickle in.

Connections that answer nothing count as failures: :meth:`Fetch.retry_delay` and
:meth:`Fetch.count_connection` end the run after ``max_retries`` in a row. Everything the
tracker does wrong surfaces as a :class:`~cs457p2p.core.errors.RemoteProtocolError`;
:meth:`Fetch.client_error` words it for the phase it happened in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .addresses import DEFAULT_HOST, DEFAULT_PORT, format_address
from .answers import interpret_item
from .collection import Collection
from .decoder import DecodeError, Value
from .errors import LocalProtocolError, RemoteProtocolError
from .exchanges import (
    ANSWER_FRAME,
    PERSISTENT,
    REFERENCE,
    TIMEOUT,
    UNKNOWN,
    ClientError,
    Exchange,
    OneAnswer,
    PipelineReader,
    Probe,
    Registration,
    check_count,
    waiting_error,
)

if TYPE_CHECKING:
    from .trace import Tracer

__all__ = [
    "ANSWER_FRAME",
    "DONE",
    "MAX_ITEMS",
    "ONESHOT",
    "PERSISTENT",
    "PIPELINE",
    "PROBE",
    "REFERENCE",
    "REGISTER_PHASE",
    "TIMEOUT",
    "UNKNOWN",
    "WAIT",
    "ClientConfig",
    "ClientError",
    "Exchange",
    "Fetch",
    "FetchResult",
    "OneAnswer",
    "PipelineReader",
    "Probe",
    "Progress",
    "Registration",
    "check_count",
    "client_error",
    "waiting_error",
]

Progress = Callable[[int, int], None]
#: The largest N a client or a peer takes from the tracker (a lying tracker cannot make
#: it allocate for more).
MAX_ITEMS = 10_000_000
#: The phases of a session (:attr:`Fetch.phase`).
REGISTER_PHASE, PROBE, PIPELINE, ONESHOT, DONE = "register", "probe", "pipeline", "oneshot", "done"
#: What :meth:`Fetch.next_step` says while a connection may not be tried yet.
WAIT = "wait"


@dataclass(frozen=True)
class ClientConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    transport: str = "tcp"
    #: seconds to wait for any one step: a connection, or the next bytes of an answer
    timeout: float = TIMEOUT
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
        return ClientError(f"refused {what}: {error}", limit=error.limit)
    return ClientError(str(error), limit=error.limit)


class Fetch:
    """One TCP client session's state and decisions (see the module's docstring).

    A driver runs it by :meth:`next_step` until it says ``done``, then :meth:`result`:
    the exchanges it gives (REGISTER, the probe) each on a new connection, reported with
    :meth:`ended` or :meth:`not_connected`; the pipelined or the
    one-request-per-connection fetch, telling :meth:`count_connection` how each of its
    connections went."""

    def __init__(self, config: ClientConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.coll: Collection | None = None
        self.mode = UNKNOWN
        self.connections = 0
        self.failures = 0
        #: when a connection may be tried again (None: now)
        self._retry_at: float | None = None

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

    # ------------------------------------------------------------ the session's loop

    def next_step(self, now: float) -> Registration | Probe | str:
        """What the driver does next, the session's one loop: run the exchange returned
        on a new connection (REGISTER on the first of the tracker's addresses that
        accepts, the probe on the one that answered it), then report :meth:`ended` (or
        :meth:`not_connected`); ``wait``: sleep until :meth:`next_timer`; ``oneshot`` or
        ``pipeline``: collect the rest that way; ``done``: :meth:`result`."""
        self.on_timer(now)
        if self._retry_at is not None:
            return WAIT
        phase = self.phase
        if phase == REGISTER_PHASE:
            return self.registration()
        if phase == PROBE:
            return self.probe()
        return phase

    def next_timer(self) -> float | None:
        """When the next connection may be tried (None: no wait)."""
        return self._retry_at

    def on_timer(self, now: float) -> None:
        """The time is ``now``: a wait that has run out ends."""
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None

    def ended(self, exchange: Exchange) -> None:
        """``exchange``'s connection has ended (closed, or all of it read): N learnt
        (or the error of a REGISTER not answered), the probe's lesson."""
        if isinstance(exchange, Registration):
            if exchange.n is None:
                raise exchange.closed_error()
            self.registered(exchange.n)
        elif isinstance(exchange, Probe):
            self.probe_finished(exchange)

    def not_connected(self, exchange: Exchange, error: ClientError, now: float) -> None:
        """``exchange``'s connection could not be opened (``error`` says why): for
        REGISTER, the run ends; a probe's positions go back, and the next try waits
        (:meth:`retry_delay`)."""
        if isinstance(exchange, Registration):
            raise error
        if isinstance(exchange, Probe):
            exchange.coll.give_back(exchange.outstanding)
        self._retry_at = now + self.retry_delay(error)

    # -------------------------------------------------------------------- exchanges

    def registration(self) -> Registration:
        return Registration(self.config.max_items, self.config.timeout, self.address)

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
        config = self.config
        return Probe(self._collection(), config.timeout, self.address, self.report_progress)

    def pipeline_reader(self) -> PipelineReader:
        """A persistent connection's requests and answers."""
        config = self.config
        return PipelineReader(self._collection(), config.window, config.timeout, self.address)

    def one_answer(self, position: int) -> OneAnswer:
        """One request on a connection of its own."""
        return OneAnswer(position, self.config.timeout, self.address)

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
