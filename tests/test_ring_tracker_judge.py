"""cs457p2p.checker.judges.ring_tracker: ``check tracker --part 2`` judged over
transcripts built here, one student mistake each (milliseconds; the real runs against
real trackers, ours, a student's and the course's, are in
tests/test_ring_tracker_checks.py). The expected words are those the real runs of
tests/students/ring/ring_tracker.py printed, handles and ports aside."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.checker import links
from cs457p2p.checker.judges import (
    Arrival,
    Exchange,
    PingWatch,
    RingPeer,
    RingTrackerTranscript,
    judge_ring_tracker,
)
from cs457p2p.checker.judges.ring_tracker import (
    FILL_LIMIT,
    HINTS,
    REQUIRED,
    SETTLE,
    nothing_listens,
)
from cs457p2p.checker.judges.transcript import ANSWERED, CLOSED, NOT_SENT, UNREACHABLE
from cs457p2p.checker.report import CheckResult
from cs457p2p.core.decoder import Value
from cs457p2p.core.wire2 import Ping, UpdateNbr

TAG = "chk9a42"
#: The course's five items, as the student's tracker stores them.
DB = ((4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies"))
BAD_REQUEST = ("[Tracker]", "Bad request")
#: Every time below is a multiple of 1/64 s: sums and differences are exact.
TICK = 1 / 64


def who(k: int) -> tuple[str, str, int]:
    """Peer ``k`` (0: the first): its handle, address and port."""
    return f"{TAG}-{k + 1}", f"127.0.0.{11 + k}", 40001 + k


def timed_out(sent: Value = None, at: float = 0.0) -> Exchange:
    return Exchange(sent, "timeout", None, "no answer within 2 s", at=at)


def closed(sent: Value = None, at: float = 0.0) -> Exchange:
    return Exchange(sent, CLOSED, None, "closed without answering", at=at)


def refused(sent: Value = None, at: float = 0.0) -> Exchange:
    return Exchange(sent, UNREACHABLE, None, "cannot connect: connection refused", at=at)


def _predecessor(j: int, k: int) -> int:
    return (j - 1) % (k + 1)


def only_the_first(j: int, k: int) -> int | None:
    """Ours: on peer ``k``'s join only the first peer (``j`` 0) is told, of ``k``."""
    return k if j == 0 else None


def every_peer(j: int, k: int) -> int | None:
    """The course's and the students': every peer is told its neighbour on every join."""
    return _predecessor(j, k)


