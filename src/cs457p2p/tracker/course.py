"""The course's trackers, served as the course serves them (``cs457p2p tracker --course``
and the checker's course scenarios): one port for both parts, **one connection at a
time**, one read of at most 1,024 bytes, one answer in Python 2's protocol 0 pickles,
then close. Part 2: after a REG_INIT, UPDATE_NBR to every peer (one at a time, 2 s to
connect each) before the next connection is served; a PING to every peer every
``ping_interval`` seconds, one after another, and the silent ones pruned. The answers
are :mod:`cs457p2p.core.course_model`'s.

Unlike the course's programs it reads with the restricted decoder, never runs a
pickle's code and never stops serving: where the course's would have crashed or run
code, it says so on its log (and in the :class:`Exchange`) and goes on. Every connection
is kept in :attr:`CourseTracker.exchanges` as it comes (bounded), served or still
waiting, for the checker's judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.course_model import (
    COURSE_P1_DB,
    COURSE_P2_DB,
    RECV_SIZE,
    CourseAnswer,
    CourseRing,
    Peer,
    address_of,
    p1_answer,
)
from ..core.decoder import Value
from ..core.py2 import dumps_py2, loads_py2
from ..core.trace import ConnectionTrace, Tracer, peer_name
from ..waits import wait_for

__all__ = ["CourseTracker", "Exchange", "is_part2"]

#: Seconds the course's tracker gives an UPDATE_NBR to connect, and a PING to answer.
UPDATE_TIMEOUT = 2.0
PING_TIMEOUT = 5.0
#: Exchanges kept for the judges (a flood is counted, not kept).
MAX_EXCHANGES = 20_000


@dataclass
class Exchange:
    """One connection, as the course's tracker handled it (times: the loop's clock):
    accepted, its turn to be read (the course's serve one at a time), what the read got
    (``data``; ``read_at`` None: nothing came), the answer, and what the course's
    tracker would have done on top (``fatal``: stopped serving; ``note``)."""

    ip: str
    accepted: float
    turn: float = 0.0
    read_at: float | None = None
    data: bytes = b""
    reply: bytes | None = None
    fatal: str = ""
    note: str = ""
    closed_by_peer: bool = False


def is_part2(data: bytes) -> bool:
    """A Part 2 message: a pickle Python 2 reads as a tuple or list whose first item is
    text (everything else, REGISTER's raw bytes included, is Part 1's)."""
    if data == b"REGISTER":
        return False
    read = loads_py2(data)
    value: Value = read.value
    return (
        read.ok and isinstance(value, (tuple, list)) and bool(value) and isinstance(value[0], str)
    )


@dataclass
class CourseTracker:
    """The course's trackers on ``host:port`` (port 0: a free one; ``also``: more
    ``(host, port)`` to listen on, the same tracker). ``read_timeout``: how long a
    connection's turn may wait for its bytes (None: for ever, as the course's)."""

    host: str = "127.0.0.1"
    port: int = 0
    p1_db: Sequence[tuple[int, str]] = COURSE_P1_DB
    p2_db: Sequence[tuple[int, str]] = COURSE_P2_DB
    ping_interval: float = 20.0
    read_timeout: float | None = None
    also: Sequence[tuple[str, int]] = ()
    log: Callable[[str], None] | None = None
    #: --trace: each message received and sent, as a line (None: off)
    trace: Tracer | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    dropped: int = 0
    ring: CourseRing = field(init=False)

    def __post_init__(self) -> None:
        self.ring = CourseRing(self.p2_db)
        self._servers: list[asyncio.Server] = []
        self._queue: asyncio.Queue[tuple[Exchange, asyncio.StreamReader, asyncio.StreamWriter]]
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ports(self) -> list[int]:
        return [int(s.sockets[0].getsockname()[1]) for s in self._servers]

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        for host, port in [(self.host, self.port), *self.also]:
            server = await asyncio.start_server(self._accept, host, port, backlog=128)
            self._servers.append(server)
        self.port = self.ports[0]
        self._tasks = [asyncio.ensure_future(self._serve())]
        if self.ping_interval > 0:
            self._tasks.append(asyncio.ensure_future(self._pings()))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            _, _, writer = self._queue.get_nowait()
            writer.close()

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def _traced(self, peer: object, initiated: bool) -> ConnectionTrace | None:
        return None if self.trace is None else self.trace.connection(peer_name(peer), initiated)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ex = Exchange(str(peer[0]) if peer else "", asyncio.get_running_loop().time())
        if len(self.exchanges) < MAX_EXCHANGES:  # (in the order they came, served or not)
            self.exchanges.append(ex)
        else:
            self.dropped += 1
        self._queue.put_nowait((ex, reader, writer))

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ex, reader, writer = await self._queue.get()
            ex.turn = loop.time()
            try:
                await self._one(ex, reader, writer)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                writer.close()

    async def _one(
        self, ex: Exchange, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        read = reader.read(RECV_SIZE)
        trace = self._traced(writer.get_extra_info("peername"), False)
        try:
            ex.data = await wait_for(read, self.read_timeout)
        except asyncio.TimeoutError:
            self._say(
                f"{ex.ip}: nothing within {self.read_timeout:g} s; the course's tracker"
                " would wait for ever, and serve no one else"
            )
            return
        if trace is not None:
            trace.received(ex.data)
            trace.closed()  # (one read, as the course's: the rest is never read)
        ex.read_at = loop.time()
        ex.closed_by_peer = not ex.data
        updates: list[tuple[Peer, bytes]] = []
        if is_part2(ex.data):
            answer, updates = self.ring.receive(ex.data, ex.ip)
        else:
            answer = p1_answer(ex.data, self.p1_db)
        self._record(ex, answer)
        if answer.reply is not None:
            writer.write(answer.reply)
            if trace is not None:
                trace.sent(answer.reply)
            await wait_for(writer.drain(), UPDATE_TIMEOUT * 5)
        for peer, message in updates:  # (before this connection is closed, as the course's)
            await self._send(peer, message)

    def _record(self, ex: Exchange, answer: CourseAnswer) -> None:
        ex.reply, ex.fatal, ex.note = answer.reply, answer.fatal, answer.note
        if answer.fatal:
            self._say(
                f"{ex.ip}: {answer.fatal}; the course's tracker would stop serving for good"
                " here (this one goes on)"
            )
        elif answer.note and "run" in answer.note:
            self._say(f"{ex.ip}: {answer.note}")

    @staticmethod
    async def _connect(
        peer: Peer, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, tuple[str, int]] | None:
        """A connection to ``peer``'s address within ``timeout`` s, or None (as the course's)."""
        where = address_of(peer)
        if where is None:
            return None
        try:
            reader, writer = await wait_for(asyncio.open_connection(*where), timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        return reader, writer, where

    async def _send(self, peer: Peer, message: bytes) -> bool:
        """One UPDATE_NBR, as the course's: 2 s to connect, sent, closed; errors ignored."""
        connected = await self._connect(peer, UPDATE_TIMEOUT)
        if connected is None:
            return False
        _, writer, where = connected
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            writer.write(message)
            trace = self._traced(where, True)
            if trace is not None:
                trace.sent(message)
            await wait_for(writer.drain(), UPDATE_TIMEOUT)
        writer.close()
        return True

    async def _ping(self, peer: Peer) -> bool:
        """Whether ``peer`` answers a PING anything, or closes, within 5 s."""
        connected = await self._connect(peer, PING_TIMEOUT)
        if connected is None:
            return False
        reader, writer, where = connected
        trace = self._traced(where, True)
        try:
            ping = dumps_py2(("PING", time.asctime()))
            writer.write(ping)
            if trace is not None:
                trace.sent(ping)
            answer = await wait_for(reader.read(RECV_SIZE), PING_TIMEOUT)
            if trace is not None:
                trace.received(answer)
            return True
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()
            if trace is not None:
                trace.closed()

    async def _pings(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            ring = list(self.ring.peers)
            answered = [await self._ping(p) for p in ring]
            if self.ring.peers[: len(ring)] != ring:
                continue  # (someone joined meanwhile: judge them next round)
            for peer, ok in zip(ring, answered, strict=True):
                if not ok:
                    self._say(f"{peer[0]!r} at {peer[1]}:{peer[2]!r} did not answer a PING: pruned")
            for peer, message in self.ring.prune(answered):
                await self._send(peer, message)
