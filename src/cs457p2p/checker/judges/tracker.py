"""``check tracker`` (Part 1) judged: what a running tracker answered the clients the
checker acted as (a :class:`~.tracker_transcript.TrackerTranscript`), each property of
the protocol one named check, in this order:

* required: ``register`` (REGISTER gives N), ``items`` (every position 0..N-1 a
  ``(SEQNUM, VALUE)`` pair), ``pickled`` (every answer a pickle the restricted decoder
  reads), ``permutation`` (the SEQNUMs are 0..N-1, each once), ``message`` (assembled),
  ``second-client`` (the same database again), ``out-of-range`` and ``garbage`` (bad
  requests answered or closed, and the tracker serves on), ``concurrent``
  (:data:`CONCURRENT_CLIENTS` clients at once), ``pickle-protocol`` (at most 2: what
  Python 2 reads);
* INFO: ``ascii-positions`` (b'0' taken as position 0), ``pipelining`` (two requests in
  one), ``udp`` or ``tcp`` (the other transport), ``latency`` (percentiles of the
  recorded times).

A check that could not run says why (``not run: ...``): REGISTER gave no N, the overall
deadline passed, or the tracker stopped serving during an earlier check. Every failed
required check gets a hint (:func:`cs457p2p.checker.hints.hint_for`). No clock, no
socket: every time is a number in the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...core.wire import BAD_REQUEST_TEXT
from ..hints import START_THE_TRACKER_HINT, hint_for, tracker_not_running
from ..report import CheckResult, plural, short
from .tracker_answers import (
    Item,
    View,
    as_item,
    count_of,
    describe,
    got,
    protocol_of,
    serves_problem,
    view_of,
)
from .tracker_transcript import (
    ANSWER,
    CLOSED,
    NOT_KEPT,
    TIMEOUT,
    UNDECODABLE,
    UNREACHABLE,
    Asked,
    BadRequest,
    ClientRun,
    TrackerTranscript,
)

__all__ = [
    "CONCURRENT_CLIENTS",
    "CONCURRENT_SAMPLE",
    "LATENCY_SAMPLES",
    "REQUIRED",
    "RISKY",
    "bad_request_ends",
    "concurrent_positions",
    "judge_ascii",
    "judge_bad_requests",
    "judge_pipelining",
    "judge_risky",
    "judge_tracker",
    "message_of",
    "nothing_listens",
    "percentile",
    "permutation_problem",
    "sample",
]

#: Clients that ``concurrent`` runs at once.
CONCURRENT_CLIENTS = 20
#: Positions each concurrent client asks for (all of them when N is at most this).
CONCURRENT_SAMPLE = 256
#: Position requests timed by ``latency``.
LATENCY_SAMPLES = 100

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
#: The checks a fragile tracker may die of, in the order run (last, so that such a
#: death costs only the check that caused it).
RISKY = ("out-of-range", "garbage", "pipelining", "ascii-positions")


def _not_run(name: str, why: str, required: bool = True) -> CheckResult:
    return CheckResult(name, required, False, f"not run: {why}")


def _fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, False, detail)


# -------------------------------------------------------------------- pure helpers


def sample(n: int, k: int) -> list[int]:
    """All of ``0..n-1`` when ``n <= k``, else ``k`` positions spread evenly over them
    (the first and the last included)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def concurrent_positions(first: View) -> list[int]:
    """The positions each concurrent client asks for: a sample of those the first
    client got."""
    return [p for p in sample(first.n or 0, CONCURRENT_SAMPLE) if p in first.items]


def permutation_problem(items: dict[int, Item], n: int) -> str | None:
    """None when the SEQNUMs of positions 0..n-1 are exactly 0..n-1; else what is wrong."""
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


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))
    return ordered[int(k)]


def bad_request_ends(asked: Asked, transport: str) -> bool:
    """Whether a bad request's outcome already fails its check (no answer and no close
    over TCP, no connection): then there is nothing more to look at."""
    if asked.kind in (ANSWER, UNDECODABLE, CLOSED):
        return False
    return not (asked.kind == TIMEOUT and transport == "udp")


# ------------------------------------------------------------------ the first client


def _register(first: View) -> CheckResult:
    if first.n is None:
        assert first.register_problem is not None
        return _fail("register", first.register_problem)
    return CheckResult("register", True, True, f"N = {first.n}", {"n": first.n})


def _items(first: View) -> CheckResult:
    n = first.n
    if n is None:
        return _not_run("items", "REGISTER gave no N")
    if first.problem is not None:
        return _fail("items", first.problem)
    if n == 0:
        return CheckResult("items", True, True, "N = 0: no positions to ask")
    return CheckResult("items", True, True, f"all {n} positions answered a (SEQNUM, VALUE) pair")


