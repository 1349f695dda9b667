"""The memo of short pickles answers exactly as the restricted decoder does: the same
value and end, or the same error, whatever comes before or after, seen before or not."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.decoder import DecodeError, NeedData, TooLarge, decode_prefix
from cs457p2p.core.pickle_memo import PickleMemo
from pickles import PROTOCOLS

scalars = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    st.sampled_from(["QUERY", "PING", "a.b", ".", "x.y."]),
)
values = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3))


def outcome(fn: Any, buf: bytes, start: int, max_size: int) -> tuple[str, Any]:
    try:
        got = fn(buf, start, max_size=max_size)
    except DecodeError as e:
        return (type(e).__name__, None)
    if isinstance(got, NeedData):
        return ("incomplete", got.needed)
    value, end = got
    return ("ok", (repr(value), end))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(values, st.sampled_from(PROTOCOLS)), min_size=1, max_size=6),
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.integers(0, 12),
    st.sampled_from([1024, 1 << 20]),
)
def test_the_same_answers_as_the_decoder(
    messages: list[tuple[Any, int]], before: bytes, after: bytes, cut: int, max_size: int
) -> None:
    memo = PickleMemo(entries=8)
    stream = b"".join(pickle.dumps(v, protocol=p) for v, p in messages)
    for buf in (stream + after, before + stream, stream[: max(0, len(stream) - cut)]):
        for _ in range(2):  # the second time, from the memo
            pos = 0
            while pos < len(buf):
                got = outcome(memo.decode_prefix, buf, pos, max_size)
                assert got == outcome(decode_prefix, buf, pos, max_size)
                if got[0] != "ok":
                    break
                pos = got[1][1]


def test_repeats_come_from_the_memo_and_lists_are_never_shared() -> None:
    memo = PickleMemo()
    query = pickle.dumps(("QUERY", 5), protocol=0)
    assert memo.decode_prefix(query + query, 0, max_size=1024) == (("QUERY", 5), len(query))
    assert len(memo) == 1
    assert memo.decode_prefix(query + query, len(query), max_size=1024)[0] == ("QUERY", 5)
    assert len(memo) == 1
    listed = pickle.dumps(["QUERY", 5], protocol=2)
    a = memo.decode_prefix(listed, 0, max_size=1024)[0]
    b = memo.decode_prefix(listed, 0, max_size=1024)[0]
    assert a == b and a is not b and len(memo) == 1


def test_a_small_size_limit_is_never_skipped() -> None:
    """Under 16 times the longest pickle kept, the decoder reads every time."""
    memo = PickleMemo(longest=64)
    text = pickle.dumps("y" * 40, protocol=2)
    memo.decode_prefix(text, 0, max_size=1024)
    with pytest.raises(TooLarge):
        memo.decode_prefix(text, 0, max_size=20)


def test_a_flood_of_distinct_pickles_is_forgotten_not_kept() -> None:
    memo = PickleMemo(entries=100)
    for i in range(1000):
        memo.decode_prefix(pickle.dumps(("QUERY", i), protocol=2), 0, max_size=1024)
        assert len(memo) <= 100
