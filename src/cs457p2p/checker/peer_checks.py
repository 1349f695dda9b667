"""``check peer``: run a student's Part 2 peer against a tracker the checker plays
(:class:`~cs457p2p.checker.played_peer.PlayedTracker`, answering as the course's does)
and two neighbours it plays: A, which holds nothing it would give, and B, which holds
every item. The peer registers, is told A is its neighbour, then (UPDATE_NBR) B; it must
collect every item from B and print the message, and keep serving.

Checks, in order: ``register`` (a well-formed ``('REGISTER', handle, port)``),
``ping`` (its port answers PING with ``('PING', handle)``; ``('ACK', handle)``, as the
course's sample peer, passes with a warning), ``query`` (its hosted item, and
``(None, None)`` for a SEQNUM it lacks), ``follows-update`` (after UPDATE_NBR its
QUERYs go to B), ``collects`` (the message on stdout), ``keeps-serving`` (answers a
QUERY for an item it collected, after printing), ``wrong-tuple`` and ``garbage`` (each
answered or closed, and it still answers PING: garbage runs last, since the course's
sample peer stops serving after it), ``safe-pickles`` (all it sent read by the
restricted decoder as plain tuples).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Sequence
from pathlib import Path

from ..core.course_model import COURSE_P2_DB
from ..core.py2 import dumps_py2, loads_py2
from ..core.wire import encode
from ..core.wire2 import (
    BadMessage,
    Echo,
    Join,
    Message,
    Ping,
    Query,
    QueryResult,
    UpdateNbr,
    as_pong,
    encode_message,
    message_tuple,
)
from ..net import free_port, loopback_hosts
from .course_client import COURSE_PORT
from .guard import Guard
from .judges.pacing import MAX_PAUSE, MIN_PAUSE, pauses
from .judges.printed import printed_in_order
from .played_peer import Heard, PlayedPeer, PlayedTracker, message_of, send
from .report import CheckResult, Report, short, short_text, shown
from .runner import Program, substitute
from .sandbox import Jail, SandboxPolicy, contained

__all__ = ["HW09_REQUIRED", "REQUIRED", "run_peer_checks"]

REQUIRED = (
    "register",
    "ping",
    "query",
    "follows-update",
    "collects",
    "keeps-serving",
    "wrong-tuple",
    "garbage",
    "safe-pickles",
)
#: What HW09 requires ("TCP"; "pause (use timer) for 2-3 seconds between db item
#: requests"; requests pickled; "print the db items in their logical order"; "The server
#: must remain running to provide services to other peers"; PING, QUERY, UPDATE_NBR
#: answered as the protocol says). wrong-tuple and garbage are shown as INFO.
HW09_REQUIRED = (
    "register",
    "ping",
    "query",
    "follows-update",
    "collects",
    "keeps-serving",
    "pause",
    "py2-pickles",
)

HINTS = {
    "register": "send ('REGISTER', handle, port), pickled, with port the int your server"
    " listens on, to the tracker's host and port",
    "ping": "answer ('PING', stamp) on the same connection with ('PING', handle)",
    "query": "answer ('QUERY', seq) with ('QUERY_RESULT', (seq, value)) when you hold it,"
    " ('QUERY_RESULT', (None, None)) otherwise",
    "follows-update": "on ('UPDATE_NBR', handle, ip, port) send your next QUERYs to ip:port",
    "collects": "place each VALUE at its SEQNUM and print the N values in order, joined by"
    " spaces, on one line",
    "keeps-serving": "keep serving after printing the message: the ring still needs your items",
    "wrong-tuple": "answer a message you do not know (e.g. ('[peer]', 'Bad request')) or"
    " close that connection, and keep accepting",
    "garbage": "catch errors per connection (try/except around pickle.loads and the"
    " handling), close it and keep accepting",
    "safe-pickles": "send only pickles of plain tuples of str, int and None",
    "pause": "sleep 2 to 3 seconds (time.sleep(2)) between QUERYs, as the assignment asks",
    "py2-pickles": "send pickle.dumps(message, 2) (or protocol 0): the course's programs are"
    " Python 2, which cannot read Python 3's default protocol",
}

ITEMS = 6
#: Seconds to wait for a PING answer (tried again until then: the peer may still be
#: starting to listen).
PING_WAIT = 5.0
#: Seconds for the peer's first QUERY to its neighbour A, then to B after UPDATE_NBR
#: (the course's sample peer asks every 2 s).
QUERY_WAIT = 10.0
GARBAGE = b"\xff\xfe this is not a pickle\r\n"


def _fail(name: str, detail: str, hint: str = "") -> CheckResult:
    return CheckResult(name, True, False, detail, hint=hint or HINTS[name])


def _pass(name: str, detail: str, warning: str = "") -> CheckResult:
    return CheckResult(name, True, True, detail, warning=warning)


def _not_run(name: str, why: str) -> CheckResult:
    return CheckResult(name, True, False, f"not run: {why}", hint=HINTS[name])


def _words(count: int) -> list[str]:
    return [secrets.token_hex(3) for _ in range(count)]


class _Peer:
    """The student's peer, as far as the checks know it."""

    def __init__(self, program: Program, handle: str, course: bool = False) -> None:
        self.program = program
        self.handle = handle
        self.host = "127.0.0.1"
        self.port = 0
        #: what the checker sends it is in the course's bytes (Python 2's protocol 0)
        self.course = course

    def encode(self, message: Message) -> bytes:
        return dumps_py2(message_tuple(message)) if self.course else encode_message(message)

    async def say(self, payload: bytes, timeout: float) -> Message | BadMessage | str:
        reply = await send(self.host, self.port, payload, timeout, "127.0.0.1")
        got = message_of(reply)
        return (reply.detail or "no answer") if got is None else got

    async def ping(self, timeout: float) -> Message | BadMessage | str:
        return await self.say(self.encode(Ping("Mon Nov 30 12:00:00 2026")), timeout)

    def alive(self) -> bool:
        return self.program.returncode is None


