"""The asyncio TCP driver of :class:`~cs457p2p.core.fetch.Fetch`: the library's
``fetch_message``, and the pipelined part of the ``client`` command.

It moves bytes for the same sans-I/O objects as the blocking driver: REGISTER and the
probe through asyncio streams; then, for a pipelining tracker, a few persistent
connections (:class:`_Pipeline`, each a :class:`~cs457p2p.core.fetch.PipelineReader`)
with a window of requests in flight; for a reference-style tracker, the threads of
:mod:`~cs457p2p.client.oneshot` in a thread of their own. Every connection after
REGISTER goes to the address that answered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Sequence
from typing import cast

from ..core.errors import RemoteProtocolError
from ..core.fetch import (
    ONESHOT,
    PIPELINE,
    WAIT,
    ClientConfig,
    ClientError,
    Exchange,
    Fetch,
    FetchResult,
    PipelineReader,
    Progress,
)
from ..core.trace import ConnectionTrace, peer_name
from ..net import Target
from ..waits import wait_for
from .oneshot import OneShotFetcher
from .sockets import connect_error, new_socket, numeric_target, targets_of

__all__ = ["AsyncClient", "collect_pipelined"]


# ------------------------------------------------------------------- connecting


async def _resolve(config: ClientConfig, address: str) -> list[Target]:
    numeric = numeric_target(config.host, config.port)
    if numeric is not None:
        return numeric
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise connect_error(e, config, address) from None
    except UnicodeError as e:  # (a name IDNA cannot encode)
        raise ClientError(f"cannot resolve {config.host!r}: {e}") from None
    return targets_of(infos)


async def _connect(
    target: Target, config: ClientConfig, address: str, timeout: float
) -> socket.socket:
    """A non-blocking socket connected to ``target`` within ``timeout`` (OSError, a
    TimeoutError included, when it is not)."""
    loop = asyncio.get_running_loop()
    sock = new_socket(target, config, address)
    try:
        sock.setblocking(False)
        await wait_for(loop.sock_connect(sock, target[1]), timeout)
    except asyncio.TimeoutError:  # (not a TimeoutError before Python 3.11)
        sock.close()
        raise TimeoutError from None
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect_first(
    targets: Sequence[Target], config: ClientConfig, address: str
) -> tuple[socket.socket, Target]:
    """Connect to the first of ``targets`` that accepts, all within the session's
    timeout (as the blocking driver's ``connect_first``)."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError("no address")
    deadline = loop.time() + config.timeout
    for target in targets:
        left = deadline - loop.time()
        if left <= 0:
            error = TimeoutError()
            break
        try:
            return await _connect(target, config, address, left), target
        except OSError as e:
            error = e
    raise connect_error(error, config, address)


def _in_thread(fn: Callable[[], None]) -> tuple[asyncio.Future[None], threading.Thread]:
    """Run ``fn`` in a thread of its own (not the loop's shared executor, which would
    queue concurrent sessions behind each other); the future is awaitable for its end
    (the thread ends just after it is settled)."""
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

    thread = threading.Thread(target=run, name="cs457p2p-reference-style", daemon=True)
    thread.start()
    return done, thread


# ---------------------------------------------------------------------- the client


class AsyncClient:
    """One TCP session driven by asyncio: :meth:`run` registers, collects and
    assembles. With ``fetch`` and ``target`` it continues a session that a blocking
    driver started (:func:`collect_pipelined`)."""

    def __init__(
        self,
        config: ClientConfig,
        progress: Progress | None = None,
        fetch: Fetch | None = None,
        target: Target | None = None,
    ) -> None:
        self.config = config
        self.fetch = fetch if fetch is not None else Fetch(config, progress)
        self.target = target  # the address that answered REGISTER
        self._wake = asyncio.Event()
        self._stopped = False

    async def _open(self, targets: Sequence[Target]) -> socket.socket:
        sock, target = await _connect_first(targets, self.config, self.fetch.address)
        self.fetch.connections += 1
        if self.target is None:
            self.target = target
        return sock

    def _traced(self, sock: socket.socket) -> ConnectionTrace | None:
        tracer = self.config.trace
        return None if tracer is None else tracer.connection(peer_name(sock.getpeername()), True)

    # ------------------------------------------------------------------ the phases

    async def run(self) -> FetchResult:
        """Register, collect every item, and return the assembled message: the steps
        :meth:`Fetch.next_step <cs457p2p.core.fetch.Fetch.next_step>` says."""
        fetch = self.fetch
        loop = asyncio.get_running_loop()
        try:
            targets = await _resolve(self.config, fetch.address)
            while True:
                step = fetch.next_step(loop.time())
                if isinstance(step, Exchange):
                    await self.exchange(step, targets if self.target is None else [self.target])
                elif step == WAIT:
                    at = fetch.next_timer()
                    assert at is not None
                    await asyncio.sleep(max(0.0, at - loop.time()))
                elif step == ONESHOT:
                    await self._oneshot()
                elif step == PIPELINE:
                    await self.collect()
                else:
                    return fetch.result()
        except RemoteProtocolError as e:
            raise fetch.client_error(e) from None

    async def exchange(self, exchange: Exchange, targets: Sequence[Target]) -> None:
        """One exchange on a new asyncio connection to the first of ``targets`` that
        accepts; its end (or the failure to connect) told to the session."""
        fetch = self.fetch
        loop = asyncio.get_running_loop()
        try:
            sock = await self._open(targets)
        except ClientError as e:
            fetch.not_connected(exchange, e, loop.time())
            return
        trace = self._traced(sock)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            request = exchange.request()
            writer.write(request)
            if trace is not None:
                trace.sent(request)
            exchange.start(loop.time())
            while exchange.wants_data:
                at = exchange.next_timer()
                assert at is not None
                left = at - loop.time()
                if left <= 0:
                    exchange.on_timer(loop.time())
                    continue
                try:
                    data = await wait_for(reader.read(1 << 16), left)
                except asyncio.TimeoutError:
                    exchange.on_timer(loop.time())
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    data = b""  # treated as a drop: unanswered positions are asked again
                if trace is not None:
                    trace.received(data)
                exchange.receive(data, loop.time())
        finally:
            writer.close()
            if trace is not None:
                trace.closed()
        fetch.ended(exchange)

    async def _oneshot(self) -> None:
        """The threads of :class:`OneShotFetcher`, awaited. Cancelled, it stops the
        threads and waits for them (each finishes its exchange: a timeout at most)
        without blocking the loop, so that none outlives the fetch."""
        assert self.target is not None
        fetcher = OneShotFetcher(self.fetch, self.target)
        done, thread = _in_thread(fetcher.run)
        try:
            await asyncio.shield(done)
        finally:
            fetcher.stop()
            await asyncio.wait([done])
            # (settled from the thread's last line: it is returning; without the join
            # it was sometimes still alive when the session returned)
            thread.join(1.0)
            if not done.cancelled():
                done.exception()  # (seen: cancelled meanwhile, nobody else will look)

    async def collect(self) -> None:
        """The rest of the collection, pipelined over a few persistent connections."""
        count = max(1, self.config.connections)
        tasks = [asyncio.ensure_future(self._worker()) for _ in range(count)]
        try:
            # (asyncio.wait, not gather: cancelled, this returns at once, even when a
            # worker's own cancellation is lost, and the finally below stops them all)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # (the first error of any worker)
        finally:
            # Workers also stop by themselves once told (a cancellation can be lost
            # when it races with a completing wait on Python 3.11).
            self._stopped = True
            self._wake.set()
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=self.config.timeout)

    async def _worker(self) -> None:
        coll = self.fetch.coll
        assert coll is not None
        while not coll.complete and not self._stopped:
            if coll.queued == 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._pipeline_session()
        self._wake.set()

    async def _pipeline_session(self) -> None:
        """One persistent connection driven by :class:`_Pipeline` until the collection
        is complete or the connection drops (its unanswered positions go back)."""
        fetch = self.fetch
        coll = fetch.coll
        assert coll is not None and self.target is not None
        loop = asyncio.get_running_loop()
        pipe = _Pipeline(fetch, fetch.pipeline_reader())
        try:
            sock = await _connect(self.target, self.config, fetch.address, self.config.timeout)
        except OSError:
            await asyncio.sleep(
                fetch.retry_delay(ClientError(f"cannot connect to {fetch.address} again"))
            )
            return
        fetch.connections += 1
        pipe.trace = self._traced(sock)
        try:
            await loop.create_connection(lambda: pipe, sock=sock)
        except OSError:
            sock.close()
            fetch.count_connection(answered=False)
            return
        try:
            await pipe.finished
        finally:
            pipe.close()
            if pipe.reader.given_back:
                self._wake.set()
        fetch.count_connection(answered=bool(pipe.reader.answered))
        if coll.complete:
            self._wake.set()


