"""The blocking TCP driver of :class:`~cs457p2p.core.fetch.Fetch`: what ``cs457p2p
client`` runs. It pumps the session's one loop (``Fetch.next_step``): REGISTER and the
probe go over blocking sockets (:func:`~cs457p2p.client.sockets.run_exchange`); a
reference-style tracker is then served by the threads of
:mod:`~cs457p2p.client.oneshot`, and asyncio is imported only when the tracker turns out
to pipeline (the rest is then collected by :mod:`~cs457p2p.client.pipeline`). Against a
reference-style tracker a run is short, and asyncio's import would be a good part of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
    Progress,
)
from ..net import Target
from .oneshot import OneShotFetcher
from .sockets import connect_first, resolve, run_exchange

__all__ = ["BlockingClient", "fetch_blocking"]


class BlockingClient:
    """One TCP session on blocking sockets; :meth:`run` returns the message."""

    def __init__(self, config: ClientConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.fetch = Fetch(config, progress)
        self.target: Target | None = None  # the address that answered REGISTER

    def run(self) -> FetchResult:
        """Register, collect every item, and return the assembled message, without an
        event loop unless the tracker pipelines (then asyncio takes over, in
        ``asyncio.run``: inside a running event loop, await ``fetch_message``): the
        steps :meth:`Fetch.next_step <cs457p2p.core.fetch.Fetch.next_step>` says."""
        fetch = self.fetch
        try:
            targets = resolve(self.config, fetch.address)
            while True:
                step = fetch.next_step(time.monotonic())
                if isinstance(step, Exchange):
                    self.exchange(step, targets if self.target is None else [self.target])
                elif step == WAIT:
                    at = fetch.next_timer()
                    assert at is not None
                    time.sleep(max(0.0, at - time.monotonic()))
                elif step == ONESHOT:
                    assert self.target is not None
                    OneShotFetcher(fetch, self.target).run()
                elif step == PIPELINE:
                    assert self.target is not None
                    from .pipeline import collect_pipelined  # asyncio: a pipelining tracker

                    collect_pipelined(fetch, self.target)
                else:
                    return fetch.result()
        except RemoteProtocolError as e:
            raise fetch.client_error(e) from None

    def exchange(self, exchange: Exchange, targets: Sequence[Target]) -> None:
        """One exchange on a new blocking connection to the first of ``targets`` that
        accepts; its end (or the failure to connect) told to the session."""
        fetch = self.fetch
        try:
            sock, target = connect_first(targets, self.config, fetch.address)
        except ClientError as e:
            fetch.not_connected(exchange, e, time.monotonic())
            return
        fetch.connections += 1
        if self.target is None:
            self.target = target
        run_exchange(sock, exchange, target, self.config.trace)
        fetch.ended(exchange)


def fetch_blocking(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one TCP client session on blocking sockets (see :class:`BlockingClient`);
    raises :class:`~cs457p2p.core.fetch.ClientError`."""
    return BlockingClient(config, progress).run()
