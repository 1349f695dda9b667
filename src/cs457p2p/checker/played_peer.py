"""Part 2 parts the checker plays: peers that listen, record every message that reaches
them and answer as a well-behaved peer does (:class:`PlayedPeer`), and a tracker that
answers a student's peer as the course's tracker does and records what it sent
(:class:`PlayedTracker`); and :func:`send`, one whole message on one connection. (What
came back, worded for a report line: :func:`.report.shown`.)

Everything that arrives is read by the restricted decoder only; every read and every
connection is bounded in time. What the checker sends is a pickle of a plain tuple of
text, ints and None: nothing a stock unpickler would run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from ..core.answers import AnswerParser
from ..core.course_model import RECV_SIZE, CourseRing, SamplePeer
from ..core.decoder import DecodeError
from ..core.py2 import dumps_py2
from ..core.wire2 import (
    BadMessage,
    Echo,
    Join,
    Message,
    Ping,
    Query,
    QueryResult,
    RegInit,
    UpdateNbr,
    bad_request,
    encode_message,
    parse,
    welcome,
)
from ..waits import wait_for
from .guard import Guard
from .links import ANSWER, Reply, TcpLink, decode_problem

__all__ = ["Heard", "PlayedPeer", "PlayedTracker", "send"]

#: Longest message a played part reads (a QUERY_RESULT with a long VALUE fits).
MAX_MESSAGE = 1 << 20
#: Messages a played part keeps (the checks look at the first ones; a flood is dropped).
MAX_HEARD = 20_000
#: Seconds a played part waits for a message on a connection it accepted.
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Heard:
    """One message that reached a played part: when (the loop's time), from which
    address, and what it was (``message`` None: ``problem`` says why)."""

    at: float
    sender: str
    message: Message | BadMessage | None
    problem: str = ""
    raw: bytes = b""


async def send(
    host: str,
    port: int,
    payload: bytes,
    timeout: float,
    source: str | None = None,
    want: int = 1,
) -> Reply:
    """One connection from ``source``: ``payload`` written at once, then up to ``want``
    answers read (decoded, not yet parsed as messages)."""
    return await TcpLink(host, port, timeout, source).exchange(payload, want)


def message_of(reply: Reply) -> Message | BadMessage | None:
    """The first answer of ``reply`` as a Part 2 message (None: no answer)."""
    if reply.kind != ANSWER or not reply.values:
        return None
    return parse(reply.values[0])


class _Listener:
    """A server on ``host`` (a free port) that reads one message per connection, records
    it in :attr:`heard` and answers what :meth:`reply` says."""

    def __init__(self, host: str, port: int = 0, guard: Guard | None = None) -> None:
        self.host = host
        self.port = port
        self.guard = guard or Guard()  # (shared by the parts of one run, or its own)
        self.heard: list[Heard] = []
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening (connections to it are refused from now on)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def reply(self, heard: Heard) -> bytes:
        return b""

    async def wait_for(
        self, found: Callable[[Heard], bool], timeout: float, since: float = 0.0
    ) -> Heard | None:
        """The first message heard (already, or within ``timeout``; at ``since`` or
        later) for which ``found`` is true."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        seen = 0
        while True:
            for h in self.heard[seen:]:
                if h.at >= since and found(h):
                    return h
            seen = len(self.heard)
            left = end - loop.time()
            if left <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await wait_for(self._changed.wait(), left)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.guard.admit():  # (bounded: a program may hoard connections)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        sender = str(peer[0]) if peer else ""
        loop = asyncio.get_running_loop()
        parser = AnswerParser(MAX_MESSAGE)
        raw = b""
        heard: Heard | None = None
        try:
            while heard is None:
                data = await wait_for(reader.read(1 << 16), READ_TIMEOUT)
                if not data:
                    problem = f"closed after {raw[:40]!r}" if raw else "an empty connection"
                    heard = Heard(loop.time(), sender, None, problem, raw)
                    break
                raw += data[: max(0, RECV_SIZE - len(raw))]
                try:
                    values = parser.feed(data, 1)
                except DecodeError as e:
                    heard = Heard(loop.time(), sender, None, decode_problem(raw, e), raw)
                    break
                if values:
                    heard = Heard(loop.time(), sender, parse(values[0]), "", raw)
            if len(self.heard) < MAX_HEARD:
                self.heard.append(heard)
            self._changed.set()
            answer = self.reply(heard)
            if answer:
                writer.write(answer)
                await wait_for(writer.drain(), READ_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
            self.guard.release()
            if task is not None:
                self._tasks.discard(task)


class PlayedPeer(_Listener):
    """A peer the checker plays: ``('PING', handle)`` to a PING, QUERY from ``items``
    (``(None, None)`` otherwise), nothing to UPDATE_NBR."""

    def __init__(
        self,
        handle: str,
        host: str,
        items: dict[int, str] | None = None,
        guard: Guard | None = None,
        course: bool = False,
    ) -> None:
        super().__init__(host, 0, guard)
        self.handle = handle
        self.items: dict[int, str] = dict(items or {})
        #: answer as the course's sample peer does (its bytes, ACK to a PING)
        self.course = course

    def reply(self, heard: Heard) -> bytes:
        if self.course:
            return SamplePeer(self.handle, self.items).receive(heard.raw).reply or b""
        m = heard.message
        if isinstance(m, Ping):
            return encode_message(Ping(self.handle))  # ('PING', handle)
        if isinstance(m, Query):
            value = self.items.get(m.seq)
            return encode_message(
                QueryResult(None, None) if value is None else QueryResult(m.seq, value)
            )
        if isinstance(m, UpdateNbr):
            return b""
        return encode_message(bad_request(f"[{self.handle}]"))

    def updates(self) -> list[UpdateNbr]:
        return [h.message for h in self.heard if isinstance(h.message, UpdateNbr)]

    def pings(self) -> list[Heard]:
        return [h for h in self.heard if isinstance(h.message, Ping)]

    def queries(self) -> list[Heard]:
        return [h for h in self.heard if isinstance(h.message, Query)]


@dataclass
class _Ring:
    """What the played tracker hands out."""

    neighbour: PlayedPeer | None = None
    n: int = 0
    hosted: tuple[int, str] | None = None


class PlayedTracker(_Listener):
    """A tracker the checker plays for one student's peer, as the course's answers it:
    ECHO with its welcome, REGISTER with a REG_INIT naming :attr:`ring`'s neighbour,
    the item to host, and anything else (QUERY included) with ``'Bad request'``."""

    def __init__(
        self, host: str, port: int = 0, guard: Guard | None = None, course: bool = False
    ) -> None:
        super().__init__(host, port, guard)
        self.ring = _Ring()
        #: answer in the course's tracker's bytes (Python 2's protocol 0)
        self.course = course

    def reply(self, heard: Heard) -> bytes:
        m = heard.message
        if self.course:
            return self._course_reply(heard)
        if isinstance(m, Echo):
            return encode_message(welcome(m.handle))
        if isinstance(m, Join):
            nbr = self.ring.neighbour
            return encode_message(
                RegInit(
                    nbr.handle if nbr else None,
                    nbr.host if nbr else None,
                    nbr.port if nbr else None,
                    self.ring.n,
                    self.ring.hosted,
                )
            )
        return encode_message(bad_request())

    def _course_reply(self, heard: Heard) -> bytes:
        """As p2p-tracker.py answers: a REG_INIT naming :attr:`ring`'s neighbour (the
        ring the checker plays, not one it keeps), its welcome, 'Bad request'."""
        if isinstance(heard.message, Join):
            nbr = self.ring.neighbour
            fields = (nbr.handle, nbr.host, nbr.port) if nbr else (None, None, None)
            return dumps_py2(("REG_INIT", *fields, self.ring.n, self.ring.hosted))
        return CourseRing().receive(heard.raw, heard.sender)[0].reply or b""
