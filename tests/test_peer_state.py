"""cs457p2p.core.peer_state: a peer's decisions, without sockets or clocks; and a ring
of them around core.ring, messages delivered by hand."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.connection_rules import Limits
from cs457p2p.core.database import Database
from cs457p2p.core.peer_port import IDLE_TIMEOUTS, port_limits
from cs457p2p.core.peer_rounds import (
    END,
    MAX_MESSAGE,
    TELL,
    over_limit,
    query_answers,
    read_limit,
    round_answers,
)
from cs457p2p.core.peer_state import (
    NEIGHBOUR,
    ONE_SHOT_PARALLEL,
    ONE_SHOT_ROUND,
    REFUSED,
    REGISTERED,
    TOO_MANY,
    TRACKER,
    Ask,
    Neighbour,
    PeerState,
)
from cs457p2p.core.peer_talk import (
    BROKEN,
    HELD_EVERY,
    LOST,
    REGISTER_PAUSE,
    REGISTER_TRIES,
    SILENT,
    tracker_addresses,
)
from cs457p2p.core.ring import Ring
from cs457p2p.core.wire2 import (
    BadMessage,
    Held,
    Ping,
    Pong,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    encode_message,
)

ITEMS = [(4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies")]
MESSAGE = "blue skies and snowy peaks"
BAD = Said("[Tracker]", "Bad request")


def registered(
    handle: str = "alice", n: int = 5, item: tuple[int, str] = (4, "peaks")
) -> PeerState:
    peer = PeerState(handle, patience=1.0)
    peer.registered_with(RegInit("bob", "127.0.0.3", 9402, n, item), 0.0)
    return peer


def test_registration() -> None:
    peer = registered()
    assert peer.n == 5 and peer.hosted == (4, "peaks") and peer.items == {4: "peaks"}
    assert peer.neighbour == Neighbour("bob", "127.0.0.3", 9402)
    assert peer.wanted == [0, 1, 2, 3] and not peer.done


def test_an_update_before_the_reg_init_wins() -> None:
    peer = PeerState("alice")
    peer.update(UpdateNbr("carol", "127.0.0.4", 9403), 0.0)
    peer.registered_with(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.1)
    assert peer.neighbour == Neighbour("carol", "127.0.0.4", 9403)


def test_no_neighbour_and_no_item() -> None:
    peer = PeerState("alice")
    peer.registered_with(RegInit(None, None, None, 5, None), 0.0)
    assert peer.neighbour is None and peer.items == {}
    assert peer.next_ask(0.0) is None  # nobody to ask until patience runs out
    ask = peer.next_ask(peer.patience)
    assert ask == Ask(TRACKER, (0, 1, 2, 3, 4))


def test_an_empty_database_is_done_at_once() -> None:
    peer = PeerState("alice")
    peer.registered_with(RegInit("alice", "127.0.0.2", 9401, 0, None), 0.0)
    assert peer.done and peer.message() == "" and peer.done_at == 0.0


def test_asks_the_neighbour_again_at_once_while_it_gives() -> None:
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask == Ask(NEIGHBOUR, (0, 1, 2, 3), Neighbour("bob", "127.0.0.3", 9402))
    assert peer.next_ask(0.0) is None  # one ask at a time
    assert peer.answered(ask, [QueryResult(2, "and"), QueryResult(None, None)], 0.01) == 1
    again = peer.next_ask(0.01)
    assert again is not None and again.seqs == (0, 1, 3)


def test_backs_off_while_the_neighbour_gives_nothing() -> None:
    peer = registered()
    now, waits = 0.0, []
    for _ in range(10):
        ask = peer.next_ask(now)
        assert ask is not None and ask.target == NEIGHBOUR
        peer.answered(ask, [QueryResult(None, None)] * len(ask.seqs), now)
        assert peer.wake_at is not None
        waits.append(round(peer.wake_at - now, 3))
        now = peer.wake_at
        if now >= peer.patience:
            break
    assert waits[:4] == [0.002, 0.004, 0.008, 0.016]
    assert max(waits) == 0.05


def test_a_neighbour_with_nothing_new_is_asked_a_window_at_a_time() -> None:
    """A poll costs a QUERY per SEQNUM: after an answer with nothing new, 64 of the 199
    missing a time, in turn; all of them again once something new comes."""
    peer = registered(n=200, item=(0, "w0"))
    first = peer.next_ask(0.0)
    assert first is not None and len(first.seqs) == 199  # everything, at first
    peer.answered(first, [QueryResult(None, None)], 0.0)
    seen: list[int] = []
    now = 0.0
    for _ in range(4):
        assert peer.wake_at is not None
        now = peer.wake_at
        ask = peer.next_ask(now)
        assert ask is not None and len(ask.seqs) == 64
        seen += ask.seqs
        peer.answered(ask, [QueryResult(None, None)], now)
    assert seen[:64] == list(range(1, 65)) and seen[64:128] == list(range(65, 129))
    assert set(range(1, 200)) <= set(seen)  # every one asked, in turn
    now = peer.wake_at
    assert now is not None
    ask = peer.next_ask(now)
    assert ask is not None
    peer.answered(ask, [QueryResult(ask.seqs[0], "new")], now)
    again = peer.next_ask(now)  # something new: asked again at once, and everything
    assert again is not None and len(again.seqs) == 198


def test_a_trickle_slower_than_one_item_per_missing_per_period_is_a_stall() -> None:
    """One new item now and then out of many missing: the tracker is asked at the end of
    the first period, though items kept coming."""
    peer = registered(n=100, item=(0, "w0"))
    now = 0.0
    for k in range(1, 4):  # one item every 0.3 s
        ask = peer.next_ask(now)
        assert ask is not None and ask.target == NEIGHBOUR
        peer.answered(ask, [QueryResult(k, f"w{k}")], now)
        now += 0.3
    ask = peer.next_ask(1.0)
    assert ask is not None and ask.target == TRACKER and len(ask.seqs) == 96


def test_a_neighbour_on_pace_is_not_left_for_the_tracker() -> None:
    """A period that gave at least as many items as are still missing: the neighbour is
    kept, and a new period begins."""
    peer = registered(n=10, item=(0, "w0"))
    for k in range(1, 6):  # five items in the first period, four left
        ask = peer.next_ask(0.1 * k)
        assert ask is not None and ask.target == NEIGHBOUR
        peer.answered(ask, [QueryResult(k, f"w{k}")], 0.1 * k)
    ask = peer.next_ask(1.0)
    assert ask is not None and ask.target == NEIGHBOUR
    peer.answered(ask, [QueryResult(None, None)], 1.0)
    # nothing new in the second period (from 1.0): the tracker at its end, not before
    now = 1.0
    while True:
        assert peer.wake_at is not None
        now = peer.wake_at
        ask = peer.next_ask(now)
        assert ask is not None
        if ask.target == TRACKER:
            break
        peer.answered(ask, [QueryResult(None, None)], now)
    assert 2.0 <= now < 2.1


def test_after_patience_asks_the_tracker_once_a_refusal_stops_it() -> None:
    peer = registered()
    ask = peer.next_ask(1.0)
    assert ask == Ask(TRACKER, (0, 1, 2, 3))
    assert peer.answered(ask, [QueryResult(0, "blue"), QueryResult(1, "skies")], 1.0) == 2
    assert peer.counters.from_tracker == 2  # (its hosted item is counted apart)
    # the course's tracker refuses QUERY
    ask = peer.next_ask(2.5)
    assert ask is not None and ask.target == TRACKER
    peer.answered(ask, [BAD], 2.5)
    assert not peer.tracker_answers_queries
    assert peer.missing == [2, 3]
    later = peer.next_ask(10.0)
    assert later is not None and later.target == NEIGHBOUR  # the neighbour still might


def test_a_failed_ask_backs_off() -> None:
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask is not None
    peer.failed(ask, 0.0)
    assert peer.counters.failures == 1
    assert peer.wake_at == pytest.approx(0.002)


def test_lies_are_ignored_and_counted() -> None:
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask is not None
    got = peer.answered(
        ask,
        [QueryResult(9, "nine"), QueryResult(-1, "x"), QueryResult(4, "valleys"),
         QueryResult(4, "peaks"), BadMessage("not a tuple"), QueryResult(0, "blue")],
        0.0,
    )  # fmt: skip
    assert got == 1
    assert peer.items == {4: "peaks", 0: "blue"}
    assert peer.counters.ignored == 4 and peer.counters.conflicts == 1


def test_answers() -> None:
    peer = registered()
    assert peer.answer(Ping("Mon Nov 30 12:00:00 2026"), 0.0) == Pong("alice")
    assert peer.answer(Query(4), 0.0) == QueryResult(4, "peaks")
    assert peer.answer(Query(0), 0.0) == QueryResult(None, None)
    assert peer.answer(UpdateNbr("carol", "127.0.0.4", 9403), 0.0) is None
    assert peer.neighbour == Neighbour("carol", "127.0.0.4", 9403)
    assert peer.answer(BadMessage("not a tuple"), 0.0) == Said("[alice]", "Bad request")
    assert peer.counters.queries_answered == 2


@given(
    st.integers(1, 60),
    st.integers(-2, 2),  # (the asker's N, around the holder's: the edge that matters)
    st.sets(st.integers(0, 59)),
    st.integers(0, 40),
    st.integers(0, 3),
)
def test_an_ask_is_answered_as_its_queries_one_by_one(
    holder_n: int, more: int, held: set[int], got: int, polls: int
) -> None:
    """answer_ask (what the simulator calls) gives what answer_queries gives for each
    SEQNUM, whichever N the asker and the holder have, whatever the holder holds, for
    a first ask, a flowing one, or a window taken in turn."""
    asker_n = max(2, holder_n + more)  # (at least 2: it hosts one item, lacks another)
    holder = registered("bob", holder_n, (0, "w0"))
    holder.answered(
        Ask(NEIGHBOUR, ()), [QueryResult(s, f"w{s}") for s in held if s < holder_n], 0.0
    )
    asker = registered("alice", asker_n, (0, "w0"))
    asker.window = 8
    ask = asker.next_ask(0.0)
    assert ask is not None and ask.below == asker_n
    asker.answered(ask, [QueryResult(s, f"w{s}") for s in range(1, got + 1)], 0.0)
    for k in range(polls):  # (a neighbour with nothing new: a window at a time)
        ask = asker.next_ask(0.1 * (k + 1))
        if ask is not None:
            asker.answered(ask, [], 0.1 * (k + 1))
    ask = asker.next_ask(0.5)
    if ask is None:
        assert asker.done
        return
    assert ask.below == asker_n
    expected = [holder.answer(Query(s), 0.0) for s in ask.seqs]
    assert list(holder.answer_ask(ask)) == expected


def test_an_ask_made_by_hand_has_its_seqnums_checked() -> None:
    holder = registered("bob", 5, (4, "peaks"))
    ask = Ask(NEIGHBOUR, (4, -1, 7, 4, -5))
    assert ask.below == 0  # (nobody vouched for these)
    assert list(holder.answer_ask(ask)) == [
        QueryResult(4, "peaks"),
        QueryResult(None, None),
        QueryResult(None, None),
        QueryResult(4, "peaks"),
        QueryResult(None, None),
    ]
    assert holder.counters.queries_answered == 5


def test_peers_in_one_process_share_the_items_they_hold() -> None:
    """What the simulator's 100,000 peers hold is one object per item: a neighbour's
    answer is kept as given, the tracker's (a new object each time) is shared."""
    alice, bob, carol = registered("alice"), registered("bob"), registered("carol")
    for peer in (alice, bob):
        peer.answered(Ask(TRACKER, (0,)), [QueryResult(0, "blue")], 0.0)
    held = alice.answer_queries((0,))[0]
    assert held == QueryResult(0, "blue") and bob.answer_queries((0,))[0] is held
    carol.answered(Ask(NEIGHBOUR, (0,)), bob.answer_ask(Ask(NEIGHBOUR, (0,))), 0.0)
    assert carol.answer_queries((0,))[0] is held


