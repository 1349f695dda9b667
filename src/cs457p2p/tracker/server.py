"""The asyncio tracker, over TCP and UDP: a thin driver of the sans-I/O rules of
:mod:`cs457p2p.core.connection_rules` with the tracker's answers
(:mod:`cs457p2p.core.tracker_responder`: a database's pre-encoded answers, the ring).

Each TCP connection is a :class:`_Connection` that feeds its bytes, its EOF and the time
to a :class:`~cs457p2p.core.connection_rules.ConnectionRules` and does what each step
says (write the answers, close, abort). One timer per tracker (the sweep) checks every
connection's deadline; a pending ASCII digit run gets a short timer of its own. UDP
datagrams are answered by :func:`~cs457p2p.core.datagram_rules.answer_datagram`.

Before a connection becomes an asyncio transport, the accept handler reads what came
with it: when that is one whole request alone (what a reference-style client sends),
it is answered and closed there with plain socket calls, as the rules would have it;
every other connection goes to asyncio with the bytes read so far.

Limits: at most ``max_connections`` TCP connections are open (others are closed at
once); a client that does not read its answers stops being read (``write_buffer``
bytes queued), then is dropped after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Sequence
from typing import Any, cast

from ..core.admission import Admission
from ..core.connection_rules import ABORT, CLOSE, ConnectionRules, Step, request_count
from ..core.database import Database
from ..core.faults import Faults
from ..core.monitor import Observer, TrackerCounters
from ..core.requests import Request, RingMessage, lone_request
from ..core.ring import Ring
from ..core.trace import ConnectionTrace, peer_name
from ..core.tracker_responder import TrackerResponder
from ..net import SocketPair, bind_host, raise_fd_limit
from ..waits import wait_for
from .config import TrackerConfig
from .datagrams import Datagrams
from .ring_keeper import RingKeeper
from .writers import PlainWriter, TcpFaultWriter, answer_writer

__all__ = ["Observer", "Tracker", "TrackerConfig"]

Address = tuple[Any, ...]

_BACKLOG = 1024  # listen backlog
_FIRST_READ = 64 * 1024  # bytes read at accept time
_ACCEPT_RETRY = 1.0  # seconds before accepting again after running out of descriptors
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _host(addr: Address) -> str:
    """A client's address as admission counts it (an IPv4-mapped IPv6 address as IPv4)."""
    host = str(addr[0]) if addr else "?"
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class _Connection(asyncio.Protocol):
    """One TCP connection, handed over by the tracker's accept handler with the bytes it
    has read already (``first``), or the tail of an answer it could not send whole
    (``unsent``: write it, then close). It moves bytes; :attr:`rules` decides, and says
    when to read and when work is left for a later turn of the loop."""

    def __init__(
        self, tracker: Tracker, host: str, first: bytes = b"", unsent: bytes = b""
    ) -> None:
        self.tracker = tracker
        self.host = host  # the client's address, as admission counts it
        self.counted = True  # this connection holds one of its address's slots
        self._first = first
        self._unsent = unsent
        self._loop = asyncio.get_running_loop()
        self.rules = ConnectionRules(
            tracker.limits, tracker.responder, self._loop.time(), peer=host
        )
        self.transport: asyncio.Transport | None = None
        self.out: PlainWriter | TcpFaultWriter | None = None
        self._digit_timer: asyncio.TimerHandle | None = None
        self._turn: asyncio.Handle | None = None  # a later turn, scheduled
        self._reading = True
        self.queued = 0  # what this connection adds to the tracker's total queued
        self._bytes_in = 0  # for the observer only
        self._received_at = 0.0  # for the observer only
        self.trace: ConnectionTrace | None = None  # --trace

    # ------------------------------------------------------------------ asyncio API

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # (uvloop transports do not subclass it)
        self.transport = transport
        tracker = self.tracker
        if tracker._closing and not self._unsent:  # (an answer under way: finish)
            tracker.refused += 1
            tracker._release(self)
            transport.abort()
            return
        tracker._connections.add(self)
        tracker.accepted += 1
        # The rules keep what is queued under the limit; the transport tells when the
        # client has read most of it (resume_writing), which wakes them: so its mark
        # is below the limit, or a full queue would never be reported.
        transport.set_write_buffer_limits(high=tracker.limits.queue // 2)
        tracer = tracker.config.trace
        if tracer is not None:
            self.trace = tracer.connection(peer_name(transport.get_extra_info("peername")), False)
        self.out = answer_writer(tracker.faults, transport, self.trace)
        if self._unsent:  # answered at accept time: the rest of that answer, then EOF
            self.rules.closed = True
            self.out.write_answers([self._unsent])
            self.out.close()
        elif self._first:
            first, self._first = self._first, b""
            self.data_received(first)

    def data_received(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.received(data)
        if self.tracker.observer is not None:
            self._bytes_in += len(data)
            # (a fine clock: uvloop's loop.time() only moves once per loop iteration)
            self._received_at = time.monotonic()
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        self._step(self.rules.received(data, self._loop.time(), *self._room()))

    def eof_received(self) -> bool:
        self._step(self.rules.ended(*self._room()))
        return True  # keep the transport until the writer closes it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._digit_timer is not None:
            self._digit_timer.cancel()
        if self._turn is not None:
            self._turn.cancel()
        if self.out is not None:
            self.out.cancel()
        if self.trace is not None:
            self.trace.closed()
        tracker = self.tracker
        tracker.queued_total -= self.queued
        self.queued = 0
        tracker._release(self)
        if self in tracker._connections:
            tracker._connections.discard(self)
            tracker._closed_one()

    def resume_writing(self) -> None:
        # The client has read: if answers were waiting for room, go on.
        self._schedule()
        self.tracker._wake_starved()

    # -------------------------------------------------------------------- internals

    def _closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _room(self) -> tuple[int, int]:
        """``(queued, spare)`` for the rules: this connection's queue, and what the
        tracker can still queue in all."""
        tracker = self.tracker
        return self._track_queued(), tracker.config.max_queued_total - tracker.queued_total

    def _track_queued(self) -> int:
        """This connection's queued bytes, and the tracker's total brought up to date."""
        now = self.out.queued() if self.out is not None else 0
        self.tracker.queued_total += now - self.queued
        self.queued = now
        return now

    def _digit_wait_over(self) -> None:
        self._digit_timer = None
        # The timer is due at rules.digit_at, but loop.time() can read a little less
        # when it fires (uvloop rounds timers to milliseconds): the wait is over.
        due = self.rules.digit_at
        now = self._loop.time()
        self.check(now if due is None else max(now, due))

    def check(self, now: float) -> None:
        """The time is ``now``: apply whatever the rules say is due (the digit wait, the
        idle and request timeouts)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        queued, spare = self._room()
        step = self.rules.expired(now, bool(queued), queued, spare)
        if step.why == "idle":
            self.tracker.dropped_idle += 1
        elif step.why == "slow":
            self.tracker.dropped_slow += 1
        self._step(step)

    def _later(self) -> None:
        """A later turn of the loop: the work the last step left."""
        self._turn = None
        if not self._closing():
            self._step(self.rules.resume(self._loop.time(), *self._room()))

    def _schedule(self) -> None:
        """Take a later turn if work is left and there is room for its answers (else
        the client's reading, or the tracker's total going down, wakes it)."""
        rules = self.rules
        if self._turn is not None or not rules.has_work or self._closing():
            return
        if rules.pending and self.queued >= self.tracker.limits.queue:
            return  # resume_writing comes when the client reads
        if rules.pending and self.tracker.queued_total >= self.tracker.config.max_queued_total:
            self.tracker._starved.add(self)
            return
        self._turn = self._loop.call_soon(self._later)

    def _step(self, step: Step) -> None:
        """Do what a step of the rules says, then what they say about reading, timers
        and the work left."""
        out, t = self.out, self.transport
        if out is None or t is None or t.is_closing():
            return
        if step.then == ABORT:
            t.abort()
            return
        if step.answers:
            out.write_answers(step.answers)
            self._track_queued()
            if self.tracker.ring_keeper is not None:
                self.tracker.ring_keeper.flush()  # (what a Part 2 message made the ring send)
            if self.tracker.observer is not None:
                self._observe(step.requests, step.answers)
        if step.then == CLOSE:
            out.close()
            return
        rules = self.rules
        if rules.wants_input != self._reading:  # the backlog of unparsed bytes
            self._reading = rules.wants_input
            if self._reading:
                t.resume_reading()
            else:
                t.pause_reading()
        if rules.digit_at is not None and self._digit_timer is None:
            self._digit_timer = self._loop.call_at(rules.digit_at, self._digit_wait_over)
        self._schedule()

    def _observe(self, requests: Sequence[Request], answers: list[bytes | memoryview]) -> None:
        observer, transport = self.tracker.observer, self.transport
        if observer is None or transport is None:
            return
        bytes_in, self._bytes_in = self._bytes_in, 0
        latency = time.monotonic() - self._received_at
        peer = transport.get_extra_info("peername") or ("?", 0)
        count = request_count(requests)
        observer.observe(peer, "tcp", requests, count, bytes_in, sum(map(len, answers)), latency)


class Tracker:
    """Serves one database over TCP and/or UDP. Use :meth:`start`, then :meth:`close`."""

    def __init__(
        self, db: Database, config: TrackerConfig | None = None, ring_db: Database | None = None
    ) -> None:
        self.db = db
        self.config = cfg = config or TrackerConfig()
        self.limits = cfg.limits
        #: Part 2: the ring over ``ring_db`` (else ``db``; None when the config turns it
        #: off) and what drives it
        ring = Ring(db if ring_db is None else ring_db, cfg.max_peers, cfg.max_peers_per_address)
        self.ring = None if cfg.ring_off else ring
        self.responder = TrackerResponder(db, self.ring, cfg.ring_off)
        self.ring_keeper = (
            RingKeeper(self.ring, cfg.ping_interval, cfg.ping_timeout, trace=cfg.trace)
            if self.ring is not None and cfg.transport != "udp"
            else None
        )
        self.faults = Faults(self.config.faults) if self.config.faults.active else None
        #: connections may be answered at accept time (not with TCP faults or --trace)
        self._lane = cfg.trace is None and (
            self.faults is None or not self.faults.config.tcp_active
        )
        self.admission = Admission(self.config.max_connections, self.config.max_per_address)
        self._connections: set[_Connection] = set()
        self._listeners: list[socket.socket] = []
        self._adopting: set[asyncio.Task[Any]] = set()
        self._udp: list[asyncio.DatagramTransport] = []
        self._all_closed: asyncio.Event | None = None
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every = 1.0
        self.addresses: list[tuple[str, int]] = []
        #: monitoring hook, off (None) unless a dashboard or logs ask for it
        self.observer: Observer | None = None
        # counters
        self.accepted = 0
        self.refused = 0
        self.dropped_idle = 0
        self.dropped_slow = 0
        self.evicted = 0
        self.datagrams = 0
        self.unanswered_datagrams = 0
        self.answered_at_accept = 0
        #: answers queued for all clients (an upper bound between two sweeps)
        self.queued_total = 0
        self._starved: set[_Connection] = set()

    # ------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def counters(self) -> TrackerCounters:
        """The tracker's own counters, now (for the monitor)."""
        return TrackerCounters(
            accepted=self.accepted,
            refused=self.refused,
            evicted=self.evicted,
            open_connections=self.open_connections,
            dropped_idle=self.dropped_idle,
            dropped_slow=self.dropped_slow,
            datagrams=self.datagrams,
            unanswered_datagrams=self.unanswered_datagrams,
            faults=dict(self.faults.injected) if self.faults is not None else {},
        )

    async def start(self, sockets: Sequence[SocketPair] | None = None) -> None:
        """Bind every address of ``config.host`` on one port (``port=0``: a free port,
        the same for all addresses and both transports) and start serving; or serve on
        ``sockets``, bound already (``--workers``)."""
        raise_fd_limit()
        loop = asyncio.get_running_loop()
        cfg = self.config
        if sockets is not None:
            bound = list(sockets)
        else:
            bound = await loop.run_in_executor(None, bind_host, cfg.host, cfg.port, cfg.transport)
        self._all_closed = asyncio.Event()
        # One timer for all connections: a timeout is noticed within a quarter of it.
        self._sweep_every = min(max(min(cfg.idle_timeout, cfg.request_timeout) / 4, 0.05), 1.0)
        self._sweeper = loop.call_later(self._sweep_every, self._sweep)
        if self.ring_keeper is not None:
            self.ring_keeper.start()
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
        transport, _ = await loop.create_datagram_endpoint(lambda: Datagrams(self), sock=sock)
        self._udp.append(transport)

    # ------------------------------------------------------------------- accepting

    def _accept(self, listener: socket.socket) -> None:
        """Accept one connection waiting on ``listener`` (the loop calls again while
        more wait). If its first bytes are there already and hold one whole request,
        alone, it is reference-style: answered and closed here with plain socket calls,
        never becoming an asyncio transport (which costs more CPU per connection than
        the whole exchange). Any other connection goes to asyncio with the bytes read so
        far; the rules are the same either way."""
        try:
            conn, _addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(listener)  # out of descriptors: try again soon
            return  # otherwise (e.g. ECONNABORTED) that client has gone already
        if self._closing:
            self.refused += 1
            conn.close()
            return
        host = _host(_addr)
        verdict = self.admission.verdict(host)
        if not verdict.accept:
            self.refused += 1  # every slot taken, or this address's share
            conn.close()
            return
        first = b""
        if self.observer is None and self._lane:
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
                if self._answer_lone(conn, first, host):
                    return
        self._adopt(conn, host, first, evict=verdict.evict)

    def _answer_lone(self, conn: socket.socket, first: bytes, host: str) -> bool:
        """Answer and close ``conn`` if ``first`` is one whole request and nothing more
        (the rules' reference-style case); False (nothing done) otherwise."""
        request = lone_request(first, self.limits.max_request, self.responder.run_limit)
        if request is None:
            return False
        if isinstance(request, RingMessage):  # Part 2: the ring answers, and acts
            now = asyncio.get_running_loop().time()
            answer = self.responder.answer(RingMessage(request.value, host, now))
            if self.ring_keeper is not None:
                self.ring_keeper.flush()
        else:
            answer = self.responder.answer(request)
        try:
            sent = conn.send(answer, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.accepted += 1
            conn.close()  # the client reset the connection: nobody to answer
            return True
        if sent < len(answer):  # a large answer: asyncio writes the rest (and counts it)
            self._adopt(conn, host, b"", bytes(answer[sent:]))
            return True
        self.accepted += 1
        self.answered_at_accept += 1
        conn.close()
        return True

    def _adopt(
        self,
        conn: socket.socket,
        host: str,
        first: bytes = b"",
        unsent: bytes = b"",
        evict: str | None = None,
    ) -> None:
        """Hand ``conn`` to asyncio, as a :class:`_Connection` that starts with ``first``
        (bytes read already) or with writing ``unsent``; it takes one of ``host``'s
        slots now, in place of one of ``evict``'s when admission says so."""
        loop = asyncio.get_running_loop()
        if evict is not None:
            self._evict(evict)
        self.admission.opened(host)
        conn.setblocking(False)
        protocol = _Connection(self, host, first, unsent)
        task = loop.create_task(loop.connect_accepted_socket(lambda: protocol, conn))
        self._adopting.add(task)

        def adopted(task: asyncio.Task[Any]) -> None:
            self._adopting.discard(task)
            if task.cancelled() or task.exception() is not None:
                self._release(protocol)
                conn.close()  # shutting down, or the client has gone already

        task.add_done_callback(adopted)

    def _evict(self, host: str) -> None:
        """Close ``host``'s longest silent connection, to make room for another
        address (admission's fairness)."""
        theirs = [c for c in self._connections if c.host == host and c.counted]
        if not theirs:
            return
        victim = min(theirs, key=lambda c: c.rules.last)
        self.evicted += 1
        self._release(victim)
        if victim.transport is not None:
            victim.transport.abort()

    def _release(self, conn: _Connection) -> None:
        """``conn`` gives its slot back (once)."""
        if conn.counted:
            conn.counted = False
            self.admission.closed(conn.host)

    def _pause_accepting(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.fileno())

        def resume() -> None:
            if not self._closing and listener in self._listeners:
                loop.add_reader(listener.fileno(), self._accept, listener)

        loop.call_later(_ACCEPT_RETRY, resume)

    def _sweep(self) -> None:
        """Check every connection whose deadline has come, bring the total queued up
        to date, then come again."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self._connections):
            conn._track_queued()
            if now >= conn.rules.deadline:
                conn.check(now)
        self._wake_starved()
        if not self._closing:
            self._sweeper = loop.call_later(self._sweep_every, self._sweep)

    def _wake_starved(self) -> None:
        """Connections waiting for the total queued to go down get a turn when it has."""
        if self._starved and self.queued_total < self.config.max_queued_total:
            starved, self._starved = self._starved, set()
            for conn in starved:
                conn._schedule()

    def _closed_one(self) -> None:
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    async def close(self) -> None:
        """Stop accepting, let answers already written drain, then close everything."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.ring_keeper is not None:
            await self.ring_keeper.close()
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
                await wait_for(self._all_closed.wait(), self.config.drain_timeout)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self._adopting):
            task.cancel()
        self._udp.clear()
