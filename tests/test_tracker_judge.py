"""cs457p2p.checker.judges.tracker: ``check tracker`` (Part 1) judged over transcripts
built here, one tracker mistake each (milliseconds; the real runs against real trackers,
ours over TCP and UDP, the good student tracker, the reference-style stand-in, nothing
listening, a tracker that hangs and one that dies of garbage, are in tests/test_checker.py
and tests/test_hints.py). The expected words are those the real runs printed, of
tests/students/trackers/ and of the broken trackers tests/test_checker.py once ran."""

from __future__ import annotations

import dataclasses
import pickle
import random
import re
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.checker import links
from cs457p2p.checker.judges import judge_tracker
from cs457p2p.checker.judges.tracker import (
    CONCURRENT_CLIENTS,
    CONCURRENT_SAMPLE,
    LATENCY_SAMPLES,
    REQUIRED,
    judge_risky,
    message_of,
    nothing_listens,
    percentile,
    permutation_problem,
    sample,
)
from cs457p2p.checker.judges.tracker_answers import MAX_HELD, MAX_ITEMS, protocol_of, view_of
from cs457p2p.checker.judges.tracker_transcript import (
    ANSWER,
    CLOSED,
    NOT_KEPT,
    TIMEOUT,
    UNDECODABLE,
    UNREACHABLE,
    Asked,
    BadRequest,
    ClientRun,
    Serves,
    TrackerTranscript,
)
from cs457p2p.checker.report import NOT_GRADED, CheckResult, Report
from cs457p2p.core.decoder import Value
from cs457p2p.core.wire import BAD_REQUEST_TEXT, REGISTER, encode_position

MESSAGE = "Now is the time for all good coders to review the use of threads in python."
#: The student trackers' database: the message's words, shuffled once (stored order).
DB: tuple[tuple[int, str], ...] = tuple(
    random.Random(457).sample(list(enumerate(MESSAGE.split())), len(MESSAGE.split()))
)
#: The lying trackers' database (tests/standins.py): the message is "a b c d".
LIE_ITEMS: tuple[tuple[int, str], ...] = ((2, "c"), (0, "a"), (3, "d"), (1, "b"))
ADDRESS = "127.0.0.1:40404"
REFUSED = "cannot connect: connection refused"
NO_UDP = "port unreachable: nothing listens on UDP"
INFO = ["ascii-positions", "pipelining", "udp", "latency"]
FIX_BEFORE = "fix the checks before it: this one could not run"
EOF_HINT = (
    "no answer within 1 s: does the tracker wait for the client to close (EOF) before it"
    " answers? Answer after one recv (a request is at most 1,024 bytes)"
)
TEXT_HINT = "the answer is text (str(n), or JSON), not a pickle: send pickle.dumps(value)"
DIED_HINT = (
    "the tracker died on this request: catch the exception (pickle.loads raises on bytes"
    " that are not a pickle), answer pickle.dumps('Bad request'), keep serving"
)
ASCII_NO = (
    "no, it does not take positions written as ASCII digits (as the assignment's text"
    " reads): b'0' is answered 'Bad request', as the reference"
)
PIPELINING_NO = (
    "no, one request at a time (as the reference): positions 0 and 1 sent back to back on"
    " one connection: the first answered, then closed"
)
UDP_NO = f"no, it does not serve over UDP: REGISTER: {NO_UDP}"


# ---------------------------------------------------------------- transcripts


def answer(sent: bytes, *values: Value, protocol: int = 2, seconds: float = 0.0005) -> Asked:
    """An answer as a tracker pickling in ``protocol`` sends it (``raw``: its first
    bytes, as recorded)."""
    raw = b"".join(pickle.dumps(v, protocol) for v in values)[:256]
    return Asked(sent, ANSWER, values, raw, seconds=seconds)


def failed_with(sent: bytes, kind: str, detail: str, raw: bytes = b"") -> Asked:
    return Asked(sent, kind, (), raw, detail)


def pos(p: int) -> bytes:
    return encode_position(p)


def client(
    db: Sequence[tuple[int, str]], positions: Sequence[int] | None = None, protocol: int = 2
) -> ClientRun:
    """A client that got ``db`` right: REGISTER, and each position asked."""
    asked = range(len(db)) if positions is None else positions
    return ClientRun(
        answer(REGISTER, len(db), protocol=protocol),
        tuple((p, answer(pos(p), db[p], protocol=protocol)) for p in asked),
    )


def serves(db: Sequence[tuple[int, str]], protocol: int = 2) -> Serves:
    first = answer(pos(0), db[0], protocol=protocol) if db else None
    return Serves(answer(REGISTER, len(db), protocol=protocol), first)


def bad_request(
    what: str, sent: bytes, db: Sequence[tuple[int, str]], protocol: int = 2
) -> BadRequest:
    return BadRequest(what, answer(sent, BAD_REQUEST_TEXT, protocol=protocol), serves(db, protocol))


GARBAGE = (
    ("non-pickle bytes", b"\xff\xfe this is not a pickle\r\n"),
    ("1,500 bytes of noise", b"\xff" * 1500),
    ("an empty request", b""),
)


