"""cs457p2p.core.fetch, byte by byte: :class:`Registration` (the REGISTER answer),
:class:`Probe` (what the first two answers say about the tracker),
:class:`PipelineReader` (answers to runs in flight) and :class:`Fetch` (the phases, the
failure rules, the one line a client says). No sockets: the blocking and asyncio drivers
around them are tested against real trackers in ``test_client.py``."""

from __future__ import annotations

import itertools
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.collection import Collection, CollectionError
from cs457p2p.core.decoder import DecodeError
from cs457p2p.core.errors import RemoteProtocolError
from cs457p2p.core.fetch import (
    DONE,
    ONESHOT,
    PERSISTENT,
    PIPELINE,
    PROBE,
    REFERENCE,
    REGISTER_PHASE,
    UNKNOWN,
    ClientConfig,
    ClientError,
    Fetch,
    PipelineReader,
    Probe,
    Registration,
    waiting_error,
)
from cs457p2p.core.wire import (
    BAD_REQUEST,
    encode_count,
    encode_item,
    encode_position,
    position_run_bytes,
)

#: the items at positions 0.. of a small tracker: (SEQNUM, VALUE)
ITEMS = [(2, "c"), (0, "a"), (3, "d"), (1, "b")]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (offsets, any order, duplicates allowed)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# ---------------------------------------------------------------------- Registration


@given(n=st.integers(0, 10**6), cuts=st.lists(st.integers(0, 64), max_size=6))
def test_registration_reads_n_in_any_pieces(n: int, cuts: list[int]) -> None:
    for data in (encode_count(n), pickle.dumps(n, protocol=0), pickle.dumps(n, protocol=4)):
        reg = Registration(max_items=10**6)
        got = [reg.feed(piece) for piece in pieces(data, cuts)]
        assert got[-1] == n == reg.n
        assert all(g is None for g in got[:-1])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (encode_count(11), "more than the limit of 10"),
        (BAD_REQUEST, "Bad request"),
        (pickle.dumps("4", protocol=0), "integer"),
        (b"\xffnot a pickle", "refused the tracker's REGISTER answer"),
        (pickle.dumps(print, protocol=2), "refused the tracker's REGISTER answer"),
    ],
)
def test_registration_refuses(answer: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        Registration(max_items=10).feed(answer)
    fetch = Fetch(ClientConfig())  # not registered yet: the REGISTER answer's words
    assert re.search(message, str(fetch.client_error(caught.value)))


# ----------------------------------------------------------------------------- Probe


def answers(*positions: int) -> bytes:
    return b"".join(encode_item(*ITEMS[p]) for p in positions)


def test_the_probe_asks_for_two_positions_in_one_write() -> None:
    probe = Probe(Collection(4))
    assert probe.request() == encode_position(0) + encode_position(1)
    assert (probe.mode, probe.done, probe.waiting_for) == (UNKNOWN, False, 0)


@given(cuts=st.lists(st.integers(0, 64), max_size=6))
def test_two_answers_mean_a_pipelining_tracker(cuts: list[int]) -> None:
    coll = Collection(4)
    probe = Probe(coll)
    for piece in pieces(answers(0, 1), cuts):
        assert not probe.done
        probe.feed(piece)
    assert (probe.mode, probe.done) == (PERSISTENT, True)
    assert probe.finish() is True
    assert coll.answered == 2 and coll.take(4) == [2, 3]


def test_one_answer_then_eof_means_a_reference_style_tracker() -> None:
    coll = Collection(4)
    probe = Probe(coll)
    probe.feed(answers(0))
    assert (probe.mode, probe.done, probe.waiting_for) == (UNKNOWN, False, 1)
    assert probe.finish() is True  # the connection answered
    assert probe.mode == REFERENCE
    assert coll.answered == 1 and coll.take(4) == [1, 2, 3]  # position 1 given back


def test_bad_request_first_means_a_reference_style_tracker() -> None:
    """A tracker that reads one request per connection and refuses two back to back."""
    coll = Collection(4)
    probe = Probe(coll)
    probe.feed(BAD_REQUEST)
    assert (probe.mode, probe.done) == (REFERENCE, True)
    assert probe.finish() is True
    assert coll.answered == 0 and coll.take(4) == [0, 1, 2, 3]


def test_eof_without_an_answer_learns_nothing_and_counts_as_silent() -> None:
    coll = Collection(4)
    probe = Probe(coll)
    assert probe.finish() is False
    assert probe.mode == UNKNOWN and coll.take(4) == [0, 1, 2, 3]


def test_a_probe_of_a_complete_collection_asks_nothing() -> None:
    probe = Probe(Collection(0))
    assert (probe.request(), probe.done) == (b"", True)
    assert probe.finish() is None  # nothing asked: the connection does not count


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (answers(0, 1, 2), "more answers than requests"),
        (encode_item(9, "x"), "range"),
        (b"\xff", "refused an answer"),
        (answers(0) + encode_item(2, "z"), "different|conflict"),
    ],
)
def test_the_probe_refuses(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        Probe(Collection(4)).feed(data)
    fetch = Fetch(ClientConfig())
    fetch.registered(4)
    assert re.search(message, str(fetch.client_error(caught.value)))


# -------------------------------------------------------------------- PipelineReader


def test_the_pipeline_asks_runs_up_to_its_window_and_refills_at_half() -> None:
    coll = Collection(10)
    reader = PipelineReader(coll, window=4)
    assert reader.requests() == position_run_bytes(0, 4)
    assert (reader.outstanding, reader.waiting_for, reader.wants_more) == (4, 0, False)
    reader.feed(answers(0, 1))  # two of the four answered: half the window is free
    assert (reader.outstanding, reader.waiting_for, reader.wants_more) == (2, 2, True)
    assert reader.requests() == position_run_bytes(4, 2)
    assert reader.requests() == b""  # the window is full


@given(cuts=st.lists(st.integers(0, 200), max_size=8), protocol=st.sampled_from([0, 2, 4]))
def test_the_pipeline_places_answers_of_any_shape_cut_anywhere(
    cuts: list[int], protocol: int
) -> None:
    coll = Collection(4)
    reader = PipelineReader(coll, window=8)
    reader.requests()
    # ours (the fast path) and a stock pickler's (the restricted decoder), mixed
    data = encode_item(*ITEMS[0]) + pickle.dumps(ITEMS[1], protocol=protocol) + answers(2, 3)
    for piece in pieces(data, cuts):
        reader.feed(piece)
    assert coll.complete and reader.answered == 4 and reader.outstanding == 0
    assert coll.message() == "a b c d"


def test_a_dropped_pipeline_gives_back_what_it_did_not_get() -> None:
    coll = Collection(6)
    reader = PipelineReader(coll, window=6)
    reader.requests()
    reader.feed(answers(0) + encode_item(*ITEMS[1])[:5])  # one whole, one cut
    assert reader.give_back() == 5
    assert (reader.outstanding, reader.given_back) == (0, 5)
    assert coll.take(6) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (answers(0, 1) + answers(2), RemoteProtocolError),  # three answers to two requests
        (b"\xff", DecodeError),
        (answers(0) + encode_item(2, "z"), CollectionError),  # SEQNUM 2 is "c", not "z"
    ],
)
def test_the_pipeline_refuses(data: bytes, error: type[Exception]) -> None:
    reader = PipelineReader(Collection(4), window=2)
    reader.requests()
    with pytest.raises(error):
        reader.feed(data)


