"""``check tracker --part 2`` judged: a Part 2 tracker's ring, from what the peers the
checker played sent and heard (a :class:`~.transcript.RingTrackerTranscript`), each
property one named check (in order; a fresh tracker is assumed: the first peer must be
alone):

* ``echo``: ``('ECHO', handle)`` is answered with a ``(name, text)`` tuple;
* ``register``: ``('REGISTER', handle, port)`` is answered with a well-formed REG_INIT;
* ``lone-peer``: the first peer's neighbour is itself (its handle, address and port);
* ``neighbours``: the second and third peers' neighbours are their predecessors, and
  the first peer is told (UPDATE_NBR) of each newcomer, its new neighbour, within
  :data:`SETTLE` s of the newcomer's join;
* ``hosted-items``: every hosted item is in range, and with at least N peers (N up to
  :data:`FILL_LIMIT`) every SEQNUM is hosted;
* ``duplicate-handle``: a taken handle from another address is answered or refused, and
  the tracker serves on;
* with ``wait`` > 0: ``ping`` (a PING reached a peer by the end of the watch) and
  ``prune`` (a peer that stopped listening was dropped and its successor told its new
  neighbour, within ``wait`` s);
* ``garbage`` (last: the course's tracker stops serving for good after it): bytes that
  are no pickle are answered or the connection closed, and the tracker serves on.

INFO: UPDATE_NBR messages per join; the PING interval measured. No clock, no socket:
every time is a number in the transcript.
"""

from __future__ import annotations

from ...core.wire2 import BadMessage, Message, Ping, RegInit, Said, UpdateNbr
from ..hints import START_THE_TRACKER_HINT, tracker_not_running
from ..report import CheckResult, plural, short, shown
from .transcript import (
    ANSWERED,
    CLOSED,
    UNREACHABLE,
    Arrival,
    Exchange,
    PingWatch,
    RingPeer,
    RingTrackerTranscript,
)

__all__ = [
    "FILL_LIMIT",
    "HINTS",
    "P2_INFO",
    "REQUIRED",
    "SETTLE",
    "judge_ring_tracker",
    "names",
    "nothing_listens",
]

#: Peers the checker registers at most to see every SEQNUM hosted.
FILL_LIMIT = 32
#: Seconds the first peer has to hear of a newcomer (UPDATE_NBR) after its join.
SETTLE = 2.0

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

#: What the course does not ask of a Part 2 tracker (``--assignment p2``: INFO): its own
#: p2p-tracker.py stops serving after garbage.
P2_INFO = ("garbage",)

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


# ------------------------------------------------------------------ reading answers


def _said(ex: Exchange) -> Message | BadMessage | str:
    """The answer as a message, or what happened instead in words."""
    got = ex.message
    return (ex.detail or "no answer") if got is None else got


def _joined(p: RingPeer) -> RegInit | str:
    """``p``'s REG_INIT, or what its REGISTER got instead."""
    if p.joined is None:
        return "nothing: it never sent its REGISTER"
    got = _said(p.joined)
    if isinstance(got, (RegInit, str)):
        return got
    return f"not a REG_INIT: {short(repr(got))}"


def _serves(ex: Exchange) -> str | None:
    """None if the ECHO ``ex`` was answered (the tracker still serves); else what it got."""
    got = _said(ex)
    return None if isinstance(got, Said) else f"then ECHO got {shown(got)}"


def names(nbr: RegInit | UpdateNbr, handle: str, host: str, port: int) -> bool:
    """Whether ``nbr`` names the peer ``handle`` at ``host:port``."""
    if isinstance(nbr, RegInit):
        return (nbr.nbr_handle, nbr.nbr_ip, nbr.nbr_port) == (handle, host, port)
    return (nbr.handle, nbr.ip, nbr.port) == (handle, host, port)


def _names(nbr: RegInit | UpdateNbr, p: RingPeer) -> bool:
    return names(nbr, p.handle, p.host, p.port)


def _told(listener: RingPeer, about: RingPeer, since: float, until: float) -> Arrival | None:
    """The first UPDATE_NBR naming ``about`` that reached ``listener`` from ``since`` to
    ``until``."""
    for h in listener.heard:
        m = h.message
        if since <= h.at <= until and isinstance(m, UpdateNbr) and _names(m, about):
            return h
    return None


def _pings(p: RingPeer, until: float) -> list[Arrival]:
    return [h for h in p.heard if isinstance(h.message, Ping) and h.at <= until]


def _nbr_text(m: RegInit) -> str:
    return f"{m.nbr_handle} at {m.nbr_ip}:{m.nbr_port}"


# ------------------------------------------------------------------------- checks


