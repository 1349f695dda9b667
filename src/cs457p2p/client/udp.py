"""The UDP client's driver: a few asyncio datagram sockets, each with a request in flight,
moving the bytes of :class:`~cs457p2p.core.udp_fetch.UdpFetch`, which decides (the
batches, the timeouts from measured round trips, the session through
:class:`~cs457p2p.core.fetch.Fetch`) with the attribution rules of
:mod:`cs457p2p.core.reliability`, which keep every answer tied to the request that
caused it through loss, duplication and reordering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import cast

from ..core.answers import decode_item_answers
from ..core.collection import Collection
from ..core.errors import RemoteProtocolError
from ..core.fetch import ClientConfig, ClientError, FetchResult, Progress
from ..core.reliability import Channel
from ..core.trace import peer_name
from ..core.udp_fetch import UdpFetch
from ..waits import wait_for

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
            self.owner.session.refused += 1
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


class UdpClient:
    """One client session over UDP, driving :class:`~cs457p2p.core.udp_fetch.UdpFetch`
    (which decides: batches, timeouts, the attribution rules of
    :mod:`cs457p2p.core.reliability`): a few sockets with a request in flight each."""

    QUARANTINE = 256  # retired sockets kept listening for late replies

    def __init__(
        self, config: ClientConfig | None = None, progress: Progress | None = None
    ) -> None:
        self.config = config or ClientConfig(transport="udp")
        self.session = UdpFetch(self.config, progress)
        self._wake = asyncio.Event()
        self._failure: ClientError | RemoteProtocolError | None = None
        self._addr: tuple[str, int] | None = None
        self._retired: deque[_UdpSocket] = deque()
        self._live: set[_UdpSocket] = set()

    @property
    def address(self) -> str:
        return self.session.address

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
        self.session.sockets += 1
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
        session = self.session
        now = asyncio.get_running_loop().time()
        try:
            coll = session.coll
            if coll is None:  # registering
                known = session.count is not None
                session.register_answer(data, now)
                if not known and session.count is not None:
                    self._wake.set()
                return
            seqs, texts = decode_item_answers(data, coll.n)
            attempt = sock.channel.attempt
            leftover = sock.channel.on_reply(coll, seqs, texts)
        except RemoteProtocolError as e:
            return self._fail(e)
        if leftover is None or attempt is None:
            return
        rtt = None if sock.channel.retired else now - attempt.sent_at
        session.answered(len(data), len(seqs), leftover, rtt, now)
        if sock.waiter is not None and not sock.waiter.done():
            sock.waiter.set_result(None)
        self._wake.set()

    async def _wait(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` pass (never past the point where the run
        times out); raise the failure or a timeout."""
        self._wake.clear()
        loop = asyncio.get_running_loop()
        left = self.session.next_timer() - loop.time()
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_for(self._wake.wait(), max(0.0, min(seconds, left) + 0.001))
        self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        self.session.on_timer(asyncio.get_running_loop().time())

    async def register(self) -> None:
        session = self.session
        sock = await self._socket()
        loop = asyncio.get_running_loop()
        session.start(loop.time())
        try:
            while session.count is None:
                sock.send(session.register_request())
                deadline = loop.time() + session.rto
                while session.count is None and loop.time() < deadline:
                    await self._wait(deadline - loop.time())
                if session.count is None:
                    session.register_timed_out()
        finally:
            sock.close()
            self._live.discard(sock)

    async def _lane(self, coll: Collection) -> None:
        loop = asyncio.get_running_loop()
        session = self.session
        sock = await self._socket()
        try:
            while not coll.complete and self._failure is None:
                positions = session.take()
                if not positions:
                    await self._wait(session.rto)
                    continue
                attempt = sock.channel.start(positions, loop.time())
                waiter: asyncio.Future[None] = loop.create_future()
                sock.waiter = waiter
                sock.send(session.request(positions))
                with contextlib.suppress(asyncio.TimeoutError):
                    await wait_for(asyncio.shield(waiter), session.rto)
                if not attempt.answered:
                    session.attempt_timed_out(sock.channel.timed_out())
                    self._retire(sock)
                    self._wake.set()
                    sock = await self._socket()
                self._check()
        finally:
            self._wake.set()

    async def run(self) -> FetchResult:
        """Register, collect every item, and return the assembled message."""
        session = self.session
        try:
            await self.register()
            coll = session.registered()
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
            return session.result()
        except RemoteProtocolError as e:
            raise session.client_error(e) from None
        finally:
            for sock in list(self._live) + list(self._retired):
                sock.close()