def ring(
    *,
    n: int = 5,
    count: int | None = None,
    item: Callable[[int], Value] | None = None,
    lone: bool = True,
    nbr: Callable[[int], int] = lambda k: k - 1,
    told: Callable[[int, int], int | None] = only_the_first,
    told_after: float = 4 * TICK,
    ping_first: float = 0.5,
    ping_every: float | None = 1.0,
    prune_after: float | None = 88 * TICK,
    prune_names: int = 0,
    wait: float = 4.0,
    echo: Exchange | None = None,
    joins: dict[int, Exchange] | None = None,
    duplicate: Exchange | Value = BAD_REQUEST,
    dup_serves: bool = True,
    garbage: Exchange | Value = "Bad request",
    garbage_serves: bool = True,
) -> RingTrackerTranscript:
    """What the checker would record of a ring tracker that behaves as the arguments say
    (by default a correct one, as ours: N = 5, the first peer told of each newcomer, a
    PING every second, the dead peer's successor told 1.375 s after).

    Peer ``k`` registers at 0.125 + k/2 s and gets a REG_INIT naming ``nbr(k)`` (the
    first peer: itself, or no one if not ``lone``) and hosting ``item(k)``; on each join
    ``k``, peer ``j`` hears of peer ``told(j, k)`` ``told_after`` s later; PINGs reach
    every listening peer from ``ping_first`` s on, every ``ping_every`` s; the second
    peer stops listening once the watch begins, and the third hears of ``prune_names``
    ``prune_after`` s later."""
    fill = n if 0 < n <= FILL_LIMIT else 0
    count = max(3, fill) if count is None else count
    if item is None:
        item = (lambda k: DB[k % 5]) if n == 5 else (lambda k: (k % n, f"v{k % n}") if n else None)
    heard: list[list[Arrival]] = [[] for _ in range(count)]
    echo = echo or Exchange(
        ("ECHO", who(0)[0]), ANSWERED, ("[Tracker]", f"Hi {who(0)[0]}, Welcome to the network.")
    )
    peers_joined: list[Exchange] = []
    for k in range(count):
        handle, host, port = who(k)
        at = 0.125 + k / 2
        named = (k if lone else None) if k == 0 else nbr(k)
        fields = who(named) if named is not None else (None, None, None)
        joined = Exchange(
            ("REGISTER", handle, port), ANSWERED, ("REG_INIT", *fields, n, item(k)), "", host, at
        )
        joined = dataclasses.replace((joins or {}).get(k, joined), at=at)
        peers_joined.append(joined)
        for j in range(k + 1) if k else ():
            about = told(j, k)
            if about is not None:
                heard[j].append(Arrival(at + told_after, UpdateNbr(*who(about))))
    counted_at = 0.125 + count / 2 + 0.25
    dup_at = counted_at + 4 * TICK
    watch = None
    end = dup_at + 8 * TICK
    if wait > 0:
        start = end + 4 * TICK
        watch = PingWatch(start, start + TICK, start + wait)
        end = watch.ended
        if prune_after is not None:
            at = watch.stopped + prune_after
            heard[2].append(Arrival(at, UpdateNbr(*who(prune_names))))
    garbage_at = end + 4 * TICK
    last = garbage_at + 8 * TICK
    if ping_every is not None:
        t = ping_first
        while t <= last:
            for k in range(count):
                victim = k == 1 and watch is not None and t >= watch.stopped
                if peers_joined[k].at < t and not victim:
                    heard[k].append(Arrival(t, Ping("Mon Nov 30 12:00:00 2026")))
            t += ping_every
    peers = tuple(
        RingPeer(*who(k), peers_joined[k], tuple(sorted(heard[k], key=lambda h: h.at)))
        for k in range(count)
    )

    def answer(got: Exchange | Value, sent: Value, at: float) -> Exchange:
        if isinstance(got, Exchange):
            return dataclasses.replace(got, sent=sent, at=at)
        return Exchange(sent, ANSWERED, got, at=at)

    def echo_after(serves: bool, at: float) -> Exchange:
        sent = ("ECHO", f"{TAG}-echo")
        if serves:
            return Exchange(sent, ANSWERED, ("[Tracker]", f"Hi {TAG}-echo"), at=at)
        return timed_out(sent, at)

    return RingTrackerTranscript(
        "127.0.0.1:7777",
        wait,
        echo,
        peers,
        counted_at,
        answer(duplicate, ("REGISTER", who(0)[0], who(0)[2]), dup_at),
        echo_after(dup_serves, dup_at + 4 * TICK),
        watch,
        answer(garbage, b"\xff\xfe this is not a pickle\r\n", garbage_at),
        echo_after(garbage_serves, garbage_at + 4 * TICK),
    )


def judged(t: RingTrackerTranscript) -> dict[str, CheckResult]:
    return {c.name: c for c in judge_ring_tracker(t)}


def failures(t: RingTrackerTranscript) -> list[str]:
    return [c.name for c in judge_ring_tracker(t) if c.required and not c.passed]


ORDER = [
    "echo",
    "register",
    "lone-peer",
    "neighbours",
    "hosted-items",
    "update-nbr-per-join",
    "duplicate-handle",
    "ping",
    "prune",
    "ping-interval",
    "garbage",
]


def test_a_correct_tracker_passes_in_these_words() -> None:
    results = judge_ring_tracker(ring())
    assert [(c.name, c.result, c.detail) for c in results] == [
        ("echo", "PASS", f"answered ('[Tracker]', 'Hi {TAG}-1, Welcome to the network.')"),
        ("register", "PASS", "REG_INIT: N = 5, hosting (4, 'peaks')"),
        ("lone-peer", "PASS", "the first peer is its own neighbour"),
        ("neighbours", "PASS", "the second and third peers' neighbours are their"
         " predecessors; the first peer was told of each"),
        ("hosted-items", "PASS", "5 peers host all 5 SEQNUMs, each in range"),
        ("update-nbr-per-join", "INFO", "1.0 UPDATE_NBR per join after the first (4"
         " UPDATE_NBRs, 5 joins); the course's tracker tells every peer on every join, ours"
         " only the one whose neighbour changed"),
        ("duplicate-handle", "PASS", "a taken handle got ('[Tracker]', 'Bad request'); still"
         " serves"),
        ("ping", "PASS", "the first PING came -2.6 s in"),  # (before the watch)
        ("prune", "PASS", f"{TAG}-2 stopped listening; {TAG}-3 was told its new neighbour"
         f" {TAG}-1 1.4 s later"),
        ("ping-interval", "INFO", "PINGs to a peer every 1.0 - 1.0 s"),
        ("garbage", "PASS", "garbage got 'Bad request'; still serves"),
    ]  # fmt: skip
    assert [c.name for c in results if c.required] == list(REQUIRED)
    assert results[1].data == {"n": 5}
    assert results[5].data == {"updates": 4, "joins": 5}
    assert not any(c.hint or c.warning for c in results)
    assert nothing_listens(ring()) == ""


