"""``check tracker --part 2``: play several peers, each listening on an address of its
own (127.0.0.11, .12... for a tracker on loopback), against a running Part 2 tracker,
and report each property of the ring as a named check.

Checks, in order (a fresh tracker is assumed: the first peer must be alone):

* ``echo``: ``('ECHO', handle)`` is answered with a ``(name, text)`` tuple;
* ``register``: ``('REGISTER', handle, port)`` is answered with a well-formed REG_INIT;
* ``lone-peer``: the first peer's neighbour is itself (its handle, address and port);
* ``neighbours``: the second and third peers' neighbours are their predecessors, and
  the first peer is told (UPDATE_NBR) of each newcomer, its new neighbour;
* ``hosted-items``: every hosted item is in range, and with at least N peers (N up to
  :data:`FILL_LIMIT`, more peers join to get there) every SEQNUM is hosted;
* ``duplicate-handle``: a taken handle from another address is answered or refused, and
  the tracker serves on;
* with ``wait`` > 0: ``ping`` (a PING reaches a peer within ``wait`` s) and ``prune``
  (a peer that stops listening is dropped and its successor told its new neighbour,
  within ``wait`` s);
* ``garbage`` (last: the course's tracker stops serving for good after it): bytes that
  are no pickle are answered or the connection closed, and the tracker serves on.

INFO: UPDATE_NBR messages per join; the PING interval measured. Everything sent is a
pickle of a plain tuple (or garbage that starts with a byte no pickle protocol knows),
everything received goes through the restricted decoder, every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import secrets
from collections.abc import Callable

from ..core.addresses import format_address
from ..core.wire2 import (
    BadMessage,
    Echo,
    Join,
    Message,
    Ping,
    RegInit,
    Said,
    UpdateNbr,
    encode_message,
)
from ..net import loopback_hosts, source_address
from .guard import Guard
from .links import ANSWER, UNREACHABLE
from .played_peer import Heard, PlayedPeer, message_of, send
from .report import CheckResult, Report, plural, short, shown

__all__ = ["FILL_LIMIT", "P2_INFO", "REQUIRED", "run_ring_tracker_checks"]

#: Peers the checker registers at most to see every SEQNUM hosted.
FILL_LIMIT = 32
#: Seconds the checks wait for UPDATE_NBRs after a join.
SETTLE = 2.0
GARBAGE = b"\xff\xfe this is not a pickle\r\n"

REQUIRED = (
    "echo",
    "register",
    "lone-peer",
    "neighbours",
    "hosted-items",
    "duplicate-handle",
    "ping",
    "prune",
    "garbage",
)

HINTS = {
    "echo": "answer ('ECHO', handle) with a pickled 2-tuple, e.g. ('[Tracker]', 'Hi ...')",
    "register": "answer ('REGISTER', handle, port) with ('REG_INIT', nbr_handle, nbr_ip,"
    " nbr_port, N, (seq, value)), pickled",
    "lone-peer": "a peer that registers alone is its own neighbour (its handle, the address"
    " its REGISTER came from, the port it sent); restart the tracker before checking",
    "neighbours": "keep peers in registration order; a peer's neighbour is its predecessor"
    " (the first peer's is the last) and send UPDATE_NBR to the first peer when one joins",
    "hosted-items": "give the peer at index i the item at position i % N of the database",
    "duplicate-handle": "answer a taken handle (a REG_INIT or ('[Tracker]', 'Bad request'))"
    " and keep serving",
    "ping": "PING every peer every few seconds: ('PING', time.asctime())",
    "prune": "remove a peer that does not answer its PING, and send its successor an"
    " UPDATE_NBR naming its new neighbour",
    "garbage": "catch errors per connection (try/except around pickle.loads and the"
    " handling), close that connection and keep accepting",
}


def _fail(name: str, detail: str, hint: str = "") -> CheckResult:
    return CheckResult(name, True, False, detail, hint=hint or HINTS.get(name, ""))


def _pass(name: str, detail: str, warning: str = "", **data: object) -> CheckResult:
    return CheckResult(name, True, True, detail, dict(data), warning=warning)


def _not_run(name: str, why: str) -> CheckResult:
    return CheckResult(name, True, False, f"not run: {why}", hint=HINTS.get(name, ""))


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
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tag = secrets.token_hex(2)
        self.hosts = peer_hosts(host, port, FILL_LIMIT + 2)
        self.peers: list[PlayedPeer] = []
        self.inits: dict[str, RegInit] = {}
        self.guard = Guard.install()

    async def peer(self) -> PlayedPeer:
        k = len(self.peers)
        p = PlayedPeer(f"chk{self.tag}-{k + 1}", self.hosts[k], guard=self.guard)
        await p.start()
        self.peers.append(p)
        return p

    async def say(self, message: Message, source: str | None) -> Message | BadMessage | str:
        """The tracker's answer to ``message`` sent from ``source``, or what went wrong."""
        reply = await send(self.host, self.port, encode_message(message), self.timeout, source)
        got = message_of(reply)
        return reply.detail or "no answer" if got is None else got

    async def join(self, p: PlayedPeer) -> RegInit | str:
        got = await self.say(Join(p.handle, p.port), p.host)
        if isinstance(got, RegInit):
            self.inits[p.handle] = got
            return got
        if isinstance(got, str):
            return got
        return f"not a REG_INIT: {short(repr(got))}"

    async def serves(self) -> str | None:
        """None if an ECHO is still answered; else what happened."""
        got = await self.say(Echo(f"chk{self.tag}-echo"), None)
        return None if isinstance(got, Said) else f"then ECHO got {shown(got)}"

    async def close(self) -> None:
        for p in self.peers:
            await p.close()


