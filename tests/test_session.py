"""The sans-I/O parts of a client session, byte by byte: :class:`Registration` (the
REGISTER answer) and :class:`Probe` (what the first two answers say about the tracker).
The blocking and asyncio drivers around them are tested against real trackers in
``test_client.py``."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.collection import Collection
from cs457p2p.protocol import BAD_REQUEST, encode_count, encode_item, encode_position
from cs457p2p.session import (
    PERSISTENT,
    REFERENCE,
    UNKNOWN,
    ClientError,
    Probe,
    Registration,
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
    with pytest.raises(ClientError, match=message):
        Registration(max_items=10).feed(answer)


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
    with pytest.raises(ClientError, match=message):
        Probe(Collection(4)).feed(data)
