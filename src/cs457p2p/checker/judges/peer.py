"""``check peer``'s judge: a Part 2 peer's recorded run (a
:class:`~.peer_transcript.PeerTranscript`) -> its named checks, by this project's rules
or (profile ``hw09``) as the course's programs meet it.

The checks, in order: ``register`` (a well-formed ``('REGISTER', handle, port)``),
``ping`` (its port answers PING with ``('PING', handle)``; ``('ACK', handle)``, as the
course's sample peer, passes with a warning), ``query`` (its hosted item, and
``(None, None)`` for a SEQNUM it lacks), ``follows-update`` (after UPDATE_NBR its
QUERYs go to B), ``collects`` (the message on stdout), ``keeps-serving`` (answers a
QUERY for an item it collected, after printing), ``wrong-tuple`` and ``garbage`` (each
answered or closed, and it still answers PING), ``safe-pickles`` (all it sent read by
the restricted decoder as plain tuples). HW09 adds ``pause`` (2-3 s between its QUERYs)
and ``py2-pickles`` (all it sent read by Python 2's pickle), and shows wrong-tuple and
garbage as INFO. A REGISTER that never came, or a port that does not answer, stops the
checks: the rest are reported as not run.

The recording side asks this module what it must know to go on as the judge will
(:func:`ping_stops`, :func:`message_seen`, :func:`collects`, :func:`answer_of`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ...core.py2 import loads_py2
from ...core.wire2 import (
    BadMessage,
    Echo,
    Join,
    Message,
    Query,
    QueryResult,
    as_pong,
    parse,
)
from ..hints import STOPPED_EARLY_HINT, stopped_before_connecting
from ..report import CheckResult, short, short_text, shown
from .pacing import MAX_PAUSE, MIN_PAUSE, pauses
from .peer_transcript import Moment, PeerTranscript, Probe, Received, Served
from .printed import printed_in_order
from .transcript import ProgramRun

__all__ = [
    "HINTS",
    "HW09_REQUIRED",
    "PING_WAIT",
    "QUERY_WAIT",
    "REGISTER_WAIT",
    "REQUIRED",
    "answer_of",
    "collects",
    "judge_peer",
    "lacking_seq",
    "message_seen",
    "ping_stops",
    "tracker_unavailable",
]

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
_ORDER_HINT = (
    "print the items in SEQNUM order (for k in range(N): DB[k]); a dict prints in the"
    " order its keys were added under Python 3"
)

#: Seconds the checker waits for a PING answer (tried again until then: the peer may
#: still be starting to listen).
PING_WAIT = 5.0
#: Seconds for the peer's first QUERY to its neighbour A, then to B after UPDATE_NBR
#: (the course's sample peer asks every 2 s).
QUERY_WAIT = 10.0
#: Seconds at most the checker waits for a REGISTER (less when the run's timeout is).
REGISTER_WAIT = 30.0

Got = Message | BadMessage | str


def _fail(name: str, detail: str, hint: str = "") -> CheckResult:
    return CheckResult(name, True, False, detail, hint=hint or HINTS[name])


def _pass(name: str, detail: str, warning: str = "") -> CheckResult:
    return CheckResult(name, True, True, detail, warning=warning)


def _not_run(name: str, why: str) -> CheckResult:
    return CheckResult(name, True, False, f"not run: {why}", hint=HINTS[name])


def tracker_unavailable(why: str) -> CheckResult:
    """The only row of a run that could not start: the checker's tracker had no port."""
    return _fail("register", why)


def lacking_seq(n: int, hosted: int) -> int:
    """The SEQNUM the checker asks for as one the peer lacks (then as one it collected)."""
    return next(s for s in range(n) if s != hosted)


def answer_of(probe: Probe | None) -> Got:
    """What came back to ``probe``: its first answer as a Part 2 message, else what
    happened instead, in words."""
    if probe is None:
        return "not asked"
    if probe.kind == "answer" and probe.values:
        return parse(probe.values[0])
    return probe.detail or "no answer"


def _described(probe: Probe) -> str:
    """What came back to ``probe``, as a value (its first answer) or in words."""
    if probe.kind == "answer" and probe.values:
        return short(probe.values[0])
    return probe.detail


def _answers_ping(got: Got) -> bool:
    return not isinstance(got, (str, BadMessage)) and as_pong(got) is not None


def ping_stops(got: Got, hw09: bool) -> bool:
    """Whether the checks stop at the PING's answer ``got``: no answer to PING, and
    under HW09 none the course's tracker would keep either (an answer, or a close)."""
    if _answers_ping(got):
        return False
    return not (hw09 and (not isinstance(got, str) or got.startswith("closed")))


def message_seen(stdout: str, words: Sequence[str], hw09: bool) -> bool:
    """Whether the checker may stop waiting for the message: on stdout (HW09: the
    items in order, in any form), or every VALUE somewhere on it."""
    if hw09 and printed_in_order(stdout, words).ok:
        return True
    return " ".join(words) in stdout or all(w in stdout for w in words)