def tracker(
    db: Sequence[tuple[int, str]] = DB,
    *,
    protocol: int = 2,
    transport: str = "tcp",
    timeout: float = 5.0,
    **changes: Any,
) -> TrackerTranscript:
    """A tracker in the reference's style that gets everything right: one request per
    connection (pipelining: the first answered, then closed), 'Bad request' to anything
    else, TCP only; ``changes``: the transcript's fields replaced."""
    n = len(db)
    sampled = sample(n, CONCURRENT_SAMPLE)
    latency = tuple(
        answer(pos(k % n), db[k % n], protocol=protocol, seconds=0.0002 + k / 100_000)
        if n
        else answer(REGISTER, 0, protocol=protocol)
        for k in range(LATENCY_SAMPLES)
    )
    two = pos(0) + pos(1) if n >= 2 else REGISTER + REGISTER
    first_of_two = db[0] if n >= 2 else n
    pipelining = Asked(
        two,
        CLOSED,
        (first_of_two,),
        pickle.dumps(first_of_two, protocol),
        "closed after 1 answer",
    )
    t = TrackerTranscript(
        ADDRESS,
        transport,
        timeout,
        600.0,
        client(db, protocol=protocol),
        client(db, protocol=protocol),
        tuple(client(db, sampled, protocol) for _ in range(CONCURRENT_CLIENTS)),
        latency,
        failed_with(REGISTER, UNREACHABLE, NO_UDP),
        (
            bad_request(f"position {n}", pos(n), db, protocol),
            bad_request("position -1", pos(-1), db, protocol),
        ),
        tuple(bad_request(what, sent, db, protocol) for what, sent in GARBAGE),
        pipelining,
        answer(b"0", BAD_REQUEST_TEXT, protocol=protocol) if n else None,
        (
            ("pipelining", serves(db, protocol)),
            ("ascii-positions", serves(db, protocol)),
        ),
    )
    return dataclasses.replace(t, **changes)


def rows(t: TrackerTranscript) -> dict[str, CheckResult]:
    checks = judge_tracker(t)
    assert [c.name for c in checks[:10]] == list(REQUIRED)
    return {c.name: c for c in checks}


def failed(t: TrackerTranscript) -> list[str]:
    return [c.name for c in judge_tracker(t) if c.required and not c.passed]


def every_failure_has_a_hint(t: TrackerTranscript) -> None:
    for c in judge_tracker(t):
        assert bool(c.hint) == (c.required and not c.passed), c


def detail(t: TrackerTranscript, name: str) -> str:
    return rows(t)[name].detail


# ----------------------------------------------------------------- good trackers


def test_a_good_tracker_passes_with_the_words_of_the_good_student_tracker() -> None:
    checks = judge_tracker(tracker())
    assert [c.name for c in checks] == [*REQUIRED, *INFO]
    assert [c.required for c in checks] == [True] * 10 + [False] * 4
    words = [(c.name, c.result, c.detail) for c in checks[:13]]
    assert words == [
        ("register", "PASS", "N = 16"),
        ("items", "PASS", "all 16 positions answered a (SEQNUM, VALUE) pair"),
        ("pickled", "PASS", "17 answers, all pickles the restricted decoder reads"),
        ("permutation", "PASS", "the SEQNUMs are exactly 0..15"),
        ("message", "PASS", f'"{MESSAGE}" (16 items)'),
        ("second-client", "PASS", "the same N and the same item at all 16 positions"),
        ("out-of-range", "PASS",
         "position 16: 'Bad request'; position -1: 'Bad request'; still serves"),
        (
            "garbage",
            "PASS",
            "non-pickle bytes: 'Bad request'; 1,500 bytes of noise: 'Bad request'; an empty"
            " request: 'Bad request'; still serves",
        ),
        (
            "concurrent",
            "PASS",
            "20 clients at once (REGISTER + 16 positions each) all got the same database",
        ),
        ("pickle-protocol", "PASS", "protocol 2: Python 2 and 3 read it"),
        ("ascii-positions", "INFO", ASCII_NO),
        ("pipelining", "INFO", PIPELINING_NO),
        ("udp", "INFO", UDP_NO),
    ]  # fmt: skip
    latency = checks[13]
    assert latency.passed and latency.detail.startswith("how long an answer takes: p50 ")
    assert latency.detail.endswith(" ms (100 position requests, each on its own connection)")
    assert all(c.hint == "" and c.warning == "" for c in checks)
    assert checks[0].data == {"n": 16}
    assert checks[4].data == {"message": MESSAGE}
    assert checks[8].data == {"clients": 20, "positions": 16}
    assert checks[9].data == {"protocols": [2]}
    assert message_of(checks) == MESSAGE
    assert nothing_listens(tracker()) == ""


def test_the_reference_style_tracker_answers_in_protocol_0() -> None:
    c = rows(tracker(protocol=0))["pickle-protocol"]
    assert c.passed and c.data == {"protocols": [0]}
    assert c.detail == "protocol 0 (text, as the reference sends): Python 2 and 3 read it"