# ------------------------------------------------------------------ a ring, by hand


def run_ring(
    peers: int, items: list[tuple[int, str]], *, tracker_answers: bool = True, limit: int = 10_000
) -> tuple[dict[str, PeerState], float, int]:
    """Peers join one by one; then every ask is answered at once (a neighbour from what
    it holds, the tracker as ours or as the course's), time moving to the next wake-up.
    The states, the time the last finished, and the asks made."""
    ring = Ring(Database(items))
    states: dict[str, PeerState] = {}
    by_address: dict[tuple[str, int], PeerState] = {}
    for k in range(peers):
        handle = f"p{k}"
        state = PeerState(handle, patience=1.0)
        answer = ring.join(handle, f"127.0.0.{k + 2}", 9000, 0.0)
        assert isinstance(answer, RegInit)
        state.registered_with(answer, 0.0)
        states[handle] = state
        by_address[(f"127.0.0.{k + 2}", 9000)] = state
        for notice in ring.outbox:
            by_address[notice.to].update(notice.message, 0.0)
        ring.outbox.clear()
    now, asks = 0.0, 0
    while not all(s.done for s in states.values()) and asks < limit:
        for state in states.values():
            ask = state.next_ask(now)
            if ask is None:
                continue
            asks += 1
            if ask.target == TRACKER:
                results = (
                    [ring.answer(Query(s), "127.0.0.1", now) for s in ask.seqs]
                    if tracker_answers
                    else [BAD]
                )
            else:
                assert ask.neighbour is not None
                holder = by_address[ask.neighbour.address]
                results = [holder.answer(Query(s), now) for s in ask.seqs]
            state.answered(ask, results, now)
        wakes = [s.wake_at for s in states.values() if s.wake_at is not None]
        if not wakes:
            break
        now = max(now, min(wakes))
    return states, now, asks