class _Pipeline(asyncio.Protocol):
    """A persistent connection moving the bytes of a
    :class:`~cs457p2p.core.fetch.PipelineReader`: its requests out, the answers in,
    and a watchdog for ``--timeout`` seconds of silence."""

    def __init__(self, fetch: Fetch, reader: PipelineReader) -> None:
        self.fetch = fetch
        self.reader = reader
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.finished: asyncio.Future[None] = loop.create_future()
        self.watchdog: asyncio.TimerHandle | None = None
        self.trace: ConnectionTrace | None = None  # --trace

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop: not a subclass)
        # (the wait for the first answer starts now, not before the connect: a slow
        # connect must not eat into it)
        self.reader.start(self.loop.time())
        if not self._refill():
            self._finish()
            return
        self._arm()

    def _refill(self) -> bool:
        """Ask for more; False when nothing is asked and nothing is in flight."""
        t = self.transport
        if t is None or t.is_closing():
            return True
        request = self.reader.requests()
        if request:
            t.write(request)
            if self.trace is not None:
                self.trace.sent(request)
        return bool(self.reader.runs)

    def data_received(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.received(data)
        if self.finished.done():
            return
        reader = self.reader
        try:
            reader.receive(data, self.loop.time())
        except RemoteProtocolError as e:
            return self._fail(e)
        self.fetch.report_progress()
        if reader.coll.complete or (reader.wants_more and not self._refill()):
            self._finish()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _arm(self) -> None:
        """Wake when the wait for the next answer runs out (the reader's timer)."""
        at = self.reader.next_timer()
        if at is not None:
            self.watchdog = self.loop.call_at(at, self._check_time)

    def _check_time(self) -> None:
        if self.finished.done():
            return
        try:
            self.reader.on_timer(self.loop.time())
        except ClientError as e:
            return self._fail(e)
        self._arm()

    def _finish(self) -> None:
        if not self.finished.done():
            self.reader.give_back()
            self.finished.set_result(None)

    def _fail(self, error: Exception) -> None:
        if not self.finished.done():
            self.finished.set_exception(error)
        self.close()

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.trace is not None:
            self.trace.closed()


def collect_pipelined(fetch: Fetch, target: Target) -> None:
    """Collect the rest of ``fetch`` pipelined, on asyncio's loop, continuing a
    blocking session that has learned that its tracker pipelines."""
    # asyncio's own loop: with uvloop 0.23 the client's 8 MB message on a pipe came out
    # cut short (at exit status 0) in 5 of 8 runs; asyncio's never was.
    asyncio.run(AsyncClient(fetch.config, fetch=fetch, target=target).collect())
