"""Tests for the client's collection state machine (no sockets)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.collection import Collection, CollectionError, is_run
from cs457p2p.core.database import DEFAULT_ITEMS, DEFAULT_MESSAGE


def test_take_in_order_and_queued() -> None:
    c = Collection(5)
    assert c.queued == 5
    assert c.take(2) == [0, 1]
    assert c.queued == 3
    assert c.take(10) == [2, 3, 4]
    assert c.queued == 0
    assert c.take(3) == []
    assert c.take(0) == []


def test_take_zero_keeps_queue() -> None:
    c = Collection(3)
    assert c.take(0) == []
    assert c.queued == 3
    assert c.take(3) == [0, 1, 2]


def test_give_back_goes_first_in_order() -> None:
    c = Collection(6)
    assert c.take(4) == [0, 1, 2, 3]
    c.give_back([3, 1])
    assert c.queued == 4
    assert c.take(3) == [3, 1, 4]
    assert c.take(5) == [5]


def test_give_back_skips_answered_positions() -> None:
    c = Collection(4)
    assert c.take(3) == [0, 1, 2]
    c.place(1, 2, "b")
    c.give_back([0, 1, 2])
    assert c.queued == 3
    assert c.take(10) == [0, 2, 3]


def test_place_by_seqnum_and_message_order() -> None:
    c = Collection(4)
    c.take(4)
    # position i holds SEQNUM (i + 2) % 4
    c.place(0, 2, "three")
    c.place(1, 3, "four")
    assert not c.complete
    assert c.missing() == [0, 1]
    c.place(2, 0, "one")
    c.place(3, 1, "two")
    assert c.complete
    assert c.answered == 4 and c.filled == 4
    assert c.missing() == []
    assert c.message() == "one two three four"


def test_default_database_assembles() -> None:
    c = Collection(len(DEFAULT_ITEMS))
    for pos in c.take(100):
        seq, value = DEFAULT_ITEMS[pos]
        c.place(pos, seq, value)
    assert c.message() == DEFAULT_MESSAGE


def test_values_joined_by_single_spaces_verbatim() -> None:
    c = Collection(3)
    c.place(0, 1, "b ")
    c.place(1, 0, "")
    c.place(2, 2, "c")
    assert c.message() == " b  c"


def test_incomplete_message_raises() -> None:
    c = Collection(3)
    c.place(0, 0, "a")
    c.place(1, 1, "b")
    with pytest.raises(CollectionError):
        c.message()
    assert not c.complete


def test_duplicate_seqnum_different_value_is_error() -> None:
    c = Collection(3)
    c.place(0, 1, "a")
    with pytest.raises(CollectionError, match="SEQNUM 1"):
        c.place(1, 1, "b")
    # the conflicting answer did not count
    assert c.answered == 1 and c.filled == 1


def test_same_position_answered_twice_identically_is_ok() -> None:
    c = Collection(2)
    c.place(0, 1, "b")
    c.place(0, 1, "b")
    assert c.answered == 1 and c.filled == 1
    assert not c.complete
    c.place(1, 0, "a")
    assert c.complete
    assert c.message() == "a b"


@pytest.mark.parametrize(("seq", "value"), [(1, "B"), (0, "b"), (0, "a")])
def test_same_position_answered_differently_is_error(seq: int, value: str) -> None:
    c = Collection(2)
    c.place(0, 1, "b")
    with pytest.raises(CollectionError, match="position 0"):
        c.place(0, seq, value)


def test_duplicate_seqnum_same_value_names_missing_seqnum() -> None:
    c = Collection(3)
    c.place(0, 0, "a")
    c.place(1, 2, "c")
    c.place(2, 2, "c")  # SEQNUM 2 served twice, SEQNUM 1 never
    assert c.complete
    assert c.missing() == [1]
    with pytest.raises(CollectionError, match=r"missing: 1\b"):
        c.message()


def test_many_missing_seqnums_are_abbreviated() -> None:
    c = Collection(8)
    for pos in range(8):
        c.place(pos, 0, "same")
    with pytest.raises(CollectionError) as ei:
        c.message()
    text = str(ei.value)
    assert "7 SEQNUM" in text and "1, 2, 3, 4, 5, ..." in text


def test_n_zero() -> None:
    c = Collection(0)
    assert c.complete
    assert c.take(5) == []
    assert c.message() == ""


@pytest.mark.parametrize("n", [-1, True, 1.0, "3", None])
def test_bad_n_rejected(n: object) -> None:
    with pytest.raises(ValueError):
        Collection(n)  # type: ignore[arg-type]


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[list[str], list[int], list[int], list[bool]]:
    n = draw(st.integers(0, 25))
    words = draw(st.lists(st.text(min_size=1, max_size=5), min_size=n, max_size=n))
    perm = draw(st.permutations(list(range(n))))  # position -> SEQNUM
    batches = draw(st.lists(st.integers(1, 6), min_size=1, max_size=40))
    lost = draw(st.lists(st.booleans(), min_size=1, max_size=60))
    return words, perm, batches, lost


@settings(max_examples=200, deadline=None)
@given(scenario=_scenario(), rnd=st.randoms(use_true_random=False))
def test_random_order_with_give_backs_assembles(
    scenario: tuple[list[str], list[int], list[int], list[bool]], rnd: random.Random
) -> None:
    words, perm, batches, lost = scenario
    n = len(words)
    c = Collection(n)
    answered: set[int] = set()
    step = 0
    rounds = 0
    while not c.complete:
        rounds += 1
        assert rounds < 10_000
        k = batches[rounds % len(batches)]
        taken = c.take(k)
        assert taken, "positions remain unanswered but none are queued"
        assert not set(taken) & answered
        assert len(set(taken)) == len(taken)
        rnd.shuffle(taken)  # answers arrive in any order
        back = []
        for pos in taken:
            step += 1
            if lost[step % len(lost)] and rounds < 200:
                back.append(pos)
                continue
            seq = perm[pos]
            c.place(pos, seq, words[seq])
            answered.add(pos)
            if rnd.random() < 0.1:  # a duplicate answer for the same position
                c.place(pos, seq, words[seq])
        c.give_back(back)
        assert c.queued + len(answered) == n
    assert answered == set(range(n))
    assert c.missing() == []
    assert c.message() == " ".join(words)


# ----------------------------------------------------------------- runs (fast path)


def test_take_runs_hands_out_consecutive_ranges() -> None:
    c = Collection(10)
    assert c.take_runs(4) == [(0, 4)]
    assert c.take_runs(100) == [(4, 6)]
    assert c.take_runs(1) == []


def test_take_runs_skips_positions_answered_while_queued() -> None:
    c = Collection(10)
    taken = c.take(10)
    c.give_back(taken)
    c.place(3, 3, "x")
    c.place(4, 4, "y")
    assert c.take_runs(100) == [(0, 3), (5, 5)]


def test_place_run_assembles_like_place() -> None:
    c = Collection(4)
    c.take_runs(4)
    c.place_run(0, [2, 0, 3, 1], [b"c", b"a", b"d", b"b"])
    assert c.complete and c.message() == "a b c d"


def test_place_run_detects_conflicts_and_duplicates() -> None:
    c = Collection(3)
    with pytest.raises(CollectionError, match="different values"):
        c.place_run(0, [1, 1], [b"x", b"y"])
    d = Collection(2)
    d.place_run(0, [1, 1], [b"x", b"x"])
    with pytest.raises(CollectionError, match="missing"):
        d.message()


def test_place_run_over_answered_positions_checks_consistency() -> None:
    c = Collection(3)
    c.place(1, 2, "z")
    c.place_run(0, [0, 2, 1], [b"a", b"z", b"b"])  # position 1 again, same item: fine
    assert c.message() == "a b z"
    with pytest.raises(CollectionError, match="answered twice"):
        c.place_run(1, [0], [b"a"])


def test_invalid_utf8_value_is_refused_when_assembling() -> None:
    c = Collection(2)
    c.place_run(0, [0, 1], [b"ok", b"\xff"])
    with pytest.raises(CollectionError, match="UTF-8"):
        c.message()


def test_the_values_may_add_up_to_max_bytes_and_no_more() -> None:
    coll = Collection(3, max_bytes=10)
    coll.place(0, 0, "abcd")
    coll.place_run(1, [1], [b"efgh"])
    with pytest.raises(CollectionError, match="more than 10 bytes"):
        coll.place(2, 2, "ijk")


def test_is_run_needs_every_position_in_order() -> None:
    assert is_run([5]) and is_run([5, 6, 7])
    assert not is_run([]) and not is_run([7, 6, 5])
    assert not is_run([47, *range(32, 40), *range(56, 62)])  # (ends 14 after it starts)
    assert not is_run([2, 5, 4])


def test_answered_positions_given_back_are_not_queued_again() -> None:
    coll = Collection(4)
    taken = coll.take(4)
    coll.place(0, 0, "a")
    coll.give_back(taken)
    assert coll.queued == 3 and coll.take(4) == [1, 2, 3]


def test_take_batch_is_a_range_for_one_run_else_a_list_in_queue_order() -> None:
    c = Collection(10)
    assert c.take_batch(4) == range(4)
    c.give_back([2, 3])
    c.give_back([0])
    assert c.take_batch(3) == [0, 2, 3]