def nothing_listens(t: RingTrackerTranscript) -> str:
    """The one line that says nothing could be checked ("": something listened)."""
    if t.echo.kind != UNREACHABLE:
        return ""
    return tracker_not_running(t.address, t.echo.detail)


def _echo(t: RingTrackerTranscript) -> CheckResult:
    got = t.echo.message
    if isinstance(got, Said):
        return _pass("echo", f"answered {shown(got)}")
    return _fail("echo", f"('ECHO', {t.peers[0].handle!r}) got {shown(got or t.echo.detail)}")


def _register(first: RegInit) -> CheckResult:
    n, item = first.n, first.item
    if item is not None and not 0 <= item[0] < max(n, 1):
        return _fail("register", f"REG_INIT hosts SEQNUM {item[0]}, out of range 0..{n - 1}")
    if item is None and n > 0:
        return _fail("register", f"REG_INIT gives no item to host, with N = {n}")
    return _pass("register", f"REG_INIT: N = {n}, hosting {short(item, 60)}", n=n)


def _lone_peer(first: RegInit, a: RingPeer) -> CheckResult:
    if _names(first, a):
        return _pass("lone-peer", "the first peer is its own neighbour")
    return _fail(
        "lone-peer",
        f"the first peer ({a.handle} at {a.host}:{a.port}) got neighbour"
        f" {_nbr_text(first)}, not itself",
    )


def _neighbours(t: RingTrackerTranscript) -> CheckResult:
    """The second and third peers: each one's neighbour, and the first peer told of it."""
    problems: list[str] = []
    a = t.peers[0]
    for newcomer, before in ((t.peers[1], a), (t.peers[2], t.peers[1])):
        got_init = _joined(newcomer)
        if isinstance(got_init, str):
            problems.append(f"{newcomer.handle}'s REGISTER got {got_init}")
            continue
        if not _names(got_init, before):
            problems.append(
                f"{newcomer.handle}'s neighbour is {_nbr_text(got_init)}, not its predecessor"
                f" {before.handle} at {before.host}:{before.port}"
            )
        joined_at = newcomer.joined.at if newcomer.joined else 0.0
        if _told(a, newcomer, float("-inf"), joined_at + SETTLE) is None:
            problems.append(
                f"the first peer ({a.handle}) got no UPDATE_NBR naming {newcomer.handle}"
                f" within {SETTLE:g} s of its join"
            )
    if problems:
        return _fail("neighbours", "; ".join(problems))
    return _pass(
        "neighbours",
        "the second and third peers' neighbours are their predecessors; the first"
        " peer was told of each",
    )


def _hosted_items(t: RingTrackerTranscript, n: int) -> list[CheckResult]:
    """hosted-items, and how many UPDATE_NBRs the joins cost (INFO)."""
    fill = n if 0 < n <= FILL_LIMIT else 0
    inits = [(p.handle, got) for p in t.peers if isinstance(got := _joined(p), RegInit)]
    # (the peers after the first three joined to fill the ring: the first that failed)
    failed = [(p, got) for p in t.peers[3:] if isinstance(got := _joined(p), str)]
    join_problem = f"{failed[0][0].handle}'s REGISTER got {failed[0][1]}" if failed else ""
    hosted = {h: m.item for h, m in inits}
    out = [(h, i) for h, i in hosted.items() if i is not None and not 0 <= i[0] < n]
    seqs = {i[0] for i in hosted.values() if i is not None}
    if join_problem:
        result = _fail("hosted-items", join_problem)
    elif out:
        h, i = out[0]
        result = _fail("hosted-items", f"{h} hosts SEQNUM {i[0]} (N = {n})")
    elif fill and seqs != set(range(n)):
        missing = sorted(set(range(n)) - seqs)
        result = _fail(
            "hosted-items",
            f"{len(t.peers)} peers for N = {n}, but SEQNUM"
            f" {', '.join(map(str, missing[:8]))} hosted by none",
        )
    elif fill:
        result = _pass("hosted-items", f"{n} peers host all {n} SEQNUMs, each in range")
    else:
        more = f"; N = {n} is over {FILL_LIMIT}, so not every SEQNUM was looked for" if n else ""
        result = _pass("hosted-items", f"every hosted item is in range{more}")
    joins = len(hosted)
    updates = sum(
        isinstance(h.message, UpdateNbr) and h.at <= t.counted_at for p in t.peers for h in p.heard
    )
    per_join = CheckResult(
        "update-nbr-per-join",
        False,
        True,
        f"{updates / max(joins - 1, 1):.1f} UPDATE_NBR per join after the first"
        f" ({plural(updates, 'UPDATE_NBR')}, {joins} joins); the course's tracker tells"
        " every peer on every join, ours only the one whose neighbour changed",
        {"updates": updates, "joins": joins},
    )
    return [result, per_join]