def test_a_ring_as_large_as_the_database_completes_from_neighbours_alone() -> None:
    states, _, _ = run_ring(5, ITEMS)
    for s in states.values():
        assert s.done and s.message() == MESSAGE
        assert s.counters.from_tracker == 0 and s.counters.from_neighbour == 4


def test_a_ring_smaller_than_the_database_completes_with_the_tracker() -> None:
    states, end, _ = run_ring(2, ITEMS)
    assert all(s.message() == MESSAGE for s in states.values())
    assert 1.0 <= end < 2.0  # one patience


def test_with_the_courses_tracker_the_missing_are_named() -> None:
    states, _, _ = run_ring(2, ITEMS, tracker_answers=False, limit=200)
    for s in states.values():
        assert not s.done
        assert s.missing == [0, 1, 3]  # positions 2..4 are hosted by nobody


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(0, 30))
def test_any_ring_completes_with_our_tracker(peers: int, n: int) -> None:
    items = [(s, f"w{s}") for s in range(n)][::-1]
    states, _, _ = run_ring(peers, items)
    want = " ".join(f"w{s}" for s in range(n))
    assert all(s.done and s.message() == want for s in states.values())


def test_an_update_from_elsewhere_than_the_tracker_is_ignored() -> None:
    peer = registered()
    peer.tracker_addresses = frozenset({"127.0.0.1"})
    bogus = UpdateNbr("mallory", "10.0.0.1", 22)
    assert peer.answer(bogus, 0.0, sender="127.0.0.9") is None
    assert peer.neighbour == Neighbour("bob", "127.0.0.3", 9402)
    assert peer.counters.untrusted_updates == 1
    assert peer.answer(UpdateNbr("carol", "127.0.0.4", 9403), 0.0, sender="127.0.0.1") is None
    assert peer.neighbour == Neighbour("carol", "127.0.0.4", 9403)