def _answers(client: ClientRun) -> list[tuple[str, Asked]]:
    """The first client's requests, in the order their answers came."""
    return [("REGISTER", client.register)] + [(f"position {p}", a) for p, a in client.positions]


def _pickled(client: ClientRun) -> CheckResult:
    answers = 0
    for what, a in _answers(client):
        if a.kind in (ANSWER, NOT_KEPT):
            answers += 1
        elif a.kind == UNDECODABLE or (a.kind == CLOSED and a.raw and not a.values):
            return _fail("pickled", got(what, a))
    if not answers:
        return _not_run("pickled", "no answer to look at")
    detail = f"{plural(answers, 'answer')}, all pickles the restricted decoder reads"
    return CheckResult("pickled", True, True, detail)


def _permutation_and_message(first: View) -> tuple[CheckResult, CheckResult]:
    n = first.n
    if n is None or first.problem is not None:
        why = "not every position answered a pair"
        return _not_run("permutation", why), _not_run("message", why)
    problem = permutation_problem(first.items, n)
    if problem is not None:
        return (
            _fail("permutation", problem),
            _fail("message", "not assembled: the SEQNUMs are wrong"),
        )
    message = _assemble(first.items, n)
    what = "N = 0: nothing to check" if n == 0 else f"the SEQNUMs are exactly 0..{n - 1}"
    return (
        CheckResult("permutation", True, True, what),
        CheckResult("message", True, True, f'"{message}" ({n} items)', {"message": message}),
    )


def _protocol(client: ClientRun) -> CheckResult:
    """The answers' pickle protocols: at most 2, which Python 2 (the course's reference
    client) reads."""
    seen: set[int] = set()
    newer_than_2 = ""
    for what, a in _answers(client):
        if a.kind in (ANSWER, NOT_KEPT):
            protocol = protocol_of(a.raw)
            seen.add(protocol)
            if protocol > 2 and not newer_than_2:
                newer_than_2 = f"{what} answered in pickle protocol {protocol}"
    protocols = sorted(seen)
    if not protocols:
        return _not_run("pickle-protocol", "no answer was a pickle")
    data = {"protocols": protocols}
    newest = protocols[-1]
    if newest > 2:
        detail = f"{newer_than_2}: Python 2 clients (the course's reference client) cannot read it"
        return CheckResult("pickle-protocol", True, False, detail, data)
    if protocols == [0]:
        detail = "protocol 0 (text, as the reference sends): Python 2 and 3 read it"
    elif len(protocols) == 1:
        detail = f"protocol {newest}: Python 2 and 3 read it"
    else:
        detail = f"protocols {', '.join(map(str, protocols))}: Python 2 and 3 read them"
    return CheckResult("pickle-protocol", True, True, detail, data)


# -------------------------------------------------------------- the other clients


def _second_client(first: View, second: ClientRun) -> CheckResult:
    """Another client, after the first: the same N, the same item at every position."""
    assert first.n is not None
    again = view_of(second, first.items)
    hint = ""
    if second.register.kind == UNREACHABLE:
        hint = " (the tracker stopped serving after the first client)"
    if again.n is None:
        return _fail("second-client", f"{again.register_problem}{hint}")
    if again.n != first.n:
        return _fail("second-client", f"REGISTER answered N = {again.n}, then {first.n}")
    if again.problem is not None:
        return _fail("second-client", f"{again.problem} (to the first client)")
    positions = len(first.items)
    if not positions:
        detail = f"the same N = {first.n} again"
    elif positions < first.n:
        detail = (
            f"the same N and the same item at the {positions} positions"
            f" (of {first.n}) the first client got"
        )
    else:
        detail = f"the same N and the same item at all {positions} positions"
    return CheckResult("second-client", True, True, detail)


def _concurrent(first: View, clients: Sequence[ClientRun]) -> CheckResult:
    assert first.n is not None
    n = first.n
    positions = concurrent_positions(first)
    failed: list[str] = []
    for k, client in enumerate(clients, 1):
        view = view_of(client, first.items)
        if view.n is None:
            failed.append(f"client {k}: {view.register_problem}")
        elif view.n != n:
            failed.append(f"client {k}: REGISTER answered N = {view.n}, not {n}")
        elif view.problem is not None:
            failed.append(f"client {k}: {view.problem}")
    if failed:
        more = f" ({len(failed)} of {CONCURRENT_CLIENTS} clients failed)" if len(failed) > 1 else ""
        return _fail("concurrent", failed[0] + more)
    what = f"REGISTER + {plural(len(positions), 'position')} each"
    if len(positions) < n:
        what += f", a sample of the {n:,}"
    return CheckResult(
        "concurrent",
        True,
        True,
        f"{CONCURRENT_CLIENTS} clients at once ({what}) all got the same database",
        {"clients": CONCURRENT_CLIENTS, "positions": len(positions)},
    )