def _pause(at: Sequence[float]) -> CheckResult:
    """The assignment's 2-3 s between item requests, from when its QUERYs arrived."""
    found = pauses(at)
    if len(at) < 2:
        return _fail("pause", f"{len(at)} QUERY: no pause to measure (it must ask for the items)")
    if found.too_short:
        return _fail("pause", f"{found.words()}: {found.too_short} gap(s) under {MIN_PAUSE:g} s")
    warning = ""
    if found.longest > MAX_PAUSE:
        warning = f"a pause of {found.longest:.1f} s: the assignment asks for 2-3 s"
    return _pass("pause", found.words(), warning)


def _py2_pickles(heard: Sequence[Heard]) -> CheckResult:
    """Every message it sent is one the course's Python 2 programs read (protocol 0 to
    2, no code)."""
    for h in heard:
        if not h.raw or "empty" in h.problem:
            continue
        read = loads_py2(h.raw)
        if not read.ok:
            what = "a pickle that calls code" if read.runs_code else read.error
            return _fail("py2-pickles", f"it sent {short(h.raw[:30])}: {what}")
    return _pass("py2-pickles", f"all {len(heard)} messages it sent read by Python 2's pickle")


def _answers_ping(got: Message | BadMessage | str) -> bool:
    return not isinstance(got, (str, BadMessage)) and as_pong(got) is not None


async def _keeps_serving(peer: _Peer, collected: bool, seq: int, value: str) -> CheckResult:
    if not collected:
        after = await peer.ping(5.0)
        if _answers_ping(after):
            return _pass("keeps-serving", "still answers PING (it has not every item)")
        return _fail("keeps-serving", f"PING got {shown(after)}")
    got = await peer.say(peer.encode(Query(seq)), 5.0)
    if got == QueryResult(seq, value):
        return _pass("keeps-serving", f"QUERY {seq} answered with the item it collected")
    return _fail("keeps-serving", f"QUERY {seq}, after the message, got {shown(got)}")


async def run_peer_checks(
    command: Sequence[str],
    *,
    timeout: float = 60.0,
    stdin: str | None = None,
    tracker_port: int | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    sandbox: SandboxPolicy | None = None,
    slot: int = 0,
    assignment: str = "",
) -> Report:
    """Run ``command`` (placeholders ``{tracker_host}``, ``{tracker_port}``,
    ``{handle}``, ``{port}``, ``{host}``, also in ``stdin``) under every check, in a
    sandbox where one can be made (``sandbox``: the policy; ``slot``: the job).
    ``assignment="hw09"``: as the course's programs meet it (module docstring)."""
    hw09 = assignment == "hw09"

    async def body(jail: Jail | None) -> Report:
        port = COURSE_PORT if hw09 and jail is not None and not tracker_port else tracker_port
        return await _run(command, timeout, stdin, port, cwd, log, jail, hw09)

    report, line = await contained(sandbox, cwd, body, slot)
    return dataclasses.replace(report, sandbox=line, assignment=assignment)


