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
from collections import deque
from collections.abc import Callable
from typing import cast

from .collection import Collection, CollectionError
from .decoder import DecodeError, Incomplete, Value, decode_prefix
from .protocol import (
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
from .session import (
    REFERENCE,
    UNKNOWN,
    ClientConfig,
    ClientError,
    FetchResult,
    Probe,
    Progress,
    Registration,
    Session,
    Target,
)

__all__ = [
    "Client",
    "ClientConfig",
    "ClientError",
    "FetchResult",
    "UdpClient",
    "fetch_message",
    "fetch_rest",
]


def _in_thread(fn: Callable[[], None]) -> asyncio.Future[None]:
    """Run ``fn`` in a thread of its own (not the loop's shared executor, which would
    queue concurrent sessions behind each other); awaitable for its end."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as e:  # handed to the loop
            error = e
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="cs457p2p-reference-style", daemon=True).start()
    return done


class Client(Session):
    """One client session driven by asyncio: :meth:`fetch` registers, collects and
    assembles. (``cs457p2p client`` runs the blocking :class:`Session` instead, which
    hands over to this class only for a pipelining tracker.)"""

    def __init__(
        self, config: ClientConfig | None = None, progress: Progress | None = None
    ) -> None:
        super().__init__(config, progress)
        self._wake = asyncio.Event()
        self._target: Target | None = None  # the address that answered REGISTER

    # ----------------------------------------------------------------- connections

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.config
        local = (cfg.bind, 0) if cfg.bind else None
        try:
            conn = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port, local_addr=local), cfg.timeout
            )
        except asyncio.TimeoutError:  # (not a TimeoutError before Python 3.11)
            raise self.connect_error(TimeoutError()) from None
        except OSError as e:
            raise self.connect_error(e) from None
        self.connections += 1
        if self._target is None:
            sock = conn[1].get_extra_info("socket")
            peer = conn[1].get_extra_info("peername")
            if sock is not None and peer is not None:
                self._target = (int(sock.family), tuple(peer))
        return conn

    async def _read(self, reader: asyncio.StreamReader, what: str) -> bytes:
        try:
            return await asyncio.wait_for(reader.read(1 << 16), self.config.timeout)
        except asyncio.TimeoutError:
            raise self.waiting_error(what) from None
        except (ConnectionResetError, BrokenPipeError):
            return b""  # treated as a drop: unanswered positions are asked again

    # -------------------------------------------------------------------- register

    async def register(self) -> int:
        """Send REGISTER on its own connection; return N."""
        reader, writer = await self._connect()
        reg = Registration(self.config.max_items)
        try:
            writer.write(REGISTER)
            while True:
                data = await self._read(reader, "the REGISTER answer")
                if not data:
                    raise reg.closed()
                n = reg.feed(data)
                if n is not None:
                    return n
        finally:
            writer.close()

    # ----------------------------------------------------------------------- fetch

    async def fetch(self) -> FetchResult:
        """Register, collect every item, and return the assembled message."""
        n = await self.register()
        coll = Collection(n)
        try:
            while self.mode == UNKNOWN and not coll.complete:
                await self._probe(coll)
            if not coll.complete and self.mode == REFERENCE:
                await self._fetch_reference_style(coll)
            elif not coll.complete:
                await self._collect(coll)
            message = coll.message()
        except CollectionError as e:
            raise ClientError(str(e)) from None
        return FetchResult(message, n, self.connections, self.mode == REFERENCE)

    async def _collect(self, coll: Collection) -> None:
        """The rest of the collection, pipelined over a few persistent connections."""
        count = max(1, self.config.connections)
        tasks = [asyncio.ensure_future(self._worker(coll)) for _ in range(count)]
        try:
            await asyncio.gather(*tasks)
        finally:
            # Workers also stop by themselves once told (a cancellation can be lost
            # when it races with a completing wait on Python 3.11).
            self._stopped = True
            self._wake.set()
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=self.config.timeout)

    async def _worker(self, coll: Collection) -> None:
        while not coll.complete and not self._stopped:
            if coll.queued == 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._pipeline_session(coll)
        self._wake.set()

    async def _retry_later(self, error: ClientError) -> None:
        await asyncio.sleep(self._retry_delay(error))

    async def _fetch_reference_style(self, coll: Collection) -> None:
        """:meth:`Session.fetch_reference_style` (its threads), awaited. Cancelled, it
        stops the threads and waits for them (each finishes its exchange: a timeout at
        most) without blocking the loop, so that none outlives the fetch."""
        target = self._target or self._resolve()[0]
        self.start_reference_style()
        done = _in_thread(lambda: self.run_reference_style(coll, target))
        try:
            await asyncio.shield(done)
        finally:
            self.stop()
            await asyncio.wait([done])
            if not done.cancelled():
                done.exception()  # (seen: cancelled meanwhile, nobody else will look)

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
        """One :class:`Probe` on an asyncio connection."""
        probe = Probe(coll)
        if not probe.outstanding:
            return
        try:
            reader, writer = await self._connect()
        except ClientError as e:
            coll.give_back(probe.outstanding)
            self._wake.set()
            await self._retry_later(e)
            return
        writer.write(probe.request())
        try:
            while not probe.done and not self._stopped:
                data = await self._read(reader, f"item {probe.waiting_for}")
                if not data:
                    break
                probe.feed(data)
                self._report_progress(coll)
        finally:
            writer.close()
        answered = probe.finish()
        self.mode = probe.mode
        if answered is not None:
            self._count_connection(answered)
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
            self._fail(self.client.waiting_error(f"item {first}"))
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


def fetch_rest(session: Session, coll: Collection) -> None:
    """Collect the rest of ``coll`` pipelined, on asyncio's loop, continuing a blocking
    ``session`` that has learned that its tracker pipelines."""
    client = Client(session.config, session.progress)
    client._take_over(session)
    try:
        # asyncio's own loop: with uvloop 0.23 the client's 8 MB message on a pipe came
        # out cut short (at exit status 0) in 5 of 8 runs; asyncio's never was.
        asyncio.run(client._collect(coll))
    finally:
        session._take_over(client)


async def fetch_message(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one client session (see :class:`Client` and :class:`UdpClient`)."""
    if config.transport == "udp":
        return await UdpClient(config, progress).fetch()
    return await Client(config, progress).fetch()