# ------------------------------------------------------ what a fragile tracker dies of


def judge_bad_requests(
    name: str, first: View, requests: Sequence[BadRequest], transport: str, timeout: float
) -> CheckResult:
    """Each request must get an answer or a close (over UDP: an answer or nothing), and
    the tracker must answer REGISTER and position 0 as before, afterwards."""
    notes: list[str] = []
    warning = ""
    for r in requests:
        what, a = r.what, r.asked
        if a.kind == ANSWER and what == "position -1" and not isinstance(as_item(a.values[0]), str):
            warning = (
                f"position -1 answered {short(a.values[0])}: Python's negative indexing"
                " (the course's reference does it too); check 0 <= i < N before indexing"
            )
        if a.kind in (ANSWER, UNDECODABLE, CLOSED):
            notes.append(f"{what}: {describe(a)}")
        elif a.kind == TIMEOUT and transport == "udp":
            notes.append(f"{what}: no answer (ignored)")
        elif a.kind == TIMEOUT:
            return _fail(name, f"{what}: no answer and no close within {timeout:g} s")
        else:
            return _fail(name, f"{what}: {a.detail} (the tracker stopped serving)")
        problem = None if r.serves is None else serves_problem(first, r.serves)
        if problem is not None:
            notes[-1] += f"; {problem} (the tracker no longer serves)"
            return _fail(name, "; ".join(notes))
    return CheckResult(name, True, True, "; ".join(notes) + "; still serves", warning=warning)


def judge_ascii(first: View, asked: Asked | None) -> CheckResult:
    """Whether b'0' (the position written as digits) is taken as position 0."""
    if 0 not in first.items or asked is None:
        return _not_run("ascii-positions", "no item at position 0", required=False)
    what = "positions written as ASCII digits (as the assignment's text reads)"
    if asked.kind == ANSWER and as_item(asked.values[0]) == first.items[0]:
        detail = f"yes, it also takes {what}: b'0' is answered as position 0"
        return CheckResult("ascii-positions", False, True, detail)
    if asked.kind == ANSWER and asked.values[0] == BAD_REQUEST_TEXT:
        detail = f"no, it does not take {what}: b'0' is answered 'Bad request', as the reference"
    else:
        detail = f"no, it does not take {what}: {got(repr(b'0'), asked)}"
    return CheckResult("ascii-positions", False, False, detail)


def judge_pipelining(first: View, asked: Asked, transport: str) -> CheckResult:
    """Whether two requests sent at once (positions 0 and 1, else two REGISTERs) are
    both answered."""
    two_positions = first.n is not None and first.n >= 2
    what = "positions 0 and 1" if two_positions else "two REGISTERs"
    how = "in one datagram" if transport == "udp" else "back to back on one connection"
    if asked.kind == ANSWER:
        detail = f"yes, it answers several requests at once: {what} sent {how}, both answered"
        return CheckResult("pipelining", False, True, detail)
    no = "no, one request at a time (as the reference)"
    if len(asked.values) == 1 and asked.kind == CLOSED:
        detail = f"{no}: {what} sent {how}: the first answered, then closed"
    elif len(asked.values) == 1:
        detail = f"{no}: {what} sent {how}: only the first answered"
    else:
        detail = f"{no}: {what} sent {how}: {describe(asked)}"
    return CheckResult("pipelining", False, False, detail)


# ------------------------------------------------------------------------- INFO


def _other_transport(transport: str, asked: Asked) -> CheckResult:
    name = "udp" if transport == "tcp" else "tcp"
    count = count_of(asked)
    if isinstance(count, int):
        detail = f"yes, it also serves over {name.upper()}: REGISTER gives N = {count}"
        return CheckResult(name, False, True, detail)
    return CheckResult(name, False, False, f"no, it does not serve over {name.upper()}: {count}")


def _latency(first: View, samples: Sequence[Asked], transport: str) -> CheckResult:
    what = "position requests" if first.items else "REGISTER requests"
    times = [a.seconds * 1000 for a in samples if a.kind == ANSWER]
    failures = len(samples) - len(times)
    if not times:
        return CheckResult("latency", False, False, f"not measured: no answer to {what}")
    p50, p99 = percentile(times, 50), percentile(times, 99)
    each = "its own UDP socket" if transport == "udp" else "its own connection"
    detail = (
        f"how long an answer takes: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        f" ({len(times)} {what}, each on {each})"
    )
    if failures:
        detail += f"; {failures} unanswered"
    data = {
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "samples": len(times),
        "n": first.n or 0,
    }
    return CheckResult("latency", False, True, detail, data)


