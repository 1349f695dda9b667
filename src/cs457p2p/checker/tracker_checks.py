"""``check tracker``: talk to a running tracker as clients would, one request per
connection (what the reference tracker serves), record what each request got (a
:class:`~.judges.tracker_transcript.TrackerTranscript`), and have
:func:`~.judges.tracker.judge_tracker` report each property of the protocol as a named
check (the checks: :mod:`.judges.tracker`).

The steps, in order: the first client's REGISTER (nothing more when nothing listens)
and every position, :data:`PARALLEL` at a time; a second client; 20 clients at once;
latency samples; REGISTER over the other transport; then what a fragile tracker may die
of, so that such a death costs only the check that caused it: positions out of range,
garbage, two requests at once, b'0'. After a bad request, and after a check of those
that failed, the driver looks whether the tracker still serves, and once it does not,
asks nothing more. Past the overall deadline nothing is started.

Everything the tracker sends is read by the restricted decoder only, and everything
sent to it is harmless to a tracker that calls ``pickle.loads``: the raw ``REGISTER``,
positions pickled with integer opcodes only, and garbage that starts with a byte no
pickle protocol knows, so a stock unpickler stops at once. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..core.wire import REGISTER, encode_position
from .judges.tracker import (
    CONCURRENT_CLIENTS,
    CONCURRENT_SAMPLE,
    LATENCY_SAMPLES,
    REQUIRED,
    RISKY,
    bad_request_ends,
    concurrent_positions,
    judge_risky,
    judge_tracker,
    message_of,
    nothing_listens,
)
from .judges.tracker_answers import View, count_of, serves_problem, view_of
from .judges.tracker_transcript import (
    ANSWER,
    UNREACHABLE,
    Asked,
    BadRequest,
    ClientRun,
    Serves,
    TrackerTranscript,
)
from .links import Link, TcpLink, UdpLink
from .report import Report
from .tracker_client import ask, expected, fetch, register, shared

__all__ = [
    "CONCURRENT_CLIENTS",
    "CONCURRENT_SAMPLE",
    "GARBAGE",
    "LATENCY_SAMPLES",
    "REQUIRED",
    "check_tracker",
    "record_tracker",
    "run_tracker_checks",
]

#: Connections the first and second client use in parallel.
PARALLEL = 8
#: Seconds the whole run may take, by default; what is left is reported as not run.
DEADLINE = 600.0
#: Longest wait of an informational check.
INFO_TIMEOUT = 2.0
#: Over UDP, a bad request may go unanswered: wait this long for an answer to it.
UDP_BAD_REQUEST_WAIT = 1.0

#: Requests no tracker should choke on. Each starts with 0xff, which is no opcode of
#: any pickle protocol: ``pickle.loads`` refuses it before doing anything.
GARBAGE: tuple[tuple[str, bytes], ...] = (
    ("non-pickle bytes", b"\xff\xfe this is not a pickle\r\n"),
    ("1,500 bytes of noise", b"\xff" * 1500),
    ("an empty request", b""),
)


class _Run:
    """One run as it goes: the link, the first client's view of the database, and the
    transcript so far (each step's record added as it comes back)."""

    def __init__(self, link: Link, transcript: TrackerTranscript) -> None:
        self.link = link
        self.t = transcript
        self.view = view_of(transcript.first)
        #: what a later client should get at each position: made once and shared by the
        #: second client and the concurrent ones (at N = 1,000,000 a copy each was about
        #: 98 MB, 21 of them)
        self.expect = expected(transcript.first, self.view.items)

    @property
    def first(self) -> ClientRun:
        return self.t.first

    def record(self, **fields: Any) -> None:
        self.t = replace(self.t, **fields)

    def skipped_or_over(self, name: str) -> bool:
        """True (and ``name`` recorded as not run) when the run's deadline has passed."""
        deadline = self.link.deadline
        if deadline is None or asyncio.get_running_loop().time() < deadline:
            return False
        self.record(late=(*self.t.late, name))
        return True


async def _look(link: Link, first: View) -> Serves:
    """Does the tracker still serve? REGISTER, then position 0 as the first client got it."""
    reg = await register(link)
    if count_of(reg) != first.n or 0 not in first.items:
        return Serves(reg)
    return Serves(reg, await ask(link, encode_position(0)))


async def _bad_requests(
    link: Link, first: View, requests: Sequence[tuple[str, bytes]]
) -> tuple[BadRequest, ...]:
    """Each request, then a look whether the tracker still serves; stop once not."""
    udp = link.transport == "udp"
    done: list[BadRequest] = []
    for what, payload in requests:
        got = await ask(
            link, payload, timeout=min(link.timeout, UDP_BAD_REQUEST_WAIT) if udp else None
        )
        if bad_request_ends(got, link.transport):
            done.append(BadRequest(what, got))
            break
        look = await _look(link, first)
        done.append(BadRequest(what, got, look))
        if serves_problem(first, look) is not None:
            break
    return tuple(done)


async def _client(link: Link, run: _Run, positions: Sequence[int], parallel: int) -> ClientRun:
    """Another client: REGISTER, and the positions when it gives the first client's N."""
    reg = await register(link)
    if count_of(reg) != run.view.n:
        return ClientRun(reg)
    return ClientRun(reg, await fetch(link, positions, parallel, run.expect))


async def _latency(link: Link, run: _Run) -> tuple[Asked, ...]:
    positions = sorted(run.view.items)
    before = dict(run.first.positions)
    samples: list[Asked] = []
    for k in range(LATENCY_SAMPLES):
        p = positions[k % len(positions)] if positions else None
        payload = REGISTER if p is None else encode_position(p)
        got = await ask(link, payload, timeout=min(link.timeout, INFO_TIMEOUT))
        samples.append(shared(got, None if p is None else before.get(p)))
        if len(samples) >= 3 and not any(a.kind == ANSWER for a in samples):
            break  # (three unanswered, none answered: it does not answer these)
    return tuple(samples)


async def _other_transport(link: Link) -> Asked:
    other: Link
    if link.transport == "tcp":
        other = UdpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    else:
        other = TcpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    return await register(other)


async def _risky(run: _Run) -> None:
    """What a fragile tracker may die of, in order; after one that failed, a look whether
    the tracker still serves, and nothing more once it does not."""
    link, first = run.link, run.view
    assert first.n is not None
    n = first.n
    info = min(link.timeout, INFO_TIMEOUT)
    out_of_range = [(f"position {n}", encode_position(n)), ("position -1", encode_position(-1))]
    for name in RISKY:
        if run.skipped_or_over(name):
            continue
        if name == "out-of-range":
            run.record(out_of_range=await _bad_requests(link, first, out_of_range))
        elif name == "garbage":
            run.record(garbage=await _bad_requests(link, first, GARBAGE))
        elif name == "pipelining":
            two = n >= 2
            payload = encode_position(0) + encode_position(1) if two else REGISTER + REGISTER
            run.record(pipelining=await ask(link, payload, want=2, timeout=info))
        elif name == "ascii-positions" and 0 in first.items:
            run.record(ascii=await ask(link, b"0", timeout=info))
        result = judge_risky(name, run.t, first)
        if not result.passed:
            look = await _look(link, first)
            run.record(after=(*run.t.after, (name, look)))
            if serves_problem(first, look) is not None:
                return


async def record_tracker(
    host: str,
    port: int,
    *,
    transport: str = "tcp",
    timeout: float = 5.0,
    deadline: float = DEADLINE,
) -> TrackerTranscript:
    """Ask the tracker at ``host:port`` what the module docstring says, all within
    ``deadline`` seconds, and say what each request got."""
    if transport not in ("tcp", "udp"):
        raise ValueError("transport must be tcp or udp")
    link: Link = (UdpLink if transport == "udp" else TcpLink)(host, port, timeout)
    link.deadline = asyncio.get_running_loop().time() + deadline
    reg = await register(link)
    first = ClientRun(reg)
    if reg.kind == UNREACHABLE:
        return TrackerTranscript(link.address, transport, timeout, deadline, first)
    n = view_of(first).n
    if n is not None:
        first = ClientRun(reg, await fetch(link, range(n), PARALLEL))
    run = _Run(link, TrackerTranscript(link.address, transport, timeout, deadline, first))
    if n is not None:
        if not run.skipped_or_over("second-client"):
            run.record(second=await _client(link, run, sorted(run.view.items), PARALLEL))
        if not run.skipped_or_over("concurrent"):
            positions = concurrent_positions(run.view)
            clients = (_client(link, run, positions, 1) for _ in range(CONCURRENT_CLIENTS))
            run.record(concurrent=tuple(await asyncio.gather(*clients)))
    if not run.skipped_or_over("latency"):
        run.record(latency=await _latency(link, run))
    if not run.skipped_or_over("udp" if transport == "tcp" else "tcp"):
        run.record(other=await _other_transport(link))
    if n is not None:
        await _risky(run)
    return run.t


async def run_tracker_checks(
    host: str,
    port: int,
    *,
    transport: str = "tcp",
    timeout: float = 5.0,
    deadline: float = DEADLINE,
) -> Report:
    """Every tracker check against ``host:port`` (:mod:`.judges.tracker`), all within
    ``deadline`` seconds: a check that would start later is reported as not run, and one
    under way when it passes fails with no answer."""
    transcript = await record_tracker(
        host, port, transport=transport, timeout=timeout, deadline=deadline
    )
    checks = tuple(judge_tracker(transcript))
    return Report(
        "tracker",
        transcript.address,
        transport,
        checks,
        message_of(checks),
        stopped=nothing_listens(transcript),
    )


def check_tracker(host: str, port: int, *, transport: str = "tcp", timeout: float = 5.0) -> Report:
    """:func:`run_tracker_checks` in a fresh event loop."""
    return asyncio.run(run_tracker_checks(host, port, transport=transport, timeout=timeout))