def test_the_end_of_a_period_is_the_time_it_said_to_wake_whatever_the_rounding() -> None:
    """A lone peer told to wake at period + patience must ask the tracker then, not be
    told to wake at the same time again: 1.5792038748222121 - 0.5792038748222123 is
    0.9999999999999998 in floating point, under one second."""
    peer = PeerState("alice")
    peer.registered_with(RegInit("alice", "127.0.0.2", 9401, 2, (1, "w1")), 0.5792038748222123)
    peer.neighbour = None
    assert peer.next_ask(0.5792038748222123) is None
    wake = peer.wake_at
    assert wake is not None
    ask = peer.next_ask(wake)
    assert ask is not None and ask.target == TRACKER


# ------------------------------------------------- timing rules: next_timer, on_timer


def listening(handle: str = "alice", port: int = 9401, **kw: int) -> PeerState:
    peer = PeerState(handle, patience=1.0, **kw)  # type: ignore[arg-type]
    peer.register(port)
    return peer


def test_register_is_sent_at_once_then_only_when_the_timer_says() -> None:
    peer = listening()
    talk = peer.talk
    assert talk is not None and peer.next_timer() is None
    join = talk.next_register()
    assert join is not None  # the bytes: ('REGISTER', 'alice', 9401), protocol 2
    assert (
        encode_message(join)
        == b"\x80\x02X\x08\x00\x00\x00REGISTERX\x05\x00\x00\x00aliceM\xb9$\x87."
    )
    assert talk.next_register() is None  # once a connection: none while it is under way
    assert talk.register_lost(1.0)  # refused, or closed without an answer
    assert peer.next_timer() == pytest.approx(1.0 + REGISTER_PAUSE)
    peer.on_timer(1.0 + REGISTER_PAUSE / 2)
    assert talk.next_register() is None  # not before its time
    peer.on_timer(1.0 + REGISTER_PAUSE)
    assert talk.next_register() == join and peer.next_timer() is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8))
