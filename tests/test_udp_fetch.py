"""cs457p2p.core.udp_fetch: the UDP client's decisions with the time passed in (no
sockets, no clock): REGISTER, the batches, the session's silence timeout."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cs457p2p.core.errors import RemoteProtocolError
from cs457p2p.core.fetch import ClientConfig, ClientError
from cs457p2p.core.requests import Position, PositionRun, RequestParser
from cs457p2p.core.udp_fetch import FIRST_BATCH, MAX_BATCH, UdpFetch, decode_datagram
from cs457p2p.core.wire import (
    BAD_REQUEST,
    MAX_REQUEST,
    REGISTER,
    encode_count,
    encode_item,
    encode_position,
    position_run_bytes,
)

CONFIG = ClientConfig(host="127.0.0.1", port=7777, transport="udp", timeout=2.0)


def registered(n: int, config: ClientConfig = CONFIG) -> UdpFetch:
    session = UdpFetch(config)
    session.start(0.0)
    session.register_answer(encode_count(n), 0.0)
    session.registered()
    return session


def test_register_takes_n_from_the_first_datagram_that_says_it() -> None:
    session = UdpFetch(CONFIG)
    assert session.register_request() == REGISTER
    session.start(0.0)
    session.register_answer(b"", 0.5)  # (nothing in it)
    assert session.count is None
    session.register_answer(encode_count(5), 1.0)
    session.register_answer(encode_count(9), 1.1)  # a later copy changes nothing
    assert session.count == 5 and session.next_timer() == 3.0
    coll = session.registered()
    assert coll.n == 5 and session.coll is coll


def test_an_unanswered_register_backs_off() -> None:
    session = UdpFetch(CONFIG)
    first = session.rto
    session.register_timed_out()
    assert session.rto > first


def test_n_beyond_the_limit_is_refused() -> None:
    session = UdpFetch(ClientConfig(transport="udp", max_items=4))
    session.register_answer(encode_count(5), 0.0)
    with pytest.raises(RemoteProtocolError, match="more than the limit of 4"):
        session.registered()


def test_a_datagram_cut_in_the_middle_of_a_pickle_is_refused() -> None:
    assert decode_datagram(BAD_REQUEST) == ["Bad request"]
    with pytest.raises(RemoteProtocolError, match="middle of a pickle"):
        decode_datagram(encode_count(5)[:-1])


def test_silence_for_longer_than_the_timeout_ends_the_session() -> None:
    session = UdpFetch(CONFIG)
    session.start(10.0)
    assert session.next_timer() == 12.0
    session.on_timer(12.0)  # (longer than, not as long as)
    with pytest.raises(ClientError) as caught:
        session.on_timer(12.01)
    assert str(caught.value) == "no answer to REGISTER from 127.0.0.1:7777 over UDP within 2 s"
    session.refused = 1
    with pytest.raises(ClientError, match=r"within 2 s \(connection refused: is a tracker"):
        session.on_timer(20.0)
    with pytest.raises(ClientError, match=r"^no new answer from"):
        registered(4).on_timer(5.0)  # (registered: a new answer awaited)


def test_requests_ask_runs_in_bulk_and_are_padded() -> None:
    session = registered(100)
    positions = session.take()
    assert positions == range(FIRST_BATCH)  # (one run: a range, asked in bulk)
    request = session.request(positions)
    assert request.startswith(position_run_bytes(0, FIRST_BATCH))
    assert len(request) * 3 >= FIRST_BATCH * 64  # room for the answers it asks for
    scattered = session.request([3, 7])
    assert scattered.startswith(encode_position(3) + encode_position(7))


def test_answers_size_the_batches_and_restart_the_silence_timeout() -> None:
    session = registered(100_000)
    positions = session.take()
    answer = b"".join(encode_item(p, "w") for p in positions)
    session.answered(len(answer), len(positions), [], 0.01, 1.5)
    assert session.next_timer() == 3.5
    per = len(answer) / len(positions)
    assert session.batch == min(MAX_BATCH, int(CONFIG.udp_datagram // per))
    assert session.rtt.srtt == 0.01


def test_a_small_collection_keeps_every_lane_busy() -> None:
    session = registered(16 * 4 * 3)  # 3 positions a batch for 16 lanes, 4 each
    session.answered(100, 8, [], None, 0.0)
    assert session.batch == 3 and session.rtt.srtt is None  # (no sample: retired socket)


def test_a_cut_answer_gives_back_what_it_left_out() -> None:
    session = registered(10)
    positions = session.take()
    session.answered(60, 3, positions[3:], 0.01, 0.1)
    assert session.coll is not None and session.coll.queued == 10 - len(positions) + 5


def test_a_lost_request_gives_its_positions_back_and_backs_off() -> None:
    session = registered(10)
    positions = session.take()
    rto = session.rto
    session.attempt_timed_out(positions)
    assert session.coll is not None and session.coll.queued == 10
    assert session.rto > rto


@given(st.integers(1, 10**6), st.integers(1, 2000), st.integers(1, 300), st.integers(1, 64))
def test_the_batch_is_always_between_one_and_the_most(
    n: int, size: int, answers: int, lanes: int
) -> None:
    config = ClientConfig(transport="udp", udp_lanes=lanes)
    session = registered(n, config)
    session.answered(size, answers, [], None, 0.0)
    assert 1 <= session.batch <= MAX_BATCH
    assert session.batch <= max(1, n // (lanes * 4))


# Seen under load (a client stalled for its whole timeout): positions given back come in
# any order, and [47, 32..39, 56..61] starts at 47 and ends 14 later, as 47..61 would.
GIVEN_BACK = [47, *range(32, 40), *range(56, 62)]


def asked(request: bytes, n: int = 1000) -> list[int]:
    """The positions a request datagram asks for, in order, as a tracker parses them."""
    parser = RequestParser(MAX_REQUEST, run_limit=n)
    out: list[int] = []
    for r in parser.feed(request.rstrip(b" ")) + parser.flush():
        if isinstance(r, PositionRun):
            out += range(r.start, r.start + r.count)
        else:
            assert isinstance(r, Position)
            out.append(r.index)
    return out


def test_a_request_asks_exactly_its_positions_whatever_their_order() -> None:
    session = registered(1000)
    assert asked(session.request(GIVEN_BACK)) == GIVEN_BACK


@given(st.lists(st.integers(0, 999), min_size=1, max_size=MAX_BATCH, unique=True))
@example(GIVEN_BACK)
def test_every_request_asks_exactly_its_positions(positions: list[int]) -> None:
    assert asked(registered(1000).request(positions)) == positions


def test_positions_given_back_out_of_order_are_taken_as_a_list_in_that_order() -> None:
    session = registered(1000)
    assert session.coll is not None
    taken = [session.take() for _ in range(8)]  # 8 batches of 8: 0..63
    session.coll.give_back(taken[4])  # (32..39 lost)
    session.coll.give_back([47])  # (then 47 alone: a cut reply left it out)
    again = session.take()
    assert again == [47, *range(32, 39)]
    assert asked(session.request(again)) == again