def _duplicate(t: RingTrackerTranscript) -> CheckResult:
    dup = _said(t.duplicate)
    still = _serves(t.after_duplicate)
    if still is not None:
        return _fail("duplicate-handle", f"a taken handle got {shown(dup)}; {still}")
    if isinstance(dup, (RegInit, Said)) or (isinstance(dup, str) and "closed" in dup):
        warning = ""
        if isinstance(dup, RegInit) and dup.nbr_handle is None:
            warning = "answered with a REG_INIT without a neighbour (as the course's tracker)"
        return _pass("duplicate-handle", f"a taken handle got {shown(dup)}; still serves", warning)
    return _fail("duplicate-handle", f"a taken handle got {shown(dup)}")


def _ping_and_prune(t: RingTrackerTranscript) -> list[CheckResult]:
    if t.wait <= 0:  # (skipped by choice: not graded)
        why = "not run: --wait 0 (not graded)"
        return [CheckResult("ping", False, False, why), CheckResult("prune", False, False, why)]
    if t.watch is None:
        return [_not_run(n, "fewer than 3 peers in the ring") for n in ("ping", "prune")]
    return _watched(t, t.watch)


def _watched(t: RingTrackerTranscript, w: PingWatch) -> list[CheckResult]:
    """ping, prune and ping-interval: the second peer (the victim) stopped listening at
    ``w.stopped``; its successor, the third, must hear of the first within ``wait`` s."""
    before, victim, successor = t.peers[0], t.peers[1], t.peers[2]
    told = _told(successor, before, w.stopped, w.stopped + t.wait)
    out: list[CheckResult] = []
    all_pings = sorted(h.at for p in t.peers for h in _pings(p, w.ended))
    if all_pings:
        out.append(_pass("ping", f"the first PING came {all_pings[0] - w.start:.1f} s in"))
    else:
        out.append(_fail("ping", f"no PING reached any of {len(t.peers)} peers in {t.wait:g} s"))
    if told is not None:
        out.append(
            _pass(
                "prune",
                f"{victim.handle} stopped listening; {successor.handle} was told its new"
                f" neighbour {before.handle} {told.at - w.stopped:.1f} s later",
            )
        )
    else:
        out.append(
            _fail(
                "prune",
                f"{victim.handle} stopped listening; {successor.handle} got no UPDATE_NBR"
                f" naming {before.handle} within {t.wait:g} s",
            )
        )
    gaps = [
        b.at - a.at
        for p in t.peers
        for a, b in zip(_pings(p, w.ended), _pings(p, w.ended)[1:], strict=False)
    ]
    if gaps:
        detail = f"PINGs to a peer every {min(gaps):.1f} - {max(gaps):.1f} s"
    elif all_pings:
        detail = f"one PING per peer in {t.wait:g} s: the interval is longer"
    else:
        detail = "no PING seen"
    out.append(CheckResult("ping-interval", False, bool(gaps), detail))
    return out


def _garbage(t: RingTrackerTranscript) -> CheckResult:
    reply = t.garbage
    still = _serves(t.after_garbage)
    what = short(reply.value) if reply.kind == ANSWERED else reply.detail
    if still is None and reply.kind in (ANSWERED, CLOSED):
        return _pass("garbage", f"garbage got {what}; still serves")
    return _fail(
        "garbage",
        f"garbage got {what}; {still or 'still serves'} (the course's tracker fails"
        " this: after any error it stops serving for good, so this check runs last)",
    )


def judge_ring_tracker(t: RingTrackerTranscript) -> list[CheckResult]:
    """Every check of the module docstring, in order, over one run; the INFO rows
    where they are measured. A run that found nothing listening, or got no REG_INIT
    for its first peer, has every check after that not run."""
    if t.echo.kind == UNREACHABLE:
        head = _fail("echo", nothing_listens(t), START_THE_TRACKER_HINT)
        return [head, *(_not_run(name, "nothing listens") for name in REQUIRED[1:])]
    checks = [_echo(t)]
    a = t.peers[0]
    first = _joined(a)
    if isinstance(first, str):
        checks.append(_fail("register", f"('REGISTER', {a.handle!r}, {a.port}) got {first}"))
        return [*checks, *(_not_run(name, "no REG_INIT") for name in REQUIRED[2:])]
    checks += [_register(first), _lone_peer(first, a), _neighbours(t)]
    checks += _hosted_items(t, first.n)
    checks.append(_duplicate(t))
    checks += _ping_and_prune(t)
    checks.append(_garbage(t))
    return checks