async def _run(
    command: Sequence[str],
    timeout: float,
    stdin: str | None,
    tracker_port: int | None,
    cwd: Path | None,
    log: Path | None,
    jail: Jail | None,
    hw09: bool = False,
) -> Report:
    target = " ".join(command)
    guard = Guard.install()
    tracker = PlayedTracker("127.0.0.1", tracker_port or 0, guard, course=hw09)
    # (where 127.0.0.2 and .3 cannot be bound, as on macOS, A and B listen on 127.0.0.1)
    a_host, b_host = loopback_hosts(("127.0.0.2", "127.0.0.3"))
    if hw09:  # the course's database; the peer joins second: it hosts position 1's item
        stored = dict(COURSE_P2_DB)
        words = [stored[k] for k in sorted(stored)]
        order = [seq for seq, _ in COURSE_P2_DB[1:]] + [COURSE_P2_DB[0][0]]
        a_items = dict(COURSE_P2_DB[:1])  # (A hosts position 0's: (4, 'peaks'))
    else:
        words = _words(ITEMS)
        order = list(range(ITEMS))
        secrets.SystemRandom().shuffle(order)
        a_items = {}
    a = PlayedPeer("nbr-a", a_host, a_items, guard, course=hw09)
    b = PlayedPeer("nbr-b", b_host, dict(enumerate(words)), guard, course=hw09)
    try:
        await tracker.start()
    except OSError as e:
        why = f"cannot listen on 127.0.0.1:{tracker_port} for the tracker: {e.strerror or e}"
        report = Report("peer", target, "tcp", (_fail("register", why),), stopped=why)
        return report
    await a.start()
    await b.start()
    hosted_seq = order[0]
    tracker.ring.neighbour = a
    tracker.ring.n = len(words)
    tracker.ring.hosted = (hosted_seq, words[hosted_seq])
    values = {
        "tracker_host": "127.0.0.1",
        "tracker_port": tracker.port,
        "handle": "peer1",
        "port": free_port(),
        "host": "127.0.0.1",
    }
    argv = substitute(command, values)
    data = None
    if stdin is not None:
        text = stdin.replace("\\n", "\n")
        data = substitute([text], values)[0].encode()
    program = Program(argv, stdin=data, cwd=cwd, log=log, jail=jail)
    try:
        await program.start()
    except BaseException:
        for part in (tracker, a, b):
            await part.close()
        raise
    peer = _Peer(program, str(values["handle"]), hw09)
    try:
        checks = await _checks(peer, tracker, a, b, words, hosted_seq, timeout, hw09)
    finally:
        run = await program.stop()
        for part in (tracker, a, b):
            await part.close()
    message = " ".join(words)
    if run.setup_error:
        checks[0] = _fail("register", f"the sandbox could not start it: {run.setup_error}")
    elif run.limit and not all(c.passed for c in checks):
        k = next(k for k, c in enumerate(checks) if not c.passed)
        first = checks[k]
        checks[k] = CheckResult(
            first.name, first.required, False, f"{first.detail} ({run.limit})", hint=first.hint
        )
    elif run.stderr.strip() and not checks[-1].passed:
        last = short_text(run.stderr.strip().splitlines()[-1], 120)
        checks[-1] = CheckResult(
            checks[-1].name,
            checks[-1].required,
            False,
            f"{checks[-1].detail} (its stderr ends: {last})",
            hint=checks[-1].hint,
        )
    load = guard.result()
    return Report(
        "peer",
        target,
        "tcp",
        (*checks, *([load] if load else [])),
        message=message,
        limit=run.limit,
        setup_error=run.setup_error,
    )


