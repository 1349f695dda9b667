"""``check tracker``: talk to a running tracker as clients would, one request per
connection (what the reference tracker serves), and report each property of the
protocol as a named check.

Everything the tracker sends is read by the restricted decoder only, and everything
sent to it is harmless to a tracker that calls ``pickle.loads``: the raw ``REGISTER``,
positions pickled with integer opcodes only, and garbage that starts with a byte no
pickle protocol knows, so a stock unpickler stops at once. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..core.wire import BAD_REQUEST_TEXT, REGISTER, encode_position
from .hints import hint_for
from .links import ANSWER, CLOSED, TIMEOUT, UNDECODABLE, UNREACHABLE, Link, Reply, TcpLink, UdpLink
from .report import CheckResult, Report, plural, short
from .tracker_client import (
    AnswerLog,
    ClientView,
    Item,
    as_item,
    count_of,
    fetch,
    got,
    item_of,
    register,
)

__all__ = ["GARBAGE", "check_tracker", "run_tracker_checks"]

#: Clients that ``concurrent`` runs at once.
CONCURRENT_CLIENTS = 20
#: Positions each concurrent client asks for (all of them when N is at most this).
CONCURRENT_SAMPLE = 256
#: Connections the first and second client use in parallel.
PARALLEL = 8
#: Position requests timed by ``latency``.
LATENCY_SAMPLES = 100
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


def _sample(n: int, k: int) -> list[int]:
    """All of ``0..n-1`` when ``n <= k``, else ``k`` positions spread evenly over them
    (the first and the last included)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _permutation_problem(items: dict[int, Item], n: int) -> str | None:
    at: dict[int, list[int]] = {}
    for p in range(n):
        seq = items[p][0]
        if not 0 <= seq < n:
            return f"position {p} has SEQNUM {seq}, out of range 0..{n - 1}"
        at.setdefault(seq, []).append(p)
    twice = [(s, ps) for s, ps in sorted(at.items()) if len(ps) > 1]
    if not twice:
        return None
    missing = [s for s in range(n) if s not in at]
    s, ps = twice[0]
    where = " and ".join(map(str, ps)) if len(ps) == 2 else ", ".join(map(str, ps[:4]))
    where += ", ..." if len(ps) > 4 else ""
    text = f"SEQNUM {s} is served at positions {where}"
    if len(twice) > 1:
        text += f" (and {plural(len(twice) - 1, 'more SEQNUM')} twice)"
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    return f"{text}; missing: {shown}"


def _assemble(items: dict[int, Item], n: int) -> str:
    ordered = [""] * n
    for seq, text in items.values():
        ordered[seq] = text
    return " ".join(ordered)


def _not_run(name: str, why: str, required: bool = True) -> CheckResult:
    return CheckResult(name, required, False, f"not run: {why}")


async def _still_serves(link: Link, first: ClientView) -> str | None:
    """None when REGISTER and position 0 still answer as they did for the first
    client; else what went wrong."""
    reply = await link.exchange(REGISTER)
    count = count_of(reply)
    if isinstance(count, str):
        return f"then {count}"
    if count != first.n:
        return f"then REGISTER answered N = {count}, not {first.n}"
    if 0 in first.items:
        item = item_of("position 0", await link.exchange(encode_position(0)))
        if isinstance(item, str):
            return f"then {item}"
        if item != first.items[0]:
            return f"then position 0 answered {short(item)}, not {short(first.items[0])}"
    return None


async def _bad_requests(
    link: Link, first: ClientView, name: str, requests: Sequence[tuple[str, bytes]]
) -> CheckResult:
    """Each request must get an answer or a close (over UDP: an answer or nothing), and
    the tracker must answer REGISTER and position 0 as before, afterwards."""
    udp = link.transport == "udp"
    notes: list[str] = []
    warning = ""
    for what, payload in requests:
        reply = await link.exchange(
            payload, timeout=min(link.timeout, UDP_BAD_REQUEST_WAIT) if udp else None
        )
        if (
            reply.kind == ANSWER
            and what == "position -1"
            and not isinstance(as_item(reply.values[0]), str)
        ):
            warning = (
                f"position -1 answered {short(reply.values[0])}: Python's negative indexing"
                " (the course's reference does it too); check 0 <= i < N before indexing"
            )
        if reply.kind == ANSWER or reply.kind == UNDECODABLE:
            notes.append(f"{what}: {reply.describe()}")
        elif reply.kind == CLOSED:
            notes.append(f"{what}: {reply.detail}")
        elif reply.kind == TIMEOUT and udp:
            notes.append(f"{what}: no answer (ignored)")
        elif reply.kind == TIMEOUT:
            return CheckResult(
                name, True, False, f"{what}: no answer and no close within {link.timeout:g} s"
            )
        else:
            why = f"{what}: {reply.detail}"
            return CheckResult(name, True, False, f"{why} (the tracker stopped serving)")
        problem = await _still_serves(link, first)
        if problem is not None:
            notes[-1] += f"; {problem} (the tracker no longer serves)"
            return CheckResult(name, True, False, "; ".join(notes))
    return CheckResult(name, True, True, "; ".join(notes) + "; still serves", warning=warning)


