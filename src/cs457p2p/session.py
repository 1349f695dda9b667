"""A TCP client session without an event loop: its configuration, result and errors,
the rules it follows when connections fail, the probe that learns how a tracker wants
to be asked (:class:`Probe`, sans-I/O), and the blocking exchanges that talk to a
reference-style tracker, one request per connection, like the reference client.

``cs457p2p client`` runs a session from here and imports asyncio only when the tracker
turns out to pipeline (:mod:`cs457p2p.client`): against a reference-style tracker a run
is short, and asyncio's import was a twentieth of it. :class:`~cs457p2p.client.Client`
is the same session driven by asyncio (REGISTER and the probe through asyncio streams);
both use :class:`Probe` and the same threads for the reference-style fetch.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .collection import Collection, CollectionError
from .decoder import DecodeError, Value
from .protocol import (
    BAD_REQUEST_TEXT,
    REGISTER,
    AnswerParser,
    ProtocolError,
    encode_position,
    format_address,
    interpret_count,
    interpret_item,
)

__all__ = ["ClientConfig", "ClientError", "FetchResult", "Probe", "Session"]

Progress = Callable[[int, int], None]
#: ``(family, sockaddr)``: one address of the tracker, as ``getaddrinfo`` gives it
Target = tuple[int, tuple[Any, ...]]


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
    #: reference-style tracker (more only add lock contention: 4 measured best)
    reference_connections: int = 4
    #: refuse a REGISTER answer larger than this (a lying tracker cannot exhaust memory)
    max_items: int = 10_000_000
    #: consecutive connections that answer nothing before giving up
    max_retries: int = 5
    #: UDP: sockets with a request in flight at once
    udp_lanes: int = 16
    #: UDP: aim for answer datagrams of about this many bytes
    udp_datagram: int = 8192


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


#: What a session knows of the tracker: nothing yet, that it keeps connections open
#: (pipelining), or that it answers one request per connection (reference-style).
UNKNOWN, PERSISTENT, REFERENCE = "unknown", "persistent", "reference"


class _Outcome:
    """How a reference-style exchange ended without an answer (two instances)."""

    __slots__ = ()


_NOT_CONNECTED = _Outcome()  # a retry with backoff follows
_CLOSED = _Outcome()  # closed (or reset) before a whole answer: asked again


def _error_from(e: DecodeError | ProtocolError | CollectionError) -> ClientError:
    if isinstance(e, DecodeError):
        return ClientError(f"refused an answer from the tracker: {e}")
    return ClientError(str(e))


class Registration:
    """Sans-I/O: the answer to REGISTER, read as it arrives; ``n`` once it is whole."""

    def __init__(self, max_items: int) -> None:
        self.parser = AnswerParser()
        self.max_items = max_items
        self.n: int | None = None

    def feed(self, data: bytes) -> int | None:
        """Add bytes; N once the answer is whole. Raises :class:`ClientError`."""
        try:
            answers = self.parser.feed(data)
            if not answers:
                return None
            n = interpret_count(answers[0])
        except DecodeError as e:
            raise ClientError(f"refused the tracker's REGISTER answer: {e}") from None
        except ProtocolError as e:
            raise ClientError(str(e)) from None
        if n > self.max_items:
            raise ClientError(
                f"tracker says N = {n}, more than the limit of {self.max_items} (--max-items)"
            )
        self.n = n
        return n

    @staticmethod
    def closed() -> ClientError:
        return ClientError("tracker closed the connection without answering REGISTER")


class Probe:
    """Sans-I/O: the first exchange of a collection. Two positions are asked at once on
    one connection (:meth:`request`); the answers (:meth:`feed`, then :meth:`finish`
    when the connection ends or :attr:`done`) say how the tracker wants to be asked.
    Answered items are placed; the rest go back to the collection."""

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
        """Read answers; raises :class:`ClientError` on any fatal fault."""
        coll = self.coll
        try:
            for value in self.parser.feed(data):
                if not self.outstanding:
                    raise ClientError("tracker sent more answers than requests")
                if not self.answered and value == BAD_REQUEST_TEXT:
                    # A tracker that reads one request per connection but refuses two
                    # back to back: ask one at a time (a real refusal of a position then
                    # shows up there).
                    self.mode = REFERENCE
                    return
                position = self.outstanding.popleft()
                seq, text = interpret_item(value, coll.n)
                coll.place(position, seq, text)
                self.answered += 1
        except (DecodeError, ProtocolError, CollectionError) as e:
            raise _error_from(e) from None
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


class Session:
    """One TCP client session's state: what it knows of the tracker, how many
    connections it opened, and how many failed in a row. :meth:`fetch_blocking` runs it
    without an event loop (``cs457p2p client``)."""

    def __init__(
        self, config: ClientConfig | None = None, progress: Progress | None = None
    ) -> None:
        self.config = config or ClientConfig()
        self.progress = progress
        self.connections = 0
        self.mode = UNKNOWN
        self._failures = 0
        self._stopped = False
        self._shared = threading.Condition()  # the reference-style threads' one lock
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        return format_address(self.config.host, self.config.port)

    def _take_over(self, other: Session) -> None:
        """Continue from ``other``: its counts and what it learned of the tracker."""
        self.connections, self.mode, self._failures = other.connections, other.mode, other._failures

    # ------------------------------------------------------------- the failure rules

    def _retry_delay(self, error: ClientError) -> float:
        """A connection could not be opened: how long to wait before the next try
        (longer each time), or raise ``error`` after ``max_retries`` failures in a row."""
        if self._failures >= self.config.max_retries:
            raise error
        self._failures += 1
        return 0.05 * (1 << self._failures)

    def _count_connection(self, answered: bool) -> None:
        """Note whether a connection answered anything; too many silent ones in a row
        end the run."""
        if answered:
            self._failures = 0
            return
        self._failures += 1
        if self._failures > self.config.max_retries:
            raise ClientError(
                f"tracker at {self.address} closed {self._failures} connections in a row "
                "without answering"
            )

    def waiting_error(self, what: str) -> ClientError:
        """Nothing came for ``--timeout`` seconds while waiting for ``what``."""
        return ClientError(
            f"timed out after {self.config.timeout:g} s waiting for {what} from {self.address}"
        )

    def connect_error(self, error: OSError) -> ClientError:
        """Why connecting failed, in one line (a TimeoutError: for --timeout seconds)."""
        if isinstance(error, socket.gaierror):
            return ClientError(f"cannot resolve {self.config.host!r}: {error.strerror}")
        if isinstance(error, TimeoutError):
            return ClientError(
                f"timed out after {self.config.timeout:g} s connecting to {self.address}"
            )
        if isinstance(error, ConnectionRefusedError):
            return ClientError(f"cannot connect to {self.address}: connection refused")
        return ClientError(f"cannot connect to {self.address}: {error.strerror or error}")

    def _report_progress(self, coll: Collection) -> None:
        if self.progress is not None:
            self.progress(coll.answered, coll.n)

    # ------------------------------------------------------------ blocking exchanges

    def _resolve(self) -> list[Target]:
        """Every address of the tracker's host, in the resolver's order."""
        cfg = self.config
        try:
            infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise self.connect_error(e) from None
        except UnicodeError as e:  # (a name IDNA cannot encode)
            raise ClientError(f"cannot resolve {cfg.host!r}: {e}") from None
        return [(family, address) for family, _, _, _, address in infos]

    def _open(self, target: Target, timeout: float | None = None) -> socket.socket:
        """A connected blocking socket with the session's timeout; OSError if the
        tracker cannot be reached, :class:`ClientError` if ``--bind`` cannot be used."""
        cfg = self.config
        sock = socket.socket(target[0], socket.SOCK_STREAM)
        try:
            if cfg.bind:
                try:
                    sock.bind((cfg.bind, 0))
                except OSError as e:
                    raise ClientError(
                        f"cannot connect to {self.address} from {cfg.bind}: {e.strerror or e}"
                    ) from None
            sock.settimeout(cfg.timeout if timeout is None else timeout)
            sock.connect(target[1])
            sock.settimeout(cfg.timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect_blocking(self, targets: Sequence[Target]) -> tuple[socket.socket, Target]:
        """Connect to the first of ``targets`` that accepts (as asyncio does), all
        within the session's timeout, or raise the :class:`ClientError` that says why
        the last one did not."""
        error: OSError = OSError("no address")
        deadline = time.monotonic() + self.config.timeout
        for target in targets:
            left = deadline - time.monotonic()
            if left <= 0:
                error = TimeoutError()
                break
            try:
                sock = self._open(target, left)
            except OSError as e:
                error = e
                continue
            self.connections += 1
            return sock, target
        raise self.connect_error(error)

    def _recv(self, sock: socket.socket, what: str) -> bytes:
        try:
            return sock.recv(1 << 16)
        except TimeoutError:
            raise self.waiting_error(what) from None
        except OSError:  # reset, aborted...
            return b""  # treated as a drop: unanswered positions are asked again

    def register_blocking(self, targets: Sequence[Target]) -> tuple[int, Target]:
        """Send REGISTER on its own connection; return N, and the address that
        answered (the rest of the session uses it)."""
        reg = Registration(self.config.max_items)
        sock, target = self._connect_blocking(targets)
        with sock:
            with contextlib.suppress(OSError):
                sock.sendall(REGISTER)  # (closed already: the read below sees it)
            while True:
                data = self._recv(sock, "the REGISTER answer")
                if not data:
                    raise reg.closed()
                n = reg.feed(data)
                if n is not None:
                    return n, target

    def probe_blocking(self, coll: Collection, target: Target) -> None:
        """One :class:`Probe` on a blocking connection."""
        probe = Probe(coll)
        if not probe.outstanding:
            return
        try:
            sock, _ = self._connect_blocking([target])
        except ClientError as e:
            coll.give_back(probe.outstanding)
            time.sleep(self._retry_delay(e))
            return
        with sock:
            with contextlib.suppress(OSError):
                sock.sendall(probe.request())  # (closed already: the reads below see it)
            while not probe.done:
                data = self._recv(sock, f"item {probe.waiting_for}")
                if not data:
                    break
                probe.feed(data)
                self._report_progress(coll)
        answered = probe.finish()
        self.mode = probe.mode
        if answered is not None:
            self._count_connection(answered)

    def fetch_blocking(self) -> FetchResult:
        """Register, collect every item, and return the assembled message, without an
        event loop unless the tracker pipelines (then asyncio takes over, in
        ``asyncio.run``: inside a running event loop, await ``fetch_message`` instead)."""
        n, target = self.register_blocking(self._resolve())
        coll = Collection(n)
        try:
            while self.mode == UNKNOWN and not coll.complete:
                self.probe_blocking(coll, target)
            if not coll.complete and self.mode == REFERENCE:
                self.fetch_reference_style(coll, target)
            elif not coll.complete:
                from .client import fetch_rest  # asyncio, only for a pipelining tracker

                fetch_rest(self, coll)
            message = coll.message()
        except CollectionError as e:
            raise ClientError(str(e)) from None
        return FetchResult(message, n, self.connections, self.mode == REFERENCE)

    # ------------------------------------------------- the reference-style threads

    def fetch_reference_style(self, coll: Collection, target: Target) -> None:
        """Against a tracker that answers one request per connection: a few threads,
        each running blocking exchanges (connect, send, read the answer, close) like a
        reference client, over one shared :class:`Collection`; returns when it is
        complete, raises the first error of any thread.

        Why threads: asyncio costs about 190 us of CPU per connection here, against
        about 90 us for blocking sockets, and one connection per item is nothing but
        that cost. The threads release the GIL in every system call, so a few of them
        keep a one-connection-at-a-time tracker busy."""
        self.start_reference_style()
        self.run_reference_style(coll, target)

    def start_reference_style(self) -> None:
        """Ready the threads' shared flags (before any thread runs: a :meth:`stop` from
        then on is never lost)."""
        with self._shared:
            self._stopped = False
            self._error = None

    def run_reference_style(self, coll: Collection, target: Target) -> None:
        """The threads of :meth:`fetch_reference_style`, after
        :meth:`start_reference_style`."""
        count = max(1, self.config.reference_connections)
        threads = [
            threading.Thread(
                target=self._reference_worker,
                args=(coll, target),
                name=f"cs457p2p-oneshot-{k}",
                daemon=True,
            )
            for k in range(count)
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self.stop()  # (Ctrl-C, or an error: the others finish their exchange, stop)
            for t in threads:
                if t.is_alive():
                    t.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Tell the reference-style threads to stop after their current exchange."""
        with self._shared:
            self._stopped = True
            self._shared.notify_all()

    def _reference_worker(self, coll: Collection, target: Target) -> None:
        try:
            self._reference_loop(coll, target)
        except BaseException as e:  # handed to fetch_reference_style, which raises it
            with self._shared:
                if self._error is None:
                    self._error = e
                self._stopped = True
                self._shared.notify_all()

    def _reference_loop(self, coll: Collection, target: Target) -> None:
        """One thread of :meth:`fetch_reference_style`: take a position, ask for it on
        its own connection, place the answer; everything shared under one lock."""
        shared = self._shared
        while True:
            with shared:
                while not (self._stopped or coll.complete or coll.queued):
                    shared.wait()  # the others hold what is left: one may give it back
                if self._stopped or coll.complete:
                    shared.notify_all()
                    return
                positions = coll.take(1)
            if not positions:
                continue
            position = positions[0]
            value = self._exchange(position, target)
            with shared:
                if value is not _NOT_CONNECTED:
                    self.connections += 1
                if isinstance(value, _Outcome):
                    coll.give_back(positions)
                    shared.notify_all()
                    if value is _CLOSED:  # closed without a whole answer
                        self._count_connection(answered=False)
                        continue
                    delay = self._retry_delay(
                        ClientError(f"cannot connect to {self.address} again")
                    )
                else:
                    try:
                        seq, text = interpret_item(value, coll.n)
                        coll.place(position, seq, text)
                    except (ProtocolError, CollectionError) as e:
                        raise _error_from(e) from None
                    self._count_connection(answered=True)
                    self._report_progress(coll)
                    if coll.complete:
                        shared.notify_all()
                    continue
            time.sleep(delay)

    def _exchange(self, position: int, target: Target) -> Value | _Outcome:
        """One blocking reference-style exchange: the first whole answer (decoded),
        ``_CLOSED`` if the tracker closes (or resets) first, or ``_NOT_CONNECTED``."""
        try:
            sock = self._open(target)
        except OSError:
            return _NOT_CONNECTED
        try:
            parser = AnswerParser()
            sock.sendall(encode_position(position))
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    return _CLOSED
                values = parser.feed(data)
                if values:
                    return values[0]
        except TimeoutError:
            raise self.waiting_error(f"item {position}") from None
        except DecodeError as e:
            raise _error_from(e) from None
        except OSError:  # reset, aborted...
            return _CLOSED
        finally:
            sock.close()