async def _checks(
    peer: _Peer,
    tracker: PlayedTracker,
    a: PlayedPeer,
    b: PlayedPeer,
    words: list[str],
    hosted_seq: int,
    timeout: float,
    hw09: bool = False,
) -> list[CheckResult]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    checks: list[CheckResult] = []
    names = HW09_REQUIRED if hw09 else REQUIRED

    # -- register
    # (the first message that is not an ECHO: a REGISTER, or what it sent instead)
    joined = None
    register_by = loop.time() + min(timeout, 30.0)
    while joined is None and peer.alive() and loop.time() < register_by:
        joined = await tracker.wait_for(lambda h: not isinstance(h.message, Echo), 0.1)
    if joined is None or not isinstance(joined.message, Join):
        bad = [h for h in tracker.heard if h.message is None or isinstance(h.message, BadMessage)]
        if bad:
            what = bad[0].problem or shown(bad[0].message or "nothing")
            detail = f"the tracker got {what}, not ('REGISTER', handle, port)"
        elif joined is not None and joined.message is not None:
            detail = f"the tracker got {shown(joined.message)} first, not a REGISTER"
        elif not peer.alive():
            detail = f"the peer exited (code {peer.program.returncode}) before it registered"
        else:
            detail = f"no REGISTER reached the tracker within {min(timeout, 30.0):g} s"
        return [_fail("register", detail), *(_not_run(n, "no REGISTER") for n in names[1:])]
    join = joined.message
    peer.host = joined.sender
    peer.port = join.port
    peer.handle = join.handle
    if not 1 <= join.port <= 65535:
        checks.append(_fail("register", f"REGISTER gave port {join.port}, not in 1..65535"))
    else:
        checks.append(_pass("register", f"('REGISTER', {join.handle!r}, {join.port})"))

    # -- ping (tried until PING_WAIT: it may still be starting to listen)
    got: Message | BadMessage | str = "not asked"
    wait_until = loop.time() + PING_WAIT
    while True:
        got = await peer.ping(PING_WAIT)
        if not isinstance(got, str) or "cannot connect" not in got or loop.time() > wait_until:
            break
        await asyncio.sleep(0.2)
    pong = as_pong(got) if not isinstance(got, (str, BadMessage)) else None
    where = f"{peer.host}:{peer.port}"
    if hw09 and pong is None and (not isinstance(got, str) or got.startswith("closed")):
        # (the course's tracker keeps a peer that answers anything, or closes, in time)
        checks.append(_pass("ping", f"{shown(got)}: the course's tracker keeps it"))
    elif pong is None:
        checks.append(_fail("ping", f"('PING', stamp) to {where} got {shown(got)}"))
        return checks + [_not_run(n, "its port does not answer") for n in names[2:]]
    elif pong.tag == "ACK" and hw09:
        checks.append(_pass("ping", f"answered {shown(got)}, as the assignment asks"))
    elif pong.tag == "ACK":
        checks.append(
            _pass(
                "ping",
                f"answered {shown(got)}",
                "('ACK', handle), as the course's sample peer; the assignment asks for"
                " ('PING', handle)",
            )
        )
    else:
        checks.append(_pass("ping", f"answered {shown(got)}"))

    # -- query: once it has asked A (it has read its REG_INIT), or after QUERY_WAIT
    await a.wait_for(lambda h: isinstance(h.message, Query), QUERY_WAIT)
    lacking = next(s for s in range(len(words)) if s != hosted_seq)
    have = await peer.say(peer.encode(Query(hosted_seq)), 5.0)
    lack = await peer.say(peer.encode(Query(lacking)), 5.0)
    if have != QueryResult(hosted_seq, words[hosted_seq]):
        checks.append(_fail("query", f"QUERY {hosted_seq} (the item it hosts) got {shown(have)}"))
    elif lack != QueryResult(None, None):
        checks.append(_fail("query", f"QUERY {lacking} (an item it lacks) got {shown(lack)}"))
    else:
        checks.append(_pass("query", f"its hosted item, and (None, None) for SEQNUM {lacking}"))

    # -- follows-update
    asked_a = len(a.queries())
    reply = await send(
        peer.host,
        peer.port,
        peer.encode(UpdateNbr(b.handle, b.host, b.port)),
        5.0,
        "127.0.0.1",
        want=0,
    )
    if reply.kind == "unreachable":
        checks.append(_fail("follows-update", f"UPDATE_NBR could not be sent: {reply.detail}"))
    # (a QUERY, or what it sent instead: an unsafe pickle is judged by safe-pickles)
    to_b = await b.wait_for(
        lambda h: isinstance(h.message, Query) or (h.message is None and bool(h.raw)),
        QUERY_WAIT,
    )
    if checks[-1].name == "follows-update":
        pass
    elif to_b is not None:
        checks.append(
            _pass(
                "follows-update",
                f"after UPDATE_NBR its QUERYs went to {b.handle} ({asked_a} to {a.handle} before)",
            )
        )
    else:
        before = f"{asked_a} QUERYs to {a.handle} before" if asked_a else "no QUERY to A either"
        checks.append(
            _fail(
                "follows-update",
                f"no QUERY reached {b.handle} within {QUERY_WAIT:g} s of UPDATE_NBR ({before})",
            )
        )

    # -- collects
    message = " ".join(words)
    while loop.time() < end and peer.alive():
        so_far = peer.program.stdout_so_far.decode("utf-8", "replace")
        if hw09 and printed_in_order(so_far, words).ok:
            break
        if message in so_far or all(w in so_far for w in words):
            break
        await asyncio.sleep(0.05)
    out = peer.program.stdout_so_far.decode("utf-8", "replace")
    form = printed_in_order(out, words)
    if hw09 and form.ok:
        checks.append(_pass("collects", f"printed the items in order: {form.form}"))
    elif hw09 and out.strip():
        order = "not in SEQNUM order" in form.why
        hint = (
            "print the items in SEQNUM order (for k in range(N): DB[k]); a dict prints in"
            " the order its keys were added under Python 3"
            if order
            else HINTS["collects"]
        )
        checks.append(_fail("collects", f"{form.why} (within {timeout:g} s)", hint))
    elif message in out:
        checks.append(_pass("collects", f"printed the message ({len(words)} items)"))
    elif all(w in out for w in words):
        checks.append(
            _fail("collects", "printed every VALUE, but not as the message on one line in order")
        )
    elif not peer.alive():
        checks.append(
            _fail("collects", f"exited (code {peer.program.returncode}) without the message")
        )
    else:
        checks.append(_fail("collects", f"no message on stdout within {timeout:g} s"))

    # -- keeps-serving (a QUERY for an item it collected; without the message, a PING)
    checks.append(await _keeps_serving(peer, checks[-1].passed, lacking, words[lacking]))

    # -- pause (HW09: "pause (use timer) for 2-3 seconds between db item requests")
    if hw09:
        checks.append(_pause([h.at for h in (*a.queries(), *b.queries())]))

    # -- wrong-tuple, garbage (last)
    for name, payload in (
        ("wrong-tuple", encode(("HELLO", "there", 1))),
        ("garbage", GARBAGE),
    ):
        first = await send(peer.host, peer.port, payload, 5.0, "127.0.0.1")
        what = first.describe() if first.kind == "answer" else first.detail
        if first.kind == "undecodable":
            what = f"{short(first.raw[:40])} (bytes, not a pickled tuple)"
        after = await peer.ping(5.0)
        if first.kind == "timeout":
            result = _fail(name, "no answer and no close within 5 s")
        elif _answers_ping(after) or (hw09 and not isinstance(after, str)):
            result = _pass(name, f"got {what}; still answers PING")
        else:
            result = _fail(name, f"got {what}; then PING got {shown(after)}")
        # (HW09 does not ask for it: the course's sample peer stops serving after garbage)
        checks.append(dataclasses.replace(result, required=False) if hw09 else result)

    # -- py2-pickles (HW09: what it sends must be read by the course's Python 2 programs)
    if hw09:
        checks.append(_py2_pickles([h for part in (tracker, a, b) for h in part.heard]))
        return checks

    # -- safe-pickles
    sent = [
        h
        for part in (tracker, a, b)
        for h in part.heard
        if h.sender == peer.host and h.message is None and "empty" not in h.problem
    ]
    if sent:
        checks.append(_fail("safe-pickles", f"it sent {sent[0].problem}"))
    else:
        count = sum(len(p.heard) for p in (tracker, a, b))
        checks.append(_pass("safe-pickles", f"all {count} messages it sent were plain tuples"))
    return checks