def test_the_courses_tracker_fails_only_garbage() -> None:
    t = ring(
        told=every_peer,
        duplicate=("REG_INIT", None, None, None, 5, (1, "skies")),
        garbage=closed(),
        garbage_serves=False,
    )
    t = dataclasses.replace(t, after_garbage=refused(t.after_garbage.sent))
    checks = judged(t)
    assert failures(t) == ["garbage"]
    assert checks["garbage"].detail == (
        "garbage got closed without answering; then ECHO got cannot connect: connection"
        " refused (the course's tracker fails this: after any error it stops serving for"
        " good, so this check runs last)"
    )
    assert checks["garbage"].hint == HINTS["garbage"]
    assert checks["duplicate-handle"].warning == (
        "answered with a REG_INIT without a neighbour (as the course's tracker)"
    )
    assert checks["duplicate-handle"].detail == (
        "a taken handle got ('REG_INIT', None, None, None, 5, (1, 'skies')); still serves"
    )
    assert checks["update-nbr-per-join"].data == {"updates": 14, "joins": 5}


def _successor(j: int, k: int) -> int:
    return (j + 1) % (k + 1)


# (which tracker, its transcript's arguments, the checks that fail, the first one's detail
# as the real run said it, a phrase of its hint)
MISTAKES: list[tuple[str, dict[str, Any], list[str], str, str]] = [
    ("no-update", {"told": lambda j, k: None, "prune_after": None}, ["neighbours", "prune"],
     f"the first peer ({TAG}-1) got no UPDATE_NBR naming {TAG}-2 within 2 s of its join; the"
     f" first peer ({TAG}-1) got no UPDATE_NBR naming {TAG}-3 within 2 s of its join",
     "send UPDATE_NBR to the first peer"),
    ("not-self", {"lone": False, "told": every_peer}, ["lone-peer"],
     f"the first peer ({TAG}-1 at 127.0.0.11:40001) got neighbour None at None:None, not"
     " itself", "is its own neighbour"),
    ("successor", {"nbr": lambda k: 0, "told": _successor, "prune_names": 3},
     ["neighbours", "prune"],
     f"{TAG}-3's neighbour is {TAG}-1 at 127.0.0.11:40001, not its predecessor {TAG}-2 at"
     f" 127.0.0.12:40002; the first peer ({TAG}-1) got no UPDATE_NBR naming {TAG}-3 within"
     " 2 s of its join", "its predecessor"),
    ("no-ping", {"ping_every": None, "prune_after": None}, ["ping", "prune"],
     "no PING reached any of 5 peers in 4 s", "PING every peer"),
    ("no-prune", {"prune_after": None}, ["prune"],
     f"{TAG}-2 stopped listening; {TAG}-3 got no UPDATE_NBR naming {TAG}-1 within 4 s",
     "remove a peer that does not answer"),
    ("off-by-one", {"item": lambda k: (DB[k % 5][0] + 1, DB[k % 5][1])},
     ["register", "hosted-items"], "REG_INIT hosts SEQNUM 5, out of range 0..4", "(seq, value)"),
    ("dup-dies", {"duplicate": timed_out(), "dup_serves": False, "garbage": timed_out(),
                  "garbage_serves": False}, ["duplicate-handle", "garbage"],
     "a taken handle got no answer within 2 s; then ECHO got no answer within 2 s",
     "keep serving"),
    ("fragile", {"garbage": timed_out(), "garbage_serves": False}, ["garbage"],
     "garbage got no answer within 2 s; then ECHO got no answer within 2 s (the course's"
     " tracker fails this: after any error it stops serving for good, so this check runs"
     " last)", "catch errors per connection"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "kwargs", "failed", "detail", "hint"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_fails_its_check_with_its_hint(
    fault: str, kwargs: dict[str, Any], failed: list[str], detail: str, hint: str
) -> None:
    t = ring(**kwargs)
    checks = judged(t)
    assert failures(t) == failed, [(c.name, c.detail) for c in checks.values()]
    assert checks[failed[0]].detail == detail
    assert hint in checks[failed[0]].hint
    for name in failed:
        assert checks[name].hint == HINTS[name]


def test_the_second_failures_of_the_mistakes_in_the_real_runs_words() -> None:
    no_update = judged(ring(told=lambda j, k: None, prune_after=None))
    assert no_update["update-nbr-per-join"].detail.startswith(
        "0.0 UPDATE_NBR per join after the first (0 UPDATE_NBRs, 5 joins)"
    )
    off = judged(ring(item=lambda k: (DB[k % 5][0] + 1, DB[k % 5][1])))
    assert off["hosted-items"].detail == f"{TAG}-1 hosts SEQNUM 5 (N = 5)"
    no_ping = judged(ring(ping_every=None, prune_after=None))
    assert no_ping["ping-interval"].detail == "no PING seen"
    assert not no_ping["ping-interval"].passed and not no_ping["ping-interval"].required
    students = judged(ring(told=every_peer))  # (the students' tracker tells everyone)
    assert students["update-nbr-per-join"].detail.startswith(
        "3.5 UPDATE_NBR per join after the first (14 UPDATE_NBRs, 5 joins)"
    )


# ------------------------------------------------------------------ when it stops early


def test_nothing_listening_is_one_line_and_every_other_check_not_run() -> None:
    t = RingTrackerTranscript(
        "127.0.0.1:7777", 30.0, refused(("ECHO", who(0)[0])), (RingPeer(*who(0)),)
    )
    results = judge_ring_tracker(t)
    why = (
        "nothing listens on 127.0.0.1:7777 (cannot connect: connection refused): is the"
        " tracker running?"
    )
    assert nothing_listens(t) == why
    assert [(c.name, c.passed, c.detail) for c in results] == [
        ("echo", False, why),
        *((name, False, "not run: nothing listens") for name in REQUIRED[1:]),
    ]
    assert results[0].hint == "start the tracker first, listening on this host and port"
    assert [c.hint for c in results[1:]] == [HINTS[name] for name in REQUIRED[1:]]


@pytest.mark.parametrize(
    ("answer", "got"),
    [
        (timed_out(), "no answer within 2 s"),
        (closed(), "closed without answering"),
        (Exchange(None, ANSWERED, BAD_REQUEST), "not a REG_INIT: \"Said(name='[Tracker]',"),
        (Exchange(None, ANSWERED, "Bad request"), 'not a REG_INIT: "BadMessage(reason='),
        (Exchange(None, "undecodable", None, "b'{}', not a pickle"), "b'{}', not a pickle"),
    ],
)
def test_no_reg_init_for_the_first_peer_stops_the_run(answer: Exchange, got: str) -> None:
    t = RingTrackerTranscript(
        "127.0.0.1:7777",
        30.0,
        ring().echo,
        (RingPeer(*who(0), joined=answer),),
    )
    results = judge_ring_tracker(t)
    assert [c.name for c in results] == list(REQUIRED)  # (no INFO row)
    register = results[1]
    assert not register.passed and register.hint == HINTS["register"]
    assert register.detail.startswith(f"('REGISTER', '{TAG}-1', 40001) got {got}")
    assert all(c.detail == "not run: no REG_INIT" for c in results[2:])
    assert nothing_listens(t) == ""


# ---------------------------------------------------------------------- each check


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (Exchange(None, ANSWERED, ("REG_INIT", None, None, None, 5, None)),
         f"('ECHO', '{TAG}-1') got ('REG_INIT', None, None, None, 5, None)"),
        (closed(), f"('ECHO', '{TAG}-1') got closed without answering"),
        (Exchange(None, ANSWERED, 7), f"('ECHO', '{TAG}-1') got a value that is no Part 2"
         " message (not a tuple)"),
    ],
)  # fmt: skip
def test_an_echo_not_answered_in_words_fails_and_the_rest_runs(
    answer: Exchange, detail: str
) -> None:
    t = ring(echo=answer)
    assert failures(t) == ["echo"]
    echo = judge_ring_tracker(t)[0]
    assert echo.detail == detail and echo.hint == HINTS["echo"]


