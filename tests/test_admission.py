"""cs457p2p.core.admission: one host cannot keep another out, whatever it holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.admission import Admission, Verdict


def test_within_the_limits_every_connection_is_taken() -> None:
    a = Admission(max_connections=4, per_address=3)
    for host in ("a", "a", "b", "c"):
        assert a.verdict(host) == Verdict(True)
        a.opened(host)
    assert (a.open, a.counts) == (4, {"a": 2, "b": 1, "c": 1})


def test_one_address_gets_at_most_its_share() -> None:
    a = Admission(max_connections=100, per_address=2)
    a.opened("a")
    a.opened("a")
    assert a.verdict("a") == Verdict(False, why="per-address")
    assert a.verdict("b").accept


def test_when_full_the_busiest_address_gives_way_to_another() -> None:
    a = Admission(max_connections=4, per_address=10)
    for _ in range(4):
        a.opened("hog")
    assert a.verdict("newcomer") == Verdict(True, evict="hog")
    assert a.verdict("hog") == Verdict(False, why="full")  # no gain in taking its own


def test_fair_shares_are_kept_when_full() -> None:
    a = Admission(max_connections=4, per_address=4)
    for host in ("a", "a", "b", "b"):
        a.opened(host)
    assert a.verdict("c") == Verdict(True, evict="a")  # 2 > 0 + 1
    a.opened("c")  # (after a gave one up)
    a.closed("a")
    assert a.verdict("c") == Verdict(False, why="full")  # 2 is not more than 1 + 1


def test_closing_gives_the_slot_back() -> None:
    a = Admission(max_connections=1, per_address=1)
    a.opened("a")
    a.closed("a")
    assert (a.open, a.counts) == (0, {})
    assert a.verdict("a").accept


@settings(max_examples=300, deadline=None)
@given(arrivals=st.lists(st.sampled_from("abcde"), max_size=200))
def test_an_address_below_its_share_is_always_served(arrivals: list[str]) -> None:
    """Connections that stay open forever, arriving in any order: whoever asks while it
    holds fewer than the busiest address minus one gets in, so no address is kept out
    while another holds two more than it."""
    a = Admission(max_connections=10, per_address=10)
    for host in arrivals:
        v = a.verdict(host)
        mine = a.counts.get(host, 0)
        if not v.accept:
            assert a.open == 10 and max(a.counts.values()) <= mine + 1
            continue
        if v.evict is not None:
            assert a.counts[v.evict] > mine + 1
            a.closed(v.evict)
        a.opened(host)
        assert a.open <= 10 and sum(a.counts.values()) == a.open


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Admission(0, 1)