# ------------------------------------------------------------------------------ Fetch


def test_a_session_goes_register_probe_then_oneshot_for_a_reference_style_tracker() -> None:
    fetch = Fetch(ClientConfig())
    assert fetch.phase == REGISTER_PHASE
    coll = fetch.registered(4)
    assert fetch.phase == PROBE
    probe = fetch.probe()
    probe.feed(answers(0))
    fetch.probe_finished(probe)  # one answer, then EOF
    assert (fetch.mode, fetch.phase) == (REFERENCE, ONESHOT)
    for position in coll.take(4):
        fetch.place_one(position, ITEMS[position])
    assert fetch.phase == DONE
    result = fetch.result()
    assert (result.message, result.n, result.reference_style) == ("a b c d", 4, True)


def test_a_session_turns_to_the_pipeline_for_a_tracker_that_answers_both() -> None:
    fetch = Fetch(ClientConfig())
    fetch.registered(4)
    probe = fetch.probe()
    probe.feed(answers(0, 1))
    fetch.probe_finished(probe)
    assert (fetch.mode, fetch.phase) == (PERSISTENT, PIPELINE)


def test_silent_connections_in_a_row_end_the_run_and_an_answer_resets_the_count() -> None:
    fetch = Fetch(ClientConfig(host="::1", port=7, max_retries=2))
    fetch.count_connection(answered=False)
    fetch.count_connection(answered=False)
    fetch.count_connection(answered=True)  # starts over
    fetch.count_connection(answered=False)
    fetch.count_connection(answered=False)
    with pytest.raises(ClientError, match=r"tracker at \[::1\]:7 closed 3 connections in a row"):
        fetch.count_connection(answered=False)


def test_connection_failures_back_off_then_give_up() -> None:
    fetch = Fetch(ClientConfig(max_retries=3))
    error = ClientError("cannot connect")
    assert [fetch.retry_delay(error) for _ in range(3)] == [0.1, 0.2, 0.4]
    with pytest.raises(ClientError, match="cannot connect"):
        fetch.retry_delay(error)


def test_the_one_line_says_where_the_tracker_broke_the_protocol() -> None:
    fetch = Fetch(ClientConfig())
    refused = DecodeError("refused opcode GLOBAL", 2)
    assert str(fetch.client_error(refused)) == (
        "refused the tracker's REGISTER answer: refused opcode GLOBAL at byte 2"
    )
    fetch.registered(3)
    assert str(fetch.client_error(refused)) == (
        "refused an answer from the tracker: refused opcode GLOBAL at byte 2"
    )
    assert str(fetch.client_error(RemoteProtocolError("SEQNUM 9 is out of range"))) == (
        "SEQNUM 9 is out of range"
    )


def test_a_waiting_error_names_the_wait_and_the_address() -> None:
    assert str(waiting_error(2.5, "item 3", "127.0.0.1:7777")) == (
        "timed out after 2.5 s waiting for item 3 from 127.0.0.1:7777"
    )


def test_the_pipeline_counts_the_values_bytes_exactly() -> None:
    coll = Collection(4)
    reader = PipelineReader(coll, window=8)
    reader.requests()
    reader.feed(encode_item(*ITEMS[0]) + pickle.dumps(ITEMS[1], protocol=2) + answers(2, 3))
    assert coll.value_bytes == 4  # "c", "a", "d", "b": the fast path and the decoder's