def _until(heard: Sequence[Received], at: float) -> list[Received]:
    """What had arrived by ``at``."""
    return [h for h in heard if h.at <= at]


# ----------------------------------------------------------------------------- checks


def _register(t: PeerTranscript) -> tuple[CheckResult, Received | None]:
    """The register row, and the REGISTER (None: the checks stop here)."""
    heard = _until(t.to_tracker, t.register_wait.at)
    # (the first message that is not an ECHO: a REGISTER, or what it sent instead)
    joined = next((h for h in heard if not isinstance(h.message, Echo)), None)
    if joined is not None and isinstance(joined.message, Join):
        join = joined.message
        if not 1 <= join.port <= 65535:
            return _fail("register", f"REGISTER gave port {join.port}, not in 1..65535"), joined
        return _pass("register", f"('REGISTER', {join.handle!r}, {join.port})"), joined
    bad = [h for h in heard if h.message is None or isinstance(h.message, BadMessage)]
    if bad:
        what = bad[0].problem or shown(bad[0].message or "nothing")
        detail = f"the tracker got {what}, not ('REGISTER', handle, port)"
    elif joined is not None and joined.message is not None:
        detail = f"the tracker got {shown(joined.message)} first, not a REGISTER"
    elif t.register_wait.exit is not None:
        error = stopped_before_connecting(t.run.stderr)
        if error is not None:
            detail = f"the peer stopped before it registered: {short_text(error, 120)}"
            return _fail("register", detail, STOPPED_EARLY_HINT), None
        detail = f"the peer exited (code {t.register_wait.exit}) before it registered"
    else:
        detail = f"no REGISTER reached the tracker within {min(t.timeout, REGISTER_WAIT):g} s"
    return _fail("register", detail), None


def _ping(t: PeerTranscript, where: str) -> CheckResult:
    got = answer_of(t.pings[-1] if t.pings else None)
    hw09 = t.profile == "hw09"
    pong = as_pong(got) if not isinstance(got, (str, BadMessage)) else None
    if hw09 and pong is None and (not isinstance(got, str) or got.startswith("closed")):
        # (the course's tracker keeps a peer that answers anything, or closes, in time)
        return _pass("ping", f"{shown(got)}: the course's tracker keeps it")
    if pong is None:
        return _fail("ping", f"('PING', stamp) to {where} got {shown(got)}")
    if pong.tag == "ACK" and hw09:
        return _pass("ping", f"answered {shown(got)}, as the assignment asks")
    if pong.tag == "ACK":
        return _pass(
            "ping",
            f"answered {shown(got)}",
            "('ACK', handle), as the course's sample peer; the assignment asks for"
            " ('PING', handle)",
        )
    return _pass("ping", f"answered {shown(got)}")


def _query(t: PeerTranscript, s: Served) -> CheckResult:
    lacking = lacking_seq(len(t.words), t.hosted)
    have, lack = answer_of(s.hosted), answer_of(s.lacking)
    if have != QueryResult(t.hosted, t.words[t.hosted]):
        return _fail("query", f"QUERY {t.hosted} (the item it hosts) got {shown(have)}")
    if lack != QueryResult(None, None):
        return _fail("query", f"QUERY {lacking} (an item it lacks) got {shown(lack)}")
    return _pass("query", f"its hosted item, and (None, None) for SEQNUM {lacking}")


def _follows_update(t: PeerTranscript, s: Served) -> CheckResult:
    if s.update.kind == "unreachable":
        return _fail("follows-update", f"UPDATE_NBR could not be sent: {s.update.detail}")
    asked_a = sum(isinstance(h.message, Query) for h in _until(t.to_a, s.update.at))
    # (a QUERY, or what it sent instead: an unsafe pickle is judged by safe-pickles)
    to_b = [
        h
        for h in _until(t.to_b, s.b_waited)
        if isinstance(h.message, Query) or (h.message is None and bool(h.raw))
    ]
    a, b = t.a.handle, t.b.handle
    if to_b:
        return _pass(
            "follows-update", f"after UPDATE_NBR its QUERYs went to {b} ({asked_a} to {a} before)"
        )
    before = f"{asked_a} QUERYs to {a} before" if asked_a else "no QUERY to A either"
    return _fail(
        "follows-update",
        f"no QUERY reached {b} within {QUERY_WAIT:g} s of UPDATE_NBR ({before})",
    )


def collects(seen: Moment, words: Sequence[str], hw09: bool, timeout: float) -> CheckResult:
    """The collects row, from the program as it was when the wait for the message
    ended (``timeout``: the run's, for the words)."""
    message = " ".join(words)
    out = seen.stdout
    form = printed_in_order(out, words)
    if hw09 and form.ok:
        return _pass("collects", f"printed the items in order: {form.form}")
    if hw09 and out.strip():
        hint = _ORDER_HINT if "not in SEQNUM order" in form.why else HINTS["collects"]
        return _fail("collects", f"{form.why} (within {timeout:g} s)", hint)
    if message in out:
        return _pass("collects", f"printed the message ({len(words)} items)")
    if all(w in out for w in words):
        return _fail("collects", "printed every VALUE, but not as the message on one line in order")
    if seen.exit is not None:
        return _fail("collects", f"exited (code {seen.exit}) without the message")
    return _fail("collects", f"no message on stdout within {timeout:g} s")


