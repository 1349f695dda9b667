"""cs457p2p.core.outbound: when the tracker's connections to its peers start, without
sockets or clocks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.outbound import NOTICE, PING, Call, Outbound
from cs457p2p.core.wire2 import UpdateNbr

A = ("127.0.0.2", 9401)
B = ("127.0.0.3", 9402)


def nbr(k: int) -> UpdateNbr:
    return UpdateNbr(f"n{k}", "127.0.0.9", 9000 + k)


def test_notices_to_one_peer_are_coalesced_the_latest_wins() -> None:
    out = Outbound(gap=0.2)
    out.notice("alice", A, nbr(1), 0.0)
    [first] = out.due(0.0)
    assert first == Call(NOTICE, "alice", A, nbr(1))
    for k in range(2, 3000):  # a flood of re-registrations while the first is open
        out.notice("alice", A, nbr(k), 0.001 * k)
    assert out.due(3.0) == []  # one connection to a peer at a time
    out.done(first, 3.0)
    assert out.due(3.0) == [Call(NOTICE, "alice", A, nbr(2999))]
    assert out.started == 2 and out.coalesced == 2997


def test_two_connections_to_a_peer_start_at_least_gap_apart() -> None:
    out = Outbound(gap=0.2)
    out.notice("alice", A, nbr(1), 0.0)
    [call] = out.due(0.0)
    out.done(call, 0.01)
    out.notice("alice", A, nbr(2), 0.01)
    assert out.due(0.1) == [] and out.wake_at(0.1) == 0.2
    assert len(out.due(0.2)) == 1


def test_a_ping_waits_behind_a_notice_and_is_never_twice() -> None:
    out = Outbound()
    out.notice("alice", A, nbr(1), 0.0)
    out.ping("alice", A, 0.0)
    out.ping("alice", A, 0.0)
    [notice] = out.due(0.0)
    out.done(notice, 0.0)
    [ping] = out.due(1.0)
    assert ping == Call(PING, "alice", A) and out.pings_merged == 1
    out.ping("alice", A, 1.0)  # (one is open: merged with it)
    out.done(ping, 1.1)
    assert out.due(2.0) == [] and out.pings_merged == 2


def test_a_peer_that_left_is_sent_nothing_more() -> None:
    out = Outbound()
    out.notice("alice", A, nbr(1), 0.0)
    out.notice("bob", B, nbr(2), 0.0)
    out.forget("alice")
    assert out.due(0.0) == [Call(NOTICE, "bob", B, nbr(2))]


def test_open_connections_and_starts_per_second_are_capped() -> None:
    out = Outbound(max_open=3, rate=10.0, burst=5, gap=0.0)
    for k in range(20):
        out.ping(f"p{k}", ("127.0.0.1", 9000 + k), 0.0)
    calls = out.due(0.0)
    assert len(calls) == 3 and out.wake_at(0.0) is None  # (a done() wakes it)
    for call in calls:
        out.done(call, 0.0)
    assert len(out.due(0.0)) == 2  # the burst of 5 is spent
    assert out.wake_at(0.0) == 0.1  # one more token in 1/rate s


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["notice", "notice", "ping", "done", "forget", "tick"]),
            st.integers(0, 5),
            st.floats(0.0, 0.05),
        ),
        max_size=300,
    )
)
def test_no_sequence_of_messages_opens_more_than_the_limits(
    ops: list[tuple[str, int, float]],
) -> None:
    """Whatever comes, in any order: never more than ``max_open`` connections open, one
    per peer, starts per peer ``gap`` apart, at most ``burst + rate * t`` starts in any
    ``t`` seconds; and the last notice asked for a peer that stays is the last sent."""
    out = Outbound(max_open=4, rate=20.0, burst=5, gap=0.1)
    now, counter = 0.0, 0
    open_calls: list[Call] = []
    starts: list[float] = []
    last_start: dict[str, float] = {}
    wanted: dict[str, UpdateNbr] = {}
    sent: dict[str, UpdateNbr] = {}

    def start_due() -> None:
        for call in out.due(now):
            assert call.handle not in {c.handle for c in open_calls}
            assert now - last_start.get(call.handle, -1e9) >= 0.1 - 1e-9
            last_start[call.handle] = now
            starts.append(now)
            open_calls.append(call)
            if call.message is not None:
                sent[call.handle] = call.message
        assert len(open_calls) <= 4

    for op, k, dt in ops:
        now += dt
        handle = f"p{k}"
        if op == "notice":
            counter += 1
            wanted[handle] = nbr(counter)
            out.notice(handle, ("127.0.0.1", 9000 + k), wanted[handle], now)
        elif op == "ping":
            out.ping(handle, ("127.0.0.1", 9000 + k), now)
        elif op == "done" and open_calls:
            out.done(open_calls.pop(k % len(open_calls)), now)
        elif op == "forget":
            out.forget(handle)
            last_start.pop(handle, None)  # (a peer that left starts afresh)
            wanted.pop(handle, None)
            sent.pop(handle, None)
        start_due()
    for s in starts:  # any window of t seconds: at most burst + rate * t starts
        later = [t for t in starts if s <= t <= s + 1.0]
        assert len(later) <= 5 + 20 * 1.0 + 1
    # let everything finish: the latest notice reaches every peer still wanted
    for _ in range(1000):
        for call in open_calls:
            out.done(call, now)
        open_calls.clear()
        wake = out.wake_at(now)
        if wake is None and not out.waiting:
            break
        now = max(now, wake or now) + 0.001
        start_due()
    assert out.waiting == 0
    for handle, message in wanted.items():
        assert sent.get(handle) == message
