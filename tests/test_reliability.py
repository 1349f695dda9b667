"""The UDP attribution rules and the RTO estimator, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.collection import Collection, CollectionError
from cs457p2p.core.errors import RemoteProtocolError
from cs457p2p.core.reliability import Channel, RttEstimator

# A database of 6 items: position p holds SEQNUM STORED[p].
STORED = [3, 0, 5, 1, 4, 2]
WORDS = ["a", "b", "c", "d", "e", "f"]


def reply(*positions: int) -> tuple[list[int], list[bytes]]:
    """The SEQNUMs and UTF-8 VALUEs the tracker answers for ``positions``."""
    seqs = [STORED[p] for p in positions]
    return seqs, [WORDS[s].encode() for s in seqs]


def test_reply_places_items_in_order_of_the_attempt() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(3), now=0.0)
    assert ch.on_reply(coll, *reply(0, 1, 2)) == []
    assert coll.answered == 3
    assert coll.is_answered(0) and coll.is_answered(2) and not coll.is_answered(3)


def test_prefix_reply_returns_the_unanswered_rest() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(4), now=0.0)
    assert ch.on_reply(coll, *reply(0, 1)) == [2, 3]


def test_duplicate_of_an_answered_reply_is_not_taken_for_the_next_attempt() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(2), now=0.0)
    first_reply = reply(0, 1)
    assert ch.on_reply(coll, *first_reply) == []
    ch.start(coll.take(2), now=1.0)  # positions 2 and 3
    # A late duplicate of the first reply reaches the socket: it must be discarded,
    # not placed at positions 2 and 3.
    assert ch.on_reply(coll, *first_reply) is None
    assert not coll.is_answered(2) and not coll.is_answered(3)
    assert ch.on_reply(coll, *reply(2, 3)) == []
    assert coll.is_answered(3)


def test_second_copy_of_the_current_reply_is_ignored() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(2), now=0.0)
    assert ch.on_reply(coll, *reply(0, 1)) == []
    assert ch.on_reply(coll, *reply(0, 1)) is None
    assert coll.answered == 2


def test_a_second_different_reply_to_an_answered_attempt_is_ignored() -> None:
    # (one request, one reply: another reply to it, not a copy, is a stray or a lie)
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(2), now=0.0)
    assert ch.on_reply(coll, *reply(0, 1)) == []
    assert ch.on_reply(coll, *reply(4, 5)) is None
    assert coll.answered == 2 and not coll.is_answered(4)


def test_retired_channel_gives_positions_back_and_still_accepts_its_late_reply() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(2), now=0.0)
    back = ch.timed_out()
    assert back == [0, 1] and ch.retired and not ch.can_send
    coll.give_back(back)
    # The retry elsewhere answers position 0 first...
    other = Channel()
    other.start(coll.take(1), now=0.5)
    assert other.on_reply(coll, *reply(0)) == []
    # ...then the original late reply arrives: attribution is still certain, it is
    # placed (consistent with what is known) and nothing is given back twice.
    assert ch.on_reply(coll, *reply(0, 1)) == []
    assert coll.is_answered(1)
    assert coll.take(6) == [2, 3, 4, 5]


def test_late_reply_contradicting_what_is_known_is_an_error() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(1), now=0.0)
    coll.give_back(ch.timed_out())
    other = Channel()
    other.start(coll.take(1), now=0.1)
    other.on_reply(coll, *reply(0))
    with pytest.raises(CollectionError):
        ch.on_reply(coll, [STORED[0]], [b"not the same value"])


def test_more_answers_than_requests_is_a_protocol_error() -> None:
    coll = Collection(6)
    ch = Channel()
    ch.start(coll.take(1), now=0.0)
    with pytest.raises(RemoteProtocolError):
        ch.on_reply(coll, *reply(0, 1))


def test_channel_sends_again_only_after_an_answer() -> None:
    coll = Collection(6)
    ch = Channel()
    assert ch.can_send
    ch.start(coll.take(1), now=0.0)
    assert not ch.can_send
    ch.on_reply(coll, *reply(0))
    assert ch.can_send


def test_rto_follows_samples_and_backs_off() -> None:
    est = RttEstimator(initial=0.1, min_rto=0.001, max_rto=1.0)
    assert est.rto == pytest.approx(0.1)
    est.sample(0.010)
    assert est.rto == pytest.approx(0.010 + 4 * 0.005)
    for _ in range(3):
        est.sample(0.010)
    steady = est.rto
    assert steady < 0.030
    est.timed_out()
    assert est.rto == pytest.approx(2 * steady)
    for _ in range(10):
        est.timed_out()
    assert est.rto <= 1.0
    est.sample(0.010)
    assert est.rto < 0.030  # a fresh sample ends the backoff


def test_rto_never_below_minimum() -> None:
    est = RttEstimator(initial=0.1, min_rto=0.02)
    for _ in range(20):
        est.sample(0.0001)
    assert est.rto == pytest.approx(0.02)


def test_a_reply_to_scattered_positions_places_each_at_its_own() -> None:
    # (first and last 2 apart, as for 3 consecutive positions: they are not consecutive)
    coll = Collection(6)
    ch = Channel()
    ch.start([2, 5, 4], now=0.0)
    assert ch.on_reply(coll, *reply(2, 5, 4)) == []
    assert [coll.is_answered(p) for p in range(6)] == [False, False, True, False, True, True]


@given(st.permutations(range(6)), st.integers(1, 6), st.integers(0, 6))
def test_any_attempt_is_placed_where_it_asked(order: list[int], k: int, got: int) -> None:
    positions, got = order[:k], min(got, k)
    coll = Collection(6)
    ch = Channel()
    ch.start(positions, now=0.0)
    left = ch.on_reply(coll, *reply(*positions[:got]))
    if got:
        assert left == positions[got:]
    answered = {p for p in range(6) if coll.is_answered(p)}
    assert answered == set(positions[:got])
    for p in answered:
        assert coll.has(STORED[p])
