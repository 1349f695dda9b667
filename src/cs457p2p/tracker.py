"""The asyncio tracker, over TCP and UDP: a thin transport over
:class:`~cs457p2p.protocol.RequestParser` and the pre-encoded answers of a
:class:`~cs457p2p.database.Database`.

TCP connection rules (see the README):

* a connection whose first request was alone (nothing else received by the time it is
  answered) is reference-style: it gets its answer, then EOF at once;
* a connection that carries a second request is a pipelining client: it stays open and
  gets every answer in order, until it closes, goes idle for ``idle_timeout`` seconds,
  or sends something that cannot be resynchronised (answered ``'Bad request'``, then
  closed);
* an unterminated ASCII digit run is taken as complete after ``digit_wait`` seconds of
  silence (``b"1"`` then ``b"2"`` is position 12).

UDP: one datagram is one request (or several, back to back); the answer is one datagram
holding the same bytes TCP would send, cut after the last whole answer that fits.

Limits: a request is at most ``max_request`` bytes and must arrive within
``request_timeout`` seconds of its first byte; at most ``max_connections`` TCP
connections are open (others are closed at once); a client that does not read its
answers stops being read, then is dropped after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from .database import Database
from .faults import FaultConfig, Faults, TcpFaultWriter, UdpFaultSender
from .protocol import (
    BAD_REQUEST,
    MAX_DATAGRAM,
    MAX_REQUEST,
    BadRequest,
    Position,
    PositionRun,
    Register,
    Request,
    RequestParser,
    format_address,
    lone_request,
)

__all__ = [
    "MAX_DATAGRAM",
    "Observer",
    "SocketPair",
    "Tracker",
    "TrackerConfig",
    "bind_sockets",
    "close_sockets",
    "format_address",
    "unique_addresses",
]

Address = tuple[Any, ...]

TRANSPORTS = ("tcp", "udp", "both")

_BACKLOG = 1024  # listen backlog
_FIRST_READ = 64 * 1024  # bytes read at accept time
_ACCEPT_RETRY = 1.0  # seconds before accepting again after running out of descriptors
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class TrackerConfig:
    host: str = "localhost"
    port: int = 7777
    transport: str = "both"
    idle_timeout: float = 60.0
    request_timeout: float = 10.0
    max_connections: int = 1024
    digit_wait: float = 0.010
    max_request: int = MAX_REQUEST
    #: bytes of answers queued for one TCP client before its requests stop being read
    write_buffer: int = 256 * 1024
    #: seconds a shutdown waits for answers in flight before aborting connections
    drain_timeout: float = 5.0
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")


class Observer(Protocol):
    """Monitoring hook (``Tracker.observer``; see ``monitor.py``): sees each batch of
    requests answered at once (one read from a connection, or one datagram)."""

    def observe(
        self,
        peer: Address,
        transport: str,
        requests: list[Request],
        answers: int,
        bytes_in: int,
        bytes_out: int,
        latency: float,
    ) -> None:
        """``latency``: seconds from the batch's last bytes arriving to its answers
        being handed to the transport."""


class _PlainWriter:
    """Output without faults: straight to the transport."""

    __slots__ = ("transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def write_answers(self, answers: list[bytes | memoryview]) -> None:
        self.transport.write(answers[0] if len(answers) == 1 else b"".join(answers))

    def close(self) -> None:
        t = self.transport
        if t.can_write_eof() and not t.get_write_buffer_size():
            t.write_eof()  # the FIN goes out now, not one loop iteration later
        t.close()

    def cancel(self) -> None:
        pass


class _Connection(asyncio.Protocol):
    """One TCP connection, handed over by the tracker's accept handler with the bytes it
    has read already (``first``), or the tail of an answer it could not send whole
    (``unsent``: write it, then close)."""

    def __init__(self, tracker: Tracker, first: bytes = b"", unsent: bytes = b"") -> None:
        self.tracker = tracker
        self._first = first
        self._unsent = unsent
        self.parser = RequestParser(tracker.config.max_request, run_limit=len(tracker.db))
        self.requests = 0
        self.persistent = False
        self.transport: asyncio.Transport | None = None
        self.out: _PlainWriter | TcpFaultWriter | None = None
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._partial_since: float | None = None
        self._digit_timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._bytes_in = 0  # for the observer only
        self._received_at = 0.0  # for the observer only

    # ------------------------------------------------------------------ asyncio API

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # (uvloop transports do not subclass it)
        self.transport = transport
        tracker = self.tracker
        full = len(tracker._connections) >= tracker.config.max_connections
        if (full or tracker._closing) and not self._unsent:  # (an answer under way: finish)
            tracker.refused += 1
            transport.abort()
            return
        tracker._connections.add(self)
        tracker.accepted += 1
        transport.set_write_buffer_limits(high=tracker.config.write_buffer)
        faults = tracker.faults
        self.out = (
            TcpFaultWriter(faults, transport)
            if faults is not None and faults.config.tcp_active
            else _PlainWriter(transport)
        )
        if self._unsent:
            self.requests = 1
            self.out.write_answers([self._unsent])
            self.out.close()
        elif self._first:
            first, self._first = self._first, b""
            self.data_received(first)

    def data_received(self, data: bytes) -> None:
        self._last = now = self._loop.time()
        if self.tracker.observer is not None:
            self._bytes_in += len(data)
            # (a fine clock: uvloop's loop.time() only moves once per loop iteration)
            self._received_at = time.monotonic()
        if self.requests and not self.persistent:
            self.persistent = True  # bytes after the first request: a pipelining client
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        self._answer(self.parser.feed(data))
        if self.parser.buffered:
            if self._partial_since is None:
                self._partial_since = now
            if self.parser.holds_digits and not self._closing():
                self._digit_timer = self._loop.call_later(
                    self.tracker.config.digit_wait, self._flush_digits
                )
        else:
            self._partial_since = None

    def eof_received(self) -> bool:
        # The client will send nothing more: answer a trailing digit run (or refuse a
        # cut-off request), then close once the answers are written.
        self._answer(self.parser.flush(), at_eof=True)
        if self.out is not None and not self._closing():
            self.out.close()
        return True  # keep the transport until the writer closes it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._digit_timer is not None:
            self._digit_timer.cancel()
        if self.out is not None:
            self.out.cancel()
        tracker = self.tracker
        if self in tracker._connections:
            tracker._connections.discard(self)
            tracker._closed_one()

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    # -------------------------------------------------------------------- internals

    def _closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _flush_digits(self) -> None:
        self._digit_timer = None
        self._answer(self.parser.flush())
        if not self.parser.buffered:
            self._partial_since = None

    def _check_idle(self, now: float) -> None:
        """Drop the connection if it has been silent, or has taken to send a request,
        too long (called by the tracker's sweep, so that a connection costs no timer)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        cfg = self.tracker.config
        quiet = now - self._last
        if quiet >= cfg.idle_timeout:
            self.tracker.dropped_idle += 1
            t.abort()  # silent, or not reading its answers, for too long
            return
        if self._partial_since is not None and now - self._partial_since >= cfg.request_timeout:
            # A request trickling in too slowly (or one that never ends, like b"I5"):
            # answer it as the reference would answer a cut-off request, then close.
            self.tracker.dropped_slow += 1
            if self.out is not None and not t.get_write_buffer_size():
                self.out.write_answers([BAD_REQUEST])
                self.out.close()
            else:
                t.abort()

    def _answer(self, requests: list[Request], at_eof: bool = False) -> None:
        out = self.out
        if not requests or out is None or self._closing():
            return
        before = self.requests
        self.requests = before + len(requests) + (isinstance(requests[0], PositionRun))
        answers = self.tracker.answers_for(requests)
        out.write_answers(answers)
        if self.tracker.observer is not None:
            self._observe(requests, answers)
        if self.parser.finished:  # fatal bad request: the stream cannot be resynchronised
            out.close()
        elif not self.persistent:
            if self.requests > 1 or self.parser.buffered:
                self.persistent = True
            elif before == 0 and not at_eof:
                # Reference style: the first read held one request: its answer, then
                # EOF at once, as the reference does. (A client that wants several
                # answers on one connection sends two requests in its first write, as
                # ours does. Waiting two loop iterations for a late second request cost
                # a reference-style client 7 % of its speed.)
                out.close()

    def _observe(self, requests: list[Request], answers: list[bytes | memoryview]) -> None:
        observer, transport = self.tracker.observer, self.transport
        if observer is None or transport is None:
            return
        bytes_in, self._bytes_in = self._bytes_in, 0
        latency = time.monotonic() - self._received_at
        peer = transport.get_extra_info("peername") or ("?", 0)
        count = sum(r.count if isinstance(r, PositionRun) else 1 for r in requests)
        observer.observe(peer, "tcp", requests, count, bytes_in, sum(map(len, answers)), latency)


class _Datagrams(asyncio.DatagramProtocol):
    """The UDP endpoint: each datagram is parsed on its own and answered with one."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.transport: asyncio.DatagramTransport | None = None
        self.sender: UdpFaultSender | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the selector loop's datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)
        faults = self.tracker.faults
        if faults is not None and faults.config.active:
            self.sender = UdpFaultSender(faults, self._send)

    def _send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        tracker = self.tracker
        tracker.datagrams += 1
        observer = tracker.observer
        started = time.monotonic() if observer is not None else 0.0
        faults = tracker.faults
        if faults is not None and faults.drop():
            return  # the request is lost on the way in
        parser = RequestParser(tracker.config.max_request, run_limit=len(tracker.db))
        requests = parser.feed(data) + parser.flush() if data else []
        if not requests:
            requests = [BadRequest("empty datagram", fatal=True)]
        # Answers, cut after the last whole answer that fits in one datagram (the
        # client asks again for the rest).
        answers: list[bytes | memoryview] = []
        answered: list[Request] = []  # what the answers answer: the observer sees these
        count = 0  # answers sent (a run counts each of its positions)
        room = MAX_DATAGRAM
        for request in requests:
            if isinstance(request, PositionRun):
                fit = tracker.db.run_fitting(request.start, request.count, room)
                if fit < request.count:
                    if not fit and not answers:  # one answer larger than a datagram:
                        fit = 1  # send it anyway
                    if fit:
                        answers.append(tracker.db.answer_run(request.start, fit))
                        answered.append(PositionRun(request.start, fit))
                        count += fit
                    break
            answer = tracker.answer(request)
            if len(answer) > room and answers:
                break
            answers.append(answer)
            answered.append(request)
            count += request.count if isinstance(request, PositionRun) else 1
            room -= len(answer)
        payload = bytes(answers[0]) if len(answers) == 1 else b"".join(answers)
        if self.sender is not None:
            self.sender.sendto(payload, addr)
        else:
            self._send(payload, addr)
        if observer is not None:
            latency = time.monotonic() - started
            observer.observe(addr, "udp", answered, count, len(data), len(payload), latency)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable from a client that left: nothing to do

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sender is not None:
            self.sender.close()


def _raise_fd_limit() -> None:
    """Allow as many open files as the hard limit permits (each connection is one)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


#: The sockets of one address: ``(TCP, UDP)`` with ``--transport both``, ``(TCP, None)``
#: with ``tcp``, ``(UDP, None)`` with ``udp``.
SocketPair = tuple[socket.socket, socket.socket | None]


def unique_addresses(infos: Sequence[tuple[Any, ...]]) -> list[tuple[int, tuple[Any, ...]]]:
    """``(family, sockaddr)`` of each distinct address in ``getaddrinfo`` results."""
    unique: list[tuple[int, tuple[Any, ...]]] = []
    for family, _, _, _, addr in infos:
        if all((family, addr[0]) != (f, a[0]) for f, a in unique):
            unique.append((family, addr))
    return unique


def bind_sockets(
    unique: Sequence[tuple[int, tuple[Any, ...]]],
    port: int,
    transport: str,
    reuse_port: bool = False,
) -> list[SocketPair]:
    """Bind a TCP and (if asked) a UDP socket on each address, all on one port (port 0:
    the first bind picks it). ``reuse_port``: with ``SO_REUSEPORT``, so that other
    sockets (another worker's) can bind the same port and share its traffic."""
    bound: list[SocketPair] = []
    pair: list[socket.socket] = []
    try:
        for family, addr in unique:
            pair = []
            kinds = [socket.SOCK_STREAM] if transport != "udp" else []
            if transport != "tcp":
                kinds.append(socket.SOCK_DGRAM)
            for kind in kinds:
                s = socket.socket(family, kind)
                pair.append(s)
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr[0], port, *addr[2:]))
                port = s.getsockname()[1]
            bound.append((pair[0], pair[1] if len(pair) > 1 else None))
    except OSError:
        close_sockets(bound)
        for s in pair:
            s.close()
        raise
    return bound


