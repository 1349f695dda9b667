"""Part 2, the tracker against a hostile classmate (issue 23), as real processes on
loopback: one connection or one address cannot fill the ring, a flood of
re-registrations cannot make the tracker open connections without bound nor take a
live classmate's handle, a peer that answers a PING and keeps its connection is kept;
and the ring with the tracker's defaults: the course's peers complete, ours take their
items from their neighbours. (The figures with the issue's sizes: bench/ring_attacks.py.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import TrackerFactory
from cs457p2p.core.wire import encode
from cs457p2p.core.wire2 import Join
from ringfakes import Fake, answer_pings, say
from standins import wait_for
from test_peer import FIVE, Peers

BAD = ("[Tracker]", "Bad request")


@pytest.fixture
def ring() -> Iterator[Peers]:
    group = Peers()
    try:
        yield group
    finally:
        group.close()


def test_one_connection_and_one_address_cannot_fill_the_ring(
    start_tracker: TrackerFactory,
) -> None:
    """1,100 REGISTERs on one connection (38 kB) took all 1,024 places: now the first
    joins and the rest are refused; 100 connections from one address get 64 places;
    a student from another address still joins."""
    t = start_tracker()
    burst = b"".join(encode(("REGISTER", f"h{k}", 20000 + k)) for k in range(1100))
    with socket.socket() as s:
        s.settimeout(10)
        s.bind(("127.0.0.9", 0))
        s.connect(("127.0.0.1", t.port))
        s.sendall(burst)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(1 << 16):
            got += chunk
    assert got.count(b"REG_INIT") == 1, got.count(b"REG_INIT")
    joined = sum(
        say(t.port, Join(f"g{k}", 30000 + k), "127.0.0.9")[0] == "REG_INIT" for k in range(100)
    )
    assert joined == 63  # (64 from one address: h0 and 63 more)
    assert say(t.port, Join("student", 9401), "127.0.0.2")[0] == "REG_INIT"


def test_re_registering_with_other_ports_opens_a_bounded_number_of_connections(
    start_tracker: TrackerFactory,
) -> None:
    """One handle registered again and again with a new port each time (none of them
    listening: each change, once refused, makes the tracker find the old port dead, so
    the next one joins) made the tracker open one connection to the classmate after it
    per message. Now what it opens is bounded: a connection to one peer at a time, at
    least 0.2 s apart, the latest neighbour winning."""
    t = start_tracker()
    with Fake("127.0.0.2", answer_pings("victim")) as victim:
        assert say(t.port, Join("victim", victim.port), "127.0.0.2")[0] == "REG_INIT"
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 2.0:
            say(t.port, Join("mallory", 40000 + sent % 2000), "127.0.0.9")
            sent += 1
            if sent == 100:  # (a student joins in the middle of it)
                assert say(t.port, Join("student", 9401), "127.0.0.3")[0] == "REG_INIT"
        took = time.monotonic() - start
        time.sleep(0.5)  # (what was under way arrives)
        assert sent >= 200, sent  # (the flood was a flood)
        # at most one a 0.2 s, and one at the start
        assert victim.connections <= took / 0.2 + 3, (victim.connections, sent)
        nbr = victim.messages("UPDATE_NBR")
        assert nbr, victim.got


def test_a_program_on_the_same_address_cannot_take_or_kill_a_live_handle(
    start_tracker: TrackerFactory,
) -> None:
    """Another program of the peer's host registers the peer's handle with its own
    port, or with a closed one: refused, and the peer (which answers PINGs) stays where
    it was, through PING rounds."""
    t = start_tracker("--ping-interval", "0.3", "--ping-timeout", "1")
    with Fake("127.0.0.2", answer_pings("alice")) as alice, Fake("127.0.0.2") as thief:
        assert say(t.port, Join("alice", alice.port), "127.0.0.2")[0] == "REG_INIT"
        assert say(t.port, Join("alice", thief.port), "127.0.0.2") == BAD
        closed = socket.create_server(("127.0.0.2", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        assert say(t.port, Join("alice", closed_port), "127.0.0.2") == BAD
        time.sleep(1.0)  # (PING rounds, and the checks of alice's port)
        # alice is still in the ring, at her port: a newcomer's neighbour
        reply = say(t.port, Join("bob", 9402), "127.0.0.3")
        assert reply[:4] == ("REG_INIT", "alice", "127.0.0.2", alice.port), reply
        assert thief.connections == 0
        assert len(alice.messages("PING")) >= 2


def test_a_peer_that_answers_a_ping_and_keeps_the_connection_stays(
    start_tracker: TrackerFactory,
) -> None:
    """It answered ``('ACK', handle)`` and did not close: it was pruned at the PING
    timeout. Any whole answer keeps a peer, as with the course's tracker."""
    t = start_tracker("--ping-interval", "0.3", "--ping-timeout", "0.5")
    release = threading.Event()

    def ack_and_hold(conn: socket.socket, message: Any) -> None:
        if message is not None and message[0] == "PING":
            conn.sendall(encode(("ACK", "holder")))
            release.wait(5)

    with Fake("127.0.0.2", ack_and_hold) as holder:
        try:
            assert say(t.port, Join("holder", holder.port), "127.0.0.2")[0] == "REG_INIT"
            assert wait_for(lambda: len(holder.messages("PING")) >= 3, 10)
            reply = say(t.port, Join("bob", 9402), "127.0.0.3")
            assert reply[:2] == ("REG_INIT", "holder"), reply
        finally:
            release.set()


# ------------------------------------------------------------- the ring, conforming


def test_five_course_peers_around_our_tracker_with_its_defaults(
    python2: str, start_tracker: TrackerFactory, ring: Peers
) -> None:
    """The course's peers only ask their neighbour: with the 16-item database every
    one of them stalled on an item nobody hosts. With the tracker's defaults (the
    course's five items for Part 2) all five complete."""
    t = start_tracker()
    for k in range(2, 7):
        ring.theirs(python2, t.port, f"q{k}", f"127.0.0.{k}")
    for k in range(2, 7):
        assert ring.first_line(f"q{k}") == FIVE


def test_peers_joining_a_second_apart_take_their_items_from_neighbours(
    start_tracker: TrackerFactory, ring: Peers
) -> None:
    """Five of our peers join 1 s apart, every item hosted: with their defaults they
    take at least 90% of their items from their neighbours (the first peer used to
    take all of its items from the tracker after 1 s alone)."""
    t = start_tracker("--message", FIVE)
    for k in range(2, 7):
        ring.ours(t.address, f"p{k}", f"127.0.0.{k}", "--linger", "0.5")
        if k < 6:
            time.sleep(1.0)
    neighbours = tracker = 0
    for k in range(2, 7):
        assert ring.first_line(f"p{k}") == FIVE
        ring.procs[f"p{k}"].wait(10)
        err = ring.stderr(f"p{k}")
        summary = next(line for line in err.splitlines() if "items in" in line)
        got = summary.split("(", 1)[1]
        neighbours += int(got.split(" from neighbours")[0])
        tracker += int(got.split(", ")[1].split(" from the tracker")[0])
    assert neighbours + tracker == 20
    assert neighbours >= 18, (neighbours, tracker)