def _names(nbr: RegInit | UpdateNbr, p: PlayedPeer) -> bool:
    if isinstance(nbr, RegInit):
        return (nbr.nbr_handle, nbr.nbr_ip, nbr.nbr_port) == (p.handle, p.host, p.port)
    return (nbr.handle, nbr.ip, nbr.port) == (p.handle, p.host, p.port)


def _update_naming(p: PlayedPeer) -> Callable[[Heard], bool]:
    def found(h: Heard) -> bool:
        return isinstance(h.message, UpdateNbr) and _names(h.message, p)

    return found


def _nbr_text(m: RegInit) -> str:
    return f"{m.nbr_handle} at {m.nbr_ip}:{m.nbr_port}"


#: What the course does not ask of a Part 2 tracker (``--assignment p2``: INFO): its own
#: p2p-tracker.py stops serving after garbage.
P2_INFO = ("garbage",)


async def run_ring_tracker_checks(
    host: str, port: int, *, timeout: float = 5.0, wait: float = 30.0, assignment: str = ""
) -> Report:
    """Every Part 2 check against the tracker at ``host:port`` (module docstring);
    ``assignment="p2"``: what the course asks of one required, the rest INFO."""
    target = format_address(host, port)
    run = _Run(host, port, timeout)
    try:
        report = await _checks(run, target, wait)
    finally:
        await run.close()
    load = run.guard.result()
    checks = [*report.checks, *([load] if load else [])]
    if assignment == "p2":
        checks = [
            dataclasses.replace(c, required=False) if c.name in P2_INFO else c for c in checks
        ]
    return dataclasses.replace(report, checks=tuple(checks), assignment=assignment)


