"""The tracker's ring, driven (Part 2): sends the UPDATE_NBRs the ring's outbox holds and
the PINGs, each connection bounded in time; a peer that does not answer leaves the ring,
and the peer after it is told its new neighbour. The decisions are the core's: the
ring's (:class:`~cs457p2p.core.ring.Ring`), when each round of PINGs starts and ends and
how long a PING may take (:class:`~cs457p2p.core.ping_rounds.PingRounds`, woken at its
``next_timer``), when each connection starts
(:class:`~cs457p2p.core.outbound.Outbound`: one at a time per peer, UPDATE_NBRs
coalesced, a cap on connections open at once and started per second).

A connection to a peer always carries one whole message, written at once: the course's
sample peer stops serving for good after an empty connection or bytes it cannot
unpickle. A PING is answered once one whole answer has come (or bytes that cannot be
one), or the peer closed: the peer need not close after answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..core.answers import AnswerParser
from ..core.errors import RemoteProtocolError
from ..core.outbound import NOTICE, Call, Outbound
from ..core.ping_rounds import PING_INTERVAL, PING_TIMEOUT, PingRounds
from ..core.ring import Ring
from ..core.trace import Tracer, peer_name
from ..core.wire2 import Ping, encode_message
from ..net import describe_os_error
from ..waits import wait_for

__all__ = ["RingKeeper"]

#: Seconds an UPDATE_NBR may take to deliver (the course's tracker: 2 s to connect).
NOTIFY_TIMEOUT = 2.0
#: Bytes of a PING's answer read, at most (any whole answer will do).
_ANSWER_READ = 1024


class RingKeeper:
    """Drives ``ring``: :meth:`start` the pings, :meth:`flush` after the ring has
    answered (its outbox and its checks), :meth:`close` at the end. ``clock`` is the
    time the ring is given (the event loop's)."""

    def __init__(
        self,
        ring: Ring,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        notify_timeout: float = NOTIFY_TIMEOUT,
        clock: Callable[[], float] | None = None,
        trace: Tracer | None = None,
        outbound: Outbound | None = None,
    ) -> None:
        self.ring = ring
        self.trace = trace
        #: the rounds of PINGs (when they start and end, how long a PING may take)
        self.pings = PingRounds(ring, ping_interval, ping_timeout)
        self.notify_timeout = notify_timeout
        self.outbound = outbound if outbound is not None else Outbound()
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_timer_at: float | None = None
        self._closed = False
        #: UPDATE_NBRs that could not be delivered
        self.notices_failed = 0

    def status(self) -> dict[str, Any]:
        """The ring's status, with the keeper's settings and its last round of PINGs."""
        now = self.now()
        status = self.ring.status(now)
        out = self.outbound
        pings = self.pings
        status["ping_interval"] = pings.interval
        status["ping_timeout"] = pings.timeout
        status["last_round_ago"] = (
            None if pings.last_round is None else round(now - pings.last_round, 3)
        )
        status["notices_failed"] = self.notices_failed
        status["outbound"] = {
            "open": out.open,
            "waiting": out.waiting,
            "started": out.started,
            "coalesced": out.coalesced,
            "max_open": out.max_open,
            "rate": out.rate,
        }
        return status

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def start(self) -> None:
        self.pings.start(self.now())
        self._arm_pings()

    async def close(self) -> None:
        self._closed = True
        for timer in (self._timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._ping_timer = None
        tasks = [*self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # ------------------------------------------------------------------ sending

    def flush(self) -> None:
        """Hand what the ring has for its peers (UPDATE_NBRs, PINGs it asks for) to the
        outbound queue, and start what may start."""
        ring, pings = self.ring, self.pings
        if not ring.outbox and not ring.checks and not pings.outbox:
            return
        now = self.now()
        notices, ring.outbox = ring.outbox, []
        checks, ring.checks = ring.checks, []
        rounds, pings.outbox = pings.outbox, []
        out = self.outbound
        for notice in notices:
            out.notice(notice.handle, notice.to, notice.message, now)
        for handle in checks:
            member = ring.member(handle)
            if member is not None:
                out.ping(handle, member.address, now)
        for handle, address in rounds:
            out.ping(handle, address, now)
        self._pump()

    def _pump(self) -> None:
        """Start every connection that is due; wake when the next one may be."""
        out = self.outbound
        now = self.now()
        loop = asyncio.get_running_loop()
        for call in out.due(now):
            task = loop.create_task(self._run(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        wake = out.wake_at(now)
        if wake is None:
            return
        if self._timer is not None:
            if self._timer_at <= wake:
                return
            self._timer.cancel()
        self._timer_at = wake
        self._timer = loop.call_at(wake, self._woken)

    def _woken(self) -> None:
        self._timer = None
        self._pump()

    async def _run(self, call: Call) -> None:
        left = False
        try:
            if call.kind == NOTICE:
                if not await self._notify(call):
                    self.notices_failed += 1
                return
            why = await self._ping(call)
            member = self.ring.member(call.handle)
            if member is not None and member.address == call.to:  # (else it left, moved)
                left = self.ring.ping_result(call.handle, not why, self.now(), why)
        finally:
            now = self.now()
            self.outbound.done(call, now)
            if left:
                self.outbound.forget(call.handle)
            if call.kind != NOTICE:
                self.pings.ping_ended(call.handle, now)
                self._arm_pings()
            self.flush()
            self._pump()

    async def _notify(self, call: Call) -> bool:
        assert call.message is not None
        data = encode_message(call.message)
        try:
            await wait_for(_deliver(call.to, data, trace=self.trace), self.notify_timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        return True

    # -------------------------------------------------------------------- PINGs

    def _arm_pings(self) -> None:
        """Wake when the rounds of PINGs next have something to do."""
        at = None if self._closed else self.pings.next_timer()
        if at == self._ping_timer_at:
            return
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._ping_timer_at = at
        if at is not None:
            delay = max(0.0, at - self.now())  # (the ring's clock may not be the loop's)
            self._ping_timer = asyncio.get_running_loop().call_later(delay, self._pings_woken)

    def _pings_woken(self) -> None:
        self._ping_timer = None
        self._ping_timer_at = None
        self.pings.on_timer(self.now())
        self.flush()
        self._arm_pings()

    async def _ping(self, call: Call) -> str:
        """``""`` if the peer took the PING and answered (or closed) in time; else what
        happened, in words."""
        data = encode_message(Ping(time.asctime()))  # (as the course's: any text will do)
        timeout = self.pings.timeout
        try:
            await wait_for(_deliver(call.to, data, answer=True, trace=self.trace), timeout)
        except asyncio.TimeoutError:
            return f"no answer to a PING within {timeout:g} s"
        except OSError as e:
            return f"a PING got {describe_os_error(e)}"
        return ""


async def _deliver(
    address: tuple[str, int], data: bytes, answer: bool = False, trace: Tracer | None = None
) -> None:
    """Connect to ``address``, write ``data`` at once, and (``answer``) read until one
    whole answer has come (or bytes that cannot be one), or the peer closes."""
    reader, writer = await asyncio.open_connection(address[0], address[1])
    traced = None if trace is None else trace.connection(peer_name(address), True)
    try:
        writer.write(data)
        if traced is not None:
            traced.sent(data)
        await writer.drain()
        if not answer:
            return
        parser = AnswerParser(_ANSWER_READ)
        while True:
            chunk = await reader.read(_ANSWER_READ)
            if traced is not None:
                traced.received(chunk)
            if not chunk:
                return  # closed: taken as an answer, as the course's tracker does
            try:
                if parser.feed(chunk, 1):
                    return
            except RemoteProtocolError:
                return  # an answer, if not one we can read: the peer is there
            if parser.buffered >= _ANSWER_READ:
                return
    finally:
        writer.close()
        if traced is not None:
            traced.closed()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
