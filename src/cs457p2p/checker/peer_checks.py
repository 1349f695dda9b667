"""``check peer``: run a student's Part 2 peer against a tracker the checker plays
(:class:`~cs457p2p.checker.played_peer.PlayedTracker`, answering as the course's does)
and two neighbours it plays: A, which holds nothing it would give, and B, which holds
every item. The peer registers, is told A is its neighbour, then (UPDATE_NBR) B; it must
collect every item from B and print the message, and keep serving.

This module only records: it starts the parts it plays and the program, talks to the
peer in the judge's order (garbage last, since the course's sample peer stops serving
after it), stops where the judge will (no REGISTER, a port that does not answer), and
hands what it saw, as a :class:`~.judges.peer_transcript.PeerTranscript`, to
:func:`~.judges.peer.judge_peer`, which names the checks (its docstring lists them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Sequence
from pathlib import Path

from ..core.course_model import COURSE_P2_DB
from ..core.py2 import dumps_py2
from ..core.wire import encode
from ..core.wire2 import Echo, Join, Message, Ping, Query, UpdateNbr, encode_message, message_tuple
from ..net import free_port, loopback_hosts
from .course_client import COURSE_PORT
from .guard import Guard
from .judges.peer import (
    HW09_REQUIRED,
    PING_WAIT,
    QUERY_WAIT,
    REGISTER_WAIT,
    REQUIRED,
    answer_of,
    collects,
    judge_peer,
    lacking_seq,
    message_seen,
    ping_stops,
    tracker_unavailable,
)
from .judges.peer_transcript import Moment, PeerTranscript, Played, Probe, Received, Served
from .judges.transcript import ProgramRun
from .played_peer import Heard, PlayedPeer, PlayedTracker, send
from .report import Report
from .runner import Program, substitute
from .sandbox import Jail, SandboxPolicy, contained

__all__ = ["HW09_REQUIRED", "REQUIRED", "run_peer_checks"]

ITEMS = 6
GARBAGE = b"\xff\xfe this is not a pickle\r\n"
#: A message no peer knows.
WRONG_TUPLE = encode(("HELLO", "there", 1))


def _words(count: int) -> list[str]:
    return [secrets.token_hex(3) for _ in range(count)]


class _Recorder:
    """The student's peer, as far as the checker knows it, and the clock of the run:
    every message sent to its port becomes a :class:`Probe`, timed from the start."""

    def __init__(self, program: Program, course: bool, start: float) -> None:
        self.program = program
        self.host = "127.0.0.1"
        self.port = 0
        #: what the checker sends it is in the course's bytes (Python 2's protocol 0)
        self.course = course
        self.start = start

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.start

    def encode(self, message: Message) -> bytes:
        return dumps_py2(message_tuple(message)) if self.course else encode_message(message)

    async def send(self, payload: bytes, timeout: float = 5.0, want: int = 1) -> Probe:
        at = self.now()
        reply = await send(self.host, self.port, payload, timeout, "127.0.0.1", want=want)
        return Probe(at, payload, reply.kind, tuple(reply.values), reply.raw, reply.detail)

    async def say(self, message: Message, timeout: float = 5.0) -> Probe:
        return await self.send(self.encode(message), timeout)

    async def ping(self, timeout: float = 5.0) -> Probe:
        return await self.say(Ping("Mon Nov 30 12:00:00 2026"), timeout)

    def moment(self, stdout: bool = False) -> Moment:
        out = self.program.stdout_so_far.decode("utf-8", "replace") if stdout else ""
        return Moment(self.now(), self.program.returncode, out)


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
    ``assignment="hw09"``: as the course's programs meet it (:mod:`.judges.peer`)."""
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
        return Report("peer", target, "tcp", (tracker_unavailable(why),), stopped=why)
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
    start = asyncio.get_running_loop().time()
    try:
        await program.start()
    except BaseException:
        for part in (tracker, a, b):
            await part.close()
        raise
    peer = _Recorder(program, hw09, start)
    try:
        steps = await _steps(peer, tracker, a, b, words, hosted_seq, timeout, hw09)
        ended = peer.now()
    finally:
        run = await program.stop()
        for part in (tracker, a, b):
            await part.close()

    def received(heard: list[Heard]) -> tuple[Received, ...]:
        return tuple(Received(h.at - start, h.sender, h.message, h.problem, h.raw) for h in heard)

    register_wait, pings, served = steps
    transcript = PeerTranscript(
        "hw09" if hw09 else "",
        tuple(words),
        hosted_seq,
        Played(a.handle, a.host, a.port),
        Played(b.handle, b.host, b.port),
        timeout,
        received(tracker.heard),
        received(a.heard),
        received(b.heard),
        register_wait,
        pings,
        served,
        ended,
        ProgramRun(
            run.exit, run.timed_out, run.seconds, run.stdout, run.stderr, run.limit, run.setup_error
        ),
    )
    load = guard.result()
    return Report(
        "peer",
        target,
        "tcp",
        (*judge_peer(transcript), *([load] if load else [])),
        message=" ".join(words),
        limit=run.limit,
        setup_error=run.setup_error,
    )