def test_at_most_register_tries_each_a_pause_after_the_last_was_lost(
    gaps: list[float],
) -> None:
    """Whenever the driver comes back, and however often REGISTERs are lost: no REGISTER
    before REGISTER_PAUSE after the loss, one as soon as it is due, REGISTER_TRIES in
    all."""
    peer = listening()
    talk = peer.talk
    assert talk is not None
    now, sent, retry = 0.0, [0.0], True
    assert talk.next_register() is not None
    for gap in gaps:
        if not retry:
            break
        retry = talk.register_lost(now)
        if not retry:
            assert len(sent) == REGISTER_TRIES
            assert peer.next_timer() is None
            break
        due = peer.next_timer()
        assert due == pytest.approx(now + REGISTER_PAUSE)
        early = now + min(gap, REGISTER_PAUSE) * 0.99
        peer.on_timer(early)
        assert (talk.next_register() is None) == (early < due)
        if early < due:
            now = due + gap  # (the driver wakes late: still due)
            peer.on_timer(now)
            assert talk.next_register() is not None
        else:
            now = early
        sent.append(now)
    assert len(sent) <= REGISTER_TRIES


def test_a_reg_init_over_the_item_limit_is_refused_and_nothing_is_held() -> None:
    peer = listening(max_items=4)
    assert peer.reg_init(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0) == TOO_MANY
    assert not peer.registered and peer.next_timer() is None
    assert peer.reg_init(BAD, 0.0) == REFUSED and not peer.registered
    peer = listening(max_items=5)
    assert peer.reg_init(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0) == REGISTERED
    assert peer.registered and peer.items == {4: "peaks"} and peer.next_timer() == 0.0


def test_the_probe_asks_for_the_hosted_item_and_only_our_tracker_hears_held() -> None:
    peer = listening()
    peer.reg_init(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0)
    assert peer.probe() == Query(4)
    assert peer.next_report(0.0) is None  # not known to be ours yet
    talk = peer.talk
    assert talk is not None
    talk.probed([BAD])  # the course's tracker: no HELD
    assert not talk.ours and peer.next_report(0.0, final=True) is None
    talk.probed([QueryResult(4, "peaks")])
    held = peer.next_report(0.0)
    assert held is not None
    assert encode_message(held) == b"\x80\x02X\x04\x00\x00\x00HELDX\x05\x00\x00\x00aliceK\x01\x87."


def test_held_reports_change_and_are_at_least_held_every_apart_but_the_last() -> None:
    peer = listening()
    peer.reg_init(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0)
    assert peer.talk is not None
    peer.talk.probed([QueryResult(4, "peaks")])
    assert peer.next_report(1.0) == Held("alice", 1)
    assert peer.next_report(2.0) is None  # nothing new held
    ask = peer.next_ask(2.0)
    assert ask is not None
    peer.answered(ask, [QueryResult(0, "blue")], 2.0)
    assert peer.next_report(2.0) == Held("alice", 2)
    peer.answered(ask, [QueryResult(1, "skies")], 2.1)
    assert peer.next_report(2.1) is None  # too soon
    assert peer.next_report(2.1, final=True) == Held("alice", 3)  # the last, whenever


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 4)), max_size=30))
def test_held_reports_over_any_run(steps: list[tuple[float, int]]) -> None:
    """Whatever the times and the items held: each report says something new, and two
    come at least HELD_EVERY apart."""
    peer = listening()
    peer.reg_init(RegInit("bob", "127.0.0.3", 9402, 5, None), 0.0)
    assert peer.talk is not None
    peer.talk.probed([QueryResult(0, "blue")])
    words = ["blue", "skies", "and", "snowy", "peaks"]
    now, reports = 0.0, []
    for gap, seq in steps:
        now += gap
        ask = peer.next_ask(now)
        if ask is not None:
            peer.answered(ask, [QueryResult(seq, words[seq])], now)
        held = peer.next_report(now)
        if held is not None:
            reports.append((now, held.count))
    for (t0, c0), (t1, c1) in itertools.pairwise(reports):
        assert t1 - t0 >= HELD_EVERY and c1 != c0
    last = peer.next_report(now, final=True)  # the last: what it holds, if not said yet
    said = reports[-1][1] if reports else -1
    assert (last is None) == (said == peer.held)
    assert last is None or last.count == peer.held