# ---------------------------------------------------------------------- the report


def nothing_listens(t: TrackerTranscript) -> str:
    """The one line that says nothing could be checked ("": something listened)."""
    if t.first.register.kind != UNREACHABLE:
        return ""
    return tracker_not_running(t.address, t.first.register.detail)


def message_of(checks: Sequence[CheckResult]) -> str | None:
    """The tracker's message, when the checks assembled it."""
    for c in checks:
        if c.name == "message" and c.passed:
            message = c.data["message"]
            return message if isinstance(message, str) else None
    return None


def judge_risky(name: str, t: TrackerTranscript, first: View) -> CheckResult:
    """One of the :data:`RISKY` checks over what the transcript holds of it (the driver
    asks it too, to know whether to look if the tracker still serves)."""
    if name == "out-of-range":
        return judge_bad_requests(name, first, t.out_of_range, t.transport, t.timeout)
    if name == "garbage":
        return judge_bad_requests(name, first, t.garbage, t.transport, t.timeout)
    if name == "pipelining":
        if t.pipelining is None:
            return _not_run(name, "not asked", required=False)
        return judge_pipelining(first, t.pipelining, t.transport)
    if name == "ascii-positions":
        return judge_ascii(first, t.ascii)
    raise ValueError(f"{name!r} is not one of {RISKY}")


def _risky(t: TrackerTranscript, first: View) -> dict[str, CheckResult]:
    """The checks a fragile tracker may die of, each not run once one failed and the
    tracker no longer served (or when the deadline had passed)."""
    results: dict[str, CheckResult] = {}
    after = dict(t.after)
    late = f"the overall deadline of {t.deadline:g} s passed"
    dead_after = ""
    for name in RISKY:
        required = name in ("out-of-range", "garbage")
        if name in t.late:
            results[name] = _not_run(name, late, required)
            continue
        if dead_after:
            why = f"the tracker stopped serving during {dead_after}"
            results[name] = _not_run(name, why, required)
            continue
        result = judge_risky(name, t, first)
        results[name] = result
        look = after.get(name)
        if not result.passed and look is not None and serves_problem(first, look) is not None:
            dead_after = name
    return results


def judge_tracker(t: TrackerTranscript) -> list[CheckResult]:
    """Every check of a ``check tracker`` run, in the report's order (the module's
    docstring), each failed required check with its hint."""
    if nothing_listens(t):
        first_row = CheckResult(
            "register",
            True,
            False,
            nothing_listens(t),
            hint=START_THE_TRACKER_HINT,
        )
        return [first_row, *(_not_run(name, "nothing listens") for name in REQUIRED[1:])]
    first = view_of(t.first)
    late = f"the overall deadline of {t.deadline:g} s passed"
    permutation, message = _permutation_and_message(first)
    checks = [_register(first), _items(first), _pickled(t.first), permutation, message]
    later: dict[str, CheckResult] = {}
    if first.n is None:
        for name in ("second-client", "concurrent", "out-of-range", "garbage"):
            later[name] = _not_run(name, "REGISTER gave no N")
        for name in ("ascii-positions", "pipelining"):
            later[name] = _not_run(name, "REGISTER gave no N", required=False)
    else:
        if "second-client" in t.late or t.second is None:
            later["second-client"] = _not_run("second-client", late)
        else:
            later["second-client"] = _second_client(first, t.second)
        if "concurrent" in t.late or not t.concurrent:
            later["concurrent"] = _not_run("concurrent", late)
        else:
            later["concurrent"] = _concurrent(first, t.concurrent)
        later.update(_risky(t, first))
    other_name = "udp" if t.transport == "tcp" else "tcp"
    if other_name in t.late or t.other is None:
        other = _not_run(other_name, late, required=False)
    else:
        other = _other_transport(t.transport, t.other)
    if "latency" in t.late:
        latency = _not_run("latency", late, required=False)
    else:
        latency = _latency(first, t.latency, t.transport)
    checks += [later[name] for name in ("second-client", "out-of-range", "garbage", "concurrent")]
    checks.append(_protocol(t.first))
    checks += [later["ascii-positions"], later["pipelining"], other, latency]
    return [
        c if c.passed or c.hint or not c.required else c.with_hint(hint_for(c, t.timeout))
        for c in checks
    ]