def test_several_protocols_are_named() -> None:
    t = tracker()
    first = dataclasses.replace(t.first, register=answer(REGISTER, 16, protocol=0))
    c = rows(dataclasses.replace(t, first=first))["pickle-protocol"]
    assert (c.passed, c.detail) == (True, "protocols 0, 2: Python 2 and 3 read them")


def test_what_our_tracker_offers_beyond_the_reference() -> None:
    """b'0' taken as position 0, both of two requests answered, UDP served."""
    t = tracker(
        ascii=answer(b"0", DB[0]),
        pipelining=answer(pos(0) + pos(1), DB[0], DB[1]),
        other=answer(REGISTER, 16),
        after=(),
    )
    checks = rows(t)
    assert all(checks[name].passed and checks[name].result == "INFO" for name in INFO)
    assert checks["ascii-positions"].detail == (
        "yes, it also takes positions written as ASCII digits (as the assignment's text"
        " reads): b'0' is answered as position 0"
    )
    assert checks["pipelining"].detail == (
        "yes, it answers several requests at once: positions 0 and 1 sent back to back on"
        " one connection, both answered"
    )
    assert checks["udp"].detail == "yes, it also serves over UDP: REGISTER gives N = 16"
    assert checks["latency"].data["samples"] == LATENCY_SAMPLES


def test_over_udp_the_other_transport_is_tcp() -> None:
    t = tracker(
        transport="udp",
        other=answer(REGISTER, 16),
        pipelining=answer(pos(0) + pos(1), DB[0], DB[1]),
    )
    checks = judge_tracker(t)
    assert [c.name for c in checks][-4:] == ["ascii-positions", "pipelining", "tcp", "latency"]
    by = {c.name: c for c in checks}
    assert by["tcp"].detail == "yes, it also serves over TCP: REGISTER gives N = 16"
    assert by["pipelining"].detail.endswith("positions 0 and 1 sent in one datagram, both answered")
    assert by["latency"].detail.endswith("each on its own UDP socket)")


def test_the_report_table() -> None:
    """(Was a real run of our tracker with "alpha beta gamma".)"""
    db = ((1, "beta"), (2, "gamma"), (0, "alpha"))
    checks = tuple(judge_tracker(tracker(db)))
    lines = Report("tracker", ADDRESS, "tcp", checks, message_of(checks)).table().splitlines()
    assert lines[0].split() == ["check", "result", "detail"]
    assert [line.split()[:2] for line in lines[1:15]] == [
        [name, "PASS" if k < 10 else "INFO"] for k, name in enumerate([*REQUIRED, *INFO])
    ]
    assert len({line.index(" PASS") for line in lines[1:11]}) == 1  # aligned
    assert lines[5].endswith('  "alpha beta gamma" (3 items)')
    assert lines[-2] == NOT_GRADED
    assert lines[-1] == f"tracker {ADDRESS}: 10/10 required checks passed"


def test_an_empty_database_passes() -> None:
    checks = rows(tracker(()))
    assert all(checks[name].passed for name in REQUIRED)
    assert checks["items"].detail == "N = 0: no positions to ask"
    assert checks["permutation"].detail == "N = 0: nothing to check"
    assert checks["message"].detail == '"" (0 items)'
    assert checks["second-client"].detail == "the same N = 0 again"
    assert checks["concurrent"].detail == (
        "20 clients at once (REGISTER + 0 positions each) all got the same database"
    )
    assert checks["ascii-positions"].detail == "not run: no item at position 0"
    assert checks["pipelining"].detail == (
        "no, one request at a time (as the reference): two REGISTERs sent back to back on"
        " one connection: the first answered, then closed"
    )
    assert checks["latency"].detail.endswith("(100 REGISTER requests, each on its own connection)")
    assert message_of(list(checks.values())) == ""


def test_a_large_database_is_sampled_by_the_concurrent_clients() -> None:
    db = tuple((k, f"w{k}") for k in range(800))
    c = rows(tracker(db))["concurrent"]
    assert c.passed and c.data["positions"] == CONCURRENT_SAMPLE
    assert c.detail == (
        "20 clients at once (REGISTER + 256 positions each, a sample of the 800) all got the"
        " same database"
    )


# --------------------------------------------------------------------- mistakes