def test_a_reg_init_without_an_item() -> None:
    assert judged(ring(item=lambda k: None))["register"].detail == (
        "REG_INIT gives no item to host, with N = 5"
    )
    one = judged(ring(n=1, item=lambda k: None))  # (the edge: one item, none to host)
    assert one["register"].detail == "REG_INIT gives no item to host, with N = 1"
    empty = judged(ring(n=0))  # (an empty database: nothing to host, rightly)
    assert empty["register"].passed and empty["register"].detail == "REG_INIT: N = 0, hosting None"
    assert empty["hosted-items"].detail == "every hosted item is in range"
    assert empty["hosted-items"].passed


def test_a_ring_over_the_fill_limit_is_judged_on_range_alone() -> None:
    big = ring(n=FILL_LIMIT + 8)
    assert len(big.peers) == 3
    hosted = judged(big)["hosted-items"]
    assert hosted.passed and hosted.detail == (
        f"every hosted item is in range; N = {FILL_LIMIT + 8} is over {FILL_LIMIT}, so not"
        " every SEQNUM was looked for"
    )
    out = judged(ring(n=FILL_LIMIT + 8, item=lambda k: (FILL_LIMIT + 8 + k, "x")))
    assert not out["hosted-items"].passed and not out["register"].passed
    assert out["hosted-items"].detail == f"{TAG}-1 hosts SEQNUM 40 (N = 40)"


