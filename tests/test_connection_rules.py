"""cs457p2p.core.connection_rules with the tracker's answers
(cs457p2p.core.tracker_responder), and cs457p2p.core.datagram_rules: the tracker's
rules for one connection and one datagram, byte by byte and with the time passed in. No
sockets: the asyncio driver around them is tested end to end in test_tracker.py."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.connection_rules import (
    ABORT,
    CLOSE,
    KEEP,
    ConnectionRules,
    Limits,
    Step,
    request_count,
)
from cs457p2p.core.database import Database
from cs457p2p.core.datagram_rules import answer_datagram
from cs457p2p.core.requests import (
    BadRequest,
    Position,
    PositionRun,
    Register,
    Request,
    RequestParser,
    expand_runs,
    lone_digits,
    lone_request,
)
from cs457p2p.core.ring import Ring
from cs457p2p.core.tracker_responder import TrackerResponder
from cs457p2p.core.wire import (
    BAD_REQUEST,
    MAX_DATAGRAM,
    MAX_REQUEST,
    REGISTER,
    encode_position,
    position_run_bytes,
)
from cs457p2p.core.wire2 import Query, QueryResult, encode_message
from pickles import cut

LIMITS = Limits(max_request=MAX_REQUEST, request_timeout=10.0, idle_timeout=60.0, digit_wait=0.01)
N = 100


DB = Database.from_message(" ".join(f"w{i}" for i in range(N)), shuffle_seed=3)
RESPONDER = TrackerResponder(DB)


def rules(now: float = 0.0, limits: Limits = LIMITS) -> ConnectionRules:
    return ConnectionRules(limits, RESPONDER, now)


def said(step: Step) -> tuple[list[Request], str]:
    """What a step answers and then does (checking its answers are those requests')."""
    assert bytes(b"".join(step.answers)) == b"".join(
        bytes(RESPONDER.answer(r)) for r in step.requests
    )
    return list(step.requests), step.then


def p(i: int) -> bytes:
    return encode_position(i)


# --------------------------------------------------------- reference style or pipelining


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (REGISTER, Register()),
        (p(5), Position(5)),
        (b"I5\n.", Position(5)),  # Python 2's pickle.dumps(5)
        (pickle.dumps("REGISTER", protocol=0), Register()),
        (pickle.dumps(500, protocol=4), Position(500)),
        (p(N), Position(N)),  # out of range: answered 'Bad request', then closed
    ],
)
def test_a_first_read_holding_one_request_alone_is_answered_then_closed(
    first: bytes, expected: Request
) -> None:
    r = rules()
    assert said(r.received(first, 1.0)) == ([expected], CLOSE)
    assert r.closed and not r.persistent
    assert said(r.received(p(1), 1.1)) == ([], KEEP)  # closing: nothing more is answered


def test_two_requests_in_the_first_read_make_a_pipelining_connection() -> None:
    r = rules()
    assert said(r.received(REGISTER + p(7), 1.0)) == ([Register(), Position(7)], KEEP)
    assert r.persistent and not r.closed
    assert said(r.received(p(3), 2.0)) == ([Position(3)], KEEP)


def test_a_run_of_positions_is_one_request_that_counts_each_position() -> None:
    r = rules()
    step = r.received(position_run_bytes(0, 50), 1.0)
    assert said(step) == ([PositionRun(0, 50)], KEEP)
    assert r.requests == request_count(step.requests) == 50 and r.persistent


def test_bytes_after_the_first_request_make_the_connection_persistent() -> None:
    """The first request and the start of a second in the first read: the client
    pipelines, so the connection stays open."""
    r = rules()
    assert said(r.received(p(1) + p(2)[:2], 1.0)) == ([Position(1)], KEEP)
    assert r.persistent
    assert said(r.received(p(2)[2:], 1.5)) == ([Position(2)], KEEP)


def test_a_request_cut_in_two_reads_is_still_reference_style() -> None:
    """The reference's single recv may see a request in pieces; the first whole request
    alone still gets its answer and EOF."""
    r = rules()
    assert said(r.received(p(300)[:3], 1.0)) == ([], KEEP)
    assert r.partial_since == 1.0
    assert said(r.received(p(300)[3:], 1.2)) == ([Position(300)], CLOSE)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xfe not a pickle", b"\x80\x02cos\nsystem\n.", b"x" * 2000]
)
def test_bytes_that_are_not_a_message_are_refused_then_closed(garbage: bytes) -> None:
    r = rules()
    step = r.received(REGISTER + garbage, 1.0)
    assert step.then == CLOSE and step.requests[0] == Register()
    assert [type(q) for q in step.requests] == [Register, BadRequest]
    bad = step.requests[1]
    assert isinstance(bad, BadRequest) and bad.fatal