@pytest.mark.parametrize("name", ["text_tracker", "json_tracker", "unpickled"])
def test_answers_that_are_not_pickles_get_the_pickle_hint(name: str) -> None:
    """str(N) (or JSON's 16) where pickle.dumps(N) belongs."""
    text = failed_with(
        REGISTER, UNDECODABLE, "b'16', not a pickle (no MARK on the stack at byte 0)", b"16"
    )
    t = tracker(
        first=ClientRun(text),
        second=None,
        concurrent=(),
        latency=(text,) * 3,
        out_of_range=(),
        garbage=(),
        pipelining=None,
        ascii=None,
        after=(),
    )
    checks = rows(t)
    says = "REGISTER answered b'16', not a pickle (no MARK on the stack at byte 0)"
    assert checks["register"].detail == says
    assert checks["register"].hint == TEXT_HINT
    assert checks["pickled"].detail == says
    assert checks["pickled"].hint == TEXT_HINT
    assert failed(t) == list(REQUIRED)  # (8 of them not run: counted apart below)
    no_n = "not run: REGISTER gave no N"
    assert [checks[n].detail for n in REQUIRED[1:]] == [
        no_n,
        says,
        "not run: not every position answered a pair",
        "not run: not every position answered a pair",
        no_n,
        no_n,
        no_n,
        no_n,
        "not run: no answer was a pickle",
    ]
    assert checks["ascii-positions"].detail == checks["pipelining"].detail == no_n
    assert checks["latency"].detail == "not measured: no answer to REGISTER requests"
    every_failure_has_a_hint(t)
    report = Report("tracker", ADDRESS, "tcp", tuple(judge_tracker(t)))
    assert (report.failed, len(report.not_run)) == (["register", "pickled"], 8)


def test_a_tracker_that_waits_for_eof_gets_the_eof_hint() -> None:
    silent = failed_with(REGISTER, TIMEOUT, "no answer within 1 s")
    t = tracker(
        timeout=1.0,
        first=ClientRun(silent),
        second=None,
        concurrent=(),
        latency=(failed_with(REGISTER, TIMEOUT, "no answer within 1 s"),) * 3,
        out_of_range=(),
        garbage=(),
        pipelining=None,
        ascii=None,
        after=(),
    )
    checks = rows(t)
    assert checks["register"].detail == "REGISTER: no answer within 1 s"
    assert checks["register"].hint == EOF_HINT
    assert checks["pickled"].detail == "not run: no answer to look at"
    assert all(checks[name].hint == FIX_BEFORE for name in REQUIRED[1:])
    assert checks["latency"].detail == "not measured: no answer to REGISTER requests"
    every_failure_has_a_hint(t)


def test_protocol_4_answers_fail_pickle_protocol() -> None:
    t = tracker(protocol=4)
    assert failed(t) == ["pickle-protocol"]
    c = rows(t)["pickle-protocol"]
    assert c.detail == (
        "REGISTER answered in pickle protocol 4: Python 2 clients (the course's reference"
        " client) cannot read it"
    )
    assert c.data == {"protocols": [4]}
    assert c.hint == (
        "Python 2 clients (the course's reference client) read pickle protocols 0 to 2 only:"
        " answer with pickle.dumps(value, 2), or protocol 0 as the reference does"
    )


def test_the_first_answer_newer_than_2_is_named() -> None:
    t = tracker()
    positions = list(t.first.positions)
    positions[5] = (positions[5][0], answer(pos(positions[5][0]), DB[5], protocol=5))
    first = dataclasses.replace(t.first, positions=tuple(positions))
    c = rows(dataclasses.replace(t, first=first))["pickle-protocol"]
    assert c.detail.startswith("position 5 answered in pickle protocol 5: Python 2 clients")
    assert c.data == {"protocols": [2, 5]}


def test_position_minus_one_answered_gets_a_warning() -> None:
    """Only the upper bound checked: position -1 gets the last item; the check passes."""
    t = tracker()
    minus_one = BadRequest("position -1", answer(pos(-1), DB[-1]), serves(DB))
    t = dataclasses.replace(t, out_of_range=(t.out_of_range[0], minus_one))
    c = rows(t)["out-of-range"]
    assert c.passed and not failed(t)
    last = repr(DB[-1])
    assert c.detail == f"position 16: 'Bad request'; position -1: {last}; still serves"
    assert c.warning == (
        f"position -1 answered {last}: Python's negative indexing (the course's reference"
        " does it too); check 0 <= i < N before indexing"
    )
    table = Report("tracker", ADDRESS, "tcp", tuple(judge_tracker(t))).table()
    assert re.search(rf"^ +warning: position -1 answered {re.escape(last)}: Python's", table, re.M)


def test_duplicate_seqnums_fail_permutation() -> None:
    db = ((2, "c"), (0, "a"), (3, "d"), (0, "a"))  # position 3 lies: SEQNUM 1 is missing
    t = tracker(db, protocol=0)
    checks = rows(t)
    assert [checks[n].passed for n in ("register", "items", "pickled")] == [True] * 3
    assert checks["permutation"].detail == "SEQNUM 0 is served at positions 1 and 3; missing: 1"
    assert checks["message"].detail == "not assembled: the SEQNUMs are wrong"
    assert checks["message"].hint == "the SEQNUMs must place the VALUEs in the message's order"
    assert failed(t) == ["permutation", "message"]
    assert message_of(judge_tracker(t)) is None


def test_a_seqnum_out_of_range_is_named() -> None:
    db = ((2, "c"), (0, "a"), (3, "d"), (4, "b"))
    assert detail(tracker(db), "permutation") == "position 3 has SEQNUM 4, out of range 0..3"