async def _checks(run: _Run, target: str, wait: float) -> Report:
    checks: list[CheckResult] = []
    loop = asyncio.get_running_loop()
    a = await run.peer()

    # -- echo
    reply = await send(run.host, run.port, encode_message(Echo(a.handle)), run.timeout, a.host)
    if reply.kind == UNREACHABLE:
        why = f"nothing listens on {target} ({reply.detail}): is the tracker running?"
        head = _fail("echo", why, "start the tracker first, listening on this host and port")
        nothing = tuple(_not_run(name, "nothing listens") for name in REQUIRED[1:])
        return Report("tracker", target, "tcp", (head, *nothing), stopped=why)
    got = message_of(reply)
    if isinstance(got, Said):
        checks.append(_pass("echo", f"answered {shown(got)}"))
    else:
        checks.append(_fail("echo", f"('ECHO', {a.handle!r}) got {shown(got or reply.detail)}"))

    # -- register, lone-peer
    first = await run.join(a)
    if isinstance(first, str):
        checks.append(_fail("register", f"('REGISTER', {a.handle!r}, {a.port}) got {first}"))
        rest = [_not_run(name, "no REG_INIT") for name in REQUIRED[2:]]
        return Report("tracker", target, "tcp", (*checks, *rest))
    n = first.n
    item = first.item
    if item is not None and not 0 <= item[0] < max(n, 1):
        checks.append(
            _fail("register", f"REG_INIT hosts SEQNUM {item[0]}, out of range 0..{n - 1}")
        )
    elif item is None and n > 0:
        checks.append(_fail("register", f"REG_INIT gives no item to host, with N = {n}"))
    else:
        checks.append(_pass("register", f"REG_INIT: N = {n}, hosting {short(item, 60)}", n=n))
    if _names(first, a):
        checks.append(_pass("lone-peer", "the first peer is its own neighbour"))
    else:
        checks.append(
            _fail(
                "lone-peer",
                f"the first peer ({a.handle} at {a.host}:{a.port}) got neighbour"
                f" {_nbr_text(first)}, not itself",
            )
        )

    # -- neighbours: B then C; A must hear of each
    problems: list[str] = []
    b, c = await run.peer(), await run.peer()
    for newcomer, before in ((b, a), (c, b)):
        got_init = await run.join(newcomer)
        if isinstance(got_init, str):
            problems.append(f"{newcomer.handle}'s REGISTER got {got_init}")
            continue
        if not _names(got_init, before):
            problems.append(
                f"{newcomer.handle}'s neighbour is {_nbr_text(got_init)}, not its predecessor"
                f" {before.handle} at {before.host}:{before.port}"
            )
        told = await a.wait_for(_update_naming(newcomer), SETTLE)
        if told is None:
            problems.append(
                f"the first peer ({a.handle}) got no UPDATE_NBR naming {newcomer.handle}"
                f" within {SETTLE:g} s of its join"
            )
    if problems:
        checks.append(_fail("neighbours", "; ".join(problems)))
    else:
        checks.append(
            _pass(
                "neighbours",
                "the second and third peers' neighbours are their predecessors; the first"
                " peer was told of each",
            )
        )

    # -- hosted-items: fill up to N peers when N is small
    fill = n if 0 < n <= FILL_LIMIT else 0
    join_problem = ""
    while len(run.peers) < fill:
        p = await run.peer()
        got_init = await run.join(p)
        if isinstance(got_init, str):
            join_problem = f"{p.handle}'s REGISTER got {got_init}"
            break
    await asyncio.sleep(0.2)  # (the last UPDATE_NBRs)
    hosted = {h: m.item for h, m in run.inits.items()}
    out = [(h, i) for h, i in hosted.items() if i is not None and not 0 <= i[0] < n]
    seqs = {i[0] for i in hosted.values() if i is not None}
    if join_problem:
        checks.append(_fail("hosted-items", join_problem))
    elif out:
        h, i = out[0]
        checks.append(_fail("hosted-items", f"{h} hosts SEQNUM {i[0]} (N = {n})"))
    elif fill and seqs != set(range(n)):
        missing = sorted(set(range(n)) - seqs)
        checks.append(
            _fail(
                "hosted-items",
                f"{len(run.peers)} peers for N = {n}, but SEQNUM"
                f" {', '.join(map(str, missing[:8]))} hosted by none",
            )
        )
    elif fill:
        checks.append(_pass("hosted-items", f"{n} peers host all {n} SEQNUMs, each in range"))
    else:
        more = f"; N = {n} is over {FILL_LIMIT}, so not every SEQNUM was looked for" if n else ""
        checks.append(_pass("hosted-items", f"every hosted item is in range{more}"))
    joins = len(run.inits)
    updates = sum(len(p.updates()) for p in run.peers)
    checks.append(
        CheckResult(
            "update-nbr-per-join",
            False,
            True,
            f"{updates / max(joins - 1, 1):.1f} UPDATE_NBR per join after the first"
            f" ({plural(updates, 'UPDATE_NBR')}, {joins} joins); the course's tracker tells"
            " every peer on every join, ours only the one whose neighbour changed",
            {"updates": updates, "joins": joins},
        )
    )

    # -- duplicate-handle: a's handle from another address (or port)
    # (from an address no played peer has; the same port, so that where all the peers
    # share one address, as for a remote tracker, this is a harmless refresh)
    dup = await run.say(Join(a.handle, a.port), run.hosts[len(run.peers)])
    still = await run.serves()
    if still is not None:
        checks.append(_fail("duplicate-handle", f"a taken handle got {shown(dup)}; {still}"))
    elif isinstance(dup, (RegInit, Said)) or (isinstance(dup, str) and "closed" in dup):
        warning = ""
        if isinstance(dup, RegInit) and dup.nbr_handle is None:
            warning = "answered with a REG_INIT without a neighbour (as the course's tracker)"
        checks.append(
            _pass("duplicate-handle", f"a taken handle got {shown(dup)}; still serves", warning)
        )
    else:
        checks.append(_fail("duplicate-handle", f"a taken handle got {shown(dup)}"))

    # -- ping, prune (within one wait)
    if wait > 0 and len(run.peers) >= 3:
        checks += await _ping_and_prune(run, wait, loop.time())
    elif wait <= 0:  # (skipped by choice: not graded)
        why = "not run: --wait 0 (not graded)"
        checks += [CheckResult("ping", False, False, why), CheckResult("prune", False, False, why)]
    else:
        checks += [_not_run(n, "fewer than 3 peers in the ring") for n in ("ping", "prune")]

    # -- garbage (last)
    reply = await send(run.host, run.port, GARBAGE, run.timeout)
    still = await run.serves()
    what = reply.describe() if reply.kind == ANSWER else reply.detail
    if still is None and reply.kind in (ANSWER, "closed"):
        checks.append(_pass("garbage", f"garbage got {what}; still serves"))
    else:
        checks.append(
            _fail(
                "garbage",
                f"garbage got {what}; {still or 'still serves'} (the course's tracker fails"
                " this: after any error it stops serving for good, so this check runs last)",
            )
        )
    return Report("tracker", target, "tcp", tuple(checks))


