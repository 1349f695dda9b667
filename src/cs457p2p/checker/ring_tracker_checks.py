"""``check tracker --part 2``: play several peers, each listening on an address of its
own (127.0.0.11, .12... for a tracker on loopback), against a running Part 2 tracker,
record what was sent and what came back at each step (a
:class:`~.judges.transcript.RingTrackerTranscript`), and have
:func:`~.judges.ring_tracker.judge_ring_tracker` report each property of the ring as a
named check (the checks: :mod:`.judges.ring_tracker`).

The steps, in order (a fresh tracker is assumed: the first peer must be alone): the
first peer's ECHO and REGISTER (nothing more when nothing listens or no REG_INIT
comes); two more peers register, the first waiting up to :data:`SETTLE` s to hear of
each; more peers up to N (at most :data:`FILL_LIMIT`); a taken handle from another
address, then an ECHO; with ``wait`` > 0, the second peer stops listening and the
checker waits up to ``wait`` s for its successor to be told, and for PINGs; garbage
(last: the course's tracker stops serving for good after it), then an ECHO.

Everything sent is a pickle of a plain tuple (or garbage that starts with a byte no
pickle protocol knows), everything received goes through the restricted decoder, every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import secrets
from collections.abc import Callable

from ..core.addresses import format_address
from ..core.wire2 import (
    Echo,
    Join,
    Message,
    Ping,
    RegInit,
    UpdateNbr,
    encode_message,
    message_tuple,
)
from ..net import loopback_hosts, source_address
from .guard import Guard
from .judges.ring_tracker import (
    FILL_LIMIT,
    P2_INFO,
    REQUIRED,
    SETTLE,
    judge_ring_tracker,
    names,
    nothing_listens,
)
from .judges.transcript import (
    ANSWERED,
    NOT_SENT,
    UNREACHABLE,
    Arrival,
    Exchange,
    PingWatch,
    RingPeer,
    RingTrackerTranscript,
)
from .played_peer import Heard, PlayedPeer, send
from .report import Report

__all__ = [
    "FILL_LIMIT",
    "P2_INFO",
    "REQUIRED",
    "record_ring_tracker",
    "run_ring_tracker_checks",
]

GARBAGE = b"\xff\xfe this is not a pickle\r\n"


def peer_hosts(host: str, port: int, count: int) -> list[str]:
    """Where the played peers listen: distinct loopback addresses for a tracker on
    127.0.0.0/8 (distinct hosts to it), else the local address that reaches it."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback and ":" not in host
    except ValueError:
        loopback = host == "localhost"
    if loopback:  # (127.0.0.1 for all, as for a remote tracker, where .11... cannot be bound)
        return loopback_hosts([f"127.0.0.{11 + k}" for k in range(count)])
    return [source_address(host, port)] * count


class _Run:
    """One run's played peers and what each step got, in seconds from :attr:`t0`."""

    def __init__(self, host: str, port: int, timeout: float, guard: Guard) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tag = secrets.token_hex(2)
        self.hosts = peer_hosts(host, port, FILL_LIMIT + 2)
        self.peers: list[PlayedPeer] = []
        self.joins: dict[str, Exchange] = {}
        self.guard = guard
        self.echo = NOT_SENT
        self.counted_at = 0.0
        self.duplicate = NOT_SENT
        self.after_duplicate = NOT_SENT
        self.watch: PingWatch | None = None
        self.garbage = NOT_SENT
        self.after_garbage = NOT_SENT

    def now(self) -> float:
        return self.loop.time() - self.t0

    async def peer(self) -> PlayedPeer:
        k = len(self.peers)
        p = PlayedPeer(f"chk{self.tag}-{k + 1}", self.hosts[k], guard=self.guard)
        await p.start()
        self.peers.append(p)
        return p

    async def ask(self, message: Message | bytes, source: str | None) -> Exchange:
        """``message`` sent from ``source`` on a connection of its own, and what came back."""
        payload = message if isinstance(message, bytes) else encode_message(message)
        reply = await send(self.host, self.port, payload, self.timeout, source)
        value = reply.values[0] if reply.kind == ANSWERED and reply.values else None
        sent = message if isinstance(message, bytes) else message_tuple(message)
        return Exchange(sent, reply.kind, value, reply.detail, source or "", self.now())

    async def join(self, p: PlayedPeer) -> RegInit | None:
        """``p``'s REGISTER, recorded; its REG_INIT (None: something else came)."""
        ex = await self.ask(Join(p.handle, p.port), p.host)
        self.joins[p.handle] = ex
        got = ex.message
        return got if isinstance(got, RegInit) else None

    async def echo_again(self) -> Exchange:
        """An ECHO from no played peer (does the tracker still serve?)."""
        return await self.ask(Echo(f"chk{self.tag}-echo"), None)

    def heard(self, p: PlayedPeer) -> tuple[Arrival, ...]:
        return tuple(Arrival(h.at - self.t0, h.message) for h in p.heard)

    def transcript(self, wait: float) -> RingTrackerTranscript:
        peers = tuple(
            RingPeer(p.handle, p.host, p.port, self.joins.get(p.handle), self.heard(p))
            for p in self.peers
        )
        return RingTrackerTranscript(
            format_address(self.host, self.port),
            wait,
            self.echo,
            peers,
            self.counted_at,
            self.duplicate,
            self.after_duplicate,
            self.watch,
            self.garbage,
            self.after_garbage,
        )

    async def close(self) -> None:
        for p in self.peers:
            await p.close()