async def _steps(
    peer: _Recorder,
    tracker: PlayedTracker,
    a: PlayedPeer,
    b: PlayedPeer,
    words: list[str],
    hosted_seq: int,
    timeout: float,
    hw09: bool = False,
) -> tuple[Moment, tuple[Probe, ...], Served | None]:
    """Talk to the peer as the checks need, and record it: the wait for its REGISTER,
    its PINGs, and (once its port answers) the rest."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout

    # -- register: the first message that is not an ECHO (a REGISTER, or what it sent)
    joined = None
    register_by = loop.time() + min(timeout, REGISTER_WAIT)
    while joined is None and peer.program.returncode is None and loop.time() < register_by:
        joined = await tracker.wait_for(lambda h: not isinstance(h.message, Echo), 0.1)
    register_wait = peer.moment()
    if joined is None or not isinstance(joined.message, Join):
        return register_wait, (), None
    peer.host = joined.sender
    peer.port = joined.message.port

    # -- ping (tried until PING_WAIT: it may still be starting to listen)
    pings = []
    wait_until = loop.time() + PING_WAIT
    while True:
        pings.append(await peer.ping(PING_WAIT))
        got = answer_of(pings[-1])
        if not isinstance(got, str) or "cannot connect" not in got or loop.time() > wait_until:
            break
        await asyncio.sleep(0.2)
    if ping_stops(got, hw09):
        return register_wait, tuple(pings), None

    # -- query: once it has asked A (it has read its REG_INIT), or after QUERY_WAIT
    await a.wait_for(lambda h: isinstance(h.message, Query), QUERY_WAIT)
    lacking = lacking_seq(len(words), hosted_seq)
    hosted = await peer.say(Query(hosted_seq))
    lacks = await peer.say(Query(lacking))

    # -- follows-update: after UPDATE_NBR, a QUERY to B (or what it sent instead)
    update = await peer.send(peer.encode(UpdateNbr(b.handle, b.host, b.port)), want=0)
    await b.wait_for(
        lambda h: isinstance(h.message, Query) or (h.message is None and bool(h.raw)),
        QUERY_WAIT,
    )
    b_waited = peer.now()

    # -- collects: until the message is on stdout, the run's timeout, or its exit
    while loop.time() < end and peer.program.returncode is None:
        if message_seen(peer.program.stdout_so_far.decode("utf-8", "replace"), words, hw09):
            break
        await asyncio.sleep(0.05)
    collecting = peer.moment(stdout=True)

    # -- keeps-serving: a QUERY for an item it collected; without the message, a PING
    if collects(collecting, words, hw09, timeout).passed:
        keeps = await peer.say(Query(lacking))
    else:
        keeps = await peer.ping()

    # -- wrong-tuple, garbage (last), each followed by a PING
    wrong = await peer.send(WRONG_TUPLE)
    wrong_ping = await peer.ping()
    garbage = await peer.send(GARBAGE)
    garbage_ping = await peer.ping()
    served = Served(
        hosted,
        lacks,
        update,
        b_waited,
        collecting,
        keeps,
        wrong,
        wrong_ping,
        garbage,
        garbage_ping,
    )
    return register_wait, tuple(pings), served
