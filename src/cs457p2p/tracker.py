"""The asyncio TCP tracker: a thin transport over :class:`~cs457p2p.protocol.RequestParser`
and the pre-encoded answers of a :class:`~cs457p2p.database.Database`.

Connection rules (see the README):

* a connection whose first request was alone (nothing else received by the time it is
  answered) is reference-style: it gets its answer, then EOF at once;
* a connection that carries a second request is a pipelining client: it stays open and
  gets every answer in order, until it closes, goes idle for ``idle_timeout`` seconds,
  or sends something that cannot be resynchronised (answered ``'Bad request'``, then
  closed);
* an unterminated ASCII digit run is taken as complete after ``digit_wait`` seconds of
  silence (``b"1"`` then ``b"2"`` is position 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from .database import Database
from .protocol import (
    BAD_REQUEST,
    MAX_REQUEST,
    BadRequest,
    Position,
    Register,
    Request,
    RequestParser,
)

__all__ = ["Tracker", "TrackerConfig", "format_address"]


@dataclass(frozen=True)
class TrackerConfig:
    host: str = "localhost"
    port: int = 7777
    idle_timeout: float = 60.0
    digit_wait: float = 0.010
    max_request: int = MAX_REQUEST
    #: seconds a shutdown waits for answers in flight before aborting connections
    drain_timeout: float = 5.0


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 literal."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_digit_timer",
        "_idle_timer",
        "_last",
        "_loop",
        "_paused",
        "parser",
        "persistent",
        "requests",
        "tracker",
        "transport",
    )

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.parser = RequestParser(tracker.config.max_request)
        self.requests = 0
        self.persistent = False
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._digit_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._paused = False

    # ------------------------------------------------------------------ asyncio API

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.tracker._connections.add(self)
        self._idle_timer = self._loop.call_later(self.tracker.config.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        if self.requests and not self.persistent:
            self.persistent = True  # bytes after the first request: a pipelining client
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        self._answer(self.parser.feed(data))
        if (
            self.parser.holds_digits
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self._digit_timer = self._loop.call_later(
                self.tracker.config.digit_wait, self._flush_digits
            )

    def eof_received(self) -> bool:
        # The client will send nothing more: answer a trailing digit run, then close
        # once the answers are written (returning False closes after the buffer drains).
        self._answer(self.parser.flush(), at_eof=True)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._digit_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self.tracker._connections.discard(self)
        self.tracker._closed_one()

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

    def _flush_digits(self) -> None:
        self._digit_timer = None
        self._answer(self.parser.flush())

    def _check_idle(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        idle = self.tracker.config.idle_timeout
        quiet = self._loop.time() - self._last
        if quiet >= idle:  # silent, or not reading its answers, for too long
            t.close()
        else:
            self._idle_timer = self._loop.call_later(max(idle - quiet, 0.01), self._check_idle)

    def _answer(self, requests: list[Request], at_eof: bool = False) -> None:
        t = self.transport
        if not requests or t is None or t.is_closing():
            return
        tracker = self.tracker
        answers = tracker.answer_many(requests)
        before = self.requests
        self.requests = before + len(requests)
        t.write(answers)
        if self.parser.finished:  # fatal bad request: the stream cannot be resynchronised
            t.close()
        elif not self.persistent:
            if self.requests > 1 or self.parser.buffered:
                self.persistent = True
            elif before == 0 and not at_eof:
                # Reference style: one request, its answer, EOF. The answer is written
                # now; the EOF waits two loop iterations, so that a pipelining client's
                # second request, sent back to back but landing a moment later, is seen.
                self._loop.call_soon(self._close_if_alone, 2)

    def _close_if_alone(self, hops: int) -> None:
        t = self.transport
        if self.persistent or t is None or t.is_closing():
            return
        if hops > 1:
            self._loop.call_soon(self._close_if_alone, hops - 1)
        else:
            t.close()


class Tracker:
    """Serves one database over TCP. Use :meth:`start`, then :meth:`close`."""

    def __init__(self, db: Database, config: TrackerConfig | None = None) -> None:
        self.db = db
        self.config = config or TrackerConfig()
        self._connections: set[_Connection] = set()
        self._servers: list[asyncio.Server] = []
        self._all_closed: asyncio.Event | None = None
        self.addresses: list[tuple[str, int]] = []
        self._answers = db.answers
        self._count_answer = db.count_answer

    # ------------------------------------------------------------------- answering

    def answer(self, request: Request) -> bytes:
        """The bytes that answer one request."""
        if isinstance(request, Position):
            if 0 <= request.index < len(self._answers):
                return self._answers[request.index]
            return BAD_REQUEST
        if isinstance(request, Register):
            return self._count_answer
        assert isinstance(request, BadRequest)
        return BAD_REQUEST

    def answer_many(self, requests: Sequence[Request]) -> bytes:
        if len(requests) == 1:
            return self.answer(requests[0])
        return b"".join(map(self.answer, requests))

    # ------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def start(self) -> None:
        """Bind every address of ``config.host`` on one port (``port=0``: a free port,
        the same for all addresses) and start accepting."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        infos = await loop.getaddrinfo(
            cfg.host, cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: list[tuple[int, str]] = []
        unique = []
        for family, type_, proto, _, addr in infos:
            key = (family, str(addr[0]))
            if key not in seen:
                seen.append(key)
                unique.append((family, type_, proto, addr))
        last_error: OSError | None = None
        for _attempt in range(20 if cfg.port == 0 else 1):
            socks: list[socket.socket] = []
            port = cfg.port
            try:
                for family, type_, proto, addr in unique:
                    s = socket.socket(family, type_, proto)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.bind((addr[0], port, *addr[2:]))
                    port = s.getsockname()[1]
                    s.listen(1024)
                    s.setblocking(False)
            except OSError as e:
                for s in socks:
                    s.close()
                last_error = e
                continue
            break
        else:
            assert last_error is not None
            raise last_error
        self._all_closed = asyncio.Event()
        for s in socks:
            server = await loop.create_server(lambda: _Connection(self), sock=s)
            self._servers.append(server)
            host, sport = s.getsockname()[:2]
            self.addresses.append((str(host), int(sport)))

    def _closed_one(self) -> None:
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        """Stop accepting, let answers already written drain, then close everything."""
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.close()  # flushes what was written, then closes
        if self._connections and self._all_closed is not None:
            self._all_closed.clear()
            if self._connections:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._all_closed.wait(), self.config.drain_timeout)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