async def _ping_and_prune(run: _Run, wait: float, start: float) -> list[CheckResult]:
    loop = asyncio.get_running_loop()
    peers = run.peers
    victim, successor = peers[1], peers[2]
    before = peers[0]
    await victim.close()  # (refuses from now on: a dead peer)
    stopped = loop.time()

    def pinged() -> bool:
        return any(p.pings() for p in peers)

    told = await successor.wait_for(
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
    out: list[CheckResult] = []
    all_pings = sorted(h.at for p in peers for h in p.pings())
    if all_pings:
        out.append(_pass("ping", f"the first PING came {all_pings[0] - start:.1f} s in"))
    else:
        out.append(_fail("ping", f"no PING reached any of {len(peers)} peers in {wait:g} s"))
    if told is not None:
        out.append(
            _pass(
                "prune",
                f"{victim.handle} stopped listening; {successor.handle} was told its new"
                f" neighbour {before.handle} {told.at - stopped:.1f} s later",
            )
        )
    else:
        out.append(
            _fail(
                "prune",
                f"{victim.handle} stopped listening; {successor.handle} got no UPDATE_NBR"
                f" naming {before.handle} within {wait:g} s",
            )
        )
    gaps = [b.at - a.at for p in peers for a, b in zip(p.pings(), p.pings()[1:], strict=False)]
    if gaps:
        detail = f"PINGs to a peer every {min(gaps):.1f} - {max(gaps):.1f} s"
    elif all_pings:
        detail = f"one PING per peer in {wait:g} s: the interval is longer"
    else:
        detail = "no PING seen"
    out.append(CheckResult("ping-interval", False, bool(gaps), detail))
    return out