def test_a_tracker_that_dies_after_the_first_client() -> None:
    """It stops listening once every position was served once: the second client, the
    concurrent ones and everything after meet a refused connection."""
    refused = failed_with(REGISTER, UNREACHABLE, REFUSED)
    t = tracker(
        LIE_ITEMS + tuple((k, f"w{k}") for k in range(4, 16)),
        protocol=0,
        second=ClientRun(refused),
        concurrent=(ClientRun(refused),) * CONCURRENT_CLIENTS,
        latency=(failed_with(pos(0), UNREACHABLE, REFUSED),) * 3,
        out_of_range=(BadRequest("position 16", failed_with(pos(16), UNREACHABLE, REFUSED)),),
        garbage=(),
        pipelining=None,
        ascii=None,
        after=(("out-of-range", Serves(refused)),),
    )
    checks = rows(t)
    assert failed(t) == ["second-client", "out-of-range", "garbage", "concurrent"]
    for name in REQUIRED[: REQUIRED.index("second-client")]:
        assert checks[name].passed, checks[name]
    assert checks["second-client"].detail == (
        f"REGISTER: {REFUSED} (the tracker stopped serving after the first client)"
    )
    assert checks["second-client"].hint == (
        "the tracker died on this request: catch the exception, answer"
        " pickle.dumps('Bad request'), and keep serving"
    )
    assert checks["out-of-range"].detail == f"position 16: {REFUSED} (the tracker stopped serving)"
    stopped = "not run: the tracker stopped serving during out-of-range"
    assert checks["garbage"].detail == stopped
    assert checks["garbage"].hint == FIX_BEFORE
    assert checks["concurrent"].detail == f"client 1: REGISTER: {REFUSED} (20 of 20 clients failed)"
    assert checks["concurrent"].hint == (
        "each connection must get the answer to its own request: serve them one after"
        " another, or in threads that share nothing but the database"
    )
    assert checks["ascii-positions"].detail == checks["pipelining"].detail == stopped
    assert checks["latency"].detail == "not measured: no answer to position requests"
    report = Report("tracker", ADDRESS, "tcp", tuple(judge_tracker(t)))
    assert report.summary() == (
        f"tracker {ADDRESS}: 6/10 required checks passed (failed: second-client,"
        " out-of-range, concurrent; 1 not run: garbage)"
    )


def test_a_tracker_that_dies_on_garbage_fails_only_garbage() -> None:
    """An unguarded pickle.loads: garbage kills it; its death costs it only the check
    that caused it (the reference-style stand-in reset, the student's refused)."""
    for after, hint in (
        ("connection reset without an answer", DIED_HINT),
        (REFUSED, DIED_HINT),
    ):
        kind = CLOSED if "reset" in after else UNREACHABLE
        dead = Serves(failed_with(REGISTER, kind, after))
        t = tracker(
            garbage=(
                BadRequest(
                    "non-pickle bytes",
                    failed_with(GARBAGE[0][1], CLOSED, "closed without answering"),
                    dead,
                ),
            ),
            pipelining=None,
            ascii=None,
            after=(("garbage", dead),),
        )
        checks = rows(t)
        assert failed(t) == ["garbage"]
        assert checks["garbage"].detail == (
            f"non-pickle bytes: closed without answering; then REGISTER: {after}"
            " (the tracker no longer serves)"
        )
        assert checks["garbage"].hint == hint
        assert checks["concurrent"].passed and checks["latency"].passed
        stopped = "not run: the tracker stopped serving during garbage"
        assert checks["pipelining"].detail == checks["ascii-positions"].detail == stopped
        assert not checks["pipelining"].required


def test_a_dead_tracker_after_an_info_check_stops_the_rest() -> None:
    """pipelining (INFO) failed and the tracker no longer serves: b'0' is not sent."""
    t = tracker(
        ascii=None, after=(("pipelining", Serves(failed_with(REGISTER, UNREACHABLE, REFUSED))),)
    )
    assert detail(t, "ascii-positions") == "not run: the tracker stopped serving during pipelining"
    assert not failed(t)


def test_an_item_that_never_comes() -> None:
    """(A real one: tests/test_checker.py, a hanging tracker.)"""
    db = LIE_ITEMS
    hang = failed_with(pos(3), TIMEOUT, "no answer within 1 s")
    first = client(db, [0, 1, 2], protocol=0)
    first = dataclasses.replace(first, positions=(*first.positions, (3, hang)))
    t = tracker(
        db,
        protocol=0,
        timeout=1.0,
        first=first,
        second=client(db, [0, 1, 2], protocol=0),
        concurrent=(client(db, [0, 1, 2], protocol=0),) * CONCURRENT_CLIENTS,
    )
    checks = rows(t)
    assert failed(t) == ["items", "permutation", "message"]
    assert checks["items"].detail == "position 3: no answer within 1 s"
    assert checks["items"].hint == EOF_HINT
    assert checks["pickled"].detail == "4 answers, all pickles the restricted decoder reads"
    assert checks["permutation"].detail == "not run: not every position answered a pair"
    assert checks["second-client"].detail == (
        "the same N and the same item at the 3 positions (of 4) the first client got"
    )
    assert checks["concurrent"].detail == (
        "20 clients at once (REGISTER + 3 positions each, a sample of the 4) all got the same"
        " database"
    )
    report = Report("tracker", ADDRESS, "tcp", tuple(judge_tracker(t)))
    assert (report.failed, report.not_run) == (["items"], ["permutation", "message"])