async def _concurrent(link: Link, first: ClientView) -> CheckResult:
    assert first.n is not None
    n = first.n
    positions = [p for p in _sample(n, CONCURRENT_SAMPLE) if p in first.items]

    async def session(k: int) -> str | None:
        client = ClientView()
        await register(link, client)
        if client.n is None:
            return f"client {k}: {client.register_problem}"
        if client.n != n:
            return f"client {k}: REGISTER answered N = {client.n}, not {n}"
        # (compared as they come, not kept: 20 copies of a large database would not fit)
        await fetch(link, client, positions, parallel=1, expect=first.items)
        if client.problem is not None:
            return f"client {k}: {client.problem}"
        return None

    problems = await asyncio.gather(*(session(k) for k in range(1, CONCURRENT_CLIENTS + 1)))
    failed = [p for p in problems if p is not None]
    what = f"REGISTER + {plural(len(positions), 'position')} each"
    if len(positions) < n:
        what += f", a sample of the {n:,}"
    if failed:
        more = f" ({len(failed)} of {CONCURRENT_CLIENTS} clients failed)" if len(failed) > 1 else ""
        return CheckResult("concurrent", True, False, failed[0] + more)
    return CheckResult(
        "concurrent",
        True,
        True,
        f"{CONCURRENT_CLIENTS} clients at once ({what}) all got the same database",
        {"clients": CONCURRENT_CLIENTS, "positions": len(positions)},
    )


async def _ascii(link: Link, first: ClientView) -> CheckResult:
    if 0 not in first.items:
        return _not_run("ascii-positions", "no item at position 0", required=False)
    reply = await link.exchange(b"0", timeout=min(link.timeout, INFO_TIMEOUT))
    what = "positions written as ASCII digits (as the assignment's text reads)"
    if reply.kind == ANSWER and as_item(reply.values[0]) == first.items[0]:
        detail = f"yes, it also takes {what}: b'0' is answered as position 0"
        return CheckResult("ascii-positions", False, True, detail)
    if reply.kind == ANSWER and reply.values[0] == BAD_REQUEST_TEXT:
        detail = f"no, it does not take {what}: b'0' is answered 'Bad request', as the reference"
    else:
        detail = f"no, it does not take {what}: {got(repr(b'0'), reply)}"
    return CheckResult("ascii-positions", False, False, detail)


async def _pipelining(link: Link, first: ClientView) -> CheckResult:
    if first.n is not None and first.n >= 2:
        what, payload = "positions 0 and 1", encode_position(0) + encode_position(1)
    else:
        what, payload = "two REGISTERs", REGISTER + REGISTER
    how = "in one datagram" if link.transport == "udp" else "back to back on one connection"
    reply = await link.exchange(payload, want=2, timeout=min(link.timeout, INFO_TIMEOUT))
    if reply.kind == ANSWER:
        detail = f"yes, it answers several requests at once: {what} sent {how}, both answered"
        return CheckResult("pipelining", False, True, detail)
    no = "no, one request at a time (as the reference)"
    if len(reply.values) == 1 and reply.kind == CLOSED:
        detail = f"{no}: {what} sent {how}: the first answered, then closed"
    elif len(reply.values) == 1:
        detail = f"{no}: {what} sent {how}: only the first answered"
    else:
        detail = f"{no}: {what} sent {how}: {reply.describe()}"
    return CheckResult("pipelining", False, False, detail)


async def _other_transport(link: Link) -> CheckResult:
    other: Link
    if link.transport == "tcp":
        other = UdpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    else:
        other = TcpLink(link.host, link.port, min(link.timeout, INFO_TIMEOUT))
    name = other.transport
    reply = await other.exchange(REGISTER)
    count = count_of(reply)
    if isinstance(count, int):
        detail = f"yes, it also serves over {name.upper()}: REGISTER gives N = {count}"
        return CheckResult(name, False, True, detail)
    return CheckResult(name, False, False, f"no, it does not serve over {name.upper()}: {count}")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))
    return ordered[int(k)]