def test_a_neighbour_that_answers_one_query_a_connection_is_asked_that_way() -> None:
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask is not None and ask.parallel == 0 and ask.seqs == (0, 1, 2, 3)
    peer.answered(ask, [QueryResult(0, "blue")], 0.0)  # only some: not said how
    ask = peer.next_ask(0.0)
    assert ask is not None and ask.parallel == 0 and ask.seqs == (1, 2, 3)
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask is not None
    peer.answered(ask, [QueryResult(0, "blue")], 0.0, connection=True)  # one, then closed
    ask = peer.next_ask(0.0)
    assert ask is not None and ask.target == NEIGHBOUR
    assert ask.parallel == ONE_SHOT_PARALLEL and ask.seqs == (1, 2, 3)
    assert peer.counters.queries_sent == 4 + 3  # what was asked, each time
    peer.answered(ask, [QueryResult(1, "skies")], 0.0, connection=True)
    peer.update(UpdateNbr("carol", "127.0.0.4", 9403), 0.1)  # another neighbour
    ask = peer.next_ask(0.1)
    assert ask is not None and ask.parallel == 0 and ask.seqs == (2, 3)


def test_a_one_shot_round_is_at_most_one_shot_round_queries() -> None:
    peer = PeerState("alice", patience=1.0)
    peer.registered_with(RegInit("bob", "127.0.0.3", 9402, 40, None), 0.0)
    ask = peer.next_ask(0.0)
    assert ask is not None and len(ask.seqs) == 40
    peer.answered(ask, [QueryResult(None, None)] * 3, 0.0, connection=True)
    wake = peer.next_timer()
    assert wake is not None and wake < peer.patience
    ask = peer.next_ask(wake)
    assert ask is not None and ask.parallel == ONE_SHOT_PARALLEL
    assert len(ask.seqs) == ONE_SHOT_ROUND


def test_the_next_timer_is_the_earliest_of_a_register_retry_and_the_next_ask() -> None:
    peer = registered()
    peer.register(9401)
    assert peer.talk is not None and peer.talk.next_register() is not None
    assert peer.next_timer() == 0.0  # the first ask
    ask = peer.next_ask(0.0)
    assert ask is not None and peer.next_timer() is None  # under way: nothing to wake for
    assert peer.talk.register_lost(0.0)
    assert peer.next_timer() == pytest.approx(REGISTER_PAUSE)
    peer.failed(ask, 0.0)  # back off 2 ms
    assert peer.next_timer() == pytest.approx(0.002)


# ------------------------------------------------- core.peer_rounds: what an ask brought


def test_one_exchange_reads_what_the_peer_may_still_hold_and_one_message_more() -> None:
    peer = PeerState("alice", patience=1.0, max_bytes=10)
    peer.registered_with(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0)
    assert read_limit(peer) == 10 - 5 + MAX_MESSAGE
    ask = peer.next_ask(0.0)
    assert ask is not None
    peer.answered(ask, [QueryResult(0, "blue")], 0.0)
    assert read_limit(peer) == 10 - 9 + MAX_MESSAGE
    peer.max_bytes = 2  # (less than it holds: never less than one message)
    assert read_limit(peer) == MAX_MESSAGE


