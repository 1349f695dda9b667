"""The UDP client: batches of positions per datagram, a few sockets in flight, timeouts
from measured round trips, and the attribution rules of
:mod:`cs457p2p.core.reliability`, which keep every answer tied to the request that
caused it through loss, duplication and reordering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import cast

from ..core.addresses import format_address
from ..core.answers import AnswerParser, decode_item_answers, interpret_count
from ..core.collection import Collection
from ..core.decoder import Value
from ..core.errors import RemoteProtocolError
from ..core.fetch import (
    ClientConfig,
    ClientError,
    FetchResult,
    Progress,
    check_count,
    client_error,
)
from ..core.reliability import Channel, Padding, RttEstimator
from ..core.trace import peer_name
from ..core.wire import MAX_DATAGRAM, REGISTER, encode_position, position_run_bytes

__all__ = ["UdpClient"]


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
        tracer = self.owner.config.trace
        if tracer is not None:
            tracer.datagram(peer_name(addr), data, sent=False, request=False)
        self.owner._on_datagram(self, data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.owner._refused += 1
            self.owner._wake.set()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data)
            tracer = self.owner.config.trace
            if tracer is not None:
                tracer.datagram(peer_name(self.owner._addr), data, sent=True, request=True)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _decode_datagram(data: bytes) -> list[Value]:
    parser = AnswerParser(MAX_DATAGRAM)
    values = parser.feed(data)
    if parser.buffered:
        raise RemoteProtocolError("an answer datagram ends in the middle of a pickle")
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
        self.padding = Padding()
        self.sockets = 0
        self._refused = 0
        self._wake = asyncio.Event()
        self._failure: ClientError | RemoteProtocolError | None = None
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

    def _fail(self, error: ClientError | RemoteProtocolError) -> None:
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
        except RemoteProtocolError as e:
            return self._fail(e)
        if leftover is None or attempt is None:
            return
        now = loop.time()
        self._last_progress = now
        if not sock.channel.retired:
            self.rtt.sample(now - attempt.sent_at)
        # Batches fill a datagram of about udp_datagram bytes, but stay small enough
        # that every lane has several to do (a lost batch costs a timeout).
        size = len(data) / max(len(seqs), 1)
        self.padding.replied(len(data), len(seqs), cut=bool(leftover))
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
        return check_count(self._count, self.config.max_items)

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
                    request = position_run_bytes(positions[0], k)
                else:
                    request = b"".join(map(encode_position, positions))
                # (a tracker answers at most three times what it receives)
                sock.send(self.padding.pad(request, k))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), self.rtt.rto)
                if not attempt.answered:
                    self.rtt.timed_out()
                    self.padding.timed_out()
                    coll.give_back(sock.channel.timed_out())
                    self._retire(sock)
                    self._wake.set()
                    sock = await self._socket()
                self._check()
        finally:
            self._wake.set()

    async def run(self) -> FetchResult:
        """Register, collect every item, and return the assembled message."""
        try:
            n = await self.register()
            coll = Collection(n, self.config.max_message)
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
        except RemoteProtocolError as e:
            raise client_error(e, registering=self._coll is None) from None
        finally:
            for sock in list(self._live) + list(self._retired):
                sock.close()
        return FetchResult(message, n, self.sockets, reference_style=False, transport="udp")