def test_an_answer_the_decoder_refuses_fails_items_and_pickled() -> None:
    """(The memo bomb itself, sent for real: tests/test_checker.py.)"""
    refused = (
        "b'\\x80\\x02](X\\xe8\\x03\\x00\\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxx..., a pickle the"
        " restricted decoder refuses (size: memo references stand for more than the size"
        " limit of 1048576 at byte 3099)"
    )
    first = client(LIE_ITEMS, [0, 1, 2], protocol=0)
    bomb = failed_with(pos(3), UNDECODABLE, refused, b"\x80\x02](X\xe8\x03\x00\x00")
    t = tracker(
        LIE_ITEMS,
        protocol=0,
        first=dataclasses.replace(first, positions=(*first.positions, (3, bomb))),
    )
    checks = rows(t)
    assert checks["items"].detail == checks["pickled"].detail == f"position 3 answered {refused}"
    assert checks["items"].hint.startswith("a pickled position i (pickle.loads of what arrives)")
    assert checks["pickled"].hint.startswith("answer every request with pickle.dumps(...)")


def test_a_pickle_that_calls_code_gets_the_plain_values_hint() -> None:
    evil = failed_with(
        REGISTER,
        UNDECODABLE,
        "b'cos\\nsystem...', a pickle that calls code (GLOBAL os.system):"
        " pickle.loads would run it in the client",
        b"cos\nsystem",
    )
    c = rows(tracker(first=ClientRun(evil), second=None, concurrent=()))["register"]
    assert c.hint.startswith("the answer is a pickle that runs code (an object's class)")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (BAD_REQUEST_TEXT, "REGISTER answered 'Bad request'"),
        ("16", "REGISTER answered '16', not an int"),
        (True, "REGISTER answered True, not an int"),
        (-1, "REGISTER answered N = -1, a negative number"),
        (
            MAX_ITEMS + 1,
            "REGISTER answered N = 1,000,001, more than this checker's limit of 1,000,000",
        ),
    ],
)
def test_a_register_answer_that_is_no_count(value: Value, says: str) -> None:
    t = tracker(first=ClientRun(answer(REGISTER, value)), second=None, concurrent=())
    c = rows(t)["register"]
    assert c.detail == says
    if value == BAD_REQUEST_TEXT:
        assert c.hint.startswith("REGISTER arrives as the 8 raw bytes b'REGISTER', not pickled")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (BAD_REQUEST_TEXT, "position 3 answered 'Bad request'"),
        ((1, "b", "x"), "position 3 answered (1, 'b', 'x'), not a (SEQNUM, VALUE) pair"),
        (("1", "b"), "position 3 answered ('1', 'b'): SEQNUM is not an int"),
        ((1, None), "position 3 answered (1, None): VALUE is not text"),
    ],
)
def test_an_item_that_is_no_pair(value: Value, says: str) -> None:
    first = client(LIE_ITEMS, [0, 1, 2])
    first = dataclasses.replace(first, positions=((3, answer(pos(3), value)), *first.positions))
    c = rows(tracker(LIE_ITEMS, first=first))["items"]
    assert c.detail == says
    if value == BAD_REQUEST_TEXT:
        assert c.hint.startswith(
            "positions arrive pickled: unpickling what arrives gives the int i"
        )


def test_a_bytes_value_reads_like_a_python_2_string() -> None:
    db = tuple((s, v.encode()) for s, v in DB)
    first = ClientRun(answer(REGISTER, 16), tuple((p, answer(pos(p), db[p])) for p in range(16)))
    assert rows(tracker(first=first))["message"].detail == f'"{MESSAGE}" (16 items)'


def test_the_first_problem_is_the_lowest_position() -> None:
    """Eight positions at a time: they end in any order; the lowest that failed is named."""
    first = client(DB, [0, 1, 2, 3, 4, 5, 6])
    late = ((9, failed_with(pos(9), CLOSED, "closed without answering")),
            (7, failed_with(pos(7), TIMEOUT, "no answer within 5 s")))  # fmt: skip
    first = dataclasses.replace(first, positions=(*late, *first.positions))
    assert detail(tracker(first=first), "items") == "position 7: no answer within 5 s"


def test_values_past_the_checkers_limit_are_not_kept() -> None:
    first = client(DB, [0, 1])
    over = Asked(pos(2), NOT_KEPT, (), pickle.dumps(DB[2], 2))
    first = dataclasses.replace(first, positions=(*first.positions, (2, over)))
    checks = rows(tracker(first=first))
    assert checks["items"].detail == (
        f"the VALUEs add up to more than {MAX_HELD:,} bytes: not all kept"
    )
    assert checks["pickled"].detail == "4 answers, all pickles the restricted decoder reads"