async def _latency(link: Link, first: ClientView) -> CheckResult:
    n = first.n or 0
    positions = sorted(first.items)
    what = "position requests" if positions else "REGISTER requests"
    samples: list[float] = []
    failures = 0
    for k in range(LATENCY_SAMPLES):
        payload = encode_position(positions[k % len(positions)]) if positions else REGISTER
        reply = await link.exchange(payload, timeout=min(link.timeout, INFO_TIMEOUT))
        if reply.kind == ANSWER:
            samples.append(reply.seconds * 1000)
        else:
            failures += 1
            if failures >= 3 and not samples:
                break
    if not samples:
        return CheckResult("latency", False, False, f"not measured: no answer to {what}")
    p50, p99 = _percentile(samples, 50), _percentile(samples, 99)
    each = "its own UDP socket" if link.transport == "udp" else "its own connection"
    detail = (
        f"how long an answer takes: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        f" ({len(samples)} {what}, each on {each})"
    )
    if failures:
        detail += f"; {failures} unanswered"
    data = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "samples": len(samples), "n": n}
    return CheckResult("latency", False, True, detail, data)


def _protocol_check(observer: AnswerLog) -> CheckResult:
    """The answers' pickle protocols: at most 2, which Python 2 (the course's reference
    client) reads."""
    protocols = sorted(observer.protocols)
    if not protocols:
        return _not_run("pickle-protocol", "no answer was a pickle")
    data = {"protocols": protocols}
    newest = protocols[-1]
    if newest > 2:
        what = observer.newer_than_2 or f"an answer in protocol {newest}"
        return CheckResult(
            "pickle-protocol",
            True,
            False,
            f"{what}: Python 2 clients (the course's reference client) cannot read it",
            data,
        )
    if protocols == [0]:
        detail = "protocol 0 (text, as the reference sends): Python 2 and 3 read it"
    elif len(protocols) == 1:
        detail = f"protocol {newest}: Python 2 and 3 read it"
    else:
        detail = f"protocols {', '.join(map(str, protocols))}: Python 2 and 3 read them"
    return CheckResult("pickle-protocol", True, True, detail, data)


async def run_tracker_checks(
    host: str,
    port: int,
    *,
    transport: str = "tcp",
    timeout: float = 5.0,
    deadline: float = DEADLINE,
) -> Report:
    """Run every tracker check against ``host:port`` (see the module docstring), all
    within ``deadline`` seconds: a check that would start later is reported as not run,
    and one under way when it passes fails with no answer."""
    if transport not in ("tcp", "udp"):
        raise ValueError("transport must be tcp or udp")
    link: Link = (UdpLink if transport == "udp" else TcpLink)(host, port, timeout)
    loop = asyncio.get_running_loop()
    link.deadline = loop.time() + deadline
    late = f"the overall deadline of {deadline:g} s passed"

    def over() -> bool:
        return loop.time() >= link.deadline if link.deadline is not None else False

    checks: list[CheckResult] = []
    observer = AnswerLog()
    first = ClientView()
    await register(link, first, observer)
    n = first.n
    if first.register is not None and first.register.kind == UNREACHABLE:
        return _nothing_listens(link, transport, first.register)

    # -- register
    if n is None:
        assert first.register_problem is not None
        checks.append(CheckResult("register", True, False, first.register_problem))
    else:
        checks.append(CheckResult("register", True, True, f"N = {n}", {"n": n}))

    # -- items
    if n is not None:
        await fetch(link, first, range(n), PARALLEL, observer)
        if first.problem is not None:
            checks.append(CheckResult("items", True, False, first.problem))
        elif n == 0:
            checks.append(CheckResult("items", True, True, "N = 0: no positions to ask"))
        else:
            checks.append(
                CheckResult(
                    "items", True, True, f"all {n} positions answered a (SEQNUM, VALUE) pair"
                )
            )
    else:
        checks.append(_not_run("items", "REGISTER gave no N"))

    # -- pickled
    if observer.not_pickled is not None:
        checks.append(CheckResult("pickled", True, False, observer.not_pickled))
    elif not observer.answers:
        checks.append(_not_run("pickled", "no answer to look at"))
    else:
        checks.append(
            CheckResult(
                "pickled",
                True,
                True,
                f"{plural(observer.answers, 'answer')}, all pickles the restricted decoder reads",
            )
        )

    # -- permutation and message
    message: str | None = None
    complete = n is not None and first.problem is None
    if not complete:
        checks.append(_not_run("permutation", "not every position answered a pair"))
        checks.append(_not_run("message", "not every position answered a pair"))
    else:
        assert n is not None
        problem = _permutation_problem(first.items, n)
        if problem is not None:
            checks.append(CheckResult("permutation", True, False, problem))
            checks.append(
                CheckResult("message", True, False, "not assembled: the SEQNUMs are wrong")
            )
        else:
            message = _assemble(first.items, n)
            what = "N = 0: nothing to check" if n == 0 else f"the SEQNUMs are exactly 0..{n - 1}"
            checks.append(CheckResult("permutation", True, True, what))
            checks.append(
                CheckResult("message", True, True, f'"{message}" ({n} items)', {"message": message})
            )

    # The rest runs in an order of its own (the report keeps the order above): first
    # what any working tracker survives, then the requests a fragile tracker may die
    # of, so that such a death costs only the check that caused it.
    later: dict[str, CheckResult] = {}
    if n is None:
        for name in ("second-client", "concurrent", "out-of-range", "garbage"):
            later[name] = _not_run(name, "REGISTER gave no N")
        for name in ("ascii-positions", "pipelining"):
            later[name] = _not_run(name, "REGISTER gave no N", required=False)
    else:
        later["second-client"] = (
            _not_run("second-client", late) if over() else await _second_client(link, first)
        )
        later["concurrent"] = (
            _not_run("concurrent", late) if over() else await _concurrent(link, first)
        )
    latency = _not_run("latency", late, required=False) if over() else await _latency(link, first)
    other_name = "udp" if transport == "tcp" else "tcp"
    other = _not_run(other_name, late, required=False) if over() else await _other_transport(link)
    if n is not None:
        out_of_range = [
            (f"position {n}", encode_position(n)),
            ("position -1", encode_position(-1)),
        ]
        risky: tuple[tuple[str, Callable[[], Awaitable[CheckResult]]], ...] = (
            ("out-of-range", lambda: _bad_requests(link, first, "out-of-range", out_of_range)),
            ("garbage", lambda: _bad_requests(link, first, "garbage", GARBAGE)),
            ("pipelining", lambda: _pipelining(link, first)),
            ("ascii-positions", lambda: _ascii(link, first)),
        )
        dead_after: str | None = None
        for name, run in risky:
            if over():
                required = name in ("out-of-range", "garbage")
                later[name] = _not_run(name, late, required=required)
            elif dead_after is None:
                later[name] = await run()
                if not later[name].passed and await _still_serves(link, first) is not None:
                    dead_after = name
            else:
                why = f"the tracker stopped serving during {dead_after}"
                later[name] = _not_run(name, why, required=name in ("out-of-range", "garbage"))
    for name in ("second-client", "out-of-range", "garbage", "concurrent"):
        checks.append(later[name])
    checks.append(_protocol_check(observer))
    checks += [later["ascii-positions"], later["pipelining"], other, latency]
    hinted = tuple(
        c if c.passed or c.hint or not c.required else c.with_hint(hint_for(c, link.timeout))
        for c in checks
    )
    return Report("tracker", link.address, transport, hinted, message)