def test_a_wrong_but_wellformed_value_is_refused_and_the_connection_goes_on() -> None:
    r = rules()
    step = r.received(p(1) + pickle.dumps("hello", protocol=2) + p(2), 1.0)
    assert step.then == KEEP
    assert [type(q) for q in step.requests] == [Position, BadRequest, Position]


# ---------------------------------------------------------------------- the digit wait


def test_a_first_read_of_digits_alone_is_one_whole_position() -> None:
    """As the reference's single recv takes it: no wait for where the digits end (the
    literal-spec client sends b"5" and waits)."""
    r = rules()
    assert said(r.received(b"5", 1.0)) == ([Position(5)], CLOSE)
    assert said(rules().received(b"123", 1.0)) == ([Position(123)], CLOSE)


def test_a_trailing_digit_run_is_complete_after_the_digit_wait() -> None:
    r = rules()
    assert said(r.received(REGISTER + b"5", 1.0)) == ([Register()], KEEP)
    assert r.digit_at == pytest.approx(1.01)
    assert r.deadline == pytest.approx(1.01)
    assert said(r.expired(1.005)) == ([], KEEP)  # not yet
    assert said(r.expired(1.01)) == ([Position(5)], KEEP)


def test_a_digit_run_continued_in_the_next_read_is_one_position() -> None:
    r = rules()
    r.received(REGISTER + b"1", 1.0)
    assert said(r.received(b"2", 1.005)) == ([], KEEP)
    assert r.digit_at == pytest.approx(1.015)  # the wait starts again
    assert said(r.received(b"\n", 1.006)) == ([Position(12)], KEEP)
    assert r.digit_at is None


def test_terminated_digits_need_no_wait_and_pipeline() -> None:
    r = rules()
    assert said(r.received(b"5\n6\n7", 1.0)) == ([Position(5), Position(6)], KEEP)
    assert r.persistent and r.digit_at is not None
    assert said(r.expired(r.digit_at)) == ([Position(7)], KEEP)


# ------------------------------------------------------------------------------- EOF


def test_eof_completes_a_trailing_digit_run_and_closes() -> None:
    r = rules()
    r.received(REGISTER + REGISTER + b"4", 1.0)
    assert said(r.ended()) == ([Position(4)], CLOSE)
    assert said(r.ended()) == ([], KEEP)


def test_eof_in_the_middle_of_a_request_is_a_bad_request() -> None:
    r = rules()
    r.received(p(9)[:3], 1.0)
    step = r.ended()
    assert step.then == CLOSE and len(step.requests) == 1
    bad = step.requests[0]
    assert isinstance(bad, BadRequest) and bad.fatal
    assert bad.reason == "got b'\\x80\\x02K': the request ends before it is whole"


def test_eof_after_nothing_just_closes() -> None:
    assert said(rules().ended()) == ([], CLOSE)


# -------------------------------------------------------------------------- timeouts


def test_a_silent_connection_is_aborted_at_the_idle_timeout() -> None:
    r = rules(now=0.0)
    r.received(REGISTER + REGISTER, 5.0)
    assert r.deadline == 65.0
    assert said(r.expired(64.9)) == ([], KEEP)
    assert r.expired(65.0) == Step((), [], ABORT, "idle")
    assert r.closed and said(r.expired(100.0)) == ([], KEEP)


def test_a_request_slower_than_the_request_timeout_is_refused_then_closed() -> None:
    r = rules()
    r.received(REGISTER + REGISTER, 1.0)
    r.received(b"\x80\x02", 2.0)  # a request begins...
    r.received(b"J", 8.0)  # ...and trickles in
    assert r.deadline == 12.0  # ten seconds from its first byte, not from the last
    assert said(r.expired(11.9)) == ([], KEEP)
    step = r.expired(12.0)
    assert (step.then, step.why) == (CLOSE, "slow")
    bad = step.requests[0]
    assert isinstance(bad, BadRequest) and "10 s" in bad.reason
    assert bad.data == b"\x80\x02J"  # (what came of it, for the words of the refusal)


def test_a_slow_request_behind_unwritten_answers_is_aborted() -> None:
    r = rules()
    r.received(REGISTER + REGISTER + b"I5", 1.0)  # protocol 0, never ended by its \n
    assert r.expired(11.0, writing=True) == Step((), [], ABORT, "slow")


