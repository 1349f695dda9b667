"""The clients: drivers of the sans-I/O :mod:`cs457p2p.core.fetch` (TCP: its one loop,
``Fetch.next_step``, and the exchanges of :mod:`cs457p2p.core.exchanges`) and
:mod:`cs457p2p.core.udp_fetch` (UDP).

* :mod:`.blocking`: TCP on blocking sockets, what ``cs457p2p client`` runs;
* :mod:`.pipeline`: TCP on asyncio, pipelined (the library's :func:`fetch_message`);
* :mod:`.oneshot`: the threads that fetch from a reference-style tracker, for both;
* :mod:`.udp`: UDP on asyncio;
* :mod:`.sockets`: reaching the tracker.

Importing this package imports none of them; :func:`fetch_message` imports asyncio's
drivers when it is called.
"""

from __future__ import annotations

from ..core.fetch import ClientConfig, ClientError, FetchResult, Progress

__all__ = ["ClientConfig", "ClientError", "FetchResult", "fetch_message"]


async def fetch_message(config: ClientConfig, progress: Progress | None = None) -> FetchResult:
    """Run one client session from a running event loop (TCP or UDP, as ``config``
    says); raises :class:`~cs457p2p.core.fetch.ClientError`."""
    if config.transport == "udp":
        from .udp import UdpClient

        return await UdpClient(config, progress).run()
    from .pipeline import AsyncClient

    return await AsyncClient(config, progress).run()
