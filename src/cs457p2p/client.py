"""The asyncio TCP client: a thin transport over :class:`~cs457p2p.collection.Collection`
and :class:`~cs457p2p.protocol.AnswerParser`.

1. REGISTER on a connection of its own (the reference closes after one answer).
2. A probe connection asks for two positions at once. A tracker that answers both keeps
   connections open (ours): the rest is pipelined over a few persistent connections, a
   window of requests in flight on each. A tracker that answers one and closes is
   reference-style: the rest is fetched one request per connection, several in parallel.
3. A connection that drops gives its unanswered positions back; they are asked again on
   a new connection. Only the restricted decoder reads what the tracker sends.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .collection import Collection, CollectionError
from .decoder import DecodeError
from .protocol import (
    REGISTER,
    AnswerParser,
    ProtocolError,
    encode_position,
    interpret_count,
    interpret_item,
)
from .tracker import format_address

__all__ = ["Client", "ClientConfig", "ClientError", "FetchResult", "fetch_message"]

Progress = Callable[[int, int], None]


class ClientError(Exception):
    """The client could not get a correct, complete message; the text says why."""


@dataclass(frozen=True)
class ClientConfig:
    host: str = "localhost"
    port: int = 7777
    #: seconds to wait for any one step: a connection, or the next bytes of an answer
    timeout: float = 10.0
    #: local address to connect from (127.0.0.2 looks like another host on loopback)
    bind: str | None = None
    #: requests in flight on one persistent connection
    window: int = 4096
    #: persistent connections used against a pipelining tracker
    connections: int = 2
    #: parallel one-request connections against a reference-style tracker
    reference_connections: int = 8
    #: refuse a REGISTER answer larger than this (a lying tracker cannot exhaust memory)
    max_items: int = 10_000_000
    #: consecutive connections that answer nothing before giving up
    max_retries: int = 5


@dataclass(frozen=True)
class FetchResult:
    message: str
    n: int
    connections: int
    reference_style: bool


_UNKNOWN, _PERSISTENT, _REFERENCE = "unknown", "persistent", "reference"


class Client:
    """One client session: :meth:`fetch` registers, collects and assembles."""

    def __init__(
        self, config: ClientConfig | None = None, progress: Progress | None = None
    ) -> None:
        self.config = config or ClientConfig()
        self.progress = progress
        self.connections = 0
        self.mode = _UNKNOWN
        self._failures = 0
        self._stopped = False
        self._wake = asyncio.Event()

    @property
    def address(self) -> str:
        return format_address(self.config.host, self.config.port)

    # ----------------------------------------------------------------- connections

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.config
        local = (cfg.bind, 0) if cfg.bind else None
        try:
            conn = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port, local_addr=local), cfg.timeout
            )
        except asyncio.TimeoutError:
            raise ClientError(
                f"timed out after {cfg.timeout:g} s connecting to {self.address}"
            ) from None
        except ConnectionRefusedError:
            raise ClientError(f"cannot connect to {self.address}: connection refused") from None
        except socket.gaierror as e:
            raise ClientError(f"cannot resolve {cfg.host!r}: {e.strerror}") from None
        except OSError as e:
            raise ClientError(f"cannot connect to {self.address}: {e.strerror or e}") from None
        self.connections += 1
        return conn

    async def _read(self, reader: asyncio.StreamReader, what: str) -> bytes:
        try:
            return await asyncio.wait_for(reader.read(1 << 16), self.config.timeout)
        except asyncio.TimeoutError:
            raise ClientError(
                f"timed out after {self.config.timeout:g} s waiting for {what} from {self.address}"
            ) from None
        except (ConnectionResetError, BrokenPipeError):
            return b""  # treated as a drop: unanswered positions are asked again

    # -------------------------------------------------------------------- register

    async def register(self) -> int:
        """Send REGISTER on its own connection; return N."""
        reader, writer = await self._connect()
        parser = AnswerParser()
        try:
            writer.write(REGISTER)
            while True:
                data = await self._read(reader, "the REGISTER answer")
                if not data:
                    raise ClientError("tracker closed the connection without answering REGISTER")
                answers = parser.feed(data)
                if answers:
                    n = interpret_count(answers[0])
                    break
        except DecodeError as e:
            raise ClientError(f"refused the tracker's REGISTER answer: {e}") from None
        except ProtocolError as e:
            raise ClientError(str(e)) from None
        finally:
            writer.close()
        if n > self.config.max_items:
            raise ClientError(
                f"tracker says N = {n}, more than the limit of {self.config.max_items}"
                " (--max-items)"
            )
        return n

    # ----------------------------------------------------------------------- fetch

    async def fetch(self) -> FetchResult:
        """Register, collect every item, and return the assembled message."""
        n = await self.register()
        coll = Collection(n)
        try:
            while self.mode == _UNKNOWN and not coll.complete:
                await self._session(coll, probe=True)
            if not coll.complete:
                count = (
                    self.config.connections
                    if self.mode == _PERSISTENT
                    else self.config.reference_connections
                )
                tasks = [asyncio.ensure_future(self._worker(coll)) for _ in range(max(1, count))]
                try:
                    await asyncio.gather(*tasks)
                finally:
                    # Workers also stop by themselves once told (a cancellation can be
                    # lost when it races with a completing wait on Python 3.11).
                    self._stopped = True
                    self._wake.set()
                    for t in tasks:
                        t.cancel()
                    await asyncio.wait(tasks, timeout=self.config.timeout)
            message = coll.message()
        except CollectionError as e:
            raise ClientError(str(e)) from None
        return FetchResult(message, n, self.connections, self.mode == _REFERENCE)

    async def _worker(self, coll: Collection) -> None:
        while not coll.complete and not self._stopped:
            if coll.queued == 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._session(coll, probe=False)
        self._wake.set()

    async def _session(self, coll: Collection, probe: bool) -> None:
        """One connection: ask, read answers in order, place them; on a drop give the
        unanswered positions back. Raises :class:`ClientError` on any fatal fault."""
        window = 2 if probe else (self.config.window if self.mode == _PERSISTENT else 1)
        outstanding: deque[int] = deque(coll.take(window))
        if not outstanding:
            return  # another connection took what was left: open nothing
        try:
            reader, writer = await self._connect()
        except ClientError:
            coll.give_back(outstanding)
            self._wake.set()
            if self._failures >= self.config.max_retries:
                raise
            self._failures += 1
            await asyncio.sleep(0.05 * 2**self._failures)
            return
        parser = AnswerParser()
        answered = 0
        sent = len(outstanding)
        writer.write(b"".join(map(encode_position, outstanding)))
        try:
            while outstanding and not self._stopped:
                data = await self._read(reader, f"item {outstanding[0]}")
                if not data:
                    break
                for value in parser.feed(data):
                    if not outstanding:
                        raise ClientError("tracker sent more answers than requests")
                    position = outstanding.popleft()
                    seq, text = interpret_item(value, coll.n)
                    coll.place(position, seq, text)
                    answered += 1
                if self.progress is not None:
                    self.progress(coll.answered, coll.n)
                if probe and answered >= 2:
                    self.mode = _PERSISTENT
                    break
                if self.mode == _PERSISTENT and not probe:
                    more = coll.take(window - len(outstanding))
                    if more:
                        outstanding.extend(more)
                        writer.write(b"".join(map(encode_position, more)))
        except DecodeError as e:
            raise ClientError(f"refused an answer from the tracker: {e}") from None
        except ProtocolError as e:
            raise ClientError(str(e)) from None
        finally:
            writer.close()
        if outstanding:
            if probe and answered == 1 and sent >= 2:
                self.mode = _REFERENCE  # one answer, then EOF: one request per connection
            coll.give_back(outstanding)
            self._wake.set()
        if answered:
            self._failures = 0
        elif outstanding:
            self._failures += 1
            if self._failures > self.config.max_retries:
                raise ClientError(
                    f"tracker at {self.address} closed {self._failures} connections in a row "
                    "without answering"
                )
        if coll.complete:
            self._wake.set()


async def fetch_message(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one client session (see :class:`Client`)."""
    return await Client(config, progress).fetch()