def test_the_deadline_is_the_earliest_of_the_three() -> None:
    r = rules()
    r.received(REGISTER + REGISTER, 1.0)
    assert r.deadline == 61.0  # idle
    r.received(b"\x80", 2.0)
    assert r.deadline == 12.0  # the partial request
    r2 = rules()
    r2.received(REGISTER + b"7", 3.0)
    assert r2.deadline == pytest.approx(3.01)  # the digit wait


# --------------------------------------------------------- Hypothesis: any cut, any time

_REQUEST = st.one_of(
    st.just(REGISTER),
    st.integers(0, 2 * N).map(p),
    st.tuples(st.integers(0, 2 * N), st.sampled_from([0, 2, 4, 5])).map(
        lambda t: pickle.dumps(t[0], protocol=t[1])
    ),
    st.integers(0, 999).map(lambda i: b"%d\n" % i),
    st.tuples(st.integers(0, N - 1), st.integers(2, 40)).map(
        lambda t: position_run_bytes(t[0], min(t[1], N - t[0]))
    ),
    st.just(pickle.dumps("hello", protocol=2)),
)


def _drive(
    pieces: Sequence[bytes], end: bool, limits: Limits = LIMITS
) -> tuple[list[Request], str]:
    """Feed ``pieces`` one read each, a millisecond apart, taking every later turn the
    rules ask for (the client reads at once) and letting the digit wait pass between
    reads when it is due; then EOF (``end``). Returns the requests answered and the
    last step's verdict."""
    r = rules(limits=limits)
    now = 0.0
    got: list[Request] = []
    then = KEEP

    def take(step: Step) -> str:
        got.extend(said(step)[0])
        assert sum(map(len, step.answers)) <= max(limits.turn_output, 64), "over the turn"
        return step.then

    for piece in pieces:
        now += 0.001
        if r.digit_at is not None and now >= r.digit_at:
            then = take(r.expired(now))
        if then != KEEP:
            break
        then = take(r.received(piece, now))
        while then == KEEP and r.has_work:
            then = take(r.resume(now))
        if then != KEEP:
            break
    if end and then == KEEP:
        then = take(r.ended())
        while then == KEEP and r.has_work:
            then = take(r.resume(now))
    return got, then


def _reference_style(pieces: Sequence[bytes]) -> bool:
    """The reads ``pieces`` make a reference-style connection: the first is digits alone,
    or the read that completes the first request holds it alone."""
    if lone_digits(pieces[0]) is not None:
        return True
    reads = RequestParser(MAX_REQUEST, N)
    for piece in pieces:  # the read that completes the first request...
        completed = reads.feed(piece)
        if completed:
            break
    return request_count(completed) == 1 and not reads.buffered  # ...holds it alone


@settings(max_examples=400, deadline=None)
@given(messages=st.lists(_REQUEST, min_size=2, max_size=8), cuts=st.lists(st.integers(0, 400)))
def test_pipelined_requests_cut_anywhere_are_all_answered_in_order(
    messages: list[bytes], cuts: list[int]
) -> None:
    """Two or more requests written at once (as a pipelining client writes them),
    delivered in any pieces, then EOF: every request is answered, in order, exactly as
    the parser reads the whole stream, and the connection closes only at the end. (The
    one exception is the reference-style rule: when the read that completes the first
    request holds nothing more, that request is answered and the connection closed.)"""
    data = b"\n".join(messages)  # (a digit run needs an end before the next message)
    pieces = [c for c in cut(data, cuts) if c]
    whole = RequestParser(MAX_REQUEST)
    expected = whole.feed(data) + whole.flush()
    if _reference_style(pieces):
        return  # (tested above and below)
    got, then = _drive(pieces, end=True)
    assert then == CLOSE
    assert expand_runs(got) == expected