#: The required checks, in the report's order.
REQUIRED = (
    "register",
    "items",
    "pickled",
    "permutation",
    "message",
    "second-client",
    "out-of-range",
    "garbage",
    "concurrent",
    "pickle-protocol",
)


def _nothing_listens(link: Link, transport: str, reply: Reply) -> Report:
    """The one line of a report when no connection is possible at all."""
    why = f"nothing listens on {link.address} ({reply.detail}): is the tracker running?"
    first = CheckResult(
        "register",
        True,
        False,
        why,
        hint="start the tracker first, listening on this host and port",
    )
    others = tuple(_not_run(name, "nothing listens") for name in REQUIRED[1:])
    return Report("tracker", link.address, transport, (first, *others), stopped=why)


async def _second_client(link: Link, first: ClientView) -> CheckResult:
    """Another client, after the first: the same N, the same item at every position."""
    assert first.n is not None
    again = ClientView()
    await register(link, again)
    hint = ""
    if again.register is not None and again.register.kind == UNREACHABLE:
        hint = " (the tracker stopped serving after the first client)"
    if again.n is None:
        return CheckResult("second-client", True, False, f"{again.register_problem}{hint}")
    if again.n != first.n:
        return CheckResult(
            "second-client", True, False, f"REGISTER answered N = {again.n}, then {first.n}"
        )
    positions = sorted(first.items)
    await fetch(link, again, positions, PARALLEL, expect=first.items)
    if again.problem is not None:
        return CheckResult("second-client", True, False, f"{again.problem} (to the first client)")
    if not positions:
        detail = f"the same N = {first.n} again"
    else:
        detail = f"the same N and the same item at all {len(positions)} positions"
        if len(positions) < first.n:
            detail = (
                f"the same N and the same item at the {len(positions)} positions"
                f" (of {first.n}) the first client got"
            )
    return CheckResult("second-client", True, True, detail)


def check_tracker(host: str, port: int, *, transport: str = "tcp", timeout: float = 5.0) -> Report:
    """:func:`run_tracker_checks` in a fresh event loop."""
    return asyncio.run(run_tracker_checks(host, port, transport=transport, timeout=timeout))
