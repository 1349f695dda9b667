"""HW08, the Part 1 client, judged as the course's tracker (tracker-p1.py, Python 2,
one connection at a time) would meet it: each rule of the assignment one check, over
the transcripts of its runs (the course's database at its written-in address, and a
fresh one; a rule fails if it fails in any of them).

The assignment's words: "The client should use the TCP protocol (not UDP)"; "The
client should pause (use timer) for 2-3 seconds between db item requests"; "All db
item requests MUST be serialized before sending to TRACKER. Use pickle for this."; "It
must print the db items in their logical order before exiting." Its pseudocode:
register, then "loop 0 -> N-1 times, each time making connection to TRACKER and
requesting an item".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...core.py2 import loads_py2
from ..hints import STOPPED_EARLY_HINT, stopped_before_connecting
from ..report import CheckResult, plural, short, short_text
from .pacing import MAX_PAUSE, MIN_PAUSE, pauses
from .printed import printed_in_order
from .transcript import ClientTranscript, Connection

__all__ = ["HW08_HINTS", "HW08_REQUIRED", "judge", "judge_hw08"]

HW08_REQUIRED = (
    "register",
    "pickled",
    "all-items",
    "pause",
    "one-at-a-time",
    "prints-in-order",
    "exits",
)

HW08_HINTS = {
    "register": "connect over TCP to the tracker's address and send the 8 raw bytes"
    " b'REGISTER' (not pickled), then read N with pickle.loads",
    "pickled": "send each position as pickle.dumps(i, 2) (or protocol 0): the course's"
    " tracker is Python 2, and Python 3's default pickle protocol is one it cannot read",
    "all-items": "ask for every position 0..N-1, one connection each, and keep each"
    " (SEQNUM, VALUE) it gets back",
    "pause": "sleep 2 to 3 seconds (time.sleep(2)) between item requests, as the assignment asks",
    "one-at-a-time": "open a connection only to send a request on it, and close it after"
    " the answer: the course's tracker serves one connection at a time and waits on an"
    " idle one for ever",
    "prints-in-order": "place each VALUE at its SEQNUM and print the VALUEs in that order"
    " (joined by spaces on one line, one per line, or the dict/list in key order)",
    "exits": "exit once the message is printed: do not wait for input or for more answers",
}


def _fail(name: str, detail: str, hint: str = "", **data: object) -> CheckResult:
    return CheckResult(name, True, False, detail, dict(data), hint=hint or HW08_HINTS[name])


def _pass(name: str, detail: str, warning: str = "") -> CheckResult:
    return CheckResult(name, True, True, detail, warning=warning)


def _items(t: ClientTranscript) -> list[Connection]:
    """The item requests: after the first connection (the registration), each one that
    sent something other than REGISTER."""
    return [
        c for c in t.connections[1:] if c.read_at is not None and c.data and c.data != b"REGISTER"
    ]


def _register(t: ClientTranscript) -> CheckResult:
    if not t.connections and t.run.exit in (126, 127) and not t.run.timed_out:
        return _fail(
            "register",
            f"{t.scenario}: the command could not be started (exit {t.run.exit})",
            "check the command: the interpreter and the file must exist there (run it"
            " yourself from the same folder first)",
        )
    if not t.connections and not t.run.timed_out:
        error = stopped_before_connecting(t.run.stderr)
        if error is not None:
            return _fail(
                "register",
                f"{t.scenario}: the program stopped before it connected: {short_text(error, 120)}",
                STOPPED_EARLY_HINT,
            )
    if not t.connections:
        why = "never connected to " + t.address
        return _fail("register", f"{t.scenario}: {why}: is the address written in the program?")
    first = t.connections[0]
    if first.data == b"REGISTER":
        return _pass("register", f"b'REGISTER' first ({t.scenario})")
    if first.read_at is None:
        return _fail("register", f"{t.scenario}: its first connection sent nothing")
    read = loads_py2(first.data)
    if read.ok and read.value == "REGISTER":
        return _fail(
            "register",
            f"{t.scenario}: sent REGISTER pickled ({short(first.data[:30])}), not as raw bytes",
            "send the 8 raw bytes b'REGISTER' (s.send(b'REGISTER')), not pickle.dumps('REGISTER')",
        )
    return _fail("register", f"{t.scenario}: sent {short(first.data[:30])} first, not b'REGISTER'")


def _pickled(t: ClientTranscript) -> CheckResult:
    items = _items(t)
    if not items:
        return _pass("pickled", f"{t.scenario}: no item request to judge")
    for c in items:
        read = loads_py2(c.data)
        if read.ok and isinstance(read.value, int):
            continue
        raw = short(c.data[:30])
        if c.data[:1] == b"\x80" and len(c.data) > 1 and c.data[1] > 2:
            return _fail(
                "pickled",
                f"{t.scenario}: sent {raw}, a protocol {c.data[1]} pickle: Python 2 cannot read"
                " it, and the course's tracker answered 'Bad request'",
            )
        if c.data.strip().isdigit():
            return _fail(
                "pickled",
                f"{t.scenario}: sent the digits {raw}, not a pickle: the course's tracker"
                " answered 'Bad request'",
                "send pickle.dumps(i, 2) (a pickled int), not str(i): the course's tracker"
                " unpickles every request",
            )
        return _fail(
            "pickled",
            f"{t.scenario}: sent {raw}, which Python 2 does not read as a position"
            f" ({read.error or 'not an int'})",
        )
    return _pass("pickled", f"every item request a pickle Python 2 reads ({len(items)})")


def _all_items(t: ClientTranscript) -> CheckResult:
    n = len(t.stored)
    asked: set[int] = set()
    for c in _items(t):
        read = loads_py2(c.data)
        value = read.value
        if read.ok and isinstance(value, int) and 0 <= value < n and c.reply is not None:
            asked.add(value)
    missing = sorted(set(range(n)) - asked)
    if not missing:
        return _pass("all-items", f"{t.scenario}: asked for all {n} positions")
    shown = ", ".join(str(i) for i in missing[:8]) + (", ..." if len(missing) > 8 else "")
    return _fail(
        "all-items",
        f"{t.scenario}: got {n - len(missing)} of {n} items: position(s) {shown} never"
        " asked for, or refused",
    )


def _pause(t: ClientTranscript) -> CheckResult:
    found = pauses([c.at for c in _items(t)])
    if not found.gaps:
        return _pass("pause", f"{t.scenario}: {found.words()}")
    if found.too_short:
        return _fail(
            "pause",
            f"{t.scenario}: {found.words()}: {plural(found.too_short, 'gap')} under"
            f" {MIN_PAUSE:g} s",
        )
    warning = ""
    if found.longest > MAX_PAUSE:
        warning = f"a pause of {found.longest:.1f} s: the assignment asks for 2-3 s"
    return _pass("pause", f"{t.scenario}: {found.words()}", warning)


def _one_at_a_time(t: ClientTranscript) -> CheckResult:
    for k, c in enumerate(t.connections):
        if c.read_at is None:
            later = len(t.connections) - k - 1
            return _fail(
                "one-at-a-time",
                f"{t.scenario}: connection {k + 1} (opened at {c.at:.2f} s) sent nothing and"
                f" stayed open: the course's tracker waits on it for ever"
                + (f" ({plural(later, 'connection')} queued behind it)" if later else ""),
            )
    return _pass(
        "one-at-a-time", f"{t.scenario}: {plural(len(t.connections), 'connection')}, each used"
    )


def _prints(t: ClientTranscript) -> CheckResult:
    found = printed_in_order(t.run.stdout, t.message_values)
    if found.ok:
        return _pass("prints-in-order", f"{t.scenario}: {found.form}")
    got_all = _all_items(t).passed
    if got_all and found.why == "nothing on stdout":
        return _fail(
            "prints-in-order",
            f"{t.scenario}: got every item but printed nothing",
            "print the message, and flush stdout before anything else (sys.stdout.flush()):"
            " a program that is killed or keeps running loses what it printed into its buffer",
        )
    return _fail("prints-in-order", f"{t.scenario}: {found.why}")


def _exits(t: ClientTranscript) -> CheckResult:
    run = t.run
    if run.timed_out:
        return _fail("exits", f"{t.scenario}: still running after {t.timeout:g} s (killed)")
    if run.exit:
        where = (
            f"; stderr: {short(run.stderr.strip().splitlines()[-1], 80)}"
            if run.stderr.strip()
            else ""
        )
        return _fail("exits", f"{t.scenario}: exit {run.exit}{where}")
    return _pass("exits", f"{t.scenario}: exit 0 after {run.seconds:.1f} s")


_JUDGES: dict[str, Callable[[ClientTranscript], CheckResult]] = {
    "register": _register,
    "pickled": _pickled,
    "all-items": _all_items,
    "pause": _pause,
    "one-at-a-time": _one_at_a_time,
    "prints-in-order": _prints,
    "exits": _exits,
}


def judge(name: str, transcript: ClientTranscript) -> CheckResult:
    """The rule ``name`` of :data:`HW08_REQUIRED` over one transcript."""
    return _JUDGES[name](transcript)


def judge_hw08(transcripts: Sequence[ClientTranscript]) -> list[CheckResult]:
    """One result per rule of :data:`HW08_REQUIRED`: the first transcript that fails
    it, else the first one's pass."""
    results = []
    for name in HW08_REQUIRED:
        judged = [_JUDGES[name](t) for t in transcripts]
        failed = [r for r in judged if not r.passed]
        results.append(failed[0] if failed else judged[0])
    return results