def _keeps_serving(t: PeerTranscript, s: Served, collected: bool) -> CheckResult:
    got = answer_of(s.keeps_serving)
    if not collected:
        if _answers_ping(got):
            return _pass("keeps-serving", "still answers PING (it has not every item)")
        return _fail("keeps-serving", f"PING got {shown(got)}")
    seq = lacking_seq(len(t.words), t.hosted)
    if got == QueryResult(seq, t.words[seq]):
        return _pass("keeps-serving", f"QUERY {seq} answered with the item it collected")
    return _fail("keeps-serving", f"QUERY {seq}, after the message, got {shown(got)}")


def _pause(t: PeerTranscript, s: Served) -> CheckResult:
    """The assignment's 2-3 s between item requests, from when its QUERYs arrived (by
    the time the checker turned to wrong-tuple)."""
    heard = _until((*t.to_a, *t.to_b), s.wrong_tuple.at)
    at = [h.at for h in heard if isinstance(h.message, Query)]
    found = pauses(at)
    if len(at) < 2:
        return _fail("pause", f"{len(at)} QUERY: no pause to measure (it must ask for the items)")
    if found.too_short:
        return _fail("pause", f"{found.words()}: {found.too_short} gap(s) under {MIN_PAUSE:g} s")
    warning = ""
    if found.longest > MAX_PAUSE:
        warning = f"a pause of {found.longest:.1f} s: the assignment asks for 2-3 s"
    return _pass("pause", found.words(), warning)


def _survives(name: str, first: Probe, after_probe: Probe, hw09: bool) -> CheckResult:
    """wrong-tuple or garbage: what ``first`` got, then whether it still answers PING."""
    what = _described(first)
    if first.kind == "undecodable":
        what = f"{short(first.raw[:40])} (bytes, not a pickled tuple)"
    after = answer_of(after_probe)
    if first.kind == "timeout":
        result = _fail(name, "no answer and no close within 5 s")
    elif _answers_ping(after) or (hw09 and not isinstance(after, str)):
        result = _pass(name, f"got {what}; still answers PING")
    else:
        result = _fail(name, f"got {what}; then PING got {shown(after)}")
    # (HW09 does not ask for it: the course's sample peer stops serving after garbage)
    return dataclasses.replace(result, required=False) if hw09 else result


def _py2_pickles(heard: Sequence[Received]) -> CheckResult:
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


def _safe_pickles(heard: Sequence[Received], host: str) -> CheckResult:
    sent = [h for h in heard if h.sender == host and h.message is None and "empty" not in h.problem]
    if sent:
        return _fail("safe-pickles", f"it sent {sent[0].problem}")
    return _pass("safe-pickles", f"all {len(heard)} messages it sent were plain tuples")


def _checks(t: PeerTranscript) -> list[CheckResult]:
    hw09 = t.profile == "hw09"
    names = HW09_REQUIRED if hw09 else REQUIRED
    register, joined = _register(t)
    if joined is None or not isinstance(joined.message, Join):
        return [register, *(_not_run(n, "no REGISTER") for n in names[1:])]
    checks = [register, _ping(t, f"{joined.sender}:{joined.message.port}")]
    if ping_stops(answer_of(t.pings[-1] if t.pings else None), hw09):
        return checks + [_not_run(n, "its port does not answer") for n in names[2:]]
    s = t.served
    if s is None:  # (a recording that stopped where the judge would not)
        return checks + [_not_run(n, "not recorded") for n in names[2:]]
    checks += [_query(t, s), _follows_update(t, s)]
    checks.append(collects(s.collecting, t.words, hw09, t.timeout))
    checks.append(_keeps_serving(t, s, checks[-1].passed))
    if hw09:
        checks.append(_pause(t, s))
    checks.append(_survives("wrong-tuple", s.wrong_tuple, s.wrong_tuple_ping, hw09))
    checks.append(_survives("garbage", s.garbage, s.garbage_ping, hw09))
    heard = _until((*t.to_tracker, *t.to_a, *t.to_b), t.ended)
    if hw09:
        checks.append(_py2_pickles(heard))
    else:
        checks.append(_safe_pickles(heard, joined.sender))
    return checks


def _with_run(checks: list[CheckResult], run: ProgramRun) -> list[CheckResult]:
    """The rows, with what the run's end says: a sandbox that could not start the
    program, a limit it hit (on the first failure), the end of its stderr (on the last
    row, when that failed)."""
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
    return checks


def judge_peer(transcript: PeerTranscript) -> list[CheckResult]:
    """The checks of :data:`REQUIRED` (profile ``hw09``: :data:`HW09_REQUIRED`, with
    wrong-tuple and garbage as INFO), in order, over one recorded run."""
    return _with_run(_checks(transcript), transcript.run)