def _update_naming(p: PlayedPeer) -> Callable[[Heard], bool]:
    def found(h: Heard) -> bool:
        m = h.message
        return isinstance(m, UpdateNbr) and names(m, p.handle, p.host, p.port)

    return found


async def record_ring_tracker(
    host: str, port: int, *, timeout: float = 5.0, wait: float = 30.0, guard: Guard | None = None
) -> RingTrackerTranscript:
    """Play peers against the tracker at ``host:port`` (the module docstring's steps)
    and say what each step got; ``guard``: the limits of the parts played (else one of
    their own)."""
    run = _Run(host, port, timeout, guard or Guard())
    try:
        await _steps(run, wait)
        return run.transcript(wait)
    finally:
        await run.close()


async def run_ring_tracker_checks(
    host: str, port: int, *, timeout: float = 5.0, wait: float = 30.0, assignment: str = ""
) -> Report:
    """Every Part 2 check against the tracker at ``host:port`` (:mod:`.judges.ring_tracker`);
    ``assignment="p2"``: what the course asks of one required, the rest INFO."""
    guard = Guard.install()
    transcript = await record_ring_tracker(host, port, timeout=timeout, wait=wait, guard=guard)
    load = guard.result()
    checks = [*judge_ring_tracker(transcript), *([load] if load else [])]
    if assignment == "p2":
        checks = [
            dataclasses.replace(c, required=False) if c.name in P2_INFO else c for c in checks
        ]
    stopped = nothing_listens(transcript)
    return Report(
        "tracker", transcript.address, "tcp", tuple(checks), stopped=stopped, assignment=assignment
    )


async def _steps(run: _Run, wait: float) -> None:
    a = await run.peer()
    run.echo = await run.ask(Echo(a.handle), a.host)
    if run.echo.kind == UNREACHABLE:
        return
    first = await run.join(a)
    if first is None:
        return

    # the second and third peers; the first must hear of each
    b, c = await run.peer(), await run.peer()
    for newcomer in (b, c):
        if await run.join(newcomer) is not None:
            await a.wait_for(_update_naming(newcomer), SETTLE)

    # more peers, up to N when N is small (every SEQNUM hosted?)
    n = first.n
    fill = n if 0 < n <= FILL_LIMIT else 0
    while len(run.peers) < fill:
        if await run.join(await run.peer()) is None:
            break
    await asyncio.sleep(0.2)  # (the last UPDATE_NBRs)
    run.counted_at = run.now()

    # a's handle from another address (or port)
    # (from an address no played peer has; the same port, so that where all the peers
    # share one address, as for a remote tracker, this is a harmless refresh)
    run.duplicate = await run.ask(Join(a.handle, a.port), run.hosts[len(run.peers)])
    run.after_duplicate = await run.echo_again()

    if wait > 0 and len(run.peers) >= 3:
        run.watch = await _watch(run, wait)

    run.garbage = await run.ask(GARBAGE, None)  # (last)
    run.after_garbage = await run.echo_again()


async def _watch(run: _Run, wait: float) -> PingWatch:
    """The second peer stops listening; wait up to ``wait`` s for its successor to hear
    of its new neighbour, and for PINGs (two to one peer: the interval)."""
    loop = run.loop
    start = loop.time()
    peers = run.peers
    victim, successor, before = peers[1], peers[2], peers[0]
    await victim.close()  # (refuses from now on: a dead peer)
    stopped = loop.time()

    def pinged() -> bool:
        return any(p.pings() for p in peers)

    await successor.wait_for(
        _update_naming(before), max(0.0, stopped + wait - loop.time()), since=stopped
    )
    live = [p for p in peers if p.listening]

    def is_ping(h: Heard) -> bool:
        return isinstance(h.message, Ping)

    def twice(h: Heard) -> bool:  # (a second PING to one peer: the interval)
        return isinstance(h.message, Ping) and len(live[0].pings()) >= 2

    if not pinged():
        left = max(0.0, start + wait - loop.time())
        await asyncio.gather(*(p.wait_for(is_ping, left) for p in live))
    if pinged() and live:
        await live[0].wait_for(twice, max(0.0, start + wait - loop.time()))
    return PingWatch(start - run.t0, stopped - run.t0, loop.time() - run.t0)
