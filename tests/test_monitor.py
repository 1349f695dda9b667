"""The sans-I/O monitor: the client table, the finished rule, the counters, the bounds,
the events and the status JSON. No sockets, no loop, a fake clock."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.monitor import (
    FAULT_KINDS,
    LATENCY_BUCKETS,
    MAX_PENDING_EVENTS,
    MAX_REASON,
    Monitor,
    TrackerCounters,
)
from cs457p2p.core.requests import (
    BadRequest,
    Position,
    PositionRun,
    Register,
    Request,
    RequestParser,
)
from cs457p2p.core.ring import RingEvent


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(n: int = 4, **kwargs: Any) -> tuple[Monitor, FakeClock]:
    clock = FakeClock()
    return Monitor(n, clock, **kwargs), clock


def feed(
    m: Monitor,
    requests: list[Request],
    ip: str = "127.0.0.2",
    transport: str = "tcp",
    latency: float = 0.0002,
) -> None:
    m.observe((ip, 40000), transport, requests, len(requests), 10 * len(requests), 20, latency)


def positions(*indices: int) -> list[Request]:
    return [Position(i) for i in indices]


def events(m: Monitor) -> list[dict[str, Any]]:
    return m.drain_events()[0]


# ------------------------------------------------------------------ the finished rule


def test_a_client_finishes_when_it_has_fetched_every_position_since_register() -> None:
    m, _ = make(4)
    feed(m, [Register()])
    feed(m, positions(0, 1, 2))
    c = m.clients["127.0.0.2"]
    assert (c.fetched, c.finished) == (3, False)
    feed(m, positions(3))
    assert (c.fetched, c.finished) == (4, True)
    assert c.seen is None  # a finished client holds no per-position memory


def test_repeated_positions_count_once() -> None:
    m, _ = make(3)
    feed(m, [Register(), *positions(0, 0, 1, 1, 0)])
    c = m.clients["127.0.0.2"]
    assert (c.fetched, c.finished) == (2, False)
    assert m.positions == 5
    feed(m, positions(2))
    assert c.finished


def test_out_of_range_positions_are_bad_and_do_not_count() -> None:
    m, _ = make(2)
    feed(m, [Register(), *positions(0, 2, -1, 1)])
    c = m.clients["127.0.0.2"]
    assert c.finished and c.fetched == 2
    assert (m.positions, m.bad, c.bad) == (2, 2, 2)
    assert c.last_bad == "position -1 is out of range 0..1"


def test_a_new_register_resets_the_progress() -> None:
    m, clock = make(2)
    feed(m, [Register(), *positions(0, 1)])
    c = m.clients["127.0.0.2"]
    assert c.finished
    clock.t += 5
    feed(m, [Register()])
    assert (c.fetched, c.finished, c.finished_at, c.registrations) == (0, False, None, 2)
    assert c.since == clock.t
    feed(m, positions(1))
    assert not c.finished
    feed(m, positions(0))
    assert c.finished
    assert m.finished_total == 2


def test_a_register_in_the_middle_of_a_batch_resets_at_its_place() -> None:
    m, _ = make(3)
    feed(m, [*positions(0, 1), Register(), *positions(2)])
    c = m.clients["127.0.0.2"]
    assert (c.fetched, c.finished, c.registrations) == (1, False, 1)
    feed(m, [*positions(0, 1), Register()])
    assert (c.fetched, c.finished) == (0, False)
    assert m.finished_total == 1  # it had finished 0, 1, 2 before the second REGISTER


def test_positions_after_finishing_do_not_unfinish() -> None:
    m, _ = make(2)
    feed(m, [Register(), *positions(0, 1, 0, 1)])
    c = m.clients["127.0.0.2"]
    assert c.finished and c.fetched == 2
    assert m.finished_total == 1
    assert [e["event"] for e in events(m)] == ["register", "finished"]


def test_a_client_that_never_registered_finishes_too() -> None:
    m, _ = make(2)
    feed(m, positions(1, 0))
    c = m.clients["127.0.0.2"]
    assert (c.registrations, c.finished) == (0, True)


def test_an_empty_database_is_finished_at_register() -> None:
    m, _ = make(0)
    feed(m, positions(0))
    c = m.clients["127.0.0.2"]
    assert not c.finished and c.bad == 1
    feed(m, [Register()])
    assert c.finished


def test_a_client_is_its_source_address_whatever_the_port_and_transport() -> None:
    m, _ = make(2)
    m.observe(("127.0.0.2", 1111), "tcp", [Register()], 1, 8, 5, 0.0)
    m.observe(("127.0.0.2", 2222), "udp", positions(0, 1), 2, 8, 5, 0.0)
    m.observe(("::ffff:127.0.0.3", 3333, 0, 0), "tcp", [Register()], 1, 8, 5, 0.0)
    m.observe(("::1", 4444, 0, 0), "tcp", [Register()], 1, 8, 5, 0.0)
    assert list(m.clients) == ["127.0.0.2", "127.0.0.3", "::1"]
    c = m.clients["127.0.0.2"]
    assert c.finished and c.transports == "tcp+udp"


def test_clients_are_independent() -> None:
    m, _ = make(2)
    feed(m, [Register(), *positions(0)], ip="127.0.0.2")
    feed(m, [Register(), *positions(1)], ip="127.0.0.3")
    assert not m.clients["127.0.0.2"].finished
    assert not m.clients["127.0.0.3"].finished
    feed(m, positions(1), ip="127.0.0.2")
    assert m.clients["127.0.0.2"].finished
    assert not m.clients["127.0.0.3"].finished


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 6),
    batches=st.lists(st.lists(st.one_of(st.just(-1), st.integers(-2, 8)), max_size=8), max_size=8),
)
def test_finished_matches_a_plain_model(n: int, batches: list[list[int]]) -> None:
    """-1 stands for a REGISTER; any other int is a position (in range or not)."""
    m, _ = make(n)
    fetched: set[int] = set()
    finished = False
    registered_or_fetched = False
    for batch in batches:
        requests: list[Request] = [Register() if k == -1 else Position(k) for k in batch]
        feed(m, requests)
        for k in batch:
            if k == -1:
                fetched, finished, registered_or_fetched = set(), n == 0, True
            elif 0 <= k < n and not finished:
                fetched.add(k)
                registered_or_fetched = True
                finished = len(fetched) == n
        if batch:
            c = m.clients["127.0.0.2"]
            assert c.finished == (finished and registered_or_fetched)
            assert c.fetched == (n if c.finished else len(fetched))


def test_runs_of_positions_count_like_the_positions_they_stand_for() -> None:
    m, _ = make(10)
    runs: list[Any] = [Register(), PositionRun(0, 4), Position(2), PositionRun(3, 5)]
    feed(m, runs)
    c = m.clients["127.0.0.2"]
    assert (c.fetched, c.finished) == (8, False)
    assert (m.positions, c.requests) == (10, 11)
    feed(m, [PositionRun(8, 2), PositionRun(0, 10)])
    assert (c.fetched, c.finished) == (10, True)
    feed(
        m, [PositionRun(8, 5), PositionRun(-1, 2), PositionRun(0, 0)]
    )  # out of range: bad; empty: nothing
    assert (m.bad, c.bad, m.positions) == (2, 2, 22)


# ---------------------------------------------------------------------- the counters


def test_counters_by_kind_and_bytes() -> None:
    m, _ = make(16)
    parsed = RequestParser().feed(b"REGISTER" + b"\x80\x02K\x05." + b"7\n" + b"99\n")
    parsed += [BadRequest("garbage", fatal=True)]
    m.observe(("127.0.0.2", 5), "tcp", parsed, 5, 123, 456, 0.003)
    assert (m.registrations, m.positions, m.bad, m.requests) == (1, 2, 2, 5)
    assert (m.answers, m.bytes_in, m.bytes_out, m.batches) == (5, 123, 456, 1)


def test_latency_histogram_buckets() -> None:
    m, _ = make(1)
    for latency in (0.00005, 0.0001, 0.0003, 0.02, 5.0):
        feed(m, [Register()], latency=latency)
    counts = m.latency_counts
    assert len(counts) == len(LATENCY_BUCKETS) + 1
    assert counts[0] == 2  # <= 0.0001 (Prometheus buckets are "less or equal")
    assert counts[LATENCY_BUCKETS.index(0.0005)] == 1
    assert counts[LATENCY_BUCKETS.index(0.025)] == 1
    assert counts[-1] == 1  # +Inf
    assert sum(counts) == m.batches == 5
    assert m.latency_sum == pytest.approx(5.02045)


def test_request_rate_history() -> None:
    m, clock = make(100)
    for _ in range(3):
        feed(m, positions(*range(10)))
        clock.t += 1.0
        m.tick()
    assert [r for _, r in m.history] == [10.0, 10.0, 10.0]
    clock.t += 0.5
    m.tick()  # less than a second: no new point
    assert len(m.history) == 3
    clock.t += 0.5
    m.tick()
    assert m.history[-1][1] == 0.0
    assert m.rate(window=10) == pytest.approx(7.5)
    assert m.rate(window=1.5) == pytest.approx(5.0)
    assert make(1)[0].rate() == 0.0


def test_history_is_bounded() -> None:
    m, clock = make(1)
    for _ in range(400):
        clock.t += 1.0
        m.tick()
    assert len(m.history) == 300


# ------------------------------------------------------------------------ the bounds


def test_the_least_recently_seen_client_is_forgotten() -> None:
    m, _ = make(2, max_clients=2)
    feed(m, [Register()], ip="10.0.0.1")
    feed(m, [Register()], ip="10.0.0.2")
    feed(m, positions(0), ip="10.0.0.1")  # 10.0.0.1 is now the most recent
    feed(m, [Register()], ip="10.0.0.3")
    assert list(m.clients) == ["10.0.0.1", "10.0.0.3"]
    assert m.forgotten == 1
    assert m.registrations == 3  # totals are not forgotten


def test_max_clients_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make(1, max_clients=0)


def test_a_long_reason_is_cut() -> None:
    m, _ = make(1)
    feed(m, [BadRequest("x" * 1000, fatal=True)])
    reason = m.clients["127.0.0.2"].last_bad
    assert len(reason) == MAX_REASON and reason.endswith("...")


# ------------------------------------------------------------------------ the events


def test_events_register_finished_refused() -> None:
    m, clock = make(2)
    feed(m, [Register()])
    clock.t += 2.5
    feed(m, [*positions(0, 1), BadRequest("refused pickle: GLOBAL", fatal=True)], ip="127.0.0.2")
    got = events(m)
    assert [e["event"] for e in got] == ["register", "finished", "refused"]
    register, finished, refused = got
    assert register == {
        "time": clock.t - 2.5,
        "event": "register",
        "client": "127.0.0.2",
        "transport": "tcp",
        "registrations": 1,
        "items": 2,
    }
    assert finished["seconds"] == 2.5 and finished["items"] == 2
    assert refused["reason"] == "refused pickle: GLOBAL" and refused["closed"] is True
    assert events(m) == []  # drained


def test_a_refused_event_says_why_in_words() -> None:
    m, _ = make(16)
    parser = RequestParser()
    feed(m, parser.feed(b"hello"))
    feed(m, [Position(99)], ip="127.0.0.3")
    refused, out_of_range = events(m)
    assert refused["reason"] == "got b'hello': refused pickle: memo GET before any PUT at byte 0"
    assert refused["why"] == "sent the text 'hello', not a pickle"
    assert out_of_range["reason"] == "position 99 is out of range 0..15"
    assert out_of_range["why"] == "asked for position 99, but positions are 0 to 15"
    assert m.clients["127.0.0.2"].last_why == "sent the text 'hello', not a pickle"


def test_events_are_bounded_and_the_rest_counted() -> None:
    m, _ = make(1)
    feed(m, [BadRequest("junk", fatal=False)] * (MAX_PENDING_EVENTS + 50))
    got, suppressed = m.drain_events()
    assert (len(got), suppressed) == (MAX_PENDING_EVENTS, 50)
    assert m.drain_events() == ([], 0)
    assert m.bad == MAX_PENDING_EVENTS + 50  # counted all the same


def test_no_events_when_not_asked() -> None:
    m, _ = make(1, events=False)
    feed(m, [Register(), Position(0), BadRequest("junk", fatal=False)])
    assert m.drain_events() == ([], 0)
    assert m.clients["127.0.0.2"].finished


@pytest.mark.parametrize("info_events", [True, False])
def test_refused_connections_become_an_event_at_tick(info_events: bool) -> None:
    m, _ = make(1, events=info_events)  # a warning: recorded either way
    m.tick(TrackerCounters(refused=0, open_connections=3))
    assert events(m) == []
    m.tick(TrackerCounters(refused=4, open_connections=3))
    (e,) = events(m)
    assert (e["event"], e["count"], e["open_connections"]) == ("refused_connections", 4, 3)
    m.tick(TrackerCounters(refused=4, open_connections=3))
    assert events(m) == []


# -------------------------------------------------------------------- the status JSON


def test_status_is_json_with_what_the_page_shows() -> None:
    m, clock = make(3, info={"listening": "127.0.0.1:7777", "faults": "loss=0.1"})
    feed(m, [Register(), *positions(0, 1, 2)], ip="127.0.0.3")
    clock.t += 1
    feed(m, [Register(), *positions(0)], ip="127.0.0.2", transport="udp")
    feed(m, [BadRequest("bad", fatal=True)], ip="127.0.0.4")
    clock.t += 1
    m.tick(TrackerCounters(accepted=7, refused=1, open_connections=2, faults={"loss": 5}))
    status = json.loads(json.dumps(m.status()))
    assert status["listening"] == "127.0.0.1:7777" and status["faults"] == "loss=0.1"
    assert status["items"] == 3
    assert status["requests"] == {"total": 7, "register": 2, "position": 4, "bad": 1, "ring": 0}
    assert status["connections"]["accepted"] == 7
    assert status["connections"]["refused"] == 1
    assert status["connections"]["open"] == 2
    assert status["faults_injected"] == {k: (5 if k == "loss" else 0) for k in FAULT_KINDS}
    assert status["clients"] == {
        "known": 3,
        "fetching": 1,
        "finished": 1,
        "forgotten": 0,
        "max": 1000,
    }
    rows = {c["address"]: c for c in status["client_list"]}
    assert [c["address"] for c in status["client_list"]] == ["127.0.0.3", "127.0.0.2", "127.0.0.4"]
    assert rows["127.0.0.3"]["finished"] is True and rows["127.0.0.3"]["fetched"] == 3
    assert rows["127.0.0.2"] | {"first_seen": 0, "last_seen": 0} == {
        "address": "127.0.0.2",
        "first_seen": 0,
        "last_seen": 0,
        "registrations": 1,
        "requests": 2,
        "fetched": 1,
        "items": 3,
        "finished": False,
        "seconds": None,
        "bad": 0,
        "last_bad": "",
        "last_why": "",
        "transport": "udp",
    }
    assert rows["127.0.0.4"]["bad"] == 1 and rows["127.0.0.4"]["last_bad"] == "bad"
    assert rows["127.0.0.4"]["last_why"] == "was refused: bad"
    assert status["history"] and status["rate"] > 0
    assert status["latency"]["count"] == 3
    assert len(status["latency"]["counts"]) == len(status["latency"]["buckets"]) + 1


def test_summary_fields() -> None:
    m, _ = make(1)
    feed(m, [Register(), Position(0)])
    m.tick(TrackerCounters(open_connections=1, refused=2))
    s = m.summary()
    assert s["event"] == "summary"
    assert (s["clients"], s["finished"], s["requests"], s["registrations"], s["bad"]) == (
        1,
        1,
        2,
        1,
        0,
    )
    assert (s["open_connections"], s["refused_connections"]) == (1, 2)
    json.dumps(s)


# ------------------------------------------------------------------ bounded in bytes


def test_forged_sources_cost_the_monitor_no_more_than_its_memory_limit() -> None:
    """1,500 datagrams of one position each, from distinct (forged) sources, over a
    database of 100,000 items: every source once held 100,000 bytes (+182 MB)."""
    n = 100_000
    m, _ = make(n, max_clients=1000, max_bytes=16 << 20)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(1500):
            feed(m, [Position(k)], ip=f"10.{k // 256}.{k % 256}.1", transport="udp")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert m.held <= 16 << 20
    assert grown <= (16 << 20) + (2 << 20), grown  # the limit, and the counters' own
    assert m.forgotten >= 1500 - 16 * 1024 * 1024 // n
    assert len(m.clients) * n <= 16 << 20


def test_the_client_being_seen_is_never_the_one_forgotten() -> None:
    m, _ = make(1000, max_bytes=1000 + 600)  # room for one fetching client only
    feed(m, [Position(0)], ip="127.0.0.2")
    feed(m, [Position(1)], ip="127.0.0.3")  # the older one gives way
    assert list(m.clients) == ["127.0.0.3"] and m.clients["127.0.0.3"].fetched == 1
    assert m.held <= m.max_bytes


def test_finishing_gives_its_positions_back() -> None:
    m, _ = make(4, max_bytes=1 << 20)
    feed(m, [Register(), PositionRun(0, 4)])
    assert m.clients["127.0.0.2"].finished and m.held == 600  # the row, no positions


# ---------------------------------------------------------------------- the event feed


def feed_lines(m: Monitor) -> list[tuple[str, str, str, int]]:
    return [(e["kind"], e["who"], e["text"], e["count"]) for e in m.status()["feed"]]


@pytest.mark.parametrize("info_events", [True, False])
def test_the_feed_says_who_registered_finished_and_was_refused(info_events: bool) -> None:
    """The feed is kept whether or not log events are (the dashboard without --log-level
    info), and says each thing in words."""
    m, clock = make(2, events=info_events)
    feed(m, [Register()])
    clock.t += 0.5
    feed(m, positions(0, 1))
    feed(m, RequestParser().feed(b"cos\nsystem\n(S'echo hi'\ntR."), ip="127.0.0.9")
    feed(m, [PositionRun(5, 3)], ip="127.0.0.8")
    m.tick(TrackerCounters(refused=3, open_connections=1024))
    assert feed_lines(m) == [
        ("register", "127.0.0.2", "registered: the tracker answered N = 2", 1),
        ("finished", "127.0.0.2", "fetched all 2 items in 0.50 s", 1),
        (
            "refused",
            "127.0.0.9",
            "sent a pickle that would run code (it calls os.system): refused, never run",
            1,
        ),
        ("refused", "127.0.0.8", "asked for positions 5 to 7, but positions are 0 to 1", 1),
        (
            "refused_connections",
            "tracker",
            "refused 3 connections: too many open (1,024 open)",
            1,
        ),
    ]
    times = [e["time"] for e in m.status()["feed"]]
    assert times[0] == 1_000_000.0 and times[1] == 1_000_000.5
    assert len(events(m)) == (5 if info_events else 1)  # (refused_connections: a warning)


def test_garbage_in_a_loop_is_one_line_of_the_feed_and_costs_no_new_words() -> None:
    m, _ = make(16, events=False)
    feed(m, [Register()], ip="127.0.0.2")
    for _ in range(5000):
        feed(m, RequestParser().feed(b"hello"), ip="127.0.0.9")
    assert feed_lines(m) == [
        ("register", "127.0.0.2", "registered: the tracker answered N = 16", 1),
        ("refused", "127.0.0.9", "sent the text 'hello', not a pickle", 5000),
    ]
    assert m.bad == 5000


def test_the_feed_is_bounded() -> None:
    m, _ = make(16, feed=10)
    for k in range(300):
        feed(m, [Register()], ip=f"10.0.{k // 256}.{k % 256}")
    lines = m.status()["feed"]
    assert len(lines) == 10 and lines[-1]["who"] == "10.0.1.43"


def test_no_feed_when_not_asked() -> None:
    m, _ = make(16, feed=0)
    feed(m, [Register()])
    m.ring_event(RingEvent("join", "bob", "127.0.0.3", 9402, "bob", (0, "a"), 1))
    assert m.feed is None and m.status()["feed"] == []
    assert [e["event"] for e in events(m)] == ["register", "join"]


def test_ring_events_become_log_events_and_lines_of_the_feed() -> None:
    m, clock = make(16)
    m.ring_event(RingEvent("join", "bob", "127.0.0.3", 9402, "alice", (12, "of"), 2))
    clock.t += 1
    m.ring_event(RingEvent("refresh", "bob", "127.0.0.3", 9500, "alice", (12, "of"), 2))
    m.ring_event(RingEvent("peer_finished", "bob", "127.0.0.3", 9500, peers=2))
    m.ring_event(RingEvent("prune", "bob", "127.0.0.3", 9500, peers=1, why="a PING got reset"))
    m.ring_event(RingEvent("refused", "eve", "127.0.0.7", peers=1, why="asked to join as 'eve'"))
    m.ring_event(RingEvent("refused", "eve", "127.0.0.7", peers=1, why="asked to join as 'eve'"))
    got = events(m)
    assert got[0] == {
        "time": 1_000_000.0,
        "event": "join",
        "handle": "bob",
        "address": "127.0.0.3:9402",
        "neighbour": "alice",
        "hosts": 12,
        "peers": 2,
    }
    assert got[1] == {
        "time": 1_000_001.0,
        "event": "refresh",
        "handle": "bob",
        "address": "127.0.0.3:9500",
        "neighbour": "alice",
        "peers": 2,
    }
    assert got[2] | {"time": 0} == {
        "time": 0,
        "event": "peer_finished",
        "handle": "bob",
        "address": "127.0.0.3:9500",
        "items": 16,
        "peers": 2,
    }
    assert got[3] | {"time": 0} == {
        "time": 0,
        "event": "prune",
        "handle": "bob",
        "address": "127.0.0.3:9500",
        "why": "a PING got reset",
        "peers": 1,
    }
    assert got[4] | {"time": 0} == {
        "time": 0,
        "event": "refused",
        "client": "127.0.0.7",
        "transport": "tcp",
        "handle": "eve",
        "why": "asked to join as 'eve'",
        "closed": False,
    }
    assert len(got) == 6
    assert feed_lines(m) == [
        ("join", "bob", "joined the ring from 127.0.0.3:9402; hosts item 12 ('of'); asks alice", 1),
        ("refresh", "bob", "registered again from 127.0.0.3:9500 (a refresh); asks alice", 1),
        ("peer_finished", "bob", "holds all 16 items", 1),
        ("prune", "bob", "pruned from the ring (1 left): a PING got reset", 1),
        ("refused", "127.0.0.7", "asked to join as 'eve'", 2),
    ]