def test_a_closed_connection_after_part_of_an_answer_is_not_pickled() -> None:
    cut = failed_with(pos(0), CLOSED, "closed after b'(I0', before the pickle ended", b"(I0")
    first = dataclasses.replace(client(DB, []), positions=((0, cut),))
    c = rows(tracker(first=first))["pickled"]
    assert c.detail == "position 0: closed after b'(I0', before the pickle ended"


def test_a_second_client_that_gets_another_database() -> None:
    t = tracker(second=ClientRun(answer(REGISTER, 15)))
    assert detail(t, "second-client") == "REGISTER answered N = 15, then 16"
    second = client(DB)
    wrong = answer(pos(3), (99, "x"))
    second = dataclasses.replace(
        second, positions=tuple((p, wrong if p == 3 else a) for p, a in second.positions)
    )
    assert detail(tracker(second=second), "second-client") == (
        f"position 3 answered (99, 'x'), not {DB[3]!r} (to the first client)"
    )


def test_concurrent_clients_that_get_other_answers() -> None:
    t = tracker()
    wrong = answer(pos(2), DB[5])
    mixed = dataclasses.replace(
        t.concurrent[0],
        positions=tuple((p, wrong if p == 2 else a) for p, a in t.concurrent[0].positions),
    )
    one = (mixed, *t.concurrent[1:])
    assert detail(tracker(concurrent=one), "concurrent") == (
        f"client 1: position 2 answered {DB[5]!r}, not {DB[2]!r}"
    )
    other_n = ClientRun(answer(REGISTER, 15))
    two = (*t.concurrent[:3], other_n, other_n, *t.concurrent[5:])
    assert detail(tracker(concurrent=two), "concurrent") == (
        "client 4: REGISTER answered N = 15, not 16 (2 of 20 clients failed)"
    )


def test_a_bad_request_that_changes_the_database() -> None:
    t = tracker()
    look = Serves(answer(REGISTER, 17))
    changed = BadRequest("position 16", answer(pos(16), BAD_REQUEST_TEXT), look)
    t = dataclasses.replace(t, out_of_range=(changed,), after=(("out-of-range", look),))
    c = rows(t)["out-of-range"]
    assert c.detail == (
        "position 16: 'Bad request'; then REGISTER answered N = 17, not 16 (the tracker no"
        " longer serves)"
    )
    assert c.hint == DIED_HINT
    other_item = Serves(answer(REGISTER, 16), answer(pos(0), DB[1]))
    t2 = dataclasses.replace(
        t, out_of_range=(BadRequest("position 16", answer(pos(16), BAD_REQUEST_TEXT), other_item),)
    )
    assert detail(t2, "out-of-range") == (
        f"position 16: 'Bad request'; then position 0 answered {DB[1]!r}, not {DB[0]!r} (the"
        " tracker no longer serves)"
    )


def test_a_bad_request_with_no_answer_and_no_close() -> None:
    """Over TCP it fails (a client would wait for ever); over UDP it is ignored."""
    hang = failed_with(GARBAGE[0][1], TIMEOUT, "no answer within 5 s")
    t = tracker(garbage=(BadRequest("non-pickle bytes", hang),))
    c = rows(t)["garbage"]
    assert c.detail == "non-pickle bytes: no answer and no close within 5 s"
    assert c.hint == (
        "catch the exception pickle.loads raises on bytes that are not a pickle, answer"
        " pickle.dumps('Bad request'), and keep serving"
    )
    quiet = failed_with(GARBAGE[0][1], TIMEOUT, "no answer over UDP within 1 s")
    u = tracker(
        transport="udp",
        garbage=tuple(BadRequest(what, dataclasses.replace(quiet, sent=sent), serves(DB))
                      for what, sent in GARBAGE),
    )  # fmt: skip
    c = rows(u)["garbage"]
    assert c.passed
    assert c.detail == (
        "non-pickle bytes: no answer (ignored); 1,500 bytes of noise: no answer (ignored);"
        " an empty request: no answer (ignored); still serves"
    )


def test_informational_checks_that_say_no() -> None:
    only_first = Asked(pos(0) + pos(1), TIMEOUT, (DB[0],), b"", "no answer within 2 s")
    t = tracker(
        pipelining=only_first,
        ascii=failed_with(b"0", CLOSED, "closed without answering"),
        other=failed_with(REGISTER, TIMEOUT, "no answer over UDP within 2 s"),
    )
    checks = rows(t)
    assert checks["pipelining"].detail == (
        "no, one request at a time (as the reference): positions 0 and 1 sent back to back"
        " on one connection: only the first answered"
    )
    assert checks["ascii-positions"].detail == (
        "no, it does not take positions written as ASCII digits (as the assignment's text"
        " reads): b'0': closed without answering"
    )
    assert checks["udp"].detail == (
        "no, it does not serve over UDP: REGISTER: no answer over UDP within 2 s"
    )
    assert not failed(t)


