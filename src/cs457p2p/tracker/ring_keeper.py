"""The tracker's ring, driven (Part 2): sends what the ring's outbox holds (UPDATE_NBR,
one connection per message) and PINGs every peer every ``ping_interval`` seconds, all at
once, each bounded by ``ping_timeout``; a peer that does not answer leaves the ring, and
the peer after it is told its new neighbour. The decisions are
:class:`~cs457p2p.core.ring.Ring`'s.

A connection to a peer always carries one whole message, written at once: the course's
sample peer stops serving for good after an empty connection or bytes it cannot
unpickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..core.ring import Member, Notice, Ring
from ..core.trace import Tracer, peer_name
from ..core.wire2 import Ping, encode_message
from ..net import describe_os_error

__all__ = ["RingKeeper"]

#: Seconds an UPDATE_NBR may take to deliver (the course's tracker: 2 s to connect).
NOTIFY_TIMEOUT = 2.0
#: Bytes of a PING's answer read, at most (it is not needed: any answer will do).
_ANSWER_READ = 1024


class RingKeeper:
    """Drives ``ring``: :meth:`start` the pings, :meth:`flush` after the ring has
    answered (its outbox), :meth:`close` at the end. ``clock`` is the time the ring is
    given (the event loop's)."""

    def __init__(
        self,
        ring: Ring,
        ping_interval: float = 20.0,
        ping_timeout: float = 5.0,
        notify_timeout: float = NOTIFY_TIMEOUT,
        clock: Callable[[], float] | None = None,
        trace: Tracer | None = None,
    ) -> None:
        self.ring = ring
        self.trace = trace
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.notify_timeout = notify_timeout
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pinger: asyncio.Task[None] | None = None
        #: UPDATE_NBRs that could not be delivered
        self.notices_failed = 0
        #: when the last round of PINGs started (the loop's clock), and how long it took
        self.last_round: float | None = None
        self.round_seconds = 0.0

    def status(self) -> dict[str, Any]:
        """The ring's status, with the keeper's settings and its last round of PINGs."""
        now = self.now()
        status = self.ring.status(now)
        status["ping_interval"] = self.ping_interval
        status["ping_timeout"] = self.ping_timeout
        status["last_round_ago"] = (
            None if self.last_round is None else round(now - self.last_round, 3)
        )
        status["notices_failed"] = self.notices_failed
        return status

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def start(self) -> None:
        self._pinger = asyncio.get_running_loop().create_task(self._ping_loop())

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._pinger] if self._pinger is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # ----------------------------------------------------------------- UPDATE_NBR

    def flush(self) -> None:
        """Send every message the ring has for its peers (each in a task of its own)."""
        ring = self.ring
        if not ring.outbox:
            return
        notices, ring.outbox = ring.outbox, []
        loop = asyncio.get_running_loop()
        for notice in notices:
            task = loop.create_task(self._notify(notice))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify(self, notice: Notice) -> None:
        data = encode_message(notice.message)
        try:
            await asyncio.wait_for(_deliver(notice.to, data, trace=self.trace), self.notify_timeout)
        except (OSError, asyncio.TimeoutError):
            self.notices_failed += 1

    # ---------------------------------------------------------------------- PINGs

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            await self.ping_all()

    async def ping_all(self) -> None:
        """PING every peer at once; those that do not answer within ``ping_timeout``
        leave the ring (and the peers after them are told)."""
        members = list(self.ring.members)
        if not members:
            return
        started = self.now()
        self.last_round = started
        stamp = time.asctime()  # (as the course's tracker writes it: any text will do)
        results = await asyncio.gather(*(self._ping(m, stamp) for m in members))
        now = self.now()
        self.round_seconds = now - started
        for member, why in zip(members, results, strict=True):
            current = self.ring.member(member.handle)
            if current is not member:
                continue  # it left, or registered again, while it was pinged
            self.ring.ping_result(member.handle, not why, now, why)
        self.flush()

    async def _ping(self, member: Member, stamp: str) -> str:
        """``""`` if ``member`` took the PING and answered (or closed) in time; else
        what happened, in words."""
        data = encode_message(Ping(stamp))
        try:
            await asyncio.wait_for(
                _deliver(member.address, data, answer=True, trace=self.trace), self.ping_timeout
            )
        except asyncio.TimeoutError:
            return f"no answer to a PING within {self.ping_timeout:g} s"
        except OSError as e:
            return f"a PING got {describe_os_error(e)}"
        return ""


async def _deliver(
    address: tuple[str, int], data: bytes, answer: bool = False, trace: Tracer | None = None
) -> bytes:
    """Connect to ``address``, write ``data`` at once, and (``answer``) read what comes
    back until the peer closes (at most :data:`_ANSWER_READ` bytes)."""
    reader, writer = await asyncio.open_connection(address[0], address[1])
    traced = None if trace is None else trace.connection(peer_name(address), True)
    try:
        writer.write(data)
        if traced is not None:
            traced.sent(data)
        await writer.drain()
        if not answer:
            return b""
        got = b""
        while len(got) < _ANSWER_READ:
            chunk = await reader.read(_ANSWER_READ - len(got))
            if traced is not None:
                traced.received(chunk)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        writer.close()
        if traced is not None:
            traced.closed()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
