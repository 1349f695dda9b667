"""The blocking TCP driver of :class:`~cs457p2p.core.fetch.Fetch`: what ``cs457p2p
client`` runs. REGISTER and the probe go over blocking sockets; a reference-style
tracker is then served by the threads of :mod:`~cs457p2p.client.oneshot`, and asyncio is
imported only when the tracker turns out to pipeline (the rest is then collected by
:mod:`~cs457p2p.client.pipeline`). Against a reference-style tracker a run is short, and
asyncio's import would be a good part of it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Sequence

from ..core.errors import RemoteProtocolError
from ..core.fetch import (
    ONESHOT,
    PIPELINE,
    PROBE,
    ClientConfig,
    ClientError,
    Fetch,
    FetchResult,
    Progress,
)
from ..core.trace import ConnectionTrace, peer_name
from ..core.wire import REGISTER
from ..net import Target
from .oneshot import OneShotFetcher
from .sockets import connect_first, resolve

__all__ = ["BlockingClient", "fetch_blocking"]


class BlockingClient:
    """One TCP session on blocking sockets; :meth:`run` returns the message."""

    def __init__(self, config: ClientConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.fetch = Fetch(config, progress)

    def run(self) -> FetchResult:
        """Register, collect every item, and return the assembled message, without an
        event loop unless the tracker pipelines (then asyncio takes over, in
        ``asyncio.run``: inside a running event loop, await ``fetch_message``)."""
        fetch = self.fetch
        try:
            n, target = self.register(resolve(self.config, fetch.address))
            fetch.registered(n)
            while fetch.phase == PROBE:
                self.probe(target)
            if fetch.phase == ONESHOT:
                OneShotFetcher(fetch, target).run()
            elif fetch.phase == PIPELINE:
                from .pipeline import collect_pipelined  # asyncio, only for a pipelining tracker

                collect_pipelined(fetch, target)
            return fetch.result()
        except RemoteProtocolError as e:
            raise fetch.client_error(e) from None

    def _connect(self, targets: Sequence[Target]) -> tuple[socket.socket, Target]:
        sock, target = connect_first(targets, self.config, self.fetch.address)
        self.fetch.connections += 1
        return sock, target

    def _traced(self, target: Target) -> ConnectionTrace | None:
        tracer = self.config.trace
        return None if tracer is None else tracer.connection(peer_name(target[1]), True)

    def _recv(self, sock: socket.socket, what: str, deadline: float) -> bytes:
        """What arrives before ``deadline`` (``time.monotonic()``): an answer must be
        whole within --timeout of its request, however its bytes trickle in."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise self.fetch.waiting_error(what)
        sock.settimeout(left)
        try:
            return sock.recv(1 << 16)
        except TimeoutError:
            raise self.fetch.waiting_error(what) from None
        except OSError:  # reset, aborted...
            return b""  # treated as a drop: unanswered positions are asked again

    def register(self, targets: Sequence[Target]) -> tuple[int, Target]:
        """Send REGISTER on its own connection; return N, and the address that
        answered (the rest of the session uses it)."""
        reg = self.fetch.registration()
        sock, target = self._connect(targets)
        trace = self._traced(target)
        try:
            with sock:
                with contextlib.suppress(OSError):
                    sock.sendall(REGISTER)  # (closed already: the read below sees it)
                if trace is not None:
                    trace.sent(REGISTER)
                deadline = time.monotonic() + self.config.timeout
                while True:
                    data = self._recv(sock, "the REGISTER answer", deadline)
                    if trace is not None:
                        trace.received(data)
                    if not data:
                        raise reg.closed()
                    n = reg.feed(data)
                    if n is not None:
                        return n, target
        finally:
            if trace is not None:
                trace.closed()

    def probe(self, target: Target) -> None:
        """One probe, on a blocking connection."""
        fetch = self.fetch
        probe = fetch.probe()
        if not probe.outstanding:
            return
        try:
            sock, _ = self._connect([target])
        except ClientError as e:
            probe.coll.give_back(probe.outstanding)
            time.sleep(fetch.retry_delay(e))
            return
        trace = self._traced(target)
        try:
            with sock:
                request = probe.request()
                with contextlib.suppress(OSError):
                    sock.sendall(request)  # (closed already: the reads below see it)
                if trace is not None:
                    trace.sent(request)
                deadline = time.monotonic() + self.config.timeout
                while not probe.done:
                    data = self._recv(sock, f"item {probe.waiting_for}", deadline)
                    if trace is not None:
                        trace.received(data)
                    if not data:
                        break
                    answered = probe.answered
                    probe.feed(data)
                    if probe.answered > answered:  # the next answer gets its own --timeout
                        deadline = time.monotonic() + self.config.timeout
                    fetch.report_progress()
        finally:
            if trace is not None:
                trace.closed()
        fetch.probe_finished(probe)


def fetch_blocking(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one TCP client session on blocking sockets (see :class:`BlockingClient`);
    raises :class:`~cs457p2p.core.fetch.ClientError`."""
    return BlockingClient(config, progress).run()