def close_sockets(pairs: Sequence[SocketPair]) -> None:
    for first, second in pairs:
        first.close()
        if second is not None:
            second.close()


class Tracker:
    """Serves one database over TCP and/or UDP. Use :meth:`start`, then :meth:`close`."""

    def __init__(self, db: Database, config: TrackerConfig | None = None) -> None:
        self.db = db
        self.config = config or TrackerConfig()
        self.faults = Faults(self.config.faults) if self.config.faults.active else None
        self._connections: set[_Connection] = set()
        self._listeners: list[socket.socket] = []
        self._adopting: set[asyncio.Task[Any]] = set()
        self._udp: list[asyncio.DatagramTransport] = []
        self._all_closed: asyncio.Event | None = None
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every = 1.0
        self.addresses: list[tuple[str, int]] = []
        self._n = len(db)
        self._count_answer = db.count_answer
        #: monitoring hook, off (None) unless a dashboard or logs ask for it
        self.observer: Observer | None = None
        # counters
        self.accepted = 0
        self.refused = 0
        self.dropped_idle = 0
        self.dropped_slow = 0
        self.datagrams = 0
        self.answered_at_accept = 0

    # ------------------------------------------------------------------- answering

    def answer(self, request: Request) -> bytes | memoryview:
        """The bytes that answer one request (a run: all its answers, back to back)."""
        if isinstance(request, PositionRun):
            return self.db.answer_run(request.start, request.count)
        if isinstance(request, Position):
            if 0 <= request.index < self._n:
                return self.db.answer(request.index)
            return BAD_REQUEST
        if isinstance(request, Register):
            return self._count_answer
        assert isinstance(request, BadRequest)
        return BAD_REQUEST

    def answers_for(self, requests: Sequence[Request]) -> list[bytes | memoryview]:
        return [self.answer(r) for r in requests]

    # ------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self, sockets: Sequence[SocketPair] | None = None) -> None:
        """Bind every address of ``config.host`` on one port (``port=0``: a free port,
        the same for all addresses and both transports) and start serving; or serve on
        ``sockets``, bound already (by :func:`bind_sockets`: ``--workers``)."""
        _raise_fd_limit()
        loop = asyncio.get_running_loop()
        cfg = self.config
        if sockets is not None:
            bound = list(sockets)
        else:
            infos = await loop.getaddrinfo(
                cfg.host, cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            unique = unique_addresses(infos)
            last_error: OSError | None = None
            for _attempt in range(20 if cfg.port == 0 else 1):
                try:
                    bound = bind_sockets(unique, cfg.port, cfg.transport)
                    break
                except OSError as e:
                    last_error = e
            else:
                assert last_error is not None
                raise last_error
        self._all_closed = asyncio.Event()
        # One timer for all connections: a timeout is noticed within a quarter of it.
        self._sweep_every = min(max(min(cfg.idle_timeout, cfg.request_timeout) / 4, 0.05), 1.0)
        self._sweeper = loop.call_later(self._sweep_every, self._sweep)
        for first, second in bound:
            if cfg.transport == "udp":
                await self._start_udp(first)
                sockname = first.getsockname()
            else:
                first.listen(_BACKLOG)
                first.setblocking(False)
                self._listeners.append(first)
                loop.add_reader(first.fileno(), self._accept, first)
                sockname = first.getsockname()
                if second is not None:
                    await self._start_udp(second)
            self.addresses.append((str(sockname[0]), int(sockname[1])))

    async def _start_udp(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=sock)
        self._udp.append(transport)

    # ------------------------------------------------------------------- accepting

    def _accept(self, listener: socket.socket) -> None:
        """Accept one connection waiting on ``listener`` (the loop calls again while
        more wait). If its first bytes are there already and hold one whole request,
        alone, it is reference-style: answered and closed here with plain socket calls,
        never becoming an asyncio transport (which cost about 75 us of CPU per
        connection, against 50 us for the blocking reference-style tracker). Any other
        connection goes to asyncio with the bytes read so far; the rules are the same
        either way."""
        try:
            conn, _addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(listener)  # out of descriptors: try again soon
            return  # otherwise (e.g. ECONNABORTED) that client has gone already
        if self._closing or len(self._connections) >= self.config.max_connections:
            self.refused += 1
            conn.close()
            return
        first = b""
        if self.observer is None and (self.faults is None or not self.faults.config.tcp_active):
            try:
                # (MSG_DONTWAIT: no syscall to make the socket non-blocking first)
                first = conn.recv(_FIRST_READ, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass  # nothing sent yet: asyncio will wait for it
            except OSError:
                self.accepted += 1
                conn.close()  # reset already
                return
            else:
                if not first:  # connected and closed without a word
                    self.accepted += 1
                    conn.close()
                    return
                if self._answer_lone(conn, first):
                    return
        self._adopt(conn, first)

    def _answer_lone(self, conn: socket.socket, first: bytes) -> bool:
        """Answer and close ``conn`` if ``first`` is one whole request and nothing more;
        False (nothing done) otherwise."""
        request = lone_request(first, self.config.max_request, self._n)
        if request is None:
            return False
        answer = self.answer(request)
        try:
            sent = conn.send(answer, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.accepted += 1
            conn.close()  # the client reset the connection: nobody to answer
            return True
        if sent < len(answer):  # a large answer: asyncio writes the rest (and counts it)
            self._adopt(conn, b"", bytes(answer[sent:]))
            return True
        self.accepted += 1
        self.answered_at_accept += 1
        conn.close()
        return True

    def _adopt(self, conn: socket.socket, first: bytes, unsent: bytes = b"") -> None:
        """Hand ``conn`` to asyncio, as a :class:`_Connection` that starts with ``first``
        (bytes read already) or with writing ``unsent``."""
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        task = loop.create_task(
            loop.connect_accepted_socket(lambda: _Connection(self, first, unsent), conn)
        )
        self._adopting.add(task)

        def adopted(task: asyncio.Task[Any]) -> None:
            self._adopting.discard(task)
            if task.cancelled() or task.exception() is not None:
                conn.close()  # shutting down, or the client has gone already

        task.add_done_callback(adopted)

    def _pause_accepting(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.fileno())

        def resume() -> None:
            if not self._closing and listener in self._listeners:
                loop.add_reader(listener.fileno(), self._accept, listener)

        loop.call_later(_ACCEPT_RETRY, resume)

    def _sweep(self) -> None:
        """Check every connection for the idle and request timeouts, then come again."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self._connections):
            conn._check_idle(now)
        if not self._closing:
            self._sweeper = loop.call_later(self._sweep_every, self._sweep)

    def _closed_one(self) -> None:
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    async def close(self) -> None:
        """Stop accepting, let answers already written drain, then close everything."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners.clear()
        for transport in self._udp:
            transport.close()
        for conn in list(self._connections):
            if conn.out is not None and not conn._closing():
                conn.out.close()  # after what was queued, then closes
        if self._connections and self._all_closed is not None:
            self._all_closed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), self.config.drain_timeout)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self._adopting):
            task.cancel()
        self._udp.clear()