def test_a_ring_that_leaves_seqnums_unhosted() -> None:
    t = ring(item=lambda k: (0, "blue"))
    assert failures(t) == ["hosted-items"]
    assert judged(t)["hosted-items"].detail == (
        "5 peers for N = 5, but SEQNUM 1, 2, 3, 4 hosted by none"
    )
    eleven = judged(ring(n=11, item=lambda k: (k % 2, "x")))["hosted-items"]
    assert eleven.detail == "11 peers for N = 11, but SEQNUM 2, 3, 4, 5, 6, 7, 8, 9 hosted by none"


def test_a_peer_that_cannot_join_to_fill_the_ring() -> None:
    t = ring(count=5, joins={4: timed_out()})
    t = dataclasses.replace(t, peers=t.peers)  # (the run stops filling there)
    assert failures(t) == ["hosted-items"]
    checks = judged(t)
    assert checks["hosted-items"].detail == f"{TAG}-5's REGISTER got no answer within 2 s"
    assert checks["update-nbr-per-join"].data["joins"] == 4


def test_a_newcomer_that_cannot_join() -> None:
    t = ring(joins={1: timed_out()}, told=lambda j, k: k if j == 0 and k != 1 else None)
    checks = judged(t)
    assert failures(t) == ["neighbours", "hosted-items"]
    # (no word on an UPDATE_NBR naming a peer the tracker never took)
    assert checks["neighbours"].detail == f"{TAG}-2's REGISTER got no answer within 2 s"
    assert checks["hosted-items"].detail == "5 peers for N = 5, but SEQNUM 2 hosted by none"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=4 * 64).map(lambda k: k * TICK))
def test_the_first_peer_must_hear_of_a_newcomer_within_settle(after: float) -> None:
    neighbours = judged(ring(told_after=after))["neighbours"]
    assert neighbours.passed == (after <= SETTLE), neighbours.detail
    if not neighbours.passed:
        assert neighbours.detail.endswith(f"naming {TAG}-3 within 2 s of its join")


def test_an_update_naming_someone_else_does_not_count() -> None:
    t = ring(told=lambda j, k: 0 if j == 0 else None)  # (the first peer told of itself)
    assert failures(t) == ["neighbours"]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-2 * 64, max_value=7 * 64).map(lambda k: k * TICK))
def test_prune_counts_an_update_from_the_stop_to_the_wait(after: float) -> None:
    prune = judged(ring(prune_after=after, wait=4.0))["prune"]
    assert prune.passed == (0 <= after <= 4.0), prune.detail
    if prune.passed:
        assert prune.detail.endswith(f"{after:.1f} s later")


def test_an_update_to_the_wrong_peer_or_naming_the_wrong_one_is_no_prune() -> None:
    assert failures(ring(prune_names=3)) == ["prune"]  # (the successor's successor)
    t = ring(prune_after=None)
    first = t.peers[0]
    told_first = dataclasses.replace(
        first,
        heard=(*first.heard, Arrival(t.watch.stopped + 1, UpdateNbr(*who(0)))),  # type: ignore[union-attr]
    )
    assert failures(dataclasses.replace(t, peers=(told_first, *t.peers[1:]))) == ["prune"]