def test_latency_counts_what_went_unanswered() -> None:
    samples = (
        *(answer(pos(0), DB[0], seconds=s / 1000) for s in (1, 2, 3, 4)),
        failed_with(pos(0), TIMEOUT, "no answer within 2 s"),
    )
    c = rows(tracker(latency=samples))["latency"]
    assert c.detail == (
        "how long an answer takes: p50 2.00 ms, p99 4.00 ms (4 position requests, each on its"
        " own connection); 1 unanswered"
    )
    assert c.data == {"p50_ms": 2.0, "p99_ms": 4.0, "samples": 4, "n": 16}


# ---------------------------------------------------- nothing listens, the deadline


@pytest.mark.parametrize("why", [REFUSED, NO_UDP])
def test_nothing_listening_is_one_line(why: str) -> None:
    t = TrackerTranscript(
        ADDRESS, "tcp", 5.0, 600.0, ClientRun(failed_with(REGISTER, UNREACHABLE, why))
    )
    checks = judge_tracker(t)
    line = f"nothing listens on {ADDRESS} ({why}): is the tracker running?"
    assert nothing_listens(t) == line
    assert [c.name for c in checks] == list(REQUIRED)
    assert (checks[0].detail, checks[0].hint) == (
        line,
        "start the tracker first, listening on this host and port",
    )
    assert all(c.detail == "not run: nothing listens" and c.hint == "" for c in checks[1:])
    report = Report("tracker", ADDRESS, "tcp", tuple(checks), stopped=nothing_listens(t))
    rest = ", ".join(REQUIRED[1:])
    assert report.summary().endswith(
        f"0/10 required checks passed (failed: register; 9 not run: {rest})"
    )


def test_checks_the_deadline_kept_from_starting_are_not_run() -> None:
    late = ("second-client", "concurrent", "latency", "udp", *("out-of-range", "garbage",
            "pipelining", "ascii-positions"))  # fmt: skip
    t = tracker(
        second=None,
        concurrent=(),
        latency=(),
        other=None,
        out_of_range=(),
        garbage=(),
        pipelining=None,
        ascii=None,
        after=(),
        late=late,
    )
    t = dataclasses.replace(t, deadline=3.0)
    checks = rows(t)
    for name in late:
        assert checks[name].detail == "not run: the overall deadline of 3 s passed", name
        assert checks[name].required == (name in REQUIRED)
    report = Report("tracker", ADDRESS, "tcp", tuple(judge_tracker(t)))
    assert report.failed == []
    assert report.not_run == ["second-client", "out-of-range", "garbage", "concurrent"]


def test_a_request_the_deadline_cut_short() -> None:
    cut = failed_with(pos(0), TIMEOUT, "not asked: the overall deadline passed")
    first = dataclasses.replace(client(DB, []), positions=((0, cut),))
    assert (
        detail(tracker(first=first), "items")
        == "position 0: not asked: the overall deadline passed"
    )


# ------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=5), max_size=40), st.randoms())
def test_any_permutation_passes_and_assembles_the_message(
    words: list[str], rnd: random.Random
) -> None:
    db = list(enumerate(words))
    rnd.shuffle(db)
    t = tracker(tuple(db))
    checks = judge_tracker(t)
    assert [c.name for c in checks if c.required and not c.passed] == []
    assert message_of(checks) == " ".join(words)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 12), min_size=1, max_size=12))
def test_permutation_problem_says_none_exactly_for_a_permutation(seqs: list[int]) -> None:
    items = {p: (s, f"v{p}") for p, s in enumerate(seqs)}
    problem = permutation_problem(items, len(seqs))
    assert (problem is None) == (sorted(seqs) == list(range(len(seqs))))
    if problem is not None and all(0 <= s < len(seqs) for s in seqs):
        twice = min(s for s in seqs if seqs.count(s) > 1)
        assert problem.startswith(f"SEQNUM {twice} is served at positions ")


@given(st.integers(0, 5000), st.integers(2, 300))
def test_sample_spreads_over_every_position(n: int, k: int) -> None:
    got = sample(n, k)
    assert got == sorted(set(got)) and len(got) == min(n, k)
    assert all(0 <= p < n for p in got)
    if n:
        assert got[0] == 0 and got[-1] == n - 1


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_samples_in_order(samples: list[float]) -> None:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    assert p50 in samples and p99 in samples and p50 <= p99 <= max(samples)


@pytest.mark.parametrize(
    ("value", "protocol"), [(16, 0), ((1, "b"), 0), ((1, "b"), 1), (16, 2), (16, 4), (16, 5)]
)
def test_the_protocol_of_an_answer(value: Value, protocol: int) -> None:
    assert protocol_of(pickle.dumps(value, protocol)) == protocol


def test_the_transcript_kinds_are_the_links_kinds() -> None:
    assert (ANSWER, CLOSED, TIMEOUT, UNREACHABLE, UNDECODABLE) == (
        links.ANSWER,
        links.CLOSED,
        links.TIMEOUT,
        links.UNREACHABLE,
        links.UNDECODABLE,
    )


def test_judge_risky_names_only_the_risky_checks() -> None:
    with pytest.raises(ValueError, match="latency"):
        judge_risky("latency", tracker(), view_of(tracker().first))
