"""cs457p2p.core.ping_rounds: when the tracker PINGs its ring, with the time passed in
(no sockets, no clock, no event loop)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.database import Database
from cs457p2p.core.ping_rounds import PING_INTERVAL, PING_TIMEOUT, PingRounds
from cs457p2p.core.ring import Ring

DB = Database([(1, "a"), (0, "b")])


def ring_of(*handles: str) -> Ring:
    ring = Ring(DB)
    for k, handle in enumerate(handles):
        ring.join(handle, f"127.0.0.{k + 2}", 9400 + k, 0.0)
    ring.outbox.clear()
    return ring


def take(pings: PingRounds) -> list[str]:
    out, pings.outbox = pings.outbox, []
    return [handle for handle, _ in out]


def test_the_defaults_are_the_trackers() -> None:
    pings = PingRounds(ring_of())
    assert (pings.interval, pings.timeout) == (PING_INTERVAL, PING_TIMEOUT) == (20.0, 5.0)
    assert pings.next_timer() is None  # not started: nothing to do
    pings.on_timer(1e9)
    assert pings.outbox == []


def test_a_round_pings_every_peer_in_ring_order_after_one_interval() -> None:
    ring = ring_of("alice", "bob", "carol")
    pings = PingRounds(ring, interval=10.0, timeout=2.0)
    pings.start(100.0)
    assert pings.next_timer() == 110.0
    pings.on_timer(109.9)  # early: nothing
    assert pings.outbox == [] and not pings.in_round
    pings.on_timer(110.0)
    assert pings.outbox == [
        ("alice", ("127.0.0.2", 9400)),
        ("bob", ("127.0.0.3", 9401)),
        ("carol", ("127.0.0.4", 9402)),
    ]
    assert pings.in_round and pings.last_round == 110.0
    # the round waits for its PINGs, at most interval + timeout
    assert pings.next_timer() == 122.0


def test_rounds_do_not_overlap_the_next_starts_an_interval_after_the_last_ended() -> None:
    pings = PingRounds(ring_of("alice", "bob"), interval=10.0, timeout=2.0)
    pings.start(0.0)
    pings.on_timer(10.0)
    assert take(pings) == ["alice", "bob"]
    pings.on_timer(15.0)  # still open: no second round
    assert pings.outbox == []
    pings.ping_ended("alice", 11.0)
    assert pings.in_round
    pings.ping_ended("nobody", 11.5)  # (a PING not of the round)
    pings.ping_ended("bob", 13.0)
    assert not pings.in_round and pings.round_seconds == 3.0
    assert pings.next_timer() == 23.0
    pings.on_timer(22.9)
    assert pings.outbox == []
    pings.on_timer(23.0)
    assert take(pings) == ["alice", "bob"] and pings.last_round == 23.0


def test_a_round_that_cannot_end_ends_at_interval_plus_timeout() -> None:
    ring = ring_of("alice", "bob")
    pings = PingRounds(ring, interval=10.0, timeout=2.0)
    pings.start(0.0)
    pings.on_timer(10.0)
    take(pings)
    pings.ping_ended("alice", 10.5)  # bob's PING never ends (merged, or bob left)
    pings.on_timer(21.9)
    assert pings.in_round
    pings.on_timer(22.0)
    assert not pings.in_round and pings.round_seconds == 12.0
    assert pings.outbox == [] and pings.next_timer() == 32.0
    pings.ping_ended("bob", 23.0)  # too late for the round that ended: nothing changes
    assert pings.next_timer() == 32.0


def test_an_empty_ring_is_tried_again_an_interval_later() -> None:
    ring = ring_of()
    pings = PingRounds(ring, interval=5.0, timeout=1.0)
    pings.start(0.0)
    pings.on_timer(5.0)
    assert pings.outbox == [] and pings.last_round is None and pings.next_timer() == 10.0
    ring.join("alice", "127.0.0.2", 9400, 7.0)
    pings.on_timer(10.0)
    assert take(pings) == ["alice"]


def test_a_round_pings_who_is_in_the_ring_when_it_starts() -> None:
    ring = ring_of("alice", "bob")
    pings = PingRounds(ring, interval=1.0, timeout=1.0)
    pings.start(0.0)
    ring.ping_result("alice", False, 0.5)  # pruned before the round
    pings.on_timer(1.0)
    assert take(pings) == ["bob"]


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        PingRounds(ring_of(), interval=-1.0)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 30.0), st.booleans(), st.integers(0, 3)), min_size=1, max_size=60
    ),
    st.floats(0.5, 10.0),
    st.floats(0.1, 5.0),
)
def test_rounds_never_overlap_and_keep_their_spacing(
    steps: list[tuple[float, bool, int]], interval: float, timeout: float
) -> None:
    """Driven any way (woken early, late, PINGs ending in any order), a round starts only
    when none is open, at least ``interval`` after the last one ended; an open round
    never outlives ``interval + timeout``."""
    handles = ["a", "b", "c", "d"]
    pings = PingRounds(ring_of(*handles), interval, timeout)
    now = 0.0
    pings.start(now)
    ended_at: float | None = 0.0
    started_at: float | None = None
    for advance, wake, k in steps:
        now += advance
        if wake:
            at = pings.next_timer()
            assert at is not None
            now = max(now, at)
            was_open = pings.in_round
            pings.on_timer(now)
            if pings.outbox:
                assert not was_open and ended_at is not None
                assert now >= ended_at + interval
                assert sorted(take(pings)) == handles
                started_at, ended_at = now, None
            if was_open and not pings.in_round:
                assert started_at is not None and now >= started_at + interval + timeout
                ended_at = now
        elif pings.in_round:
            pings.ping_ended(handles[k], now)
            if not pings.in_round:
                ended_at = now
        if pings.in_round:
            assert started_at is not None
            assert pings.next_timer() == started_at + interval + timeout