def test_pings_count_only_until_the_watch_ends() -> None:
    after = ring().watch.ended + TICK  # type: ignore[union-attr]
    late = ring(ping_first=after, ping_every=100.0)  # (the first PING comes after the watch)
    assert late.peers[0].heard[-1].message == Ping("Mon Nov 30 12:00:00 2026")
    checks = judged(late)
    assert failures(late) == ["ping"]
    assert checks["ping"].detail == "no PING reached any of 5 peers in 4 s"
    assert checks["ping-interval"].detail == "no PING seen"


def test_one_ping_per_peer_measures_no_interval() -> None:
    watch_start = ring().watch.start  # type: ignore[union-attr]
    t = ring(ping_first=watch_start + 1, ping_every=10.0)
    checks = judged(t)
    assert failures(t) == []
    assert checks["ping"].detail == "the first PING came 1.0 s in"
    assert checks["ping-interval"].detail == "one PING per peer in 4 s: the interval is longer"
    assert not checks["ping-interval"].passed


def test_wait_0_runs_neither_ping_nor_prune_and_grades_neither() -> None:
    t = ring(wait=0)
    assert t.watch is None
    checks = judge_ring_tracker(t)
    assert [c.name for c in checks] == [n for n in ORDER if n != "ping-interval"]
    for name in ("ping", "prune"):
        c = judged(t)[name]
        assert (c.required, c.passed, c.detail) == (False, False, "not run: --wait 0 (not graded)")
        assert c.hint == ""
    assert failures(t) == []


def test_no_watch_with_a_wait_is_fewer_than_three_peers() -> None:
    t = dataclasses.replace(ring(), watch=None)
    for name in ("ping", "prune"):
        c = judged(t)[name]
        assert c.required and c.detail == "not run: fewer than 3 peers in the ring"
        assert c.hint == HINTS[name]


@pytest.mark.parametrize(
    ("answer", "serves", "passed", "detail", "warning"),
    [
        (closed(), True, True, "a taken handle got closed without answering; still serves", ""),
        (("REG_INIT", *who(3), 5, (1, "skies")), True, True,
         f"a taken handle got ('REG_INIT', '{TAG}-4', '127.0.0.14', 40004, 5, (1, 'skies'));"
         " still serves", ""),
        ("Bad request", True, False,
         "a taken handle got a value that is no Part 2 message (not a tuple)", ""),
        (timed_out(), True, False, "a taken handle got no answer within 2 s", ""),
        (BAD_REQUEST, False, False, "a taken handle got ('[Tracker]', 'Bad request'); then"
         " ECHO got no answer within 2 s", ""),
    ],
)  # fmt: skip
def test_duplicate_handle(
    answer: Exchange | Value, serves: bool, passed: bool, detail: str, warning: str
) -> None:
    c = judged(ring(duplicate=answer, dup_serves=serves))["duplicate-handle"]
    assert (c.passed, c.detail, c.warning) == (passed, detail, warning)
    assert c.hint == ("" if passed else HINTS["duplicate-handle"])


@pytest.mark.parametrize(
    ("answer", "serves", "passed", "detail"),
    [
        (closed(), True, True, "garbage got closed without answering; still serves"),
        (BAD_REQUEST, True, True, "garbage got ('[Tracker]', 'Bad request'); still serves"),
        (Exchange(None, "undecodable", None, "b'oops', not a pickle (no STOP)"), True, False,
         "garbage got b'oops', not a pickle (no STOP); still serves (the course's tracker"
         " fails this: after any error it stops serving for good, so this check runs last)"),
        ("Bad request", False, False, "garbage got 'Bad request'; then ECHO got no answer"
         " within 2 s (the course's tracker fails this: after any error it stops serving for"
         " good, so this check runs last)"),
    ],
)  # fmt: skip
def test_garbage(answer: Exchange | Value, serves: bool, passed: bool, detail: str) -> None:
    c = judged(ring(garbage=answer, garbage_serves=serves))["garbage"]
    assert (c.passed, c.detail) == (passed, detail)


