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
import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from .collection import Collection, CollectionError
from .decoder import DecodeError, Incomplete, Value, decode_prefix
from .protocol import (
    BAD_REQUEST_TEXT,
    MAX_ANSWER,
    MAX_DATAGRAM,
    REGISTER,
    AnswerParser,
    ProtocolError,
    decode_item_answers,
    decode_items_fast,
    encode_position,
    format_address,
    interpret_count,
    interpret_item,
    position_run_bytes,
)
from .reliability import Channel, RttEstimator

__all__ = [
    "Client",
    "ClientConfig",
    "ClientError",
    "FetchResult",
    "UdpClient",
    "fetch_message",
]

Progress = Callable[[int, int], None]


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


_UNKNOWN, _PERSISTENT, _REFERENCE = "unknown", "persistent", "reference"


class _Outcome:
    """How a reference-style exchange ended without an answer (two instances)."""

    __slots__ = ()


_NOT_CONNECTED = _Outcome()  # a retry with backoff follows
_CLOSED = _Outcome()  # closed (or reset) before a whole answer: asked again


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
                await self._probe(coll)
            if not coll.complete and self.mode == _REFERENCE:
                await self._fetch_reference_style(coll)
            elif not coll.complete:
                count = max(1, self.config.connections)
                tasks = [asyncio.ensure_future(self._worker(coll)) for _ in range(count)]
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
            await self._pipeline_session(coll)
        self._wake.set()

    def _retry_delay(self, error: ClientError) -> float:
        """A connection could not be opened: how long to wait before the next try
        (longer each time), or raise ``error`` after ``max_retries`` failures in a row."""
        if self._failures >= self.config.max_retries:
            raise error
        self._failures += 1
        return 0.05 * (1 << self._failures)

    async def _retry_later(self, error: ClientError) -> None:
        await asyncio.sleep(self._retry_delay(error))

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

    async def _fetch_reference_style(self, coll: Collection) -> None:
        """Against a tracker that answers one request per connection: a few threads,
        each running blocking exchanges (connect, send, read the answer, close) like
        a reference client, over one shared :class:`Collection`.

        Why threads: asyncio costs about 190 µs of CPU per connection here, against
        about 90 µs for blocking sockets, and one connection per item is nothing but
        that cost. The threads release the GIL in every system call, so a few of them
        keep a one-connection-at-a-time tracker busy."""
        count = max(1, self.config.reference_connections)
        try:
            infos = socket.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise ClientError(f"cannot resolve {self.config.host!r}: {e.strerror}") from None
        family, _, _, _, address = infos[0]
        shared = threading.Condition()
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(count, thread_name_prefix="cs457p2p-oneshot") as pool:
            workers = [
                loop.run_in_executor(pool, self._reference_worker, coll, shared, family, address)
                for _ in range(count)
            ]
            try:
                await asyncio.gather(*workers)
            finally:
                with shared:
                    self._stopped = True  # the others finish their exchange and stop
                    shared.notify_all()
                await asyncio.wait(workers)

    def _reference_worker(
        self,
        coll: Collection,
        shared: threading.Condition,
        family: int,
        address: tuple[Any, ...],
    ) -> None:
        """One thread of :meth:`_fetch_reference_style`: take a position, ask for it on
        its own connection, place the answer; everything shared under ``shared``."""
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
            try:
                value = self._exchange(position, family, address)
                with shared:
                    if value is not _NOT_CONNECTED:
                        self.connections += 1
                    if isinstance(value, _Outcome):
                        coll.give_back(positions)
                        shared.notify_all()
                        if value is _NOT_CONNECTED:
                            delay = self._retry_delay(
                                ClientError(f"cannot connect to {self.address} again")
                            )
                        else:  # closed without a whole answer
                            self._count_connection(answered=False)
                            continue
                    else:
                        seq, text = interpret_item(value, coll.n)
                        coll.place(position, seq, text)
                        self._count_connection(answered=True)
                        if self.progress is not None:
                            self.progress(coll.answered, coll.n)
                        if coll.complete:
                            shared.notify_all()
                        continue
            except DecodeError as e:
                raise ClientError(f"refused an answer from the tracker: {e}") from None
            except (ProtocolError, CollectionError) as e:
                raise ClientError(str(e)) from None
            time.sleep(delay)

    def _exchange(self, position: int, family: int, address: tuple[Any, ...]) -> Value | _Outcome:
        """One blocking reference-style exchange: the first whole answer (decoded),
        ``_CLOSED`` if the tracker closes (or resets) first, or ``_NOT_CONNECTED``."""
        cfg = self.config
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(cfg.timeout)
            try:
                if cfg.bind:
                    sock.bind((cfg.bind, 0))
                sock.connect(address)
            except OSError:
                return _NOT_CONNECTED
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
            raise ClientError(
                f"timed out after {cfg.timeout:g} s waiting for item {position} from {self.address}"
            ) from None
        except (ConnectionResetError, BrokenPipeError):
            return _CLOSED
        finally:
            sock.close()

    async def _pipeline_session(self, coll: Collection) -> None:
        """One persistent connection driven by :class:`_Pipeline` until the collection
        is complete or the connection drops (its unanswered positions go back)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        pipe = _Pipeline(self, coll, cfg.window)
        local = (cfg.bind, 0) if cfg.bind else None
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: pipe, cfg.host, cfg.port, local_addr=local),
                cfg.timeout,
            )
        except (OSError, asyncio.TimeoutError):
            await self._retry_later(ClientError(f"cannot connect to {self.address} again"))
            return
        self.connections += 1
        try:
            await pipe.finished
        finally:
            pipe.close()
            if pipe.given_back:
                self._wake.set()
        self._count_connection(answered=bool(pipe.answered))
        if coll.complete:
            self._wake.set()

    async def _probe(self, coll: Collection) -> None:
        """Ask for two positions at once on one connection and learn from the answers
        how the tracker wants to be asked (``self.mode``); place what is answered, give
        back the rest. Raises :class:`ClientError` on any fatal fault."""
        outstanding: deque[int] = deque(coll.take(2))
        if not outstanding:
            return
        try:
            reader, writer = await self._connect()
        except ClientError as e:
            coll.give_back(outstanding)
            self._wake.set()
            await self._retry_later(e)
            return
        parser = AnswerParser()
        answered = 0
        learned = False  # found out how the tracker wants to be asked
        sent = len(outstanding)
        writer.write(b"".join(map(encode_position, outstanding)))
        try:
            while outstanding and not learned and not self._stopped:
                data = await self._read(reader, f"item {outstanding[0]}")
                if not data:
                    break
                for value in parser.feed(data):
                    if not outstanding:
                        raise ClientError("tracker sent more answers than requests")
                    if not answered and value == BAD_REQUEST_TEXT:
                        # A tracker that reads one request per connection but refuses
                        # two back to back: ask one at a time (a real refusal of a
                        # position then shows up there).
                        learned = True
                        self.mode = _REFERENCE
                        break
                    position = outstanding.popleft()
                    seq, text = interpret_item(value, coll.n)
                    coll.place(position, seq, text)
                    answered += 1
                if self.progress is not None:
                    self.progress(coll.answered, coll.n)
                if answered >= 2:
                    learned = True
                    self.mode = _PERSISTENT
        except DecodeError as e:
            raise ClientError(f"refused an answer from the tracker: {e}") from None
        except ProtocolError as e:
            raise ClientError(str(e)) from None
        finally:
            writer.close()
        if outstanding:
            if answered == 1 and sent >= 2:
                learned = True
                self.mode = _REFERENCE  # one answer, then EOF: one request per connection
            coll.give_back(outstanding)
            self._wake.set()
        if answered or learned or outstanding:
            self._count_connection(answered=bool(answered or learned))
        if coll.complete:
            self._wake.set()


class _Pipeline(asyncio.Protocol):
    """A persistent connection with up to ``window`` position requests in flight, asked
    as runs of consecutive positions and answered in order. Answers in our tracker's
    shape are read in bulk (:func:`decode_items_fast`); any other answer goes through
    the restricted decoder, one at a time."""

    def __init__(self, client: Client, coll: Collection, window: int) -> None:
        self.client = client
        self.coll = coll
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.runs: deque[list[int]] = deque()  # [next position, still to answer]
        self.outstanding = 0
        self.answered = 0
        self.given_back = 0
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.finished: asyncio.Future[None] = loop.create_future()
        self.last = loop.time()
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # (uvloop transports do not subclass it)
        self.transport = transport
        self._refill()
        if not self.runs:
            self._finish()
            return
        self.watchdog = self.loop.call_later(self.client.config.timeout, self._check_time)

    def _refill(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        runs = self.coll.take_runs(self.window - self.outstanding)
        if runs:
            for start, count in runs:
                self.runs.append([start, count])
                self.outstanding += count
            t.write(b"".join([position_run_bytes(a, m) for a, m in runs]))

    def data_received(self, data: bytes) -> None:
        if self.finished.done():
            return
        self.last = self.loop.time()
        buf = self.buf + data if self.buf else data
        coll = self.coll
        n = coll.n
        runs = self.runs
        pos = 0
        size = len(buf)
        try:
            while runs and pos < size:
                head = runs[0]
                seqs, texts, end = decode_items_fast(buf, pos, head[1], n)
                got = len(seqs)
                if got:
                    coll.place_run(head[0], seqs, texts)
                    pos = end
                else:  # not our shape, or not all here: the restricted decoder decides
                    try:
                        value, end = decode_prefix(buf, pos, max_size=MAX_ANSWER)
                    except Incomplete:
                        break
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
                raise ProtocolError("tracker sent more answers than requests")
        except DecodeError as e:
            return self._fail(ClientError(f"refused an answer from the tracker: {e}"))
        except (ProtocolError, CollectionError) as e:
            return self._fail(ClientError(str(e)))
        self.buf = buf[pos:]
        if self.client.progress is not None:
            self.client.progress(coll.answered, coll.n)
        if coll.complete:
            self._finish()
        elif self.outstanding <= self.window // 2:
            self._refill()
            if not self.runs:
                self._finish()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _check_time(self) -> None:
        if self.finished.done():
            return
        timeout = self.client.config.timeout
        quiet = self.loop.time() - self.last
        if quiet >= timeout:
            first = self.runs[0][0] if self.runs else 0
            self._fail(
                ClientError(
                    f"timed out after {timeout:g} s waiting for item {first}"
                    f" from {self.client.address}"
                )
            )
        else:
            self.watchdog = self.loop.call_later(timeout - quiet, self._check_time)

    def _give_back(self) -> None:
        if self.runs:
            positions = [p for a, m in self.runs for p in range(a, a + m)]
            self.given_back += len(positions)
            self.coll.give_back(positions)
            self.runs.clear()
            self.outstanding = 0

    def _finish(self) -> None:
        if not self.finished.done():
            self._give_back()
            self.finished.set_result(None)

    def _fail(self, error: ClientError) -> None:
        if not self.finished.done():
            self.finished.set_exception(error)
        self.close()

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.transport is not None:
            self.transport.close()


class _UdpSocket(asyncio.DatagramProtocol):
    """One UDP socket of a :class:`UdpClient`, with its :class:`Channel` state."""

    def __init__(self, owner: UdpClient) -> None:
        self.owner = owner
        self.channel = Channel()
        self.transport: asyncio.DatagramTransport | None = None
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the selector loop's datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.owner._on_datagram(self, data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.owner._refused += 1
            self.owner._wake.set()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _decode_datagram(data: bytes) -> list[Value]:
    parser = AnswerParser(MAX_DATAGRAM)
    values = parser.feed(data)
    if parser.buffered:
        raise ProtocolError("an answer datagram ends in the middle of a pickle")
    return values


class UdpClient:
    """One client session over UDP: batches of positions per datagram, a few sockets
    in flight, timeouts from measured round trips, and the attribution rules of
    :mod:`cs457p2p.reliability`. Fails when nothing useful arrives for ``timeout``."""

    MAX_BATCH = 256
    QUARANTINE = 256  # retired sockets kept listening for late replies

    def __init__(
        self, config: ClientConfig | None = None, progress: Progress | None = None
    ) -> None:
        self.config = config or ClientConfig(transport="udp")
        self.progress = progress
        self.rtt = RttEstimator()
        self.batch = 8
        self.sockets = 0
        self._refused = 0
        self._wake = asyncio.Event()
        self._failure: ClientError | None = None
        self._coll: Collection | None = None
        self._count: int | None = None
        self._last_progress = 0.0
        self._addr: tuple[str, int] | None = None
        self._retired: deque[_UdpSocket] = deque()
        self._live: set[_UdpSocket] = set()

    @property
    def address(self) -> str:
        return format_address(self.config.host, self.config.port)

    async def _socket(self) -> _UdpSocket:
        loop = asyncio.get_running_loop()
        cfg = self.config
        if self._addr is None:
            try:
                infos = await loop.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_DGRAM)
            except socket.gaierror as e:
                raise ClientError(f"cannot resolve {cfg.host!r}: {e.strerror}") from None
            self._addr = (str(infos[0][4][0]), int(infos[0][4][1]))
        local = (cfg.bind, 0) if cfg.bind else None
        try:
            _, proto = await loop.create_datagram_endpoint(
                lambda: _UdpSocket(self), remote_addr=self._addr, local_addr=local
            )
        except OSError as e:
            raise ClientError(
                f"cannot open a UDP socket to {self.address}: {e.strerror or e}"
            ) from None
        self.sockets += 1
        self._live.add(proto)
        return proto

    def _retire(self, sock: _UdpSocket) -> None:
        self._live.discard(sock)
        self._retired.append(sock)
        while len(self._retired) > self.QUARANTINE:
            self._retired.popleft().close()

    def _fail(self, error: ClientError) -> None:
        if self._failure is None:
            self._failure = error
        self._wake.set()

    def _on_datagram(self, sock: _UdpSocket, data: bytes) -> None:
        if self._failure is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            coll = self._coll
            if coll is None:  # registering
                values = _decode_datagram(data)
                if values and self._count is None:
                    self._count = interpret_count(values[0])
                    self._last_progress = loop.time()
                    self._wake.set()
                return
            seqs, texts = decode_item_answers(data, coll.n)
            attempt = sock.channel.attempt
            leftover = sock.channel.on_reply(coll, seqs, texts)
        except DecodeError as e:
            return self._fail(ClientError(f"refused an answer from the tracker: {e}"))
        except (ProtocolError, CollectionError) as e:
            return self._fail(ClientError(str(e)))
        if leftover is None or attempt is None:
            return
        now = loop.time()
        self._last_progress = now
        if not sock.channel.retired:
            self.rtt.sample(now - attempt.sent_at)
        # Batches fill a datagram of about udp_datagram bytes, but stay small enough
        # that every lane has several to do (a lost batch costs a timeout).
        size = len(data) / max(len(seqs), 1)
        share = coll.n // (self.config.udp_lanes * 4)
        self.batch = max(1, min(self.MAX_BATCH, int(self.config.udp_datagram // size), share))
        if leftover:
            coll.give_back(leftover)
        if self.progress is not None:
            self.progress(coll.answered, coll.n)
        if sock.waiter is not None and not sock.waiter.done():
            sock.waiter.set_result(None)
        self._wake.set()

    async def _wait(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` pass (never past the point where the run
        times out); raise the failure or a timeout."""
        self._wake.clear()
        left = self._last_progress + self.config.timeout - asyncio.get_running_loop().time()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, min(seconds, left) + 0.001))
        self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_progress > self.config.timeout:
            what = "answer to REGISTER" if self._coll is None else "new answer"
            refused = (
                " (connection refused: is a tracker listening on UDP?)" if self._refused else ""
            )
            raise ClientError(
                f"no {what} from {self.address} over UDP within {self.config.timeout:g} s{refused}"
            )

    async def register(self) -> int:
        sock = await self._socket()
        loop = asyncio.get_running_loop()
        self._last_progress = loop.time()
        try:
            while self._count is None:
                sock.send(REGISTER)
                deadline = loop.time() + self.rtt.rto
                while self._count is None and loop.time() < deadline:
                    await self._wait(deadline - loop.time())
                if self._count is None:
                    self.rtt.timed_out()
        finally:
            sock.close()
            self._live.discard(sock)
        if self._count > self.config.max_items:
            raise ClientError(
                f"tracker says N = {self._count}, more than the limit of {self.config.max_items}"
                " (--max-items)"
            )
        return self._count

    async def _lane(self, coll: Collection) -> None:
        loop = asyncio.get_running_loop()
        sock = await self._socket()
        try:
            while not coll.complete and self._failure is None:
                positions = coll.take(self.batch)
                if not positions:
                    await self._wait(self.rtt.rto)
                    continue
                attempt = sock.channel.start(positions, loop.time())
                waiter: asyncio.Future[None] = loop.create_future()
                sock.waiter = waiter
                k = len(positions)
                if positions[-1] == positions[0] + k - 1:  # consecutive: built in bulk
                    sock.send(position_run_bytes(positions[0], k))
                else:
                    sock.send(b"".join(map(encode_position, positions)))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), self.rtt.rto)
                if not attempt.answered:
                    self.rtt.timed_out()
                    coll.give_back(sock.channel.timed_out())
                    self._retire(sock)
                    self._wake.set()
                    sock = await self._socket()
                self._check()
        finally:
            self._wake.set()

    async def fetch(self) -> FetchResult:
        try:
            n = await self.register()
            coll = Collection(n)
            self._coll = coll
            lanes = [asyncio.ensure_future(self._lane(coll)) for _ in range(self.config.udp_lanes)]
            try:
                while not coll.complete:
                    await self._wait(self.config.timeout / 4)
                    done = [t for t in lanes if t.done()]
                    for t in done:
                        if t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]
            finally:
                for t in lanes:
                    t.cancel()
                await asyncio.gather(*lanes, return_exceptions=True)
            message = coll.message()
        except CollectionError as e:
            raise ClientError(str(e)) from None
        finally:
            for sock in list(self._live) + list(self._retired):
                sock.close()
        return FetchResult(message, n, self.sockets, reference_style=False, transport="udp")


async def fetch_message(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one client session (see :class:`Client` and :class:`UdpClient`)."""
    if config.transport == "udp":
        return await UdpClient(config, progress).fetch()
    return await Client(config, progress).fetch()