def test_a_one_shot_round_fails_only_when_nothing_came_and_its_first_connection_failed() -> None:
    blue, skies = QueryResult(0, "blue"), QueryResult(1, "skies")
    assert round_answers([None, None]) is None
    assert round_answers([None, []]) is None
    assert round_answers([None, [skies]]) == [skies]  # something came: answered
    assert round_answers([[], None]) == []  # the first closed without an answer
    assert round_answers([[blue], None, [skies]]) == [blue, skies]  # in order
    assert round_answers([]) == []
    assert round_answers([[Ping("x")], [BAD]]) == [BadMessage("?"), BAD]
    # (what the driver does with it: a failed round is a failure, an empty one is not)
    peer = registered()
    ask = peer.next_ask(0.0)
    assert ask is not None
    peer.answered(ask, [blue], 0.0, connection=True)  # one, then closed: one-shot
    ask = peer.next_ask(0.0)
    assert ask is not None and ask.parallel
    assert round_answers([None] * len(ask.seqs)) is None
    peer.failed(ask, 0.0)
    assert peer.counters.failures == 1


def test_query_answers_are_results_refusals_or_bad_messages() -> None:
    blue = QueryResult(0, "blue")
    assert query_answers([blue, BAD, BadMessage("x"), Pong("bob")]) == [
        blue,
        BAD,
        BadMessage("x"),
        BadMessage("?"),
    ]


def test_a_neighbours_items_over_the_limit_are_told_once_the_trackers_end_the_run() -> None:
    peer = PeerState("alice", patience=1.0, max_bytes=10)
    peer.registered_with(RegInit("bob", "127.0.0.3", 9402, 5, (4, "peaks")), 0.0)
    ask = peer.next_ask(0.0)
    assert ask is not None and ask.target == NEIGHBOUR
    assert peer.answered(ask, [QueryResult(0, "blue"), QueryResult(1, "skies")], 0.0) == 1
    assert peer.too_large and over_limit(peer, ask) == TELL
    assert not peer.too_large and over_limit(peer, ask) is None  # (cleared)
    ask = peer.next_ask(0.1)
    assert ask is not None and ask.target == NEIGHBOUR
    peer.answered(ask, [QueryResult(1, "skies")], 0.1)
    assert peer.too_large and over_limit(peer, ask) is None  # said once
    assert peer.counters.asks_over_limit == 2
    ask = Ask(TRACKER, (1, 2, 3))
    peer.answered(ask, [QueryResult(1, "skies")], 0.2)
    assert over_limit(peer, ask) == END  # the message cannot be whole
    peer.answered(ask, [QueryResult(1, "a")], 0.3)  # (just within the limit)
    assert over_limit(peer, ask) is None


def test_a_peers_port_closes_a_connection_idle_for_four_of_its_timeouts() -> None:
    limits = port_limits(2.5)
    assert IDLE_TIMEOUTS == 4
    assert limits.request_timeout == 2.5 and limits.idle_timeout == 10.0
    assert limits == Limits(request_timeout=2.5, idle_timeout=10.0)  # the rest the tracker's


def test_the_tracker_speaks_from_its_addresses_any_loopback_for_a_loopback_one() -> None:
    assert tracker_addresses(["10.0.0.7"]) == {"10.0.0.7"}
    assert tracker_addresses(["127.0.0.5"]) == {"127.0.0.5", "127.0.0.1", "::1"}
    assert tracker_addresses(["::1"]) == {"127.0.0.1", "::1"}
    assert tracker_addresses(["::ffff:10.0.0.7"]) == {"::ffff:10.0.0.7", "10.0.0.7"}
    assert tracker_addresses([]) == frozenset()  # (unresolved: any sender is taken)
    peer = registered()
    peer.tracker_addresses = tracker_addresses(["10.0.0.7"])
    peer.answer(UpdateNbr("carol", "127.0.0.4", 9403), 0.1, "10.0.0.8")
    assert peer.counters.untrusted_updates == 1 and peer.neighbour is not None
    assert peer.neighbour.handle == "bob"


def test_only_a_lost_register_is_sent_again_never_a_silent_or_broken_one() -> None:
    for how in (SILENT, BROKEN):
        peer = listening()
        assert peer.talk is not None and peer.talk.next_register() is not None
        assert not peer.talk.register_failed(how, 1.0)  # the run ends
        assert peer.next_timer() is None and peer.talk.next_register() is None
    peer = listening()
    talk = peer.talk
    assert talk is not None
    for k in range(1, REGISTER_TRIES + 1):
        assert talk.next_register() is not None
        again = talk.register_failed(LOST, float(k))  # refused, or closed without an answer
        assert again == (k < REGISTER_TRIES)
        peer.on_timer(k + REGISTER_PAUSE)
    assert talk.next_register() is None and talk.tries == REGISTER_TRIES