def test_only_the_joins_updates_are_counted() -> None:
    """update-nbr-per-join counts what the peers heard by the end of the joins: not the
    prune's UPDATE_NBR."""
    t = ring(told=every_peer)
    assert judged(t)["update-nbr-per-join"].data == {"updates": 14, "joins": 5}
    late = dataclasses.replace(t, counted_at=0.0)
    assert judged(late)["update-nbr-per-join"].data == {"updates": 0, "joins": 5}


def test_an_exchange_is_a_message_only_when_answered() -> None:
    assert Exchange(None, ANSWERED, BAD_REQUEST).message is not None
    assert closed().message is None and NOT_SENT.message is None
    # (the kinds are the links' own)
    assert (ANSWERED, CLOSED, UNREACHABLE) == (links.ANSWER, links.CLOSED, links.UNREACHABLE)


# ------------------------------------------------------------------ over many rings

_RINGS = st.fixed_dictionaries(
    {},
    optional={
        "n": st.sampled_from([0, 1, 2, 5, 7, FILL_LIMIT, FILL_LIMIT + 1]),
        "lone": st.booleans(),
        "told": st.sampled_from([only_the_first, every_peer, _successor, lambda j, k: None]),
        "told_after": st.integers(0, 200).map(lambda k: k * TICK),
        "ping_first": st.integers(0, 600).map(lambda k: k * TICK),
        "ping_every": st.sampled_from([None, 0.5, 1.0, 3.0, 20.0]),
        "prune_after": st.one_of(st.none(), st.integers(-64, 400).map(lambda k: k * TICK)),
        "prune_names": st.integers(0, 2),
        "wait": st.sampled_from([0.0, 1.0, 4.0, 30.0]),
        "duplicate": st.sampled_from([BAD_REQUEST, "Bad request", closed(), timed_out()]),
        "dup_serves": st.booleans(),
        "garbage": st.sampled_from([BAD_REQUEST, "Bad request", closed(), timed_out()]),
        "garbage_serves": st.booleans(),
    },
)


@settings(max_examples=300, deadline=None)
@given(_RINGS)
def test_every_ring_gets_every_row_in_order_each_failure_with_its_hint(
    kwargs: dict[str, Any],
) -> None:
    t = ring(**kwargs)
    results = judge_ring_tracker(t)
    expected = ORDER if t.wait > 0 else [n for n in ORDER if n != "ping-interval"]
    assert [c.name for c in results] == expected
    assert [c.name for c in results if c.required] == [
        n for n in REQUIRED if t.wait > 0 or n not in ("ping", "prune")
    ]
    for c in results:
        assert c.hint == (HINTS[c.name] if c.required and not c.passed else "")
    assert judge_ring_tracker(t) == results  # (no hidden state)


@settings(max_examples=200, deadline=None)
@given(_RINGS, st.integers(-1000, 1000))
def test_only_the_times_relative_to_each_other_matter(kwargs: dict[str, Any], shift: int) -> None:
    """The run's start is nowhere in the judge: every time moved by ``shift`` seconds
    judges the same, word for word."""
    t = ring(**kwargs)

    def moved(ex: Exchange) -> Exchange:
        return dataclasses.replace(ex, at=ex.at + shift)

    shifted = dataclasses.replace(
        t,
        echo=moved(t.echo),
        peers=tuple(
            dataclasses.replace(
                p,
                joined=moved(p.joined) if p.joined else None,
                heard=tuple(dataclasses.replace(h, at=h.at + shift) for h in p.heard),
            )
            for p in t.peers
        ),
        counted_at=t.counted_at + shift,
        duplicate=moved(t.duplicate),
        after_duplicate=moved(t.after_duplicate),
        watch=None
        if t.watch is None
        else PingWatch(t.watch.start + shift, t.watch.stopped + shift, t.watch.ended + shift),
        garbage=moved(t.garbage),
        after_garbage=moved(t.after_garbage),
    )
    assert [c.to_json() for c in judge_ring_tracker(shifted)] == [
        c.to_json() for c in judge_ring_tracker(t)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=FILL_LIMIT).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.integers(-1, n), min_size=max(3, n), max_size=max(3, n))
        )
    )
)
def test_hosted_items_pass_when_every_seqnum_is_hosted_in_range(
    case: tuple[int, list[int]],
) -> None:
    n, seqs = case
    hosted = judged(ring(n=n, item=lambda k: (seqs[k], "x")))["hosted-items"]
    in_range = all(0 <= s < n for s in seqs)
    assert hosted.passed == (in_range and set(seqs) == set(range(n))), hosted.detail