_FIRST = st.one_of(
    _REQUEST,
    st.lists(_REQUEST, min_size=2, max_size=3).map(b"".join),
    st.sampled_from([b"5", b"12\n", b" ", b"REG", b"\xff", b"I5\n", b""]),
    st.binary(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(first=_FIRST)
def test_the_accept_time_lane_agrees_with_the_rules(first: bytes) -> None:
    """The tracker answers a connection at accept time when ``lone_request`` reads one
    request alone in its first bytes: exactly when the rules would answer that request
    and close."""
    lone = lone_request(first, MAX_REQUEST, N)
    step = rules().received(first, 1.0)
    alone = step.then == CLOSE and len(step.requests) == 1
    assert (lone is not None) == alone
    if lone is not None:
        assert step.requests[0] == lone


# ------------------------------------------------------------------------ the answers


def test_the_responder_answers_from_the_database() -> None:
    assert RESPONDER.answer(Register()) == DB.count_answer
    assert RESPONDER.answer(Position(4)) == DB.answer(4)
    assert bytes(RESPONDER.answer(PositionRun(2, 3))) == DB.answer(2) + DB.answer(3) + DB.answer(4)
    for bad in (Position(N), Position(-1), BadRequest("x", fatal=False)):
        assert RESPONDER.answer(bad) == BAD_REQUEST


# -------------------------------------------------------------------------------- UDP


def test_a_datagram_of_several_requests_gets_one_datagram_of_answers() -> None:
    d = answer_datagram(REGISTER + p(1) + p(2), RESPONDER)
    assert d.payload == DB.count_answer + DB.answer(1) + DB.answer(2)
    assert expand_runs(d.answered) == [Register(), Position(1), Position(2)] and d.count == 3


def test_an_empty_datagram_is_answered_by_nothing() -> None:
    d = answer_datagram(b"", RESPONDER)
    assert d.payload == b"" and d.count == 0


def test_a_trailing_digit_run_ends_with_the_datagram() -> None:
    assert answer_datagram(b"7" + b" " * 7, RESPONDER).payload == DB.answer(7)


def test_answers_are_cut_after_the_last_whole_one_that_fits() -> None:
    room = len(DB.answer(0)) * 3 + 5
    d = answer_datagram(position_run_bytes(0, 10), RESPONDER, room=room)
    assert d.answered == [PositionRun(0, 3)] and d.count == 3
    assert d.payload == b"".join(DB.answer(i) for i in range(3))


def test_an_answer_is_at_most_three_times_its_request() -> None:
    """RFC 9000's amplification limit: a forged source address gets at most three times
    what it sent; padding (spaces) buys room for more."""
    request = position_run_bytes(0, 40)  # 200 bytes asking for 40 answers of ~17
    d = answer_datagram(request, RESPONDER)
    assert 0 < len(d.payload) <= 3 * len(request) and d.count < 40
    assert d.payload == b"".join(DB.answer(i) for i in range(d.count))
    padded = request + b" " * 100
    d = answer_datagram(padded, RESPONDER)
    assert d.count == 40 and len(d.payload) <= 3 * len(padded)
    register = answer_datagram(REGISTER, RESPONDER)  # 8 bytes: N fits in 24
    assert register.payload == DB.count_answer


def test_bad_request_is_answered_only_when_it_fits_three_times_the_datagram() -> None:
    assert answer_datagram(b"\xff" * 7, RESPONDER).payload == BAD_REQUEST  # 19 <= 21
    assert answer_datagram(b"\xff" * 6, RESPONDER).payload == b""  # 19 > 18


def test_an_answer_larger_than_a_datagram_is_never_sent() -> None:
    big = Database.from_message("x" * (MAX_DATAGRAM + 10) + " y", shuffle_seed=1)
    responder = TrackerResponder(big)
    position = next(i for i in range(2) if len(big.answer(i)) > MAX_DATAGRAM)
    padded = p(position) + b" " * (MAX_DATAGRAM - 5)
    assert answer_datagram(padded, responder).payload == b""
    small = 1 - position
    d = answer_datagram(p(small) + b" " * 20, responder)
    assert d.payload == big.answer(small)


# ---------------------------------------------------------------------------- budgets

SMALL = Limits(turn_input=7, turn_output=40, queue=60, backlog=100)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(_REQUEST, min_size=2, max_size=8), cuts=st.lists(st.integers(0, 400)))
def test_budgets_change_when_requests_are_answered_never_what_is_answered(
    messages: list[bytes], cuts: list[int]
) -> None:
    """Tiny budgets (7 bytes parsed, 40 answered a step): the same answers, in order,
    over many more steps."""
    data = b"\n".join(messages)
    pieces = [c for c in cut(data, cuts) if c]
    if _reference_style(pieces):
        return
    got, then = _drive(pieces, end=True, limits=SMALL)
    whole = RequestParser(MAX_REQUEST)
    assert then == CLOSE
    assert expand_runs(got) == whole.feed(data) + whole.flush()


def test_a_client_that_does_not_read_gets_no_more_than_the_queue_limit() -> None:
    limits = Limits(queue=1000, turn_output=400, backlog=2000)
    r = rules(limits=limits)
    flood = REGISTER + REGISTER + position_run_bytes(0, N) * 10  # about 17 kB of answers
    queued = 0
    step = r.received(flood[:1500], 1.0, queued)
    queued += sum(map(len, step.answers))
    while r.has_work:  # turns go on while the client reads nothing
        step = r.resume(1.0, queued)
        if not step.answers:
            break
        queued += sum(map(len, step.answers))
    assert 0 < queued <= 1000 + 64  # the limit, or one answer over it at most
    assert r.has_work and r.wants_input  # waiting for the client to read
    step = r.received(flood[1500:], 1.1, queued)  # more requests arrive
    assert not step.answers and not r.wants_input  # 2,000 bytes unparsed: stop reading
    assert r.resume(1.2, queued).answers == []  # nothing while nothing is read
    answers = r.resume(1.3, queued=0).answers  # it read everything: at most a turn's worth
    assert 0 < sum(map(len, answers)) <= 400


def test_the_trackers_total_holds_even_when_the_client_reads() -> None:
    r = rules()
    r.received(REGISTER + REGISTER, 1.0, spare=0)
    assert r.has_work and r.resume(1.0, spare=0).answers == []
    assert said(r.resume(1.0, spare=1000)) == ([Register(), Register()], KEEP)


def test_one_answer_larger_than_the_queue_goes_alone_when_nothing_is_queued() -> None:
    big = TrackerResponder(Database.from_message("x" * 5000 + " y z", shuffle_seed=2))
    position = next(i for i in range(3) if len(big.db.answer(i)) > 5000)
    r = ConnectionRules(Limits(queue=1000, turn_output=1000), big, 0.0)
    step = r.received(p(position) + REGISTER + REGISTER, 1.0, queued=0)
    assert step.requests == [Position(position)] and len(step.answers[0]) > 5000
    assert r.resume(1.0, queued=5000).answers == []  # the rest waits for the client
    step = r.resume(1.0, queued=0)
    assert step.requests == [Register(), Register()] and step.answers == [big.count_answer] * 2


def test_the_ring_acts_on_a_message_once_when_its_answer_is_taken() -> None:
    """A Part 2 message is answered (and the ring acts) when a step takes it, not when it
    is parsed; an answer made that did not fit waits, and is not made again."""
    ring = Ring(DB)
    r = ConnectionRules(Limits(queue=1000), TrackerResponder(DB, ring), 0.0, peer="127.0.0.2")
    step = r.received(encode_message(Query(0)) * 2, 1.0, spare=0)
    assert step.answers == [] and ring.counters.queries == 0  # parsed, not yet taken
    assert r.resume(1.0, queued=999).answers == []  # one byte of room: made, kept
    assert ring.counters.queries == 1
    assert r.resume(1.0, queued=999).answers == [] and ring.counters.queries == 1
    step = r.resume(1.0, queued=0)
    assert len(step.requests) == 2 and ring.counters.queries == 2
    assert bytes(b"".join(step.answers)) == encode_message(QueryResult(0, "w0")) * 2


def test_a_message_still_waiting_for_room_when_the_connection_is_aborted_never_acts() -> None:
    ring = Ring(DB)
    r = ConnectionRules(Limits(queue=1000), TrackerResponder(DB, ring), 0.0, peer="127.0.0.2")
    r.received(encode_message(Query(0)) * 2, 1.0, spare=0)  # parsed; no room to answer
    assert r.expired(r.deadline, writing=True) == Step((), [], ABORT, "idle")
    assert r.closed and ring.counters.queries == 0
    assert r.resume(70.0, queued=0).answers == [] and ring.counters.queries == 0


def test_eof_after_a_backlog_answers_it_all_then_closes() -> None:
    r = rules(limits=SMALL)
    got: list[Request] = []
    step = r.received(REGISTER + REGISTER + b"5\n6", 1.0)
    got += step.requests
    step = r.ended()
    got += step.requests
    while step.then == KEEP:
        step = r.resume(1.0)
        got += step.requests
    assert (got, step.then) == ([Register(), Register(), Position(5), Position(6)], CLOSE)


def test_a_first_read_larger_than_a_turn_is_not_reference_style() -> None:
    r = rules(limits=SMALL)
    step = r.received(p(1) + p(2), 1.0)  # 10 bytes: the turn parses 7
    assert step.then == KEEP and r.persistent


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.integers(1, 400).map(lambda k: b"7N." * k),  # 13x before the limit
        st.lists(_REQUEST, max_size=30).map(b"".join),
    )
)
def test_no_datagram_brings_back_more_than_three_times_its_size(data: bytes) -> None:
    d = answer_datagram(data, RESPONDER)
    assert len(d.payload) <= 3 * len(data)
    whole = RequestParser(MAX_REQUEST, N)
    parsed = whole.feed(data.rstrip(b" ")) + whole.flush() if data.rstrip(b" ") else []
    assert expand_runs(d.answered) == expand_runs(parsed)[: len(expand_runs(d.answered))]
