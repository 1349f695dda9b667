"""Fetching from a reference-style tracker (one request per connection): a few threads,
each running blocking exchanges (connect, send, read the answer, close) like a reference
client, over one shared :class:`~cs457p2p.core.fetch.Fetch` and its collection. Both
drivers use it: the blocking one directly, the asyncio one in a thread of its own.

Why threads: an asyncio connection costs about twice the CPU of a blocking socket, and
one connection per item is nothing but that cost. The threads release the GIL in every
system call, so a few of them keep a one-connection-at-a-time tracker busy.
"""

from __future__ import annotations

import threading
import time

from ..core.decoder import Value
from ..core.fetch import ClientError, Fetch
from ..net import Target
from .sockets import connect_blocking, run_exchange

__all__ = ["OneShotFetcher"]


class _Outcome:
    """How an exchange ended without an answer (two instances)."""

    __slots__ = ()


_NOT_CONNECTED = _Outcome()  # a retry with backoff follows
_CLOSED = _Outcome()  # closed (or reset) before a whole answer: asked again


class OneShotFetcher:
    """The threads of one reference-style fetch. :meth:`run` returns once the collection
    is complete and raises the first error of any thread; :meth:`stop` (from anywhere)
    makes every thread stop after its current exchange."""

    def __init__(self, fetch: Fetch, target: Target) -> None:
        self.fetch = fetch
        self.target = target
        self._shared = threading.Condition()  # the threads' one lock
        self._stopped = False
        self._error: BaseException | None = None

    def run(self) -> None:
        config = self.fetch.config
        count = 1 if config.pace > 0 else max(1, config.reference_connections)
        threads = [
            threading.Thread(target=self._worker, name=f"cs457p2p-oneshot-{k}", daemon=True)
            for k in range(count)
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self.stop()  # (Ctrl-C, or an error: the others finish their exchange, stop)
            for t in threads:
                if t.is_alive():
                    t.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Tell the threads to stop after their current exchange."""
        with self._shared:
            self._stopped = True
            self._shared.notify_all()

    def _worker(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # handed to run(), which raises it
            with self._shared:
                if self._error is None:
                    self._error = e
                self._stopped = True
                self._shared.notify_all()

    def _loop(self) -> None:
        """One thread: take a position, ask for it on its own connection, place the
        answer; everything shared under one lock."""
        shared, fetch = self._shared, self.fetch
        coll = fetch.coll
        assert coll is not None
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
            value = self._exchange(position)
            with shared:
                if value is not _NOT_CONNECTED:
                    fetch.connections += 1
                if not isinstance(value, _Outcome):
                    fetch.place_one(position, value)
                    if coll.complete:
                        shared.notify_all()
                    elif fetch.config.pace > 0:  # (the course's pause between requests)
                        shared.wait(fetch.config.pace)
                    continue
                coll.give_back(positions)
                shared.notify_all()
                if value is _CLOSED:  # closed without a whole answer
                    fetch.count_connection(answered=False)
                    continue
                delay = fetch.retry_delay(ClientError(f"cannot connect to {fetch.address} again"))
            time.sleep(delay)

    def _exchange(self, position: int) -> Value | _Outcome:
        """One blocking exchange: the first whole answer (decoded), ``_CLOSED`` if the
        tracker closes (or resets) first, or ``_NOT_CONNECTED``."""
        fetch = self.fetch
        try:
            sock = connect_blocking(self.target, fetch.config, fetch.address)
        except OSError:
            return _NOT_CONNECTED
        exchange = fetch.one_answer(position)
        run_exchange(sock, exchange, self.target, fetch.config.trace)
        return exchange.value if exchange.done else _CLOSED
