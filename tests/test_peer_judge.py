"""cs457p2p.checker.judges.peer: every ``check peer`` check judged over recordings
written here, one student mistake each (tests/students/ring/ring_peer.py's faults, and
the course's sample peer), by this project's rules and under HW09 (milliseconds; the
real processes are in tests/test_peer_checks.py and tests/test_assignments.py).

Each recording is what a peer's run looks like to the checker: the bytes that reached
the tracker and neighbours it played (read by the restricted decoder, as the played
parts read them), and what came back to each message it sent the peer's port."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.checker.hints import STOPPED_EARLY_HINT
from cs457p2p.checker.judges.pacing import MIN_PAUSE
from cs457p2p.checker.judges.peer import (
    HW09_REQUIRED,
    REQUIRED,
    answer_of,
    collects,
    judge_peer,
    message_seen,
    ping_stops,
)
from cs457p2p.checker.judges.peer_transcript import (
    Moment,
    PeerTranscript,
    Played,
    Probe,
    Received,
    Served,
)
from cs457p2p.checker.judges.transcript import ProgramRun
from cs457p2p.checker.links import decode_problem
from cs457p2p.checker.report import CheckResult
from cs457p2p.core.answers import AnswerParser
from cs457p2p.core.course_model import COURSE_P2_DB
from cs457p2p.core.decoder import DecodeError
from cs457p2p.core.wire2 import parse

WORDS = ("c0ffee", "d00dad", "beef01", "fa11en", "0ddba1", "5ca1ed")
MESSAGE = " ".join(WORDS)
HOSTED, LACKING = 3, 0  # (the checker asks for the first SEQNUM it does not host)
PEER, PORT = "127.0.0.1", 45000
A = Played("nbr-a", "127.0.0.2", 40001)
B = Played("nbr-b", "127.0.0.3", 40002)
#: The course's database in SEQNUM order; the peer hosts SEQNUM 2, as under HW09.
COURSE_WORDS = tuple(v for _, v in sorted(COURSE_P2_DB))
COURSE_HOSTED = COURSE_P2_DB[1][0]

PING = pickle.dumps(("PING", "Mon Nov 30 12:00:00 2026"), 2)
WRONG = pickle.dumps(("HELLO", "there", 1), 2)
GARBAGE = b"\xff\xfe this is not a pickle\r\n"
#: ring_peer.py's unsafe QUERY: ('QUERY', Seq(0)), Seq an int that pickles as a call,
#: as Python 3 and Python 2.7 write it.
UNSAFE_PY3 = (
    b"\x80\x02X\x05\x00\x00\x00QUERYq\x00c__builtin__\nlong\nq\x01K\x00\x85q\x02Rq\x03\x86q\x04."
)
UNSAFE_PY2 = b"\x80\x02U\x05QUERYq\x00c__builtin__\nint\nq\x01K\x00\x85q\x02Rq\x03\x86q\x04."
#: ring_peer.py's bad-register under Python 2.7: its port as text.
BAD_REGISTER_PY2 = b"\x80\x02U\x08REGISTERq\x00U\x05peer1q\x01U\x0545000q\x02\x87q\x03."


# ------------------------------------------------------------------ what a run records


def heard(at: float, raw: bytes, sender: str = PEER) -> Received:
    """``raw`` as it reaches a played part: one pickle read by the restricted decoder."""
    try:
        values = AnswerParser(1 << 20).feed(raw, 1)
    except DecodeError as e:
        return Received(at, sender, None, decode_problem(raw, e), raw)
    if not values:
        problem = f"closed after {raw[:40]!r}" if raw else "an empty connection"
        return Received(at, sender, None, problem, raw)
    return Received(at, sender, parse(values[0]), "", raw)


def sent(at: float, message: object, sender: str = PEER) -> Received:
    """``message`` as a Python 3 peer sends it (pickle protocol 2)."""
    return heard(at, pickle.dumps(message, 2), sender)


def answered(at: float, payload: bytes, reply: object) -> Probe:
    """The checker sent ``payload``; the peer answered with ``reply``, pickled."""
    raw = pickle.dumps(reply, 2)
    return Probe(at, payload, "answer", tuple(AnswerParser().feed(raw, 1)), raw)


def closed(at: float, payload: bytes) -> Probe:
    return Probe(at, payload, "closed", detail="closed without answering")


def refused(at: float, payload: bytes) -> Probe:
    return Probe(at, payload, "unreachable", detail="cannot connect: connection refused")


def silent(at: float, payload: bytes) -> Probe:
    return Probe(at, payload, "timeout", detail="no answer within 5 s")


def query(seq: int) -> bytes:
    return pickle.dumps(("QUERY", seq), 2)


def pong(at: float) -> Probe:
    return answered(at, PING, ("PING", "peer1"))


def good(profile: str = "", pause: float = 0.1) -> PeerTranscript:
    """A peer that does everything right: it registers, answers PING, asks A, then
    after UPDATE_NBR asks B for each item it lacks ``pause`` s apart, prints the message
    and keeps serving."""
    hw09 = profile == "hw09"
    words, hosted = (COURSE_WORDS, COURSE_HOSTED) if hw09 else (WORDS, HOSTED)
    message = " ".join(words)
    lacking = LACKING
    missing = [s for s in range(len(words)) if s != hosted]
    to_a = (sent(0.2, ("QUERY", lacking)),)
    to_b = tuple(sent(0.2 + pause * k, ("QUERY", seq)) for k, seq in enumerate(missing, 1))
    printed_at = to_b[-1].at + 0.05
    steps = Served(
        hosted=answered(0.21, query(hosted), ("QUERY_RESULT", (hosted, words[hosted]))),
        lacking=answered(0.22, query(lacking), ("QUERY_RESULT", (None, None))),
        update=Probe(0.23, b"UPDATE_NBR", "answer"),
        b_waited=to_b[0].at,
        collecting=Moment(printed_at, None, message + "\n"),
        keeps_serving=answered(
            printed_at + 0.01, query(lacking), ("QUERY_RESULT", (lacking, words[lacking]))
        ),
        wrong_tuple=answered(printed_at + 0.02, WRONG, ("[peer1]", "Bad request")),
        wrong_tuple_ping=pong(printed_at + 0.03),
        garbage=closed(printed_at + 0.04, GARBAGE),
        garbage_ping=pong(printed_at + 0.05),
    )
    return PeerTranscript(
        profile=profile,
        words=words,
        hosted=hosted,
        a=A,
        b=B,
        timeout=8.0,
        to_tracker=(sent(0.05, ("REGISTER", "peer1", PORT)),),
        to_a=to_a,
        to_b=to_b,
        register_wait=Moment(0.05, None),
        pings=(pong(0.1),),
        served=steps,
        ended=printed_at + 0.06,
        run=ProgramRun(-9, False, printed_at + 0.1, message + "\n"),
    )


def served(t: PeerTranscript, **changes: Any) -> PeerTranscript:
    """``t`` with some of its later steps recorded otherwise."""
    assert t.served is not None
    return dataclasses.replace(t, served=dataclasses.replace(t.served, **changes))


def rows(t: PeerTranscript) -> dict[str, CheckResult]:
    return {c.name: c for c in judge_peer(t)}


def failed(t: PeerTranscript) -> list[str]:
    return [c.name for c in judge_peer(t) if c.required and not c.passed]


# ---------------------------------------------------------------------- passing peers


def test_a_peer_that_does_everything_right_passes_every_check() -> None:
    results = judge_peer(good())
    assert [c.name for c in results] == list(REQUIRED)
    assert all(c.passed and not c.hint and not c.warning for c in results), results
    by = {c.name: c.detail for c in results}
    assert by["register"] == f"('REGISTER', 'peer1', {PORT})"
    assert by["ping"] == "answered ('PING', 'peer1')"
    assert by["query"] == f"its hosted item, and (None, None) for SEQNUM {LACKING}"
    assert by["follows-update"] == "after UPDATE_NBR its QUERYs went to nbr-b (1 to nbr-a before)"
    assert by["collects"] == "printed the message (6 items)"
    assert by["keeps-serving"] == f"QUERY {LACKING} answered with the item it collected"
    assert by["wrong-tuple"] == "got ('[peer1]', 'Bad request'); still answers PING"
    assert by["garbage"] == "got closed without answering; still answers PING"
    assert by["safe-pickles"] == "all 7 messages it sent were plain tuples"


def test_a_peer_that_paces_its_queries_passes_hw09() -> None:
    results = judge_peer(good("hw09", pause=2.0))
    full = [*HW09_REQUIRED[:6], "pause", "wrong-tuple", "garbage", "py2-pickles"]
    assert [c.name for c in results] == full
    assert all(c.passed for c in results), [c for c in results if not c.passed]
    by = {c.name: c for c in results}
    assert by["pause"].detail == "pauses of 2.00 to 2.00 s between 5 requests"
    assert by["collects"].detail == "printed the items in order: one line, joined by spaces"
    assert not by["wrong-tuple"].required and not by["garbage"].required
    assert by["py2-pickles"].detail == "all 6 messages it sent read by Python 2's pickle"


def test_ack_passes_with_a_warning_and_under_hw09_without() -> None:
    ack = good(pause=2.0)
    ack = dataclasses.replace(ack, pings=(answered(0.1, PING, ("ACK", "peer1")),))
    ping = rows(ack)["ping"]
    assert ping.passed and ping.detail == "answered ('ACK', 'peer1')"
    assert "('ACK', handle), as the course's sample peer" in ping.warning
    hw09 = rows(dataclasses.replace(good("hw09", 2.0), pings=ack.pings))["ping"]
    assert hw09.passed and hw09.detail.endswith(", as the assignment asks") and not hw09.warning


def test_a_port_that_answers_only_on_the_third_try_passes_ping() -> None:
    """The checker PINGs again while the port refuses (the peer may still be starting to
    listen): the last try is judged."""
    t = dataclasses.replace(good(), pings=(refused(0.1, PING), refused(0.12, PING), pong(0.14)))
    assert failed(t) == []


# ---------------------------------------------------- each mistake of tests/students/ring

Mistake = Callable[[PeerTranscript], PeerTranscript]


def _bad_register(raw: bytes) -> Mistake:
    def mistake(t: PeerTranscript) -> PeerTranscript:
        wait = Moment(5.0, None)
        return dataclasses.replace(
            t, to_tracker=(heard(0.05, raw),), register_wait=wait, pings=(), served=None
        )

    return mistake


def _no_pong(t: PeerTranscript) -> PeerTranscript:
    return dataclasses.replace(t, pings=(closed(0.1, PING),), served=None)


def _wrong_query(t: PeerTranscript) -> PeerTranscript:
    nothing = ("QUERY_RESULT", (None, None))
    assert t.served is not None
    return served(
        t,
        hosted=answered(0.21, query(HOSTED), nothing),
        keeps_serving=answered(t.served.keeps_serving.at, query(LACKING), nothing),
    )


def _one_per_line(t: PeerTranscript) -> PeerTranscript:
    assert t.served is not None
    at = t.served.collecting.at
    printed = "\n".join(WORDS) + "\n"
    # (it waited for the message until the run's timeout; then a PING, not a QUERY)
    return served(t, collecting=Moment(at, None, printed), keeps_serving=pong(at + 0.01))


def _exits(t: PeerTranscript) -> PeerTranscript:
    assert t.served is not None
    s, gone = t.served, refused
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, exit=0))
    return served(
        t,
        collecting=Moment(s.collecting.at, 0, MESSAGE + "\n"),
        keeps_serving=gone(s.keeps_serving.at, query(LACKING)),
        wrong_tuple=gone(s.wrong_tuple.at, WRONG),
        wrong_tuple_ping=gone(s.wrong_tuple_ping.at, PING),
        garbage=gone(s.garbage.at, GARBAGE),
        garbage_ping=gone(s.garbage_ping.at, PING),
    )


def _fragile(t: PeerTranscript) -> PeerTranscript:
    assert t.served is not None
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, stderr="error: ...; serving no more"))
    return served(t, garbage_ping=silent(t.served.garbage_ping.at, PING))


def _unsafe(raw: bytes) -> Mistake:
    """Its QUERYs call code: A never gets a QUERY it can read (the checker waits 10 s
    for one), B gets them, and it never collects anything."""

    def mistake(t: PeerTranscript) -> PeerTranscript:
        to_a = tuple(heard(0.2 + k, raw) for k in range(10))
        to_b = tuple(heard(10.5 + k / 10, raw) for k in range(5))
        s = Served(
            hosted=answered(10.2, query(HOSTED), ("QUERY_RESULT", (HOSTED, WORDS[HOSTED]))),
            lacking=answered(10.21, query(LACKING), ("QUERY_RESULT", (None, None))),
            update=Probe(10.3, b"UPDATE_NBR", "answer"),
            b_waited=10.5,
            collecting=Moment(8.0, None, ""),
            keeps_serving=pong(10.6),
            wrong_tuple=answered(10.7, WRONG, ("[peer1]", "Bad request")),
            wrong_tuple_ping=pong(10.8),
            garbage=closed(10.9, GARBAGE),
            garbage_ping=pong(11.0),
        )
        return dataclasses.replace(t, to_a=to_a, to_b=to_b, served=s, ended=11.1)

    return mistake


def _ignores_update(t: PeerTranscript) -> PeerTranscript:
    """It keeps asking A (which holds nothing) every 0.1 s: no QUERY reaches B."""
    to_a = tuple(sent(k / 10, ("QUERY", LACKING)) for k in range(100))
    return served(
        dataclasses.replace(t, to_a=to_a, to_b=()),
        b_waited=10.4,
        collecting=Moment(8.0, None, ""),
        keeps_serving=pong(10.5),
    )


def _course_sample(t: PeerTranscript) -> PeerTranscript:
    """The course's sample peer: ACK to a PING, b'No data sent!' to what it does not
    know, and it stops serving after garbage."""
    assert t.served is not None
    s = t.served
    return served(
        dataclasses.replace(t, pings=(answered(0.1, PING, ("ACK", "peer1")),)),
        wrong_tuple=Probe(
            s.wrong_tuple.at,
            WRONG,
            "undecodable",
            raw=b"No data sent!",
            detail="b'No data sent!', not a pickle (...)",
        ),
        garbage=closed(s.garbage.at, GARBAGE),
        garbage_ping=refused(s.garbage_ping.at, PING),
    )


@pytest.mark.parametrize(
    ("mistake", "failures", "says", "hint"),
    [
        (_bad_register(pickle.dumps(("REGISTER", "peer1", "45000"), 2)), list(REQUIRED),
         "the tracker got a value that is no Part 2 message (REGISTER: not (text, int)), not"
         " ('REGISTER', handle, port)", "int your server listens on"),
        (_bad_register(BAD_REGISTER_PY2), list(REQUIRED),
         "the tracker got a value that is no Part 2 message (REGISTER: not (text, int))",
         "int your server listens on"),
        (_no_pong, REQUIRED[1:],
         f"('PING', stamp) to {PEER}:{PORT} got closed without answering", "('PING', handle)"),
        (_wrong_query, ["query", "keeps-serving"],
         f"QUERY {HOSTED} (the item it hosts) got ('QUERY_RESULT', (None, None))",
         "(None, None)) otherwise"),
        (_one_per_line, ["collects"],
         "printed every VALUE, but not as the message on one line in order", "on one line"),
        (_exits, ["keeps-serving", "wrong-tuple", "garbage"],
         f"QUERY {LACKING}, after the message, got cannot connect: connection refused",
         "keep serving after printing"),
        (_fragile, ["garbage"],
         "got closed without answering; then PING got no answer within 5 s",
         "catch errors per connection"),
        (_unsafe(UNSAFE_PY3), ["collects", "safe-pickles"],
         "no message on stdout within 8 s", "print the N values in order"),
        (_unsafe(UNSAFE_PY2), ["collects", "safe-pickles"],
         "no message on stdout within 8 s", "print the N values in order"),
        (_ignores_update, ["follows-update", "collects"],
         "no QUERY reached nbr-b within 10 s of UPDATE_NBR (3 QUERYs to nbr-a before)",
         "send your next QUERYs to ip:port"),
        (_course_sample, ["garbage"],
         "got closed without answering; then PING got cannot connect: connection refused",
         "catch errors per connection"),
    ],
    ids=["bad-register", "bad-register-py2", "no-pong", "wrong-query", "one-per-line", "exits",
         "fragile", "unsafe", "unsafe-py2", "ignores-update", "course-sample-peer"],
)  # fmt: skip
def test_each_mistake_fails_its_check_with_its_hint(
    mistake: Mistake, failures: list[str], says: str, hint: str
) -> None:
    results = judge_peer(mistake(good()))
    assert [c.name for c in results] == list(REQUIRED)
    assert [c.name for c in results if not c.passed] == list(failures)
    first = next(c for c in results if not c.passed)
    assert says in first.detail, first.detail
    assert hint in first.hint
    for c in results:
        assert bool(c.hint) == (not c.passed), c  # (a hint on each failure, and only there)


def test_an_unsafe_pickle_is_named_by_safe_pickles() -> None:
    for raw, where in ((UNSAFE_PY3, "byte 14"), (UNSAFE_PY2, "byte 11")):
        check = rows(_unsafe(raw)(good()))["safe-pickles"]
        assert check.detail.startswith("it sent b'\\x80\\x02"), check.detail
        assert f"a pickle that calls code (refused opcode GLOBAL at {where})" in check.detail
        assert "plain tuples" in check.hint
    follows = rows(_unsafe(UNSAFE_PY3)(good()))["follows-update"]
    assert follows.passed and "(0 to nbr-a before)" in follows.detail


def test_what_follows_a_stop_is_not_run() -> None:
    never = rows(_bad_register(b"")(good()))
    assert all(c.detail == "not run: no REGISTER" for c in list(never.values())[1:])
    silent_port = rows(_no_pong(good()))
    assert all(
        c.detail == "not run: its port does not answer" for c in list(silent_port.values())[2:]
    )
    assert all(c.not_run and c.hint for c in list(silent_port.values())[2:])


def test_the_course_sample_peers_bytes_are_no_pickled_tuple() -> None:
    wrong = rows(_course_sample(good()))["wrong-tuple"]
    assert wrong.passed
    assert wrong.detail == "got b'No data sent!' (bytes, not a pickled tuple); still answers PING"


# ------------------------------------------------------------------------- register


def test_a_peer_that_exits_before_it_registers() -> None:
    t = dataclasses.replace(
        good(), to_tracker=(), register_wait=Moment(0.3, 0), pings=(), served=None
    )
    assert rows(t)["register"].detail == "the peer exited (code 0) before it registered"


def test_a_peer_that_stops_on_its_own_error_before_it_registers_is_told_so() -> None:
    stderr = (
        'Traceback (most recent call last):\n  File "peer.py", line 1, in <module>\n'
        "ModuleNotFoundError: No module named 'numpy'\n"
    )
    good_run = good()
    t = dataclasses.replace(
        good_run,
        to_tracker=(),
        register_wait=Moment(0.3, 1),
        pings=(),
        served=None,
        run=dataclasses.replace(good_run.run, exit=1, stderr=stderr),
    )
    register = rows(t)["register"]
    assert register.detail == (
        "the peer stopped before it registered: ModuleNotFoundError: No module named 'numpy'"
    )
    assert register.hint == STOPPED_EARLY_HINT
    # (a network error is the network's, not a mistake of the program's own)
    refused = stderr.replace(
        "ModuleNotFoundError: No module named 'numpy'",
        "ConnectionRefusedError: [Errno 111] Connection refused",
    )
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, stderr=refused))
    assert rows(t)["register"].detail == "the peer exited (code 1) before it registered"


@pytest.mark.parametrize(("timeout", "within"), [(60.0, "30 s"), (3.0, "3 s")])
def test_a_peer_that_never_registers_within_the_wait(timeout: float, within: str) -> None:
    t = dataclasses.replace(
        good(),
        timeout=timeout,
        to_tracker=(),
        register_wait=Moment(30, None),
        pings=(),
        served=None,
    )
    register = rows(t)["register"]
    assert register.detail == f"no REGISTER reached the tracker within {within}"


def test_an_echo_first_is_not_the_register() -> None:
    t = good()
    t = dataclasses.replace(t, to_tracker=(sent(0.01, ("ECHO", "peer1")), *t.to_tracker))
    assert failed(t) == []


def test_another_message_first_is_named() -> None:
    t = good()
    t = dataclasses.replace(t, to_tracker=(sent(0.01, ("QUERY", 1)), *t.to_tracker))
    assert rows(t)["register"].detail == "the tracker got ('QUERY', 1) first, not a REGISTER"


def test_a_register_after_the_wait_ended_does_not_count() -> None:
    t = dataclasses.replace(good(), register_wait=Moment(0.04, None), pings=(), served=None)
    register = rows(t)["register"]
    assert not register.passed and "no REGISTER reached the tracker" in register.detail


def test_garbage_that_reached_the_tracker_before_the_wait_ended_is_named() -> None:
    t = dataclasses.replace(good(), to_tracker=(heard(0.01, GARBAGE),), pings=(), served=None)
    detail = rows(t)["register"].detail
    assert (
        detail.startswith("the tracker got b'\\xff\\xfe this is not a pickle")
        and "not a pickle" in detail
    )


def test_a_port_out_of_range_fails_register_and_the_checks_go_on() -> None:
    t = good()
    t = dataclasses.replace(
        t,
        to_tracker=(sent(0.05, ("REGISTER", "peer1", 70000)),),
        pings=(Probe(0.1, PING, "unreachable", detail="cannot connect: port out of range"),),
        served=None,
    )
    by = rows(t)
    assert by["register"].detail == "REGISTER gave port 70000, not in 1..65535"
    assert by["ping"].detail == (
        f"('PING', stamp) to {PEER}:70000 got cannot connect: port out of range"
    )


def test_port_0_is_not_a_port_to_register() -> None:
    t = dataclasses.replace(good(), to_tracker=(sent(0.05, ("REGISTER", "peer1", 0)),))
    assert rows(t)["register"].detail == "REGISTER gave port 0, not in 1..65535"


# --------------------------------------------------------------- the steps that follow


def test_an_item_it_lacks_answered_with_a_value_fails_query() -> None:
    t = served(good(), lacking=answered(0.22, query(LACKING), ("QUERY_RESULT", (0, "x"))))
    detail = rows(t)["query"].detail
    assert detail == f"QUERY {LACKING} (an item it lacks) got ('QUERY_RESULT', (0, 'x'))"


def test_an_update_nbr_that_could_not_be_sent() -> None:
    t = served(good(), update=refused(0.23, b"UPDATE_NBR"))
    assert rows(t)["follows-update"].detail == (
        "UPDATE_NBR could not be sent: cannot connect: connection refused"
    )


def test_queries_to_a_after_update_nbr_are_not_counted_before_it() -> None:
    t = good()
    t = dataclasses.replace(
        t, to_a=(*t.to_a, sent(0.3, ("QUERY", 0))), to_b=()
    )  # (one before UPDATE_NBR at 0.23, one after)
    assert "(1 QUERYs to nbr-a before)" in rows(t)["follows-update"].detail
    none = dataclasses.replace(t, to_a=())
    assert "(no QUERY to A either)" in rows(none)["follows-update"].detail


def test_a_query_to_b_after_the_wait_ended_does_not_count() -> None:
    t = good()
    assert t.served is not None
    late = served(t, b_waited=t.to_b[0].at - 0.01)
    assert not rows(late)["follows-update"].passed


def test_a_peer_that_exits_without_the_message() -> None:
    t = served(good(), collecting=Moment(1.0, 1, "Traceback...\n"), keeps_serving=refused(1, PING))
    by = rows(t)
    assert by["collects"].detail == "exited (code 1) without the message"
    assert by["keeps-serving"].detail == "PING got cannot connect: connection refused"


def test_no_answer_and_no_close_fails_wrong_tuple() -> None:
    t = good()
    assert t.served is not None
    t = served(t, wrong_tuple=silent(t.served.wrong_tuple.at, WRONG))
    assert rows(t)["wrong-tuple"].detail == "no answer and no close within 5 s"


def test_what_others_sent_and_what_came_after_the_checks_is_not_judged() -> None:
    t = good()
    others = dataclasses.replace(t, to_b=(*t.to_b, heard(t.ended, UNSAFE_PY3, "127.0.0.9")))
    assert failed(others) == []
    assert rows(others)["safe-pickles"].detail == "all 8 messages it sent were plain tuples"
    late = dataclasses.replace(t, to_b=(*t.to_b, heard(t.ended + 1, UNSAFE_PY3)))
    assert failed(late) == []
    empty = dataclasses.replace(t, to_b=(*t.to_b, heard(t.ended, b"")))
    assert failed(empty) == []


# ------------------------------------------------------------------------ the run's end


def test_a_sandbox_that_could_not_start_it() -> None:
    t = dataclasses.replace(
        good(), run=ProgramRun(None, False, 0.0, "", setup_error="bwrap: no permission")
    )
    register = rows(t)["register"]
    assert not register.passed
    assert register.detail == "the sandbox could not start it: bwrap: no permission"


def test_a_limit_it_hit_is_said_on_the_first_failure() -> None:
    t = _ignores_update(good())
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, limit="exceeded memory 512 MiB"))
    results = judge_peer(t)
    follows = rows(t)["follows-update"]
    assert follows.detail.endswith("nbr-a before) (exceeded memory 512 MiB)")
    assert "ip:port" in follows.hint
    assert not rows(t)["collects"].detail.endswith("MiB)")
    assert [c.name for c in results if not c.passed] == ["follows-update", "collects"]


def test_the_end_of_stderr_is_said_on_a_failed_last_check() -> None:
    t = _unsafe(UNSAFE_PY3)(good())
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, stderr="x\nValueError: boom\n"))
    assert rows(t)["safe-pickles"].detail.endswith("(its stderr ends: ValueError: boom)")
    passing = dataclasses.replace(good(), run=dataclasses.replace(good().run, stderr="boom"))
    assert rows(passing)["safe-pickles"].detail == "all 7 messages it sent were plain tuples"


# --------------------------------------------------------------------------------- HW09


def test_hw09_a_peer_that_does_not_pause() -> None:
    pause = rows(good("hw09", pause=0.1))["pause"]
    assert not pause.passed
    assert pause.detail == "pauses of 0.10 to 0.10 s between 5 requests: 4 gap(s) under 1.9 s"
    assert "time.sleep(2)" in pause.hint


def test_hw09_a_long_pause_is_a_warning() -> None:
    pause = rows(good("hw09", pause=4.0))["pause"]
    assert pause.passed and pause.warning == "a pause of 4.0 s: the assignment asks for 2-3 s"


def test_hw09_a_peer_that_asks_for_nothing_has_no_pause() -> None:
    t = dataclasses.replace(good("hw09", 2.0), to_a=(), to_b=(sent(0.5, ("QUERY", 0)),))
    pause = rows(t)["pause"]
    assert pause.detail == "1 QUERY: no pause to measure (it must ask for the items)"


def test_hw09_queries_after_the_checker_turned_to_wrong_tuple_are_not_paced() -> None:
    t = good("hw09", pause=2.0)
    assert t.served is not None
    at = t.served.wrong_tuple.at
    t = dataclasses.replace(t, to_b=(*t.to_b, sent(at + 0.01, ("QUERY", 0))))
    assert rows(t)["pause"].passed


@pytest.mark.parametrize(
    ("answer", "passed", "detail"),
    [
        (closed(0.1, PING), True, "closed without answering: the course's tracker keeps it"),
        (answered(0.1, PING, ("HELLO",)), True, "the course's tracker keeps it"),
        (silent(0.1, PING), False, "('PING', stamp) to 127.0.0.1:45000 got no answer within 5 s"),
        (refused(0.1, PING), False, "got cannot connect: connection refused"),
    ],
)
def test_hw09_ping_passes_what_the_courses_tracker_keeps(
    answer: Probe, passed: bool, detail: str
) -> None:
    t = dataclasses.replace(good("hw09", 2.0), pings=(answer,))
    if not passed:
        t = dataclasses.replace(t, served=None)
    ping = rows(t)["ping"]
    assert ping.passed == passed and detail in ping.detail, ping.detail
    assert ping_stops(answer_of(answer), True) == (not passed)


def test_hw09_a_pickle_python_2_cannot_read_fails_py2_pickles() -> None:
    t = good("hw09", 2.0)
    proto4 = heard(t.to_b[-1].at + 0.01, pickle.dumps(("QUERY", 1), 4))
    t4 = dataclasses.replace(t, to_b=(*t.to_b, proto4))
    check = rows(t4)["py2-pickles"]
    assert not check.passed and check.detail.startswith("it sent b'\\x80\\x04")
    assert "pickle.dumps(message, 2)" in check.hint
    code = dataclasses.replace(t, to_b=(*t.to_b, heard(t.to_b[-1].at, UNSAFE_PY2)))
    assert rows(code)["py2-pickles"].detail.endswith(": a pickle that calls code")


@pytest.mark.parametrize(
    ("printed", "passed", "says", "hint"),
    [
        ("\n".join(COURSE_WORDS), True, "printed the items in order: one per line", ""),
        (str(dict(enumerate(COURSE_WORDS))), True, "a dict, in key order", ""),
        (str({k: COURSE_WORDS[k] for k in (2, 0, 3, 1, 4)}), False,
         "printed every VALUE in a container, not in SEQNUM order (within 8 s)",
         "for k in range(N): DB[k]"),
        ("blue skies", False, "3 of the 5 VALUEs are not on stdout (within 8 s)",
         "joined by spaces, on one line"),
        ("", False, "no message on stdout within 8 s", "joined by spaces, on one line"),
    ],
)  # fmt: skip
def test_hw09_collects_in_any_form_in_seqnum_order(
    printed: str, passed: bool, says: str, hint: str
) -> None:
    check = collects(Moment(5.0, None, printed), COURSE_WORDS, True, 8.0)
    assert check.passed == passed and says in check.detail, check.detail
    assert hint in check.hint


def test_hw09_wrong_tuple_and_garbage_are_info_even_failed() -> None:
    t = _course_sample(good("hw09", 2.0))
    # (the course's sample peer, under HW09; its dict printed)
    by = rows(t)
    assert not by["garbage"].required and not by["garbage"].passed and by["garbage"].hint
    assert by["garbage"].result == "INFO"
    assert failed(t) == []


def test_hw09_any_message_after_wrong_tuple_is_still_serving() -> None:
    t = good("hw09", 2.0)
    assert t.served is not None
    t = served(t, wrong_tuple_ping=answered(t.served.wrong_tuple_ping.at, PING, ("HELLO",)))
    assert rows(t)["wrong-tuple"].passed
    assert not rows(dataclasses.replace(t, profile=""))["wrong-tuple"].passed


def test_hw09_a_peer_that_never_registers() -> None:
    t = dataclasses.replace(
        good("hw09"), to_tracker=(), register_wait=Moment(1, 0), pings=(), served=None
    )
    results = judge_peer(t)
    assert [c.name for c in results] == list(HW09_REQUIRED)
    assert all(c.detail == "not run: no REGISTER" for c in results[1:])


# ----------------------------------------------------------------------------- properties

PROBES = st.sampled_from(["right", "wrong", "closed", "silent", "refused", "garbled"])


def _probe(kind: str, at: float, right: object) -> Probe:
    if kind == "right":
        return answered(at, b"", right)
    if kind == "wrong":
        return answered(at, b"", ("QUERY_RESULT", (None, None)))
    if kind == "garbled":
        return Probe(at, b"", "undecodable", raw=b"junk", detail="b'junk', not a pickle")
    return {"closed": closed, "silent": silent, "refused": refused}[kind](at, b"")


@st.composite
def transcripts(draw: st.DrawFn) -> PeerTranscript:
    """A run with any outcome at each step (what the checker records, where it stops
    as it does)."""
    profile = draw(st.sampled_from(["", "hw09"]))
    t = good(profile, pause=draw(st.sampled_from([0.1, 2.0, 4.0])))
    if draw(st.booleans()):
        raw = draw(st.sampled_from([b"", GARBAGE, BAD_REGISTER_PY2, pickle.dumps(("ECHO", "x"))]))
        return dataclasses.replace(t, to_tracker=(heard(0.01, raw),), pings=(), served=None)
    ping = _probe(draw(PROBES), 0.1, ("PING", "peer1"))
    t = dataclasses.replace(t, pings=(ping,))
    if ping_stops(answer_of(ping), profile == "hw09"):
        return dataclasses.replace(t, served=None)
    assert t.served is not None
    s = t.served
    words = t.words
    stdout = draw(st.sampled_from(["", " ".join(words), "\n".join(words), "x"]))
    return served(
        t,
        hosted=_probe(draw(PROBES), s.hosted.at, ("QUERY_RESULT", (t.hosted, words[t.hosted]))),
        lacking=_probe(draw(PROBES), s.lacking.at, ("QUERY_RESULT", (None, None))),
        update=draw(st.sampled_from([s.update, refused(s.update.at, b"")])),
        b_waited=draw(st.sampled_from([s.b_waited, 0.0])),
        collecting=Moment(s.collecting.at, draw(st.sampled_from([None, 0, 1])), stdout),
        keeps_serving=_probe(draw(PROBES), s.keeps_serving.at, ("PING", "peer1")),
        wrong_tuple=_probe(draw(PROBES), s.wrong_tuple.at, ("[peer1]", "Bad request")),
        wrong_tuple_ping=_probe(draw(PROBES), s.wrong_tuple_ping.at, ("PING", "peer1")),
        garbage=_probe(draw(PROBES), s.garbage.at, ("[peer1]", "Bad request")),
        garbage_ping=_probe(draw(PROBES), s.garbage_ping.at, ("PING", "peer1")),
    )


@settings(max_examples=200)
@given(transcripts(), st.sampled_from(["", "exceeded memory 512 MiB"]), st.text(max_size=5))
def test_every_run_gets_every_check_of_its_profile_in_order(
    t: PeerTranscript, limit: str, stderr: str
) -> None:
    """Whatever happened: the profile's checks, in order; a hint on each failure and
    none on a pass; once a check is not run, none after it runs."""
    t = dataclasses.replace(t, run=dataclasses.replace(t.run, limit=limit, stderr=stderr))
    results = judge_peer(t)
    names = [c.name for c in results]
    if t.profile != "hw09":
        assert names == list(REQUIRED)
    elif t.served is None:
        assert names == list(HW09_REQUIRED)
    else:
        assert names == [*HW09_REQUIRED[:6], "pause", "wrong-tuple", "garbage", "py2-pickles"]
    for c in results:
        assert bool(c.hint) == (not c.passed), c
        assert c.required == (t.profile != "hw09" or c.name not in ("wrong-tuple", "garbage"))
    stopped = [k for k, c in enumerate(results) if c.not_run]
    if stopped:
        assert stopped == list(range(stopped[0], len(results)))
    assert (t.served is None) == bool(stopped)
    assert judge_peer(t) == results


@given(transcripts(), st.lists(st.sampled_from([GARBAGE, UNSAFE_PY2, b"", PING]), max_size=4))
def test_what_arrives_after_the_checks_ended_changes_nothing(
    t: PeerTranscript, late: list[bytes]
) -> None:
    after = tuple(heard(t.ended + 0.1 + k, raw) for k, raw in enumerate(late))
    later = dataclasses.replace(
        t, to_tracker=t.to_tracker + after, to_a=t.to_a + after, to_b=t.to_b + after
    )
    assert judge_peer(later) == judge_peer(t)


@given(st.lists(st.floats(min_value=0, max_value=60), min_size=0, max_size=8))
def test_pause_passes_exactly_when_every_gap_is_long_enough(times: list[float]) -> None:
    t = good("hw09", 2.0)
    to_b = tuple(sent(at, ("QUERY", 1)) for at in times)
    t = served(dataclasses.replace(t, to_a=(), to_b=to_b), wrong_tuple=closed(100.0, WRONG))
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert rows(t)["pause"].passed == (len(times) >= 2 and all(g >= MIN_PAUSE for g in gaps))


@given(
    st.permutations(list(WORDS)),
    st.sampled_from([" ", "\n", ", "]),
    st.text(alphabet="ab \n", max_size=6),
    st.booleans(),
)
def test_the_checker_stops_waiting_whenever_collects_would_pass(
    order: list[str], sep: str, noise: str, hw09: bool
) -> None:
    """The recording's wait for the message ends on :func:`message_seen`: it must hold
    whenever the judge's collects passes, or a passing peer would be judged on a
    stdout read too early."""
    stdout = noise + sep.join(order) + noise
    if collects(Moment(1.0, None, stdout), WORDS, hw09, 8.0).passed:
        assert message_seen(stdout, WORDS, hw09)
