"""cs457p2p.core.ring: the tracker's ring, without sockets or clocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.database import Database
from cs457p2p.core.ring import Notice, Ring, RingEvent, bad_message_words
from cs457p2p.core.wire2 import (
    BadMessage,
    Echo,
    Held,
    Join,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    welcome,
)

ITEMS = [(4, "peaks"), (2, "and"), (0, "blue"), (3, "snowy"), (1, "skies")]
DB = Database(ITEMS)
BAD = Said("[Tracker]", "Bad request")


def take(ring: Ring) -> list[Notice]:
    out, ring.outbox = ring.outbox, []
    return out


def test_a_lone_peer_is_its_own_neighbour() -> None:
    ring = Ring(DB)
    assert ring.answer(Join("alice", 9401), "127.0.0.2", 0.0) == RegInit(
        "alice", "127.0.0.2", 9401, 5, (4, "peaks")
    )
    assert take(ring) == []


def test_each_join_tells_only_the_first_peer() -> None:
    ring = Ring(DB)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    assert ring.join("bob", "127.0.0.3", 9402, 1.0) == RegInit(
        "alice", "127.0.0.2", 9401, 5, (2, "and")
    )
    assert take(ring) == [Notice(("127.0.0.2", 9401), "alice", UpdateNbr("bob", "127.0.0.3", 9402))]
    assert ring.join("carol", "127.0.0.4", 9403, 2.0) == RegInit(
        "bob", "127.0.0.3", 9402, 5, (0, "blue")
    )
    assert take(ring) == [
        Notice(("127.0.0.2", 9401), "alice", UpdateNbr("carol", "127.0.0.4", 9403))
    ]
    assert [m.handle for m in ring.members] == ["alice", "bob", "carol"]
    assert ring.counters.neighbour_updates == 2


def test_items_go_round_the_database() -> None:
    ring = Ring(DB)
    hosted = []
    for k in range(7):
        answer = ring.join(f"p{k}", "127.0.0.1", 9000 + k, 0.0)
        assert isinstance(answer, RegInit)
        hosted.append(answer.item)
    assert hosted == [ITEMS[k % 5] for k in range(7)]


def test_a_departed_peers_item_goes_to_the_next_to_join() -> None:
    ring = Ring(DB)
    for k in range(3):
        ring.join(f"p{k}", "127.0.0.1", 9000 + k, 0.0)
    take(ring)
    assert ring.ping_result("p1", ok=False, now=5.0)  # p1 hosted position 1
    assert take(ring) == [Notice(("127.0.0.1", 9002), "p2", UpdateNbr("p0", "127.0.0.1", 9000))]
    answer = ring.join("p3", "127.0.0.1", 9003, 6.0)
    assert isinstance(answer, RegInit) and answer.item == ITEMS[1]
    assert ring.counters.pruned == 1


def test_the_last_but_one_leaving_makes_the_last_its_own_neighbour() -> None:
    ring = Ring(DB)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    ring.join("bob", "127.0.0.3", 9402, 0.0)
    take(ring)
    ring.remove("alice")
    assert take(ring) == [Notice(("127.0.0.3", 9402), "bob", UpdateNbr("bob", "127.0.0.3", 9402))]
    ring.remove("bob")
    assert take(ring) == [] and len(ring) == 0


def test_a_refresh_keeps_the_place_and_another_port_waits_for_the_old_one_to_go() -> None:
    """The same handle, address and port again is a refresh: nothing changes. Another
    port from the same address is refused while the registered port may still answer
    (a program on that host could otherwise take over a live peer's handle, or get it
    pruned by naming a closed port): the ring asks for that port to be PINGed; if it
    does not answer, the peer leaves, and the next REGISTER joins."""
    ring = Ring(DB)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    ring.join("bob", "127.0.0.3", 9402, 0.0)
    ring.join("carol", "127.0.0.4", 9403, 0.0)
    take(ring)
    again = ring.join("bob", "127.0.0.3", 9402, 1.0)
    assert again == RegInit("alice", "127.0.0.2", 9401, 5, (2, "and"))
    assert take(ring) == [] and ring.checks == []  # nothing changed
    assert ring.join("bob", "127.0.0.3", 9500, 2.0) == BAD
    assert ring.join("bob", "127.0.0.3", 9501, 2.0) == BAD
    assert take(ring) == [] and ring.checks == ["bob", "bob"]  # (the driver merges them)
    bob = ring.member("bob")
    assert bob is not None and bob.address == ("127.0.0.3", 9402)
    # its port answered the PING: it stays as it was
    assert not ring.ping_result("bob", ok=True, now=2.1)
    assert [m.address for m in ring.members][1] == ("127.0.0.3", 9402)
    # it did not: it leaves, and the same REGISTER then joins
    assert ring.ping_result("bob", ok=False, now=3.0, why="connection refused")
    assert take(ring) == [
        Notice(("127.0.0.4", 9403), "carol", UpdateNbr("alice", "127.0.0.2", 9401))
    ]
    moved = ring.join("bob", "127.0.0.3", 9500, 3.1)
    assert moved == RegInit("carol", "127.0.0.4", 9403, 5, (2, "and"))  # its item again
    assert [m.handle for m in ring.members] == ["alice", "carol", "bob"]
    assert ring.counters.refreshes == 1


def test_one_address_and_one_connection_cannot_fill_the_ring() -> None:
    """1,100 REGISTERs on one connection took all 1,024 places: now one a connection,
    and at most ``per_address`` peers from one address; another address still joins."""
    ring = Ring(DB, max_peers=1024, per_address=64)
    joined = sum(
        isinstance(ring.answer(Join(f"h{k}", 9000 + k), "127.0.0.9", 0.0, registers=k), RegInit)
        for k in range(1100)
    )
    assert joined == 1 and ring.counters.refused == 1099
    for k in range(1, 100):  # one a connection, from one address
        ring.answer(Join(f"h{k}", 9000 + k), "127.0.0.9", 0.0)
    assert len(ring) == 64
    assert isinstance(ring.answer(Join("student", 9401), "127.0.0.2", 0.0), RegInit)
    # a peer that leaves gives its address's place back
    ring.remove("h0")
    assert isinstance(ring.answer(Join("h500", 9500), "127.0.0.9", 0.0), RegInit)
    assert ring.status(0.0)["per_address"] == 64


def test_refusals() -> None:
    ring = Ring(DB, max_peers=2)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    assert ring.join("alice", "127.0.0.9", 9401, 0.0) == BAD  # someone else's handle
    assert ring.join("", "127.0.0.3", 9401, 0.0) == BAD
    assert ring.join("x" * 65, "127.0.0.3", 9401, 0.0) == BAD
    assert ring.join("bob", "127.0.0.3", 0, 0.0) == BAD
    assert ring.join("bob", "127.0.0.3", 70000, 0.0) == BAD
    assert isinstance(ring.join("bob", "127.0.0.3", 9402, 0.0), RegInit)
    assert ring.join("carol", "127.0.0.4", 9403, 0.0) == BAD  # full
    assert ring.answer(BadMessage("not a tuple"), "127.0.0.5", 0.0) == BAD
    assert ring.answer(Said("[Peer]", "hello"), "127.0.0.5", 0.0) == BAD
    assert ring.counters.refused == 8
    assert [m.handle for m in ring.members] == ["alice", "bob"]


def test_echo_and_query() -> None:
    ring = Ring(DB)
    assert ring.answer(Echo("alice"), "127.0.0.2", 0.0) == welcome("alice")
    assert ring.answer(Query(3), "127.0.0.2", 0.0) == QueryResult(3, "snowy")
    assert ring.answer(Query(5), "127.0.0.2", 0.0) == QueryResult(None, None)
    assert ring.answer(Query(-1), "127.0.0.2", 0.0) == QueryResult(None, None)


def test_an_empty_database_hosts_nothing() -> None:
    ring = Ring(Database([]))
    assert ring.join("alice", "127.0.0.2", 9401, 0.0) == RegInit(
        "alice", "127.0.0.2", 9401, 0, None
    )


def test_pings_that_answer_keep_the_peer() -> None:
    ring = Ring(DB)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    assert not ring.ping_result("alice", ok=True, now=20.0)
    alice = ring.member("alice")
    assert alice is not None and alice.last_seen == 20.0 and alice.last_ping_ok
    assert not ring.ping_result("nobody", ok=False, now=20.0)
    assert ring.counters.pings == {"ok": 1, "failed": 1}


_ops = st.lists(
    st.tuples(st.sampled_from(["join", "join", "leave", "move"]), st.integers(0, 7)),
    max_size=60,
)


@given(_ops)
def test_every_peer_always_knows_its_neighbour_and_only_changes_are_told(
    ops: list[tuple[str, int]],
) -> None:
    """Whatever joins, leaves and moves (another port: the old one found dead, then a
    join): what each peer was told last (its REG_INIT, then its UPDATE_NBRs) is its
    predecessor in the ring; a join costs at most one UPDATE_NBR, a leave at most one,
    and none tells a peer what it knew; an item nobody hosts goes to the next peer to
    join."""
    ring = Ring(DB)
    told: dict[str, tuple[str, str, int]] = {}
    ports = {}
    for op, k in ops:
        handle = f"p{k}"
        before = ring.counters.neighbour_updates
        if op == "move" and ring.member(handle) is not None:
            # another port: refused until the old one stops answering; it did not
            ports[handle] += 1
            assert ring.join(handle, "127.0.0.1", ports[handle], 0.0) == BAD
            assert ring.checks == [handle]
            ring.checks.clear()
            ring.ping_result(handle, ok=False, now=0.0)
            told.pop(handle, None)
            assert ring.counters.neighbour_updates - before <= 1  # (the leave's)
            op = "join"
            before = ring.counters.neighbour_updates
        if op == "join":
            new = ring.member(handle) is None
            taken = {m.position for m in ring.members}
            size, n = len(ring.members), len(ITEMS)
            # the rule, spelled out: the lowest position nobody hosts (while fewer than
            # N are in, at most their number), else index % N
            expected = next((p for p in range(min(n, size + 1)) if p not in taken), size % n)
            ports.setdefault(handle, 9000 + k)
            answer = ring.join(handle, "127.0.0.1", ports[handle], 0.0)
            assert isinstance(answer, RegInit)
            if new:
                assert answer.item == ITEMS[expected]
            assert answer.nbr_handle is not None and answer.nbr_ip is not None
            assert answer.nbr_port is not None
            told[handle] = (answer.nbr_handle, answer.nbr_ip, answer.nbr_port)
        elif op == "leave":
            ring.remove(handle)
            told.pop(handle, None)
        assert ring.counters.neighbour_updates - before <= 1
        for notice in take(ring):
            m = notice.message
            assert told[notice.handle] != (m.handle, m.ip, m.port)  # news, not a repeat
            told[notice.handle] = (m.handle, m.ip, m.port)
        for member in ring.members:
            nbr = ring.neighbour(member)
            assert told[member.handle] == (nbr.handle, nbr.ip, nbr.port)


def test_held_is_kept_from_the_peer_itself_only() -> None:
    ring = Ring(DB)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    assert ring.answer(Held("alice", 3), "127.0.0.2", 1.0) == Said("[Tracker]", "OK")
    assert ring.answer(Held("alice", 4), "127.0.0.9", 1.0) == BAD  # not from alice
    assert ring.answer(Held("alice", 6), "127.0.0.2", 1.0) == BAD  # more than N
    assert ring.answer(Held("nobody", 1), "127.0.0.2", 1.0) == BAD
    status = ring.status(2.0)
    assert status["peers"] == [
        {
            "handle": "alice",
            "address": "127.0.0.2:9401",
            "neighbour": "alice",
            "hosted": [4, "peaks"],
            "held": 3,
            "joined_ago": 2.0,
            "last_ping_ago": None,
            "last_ping_ok": None,
        }
    ]
    assert status["size"] == 1 and status["n"] == 5 and status["counters"]["refused"] == 3


# ------------------------------------------------------------ what the listener hears


def listening(ring: Ring) -> list[RingEvent]:
    heard: list[RingEvent] = []
    ring.listener = heard.append
    return heard


def test_joins_refreshes_prunes_and_a_full_peer_are_told_to_the_listener() -> None:
    ring = Ring(DB)
    heard = listening(ring)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    ring.join("bob", "127.0.0.3", 9402, 0.0)
    ring.join("bob", "127.0.0.3", 9402, 1.0)
    ring.answer(Held("bob", 4), "127.0.0.3", 1.0)
    ring.answer(Held("bob", 5), "127.0.0.3", 1.0)
    ring.answer(Held("bob", 5), "127.0.0.3", 2.0)  # (said again: not finished again)
    ring.ping_result("alice", True, 3.0)
    ring.ping_result("alice", False, 4.0, "a PING got connection refused")
    assert heard == [
        RingEvent("join", "alice", "127.0.0.2", 9401, "alice", (4, "peaks"), 1),
        RingEvent("join", "bob", "127.0.0.3", 9402, "alice", (2, "and"), 2),
        RingEvent("refresh", "bob", "127.0.0.3", 9402, "alice", (2, "and"), 2),
        RingEvent("peer_finished", "bob", "127.0.0.3", 9402, peers=2),
        RingEvent(
            "prune", "alice", "127.0.0.2", 9401, peers=1, why="a PING got connection refused"
        ),
    ]
    assert heard[0].address == "127.0.0.2:9401"
    ring.join("carol", "::1", 9403, 5.0)
    assert heard[-1].address == "[::1]:9403"


def test_each_refusal_is_told_with_why_in_words() -> None:
    ring = Ring(DB, max_peers=2)
    heard = listening(ring)
    ring.join("alice", "127.0.0.2", 9401, 0.0)
    ring.join("alice", "127.0.0.9", 9401, 0.0)
    ring.join("", "127.0.0.3", 9401, 0.0)
    ring.join("bob", "127.0.0.3", 0, 0.0)
    ring.join("bob", "127.0.0.3", 9402, 0.0)
    ring.join("carol", "127.0.0.4", 9403, 0.0)
    ring.answer(Held("alice", 4), "127.0.0.9", 1.0)
    ring.answer(Held("alice", 6), "127.0.0.2", 1.0)
    ring.answer(Held("nobody", 1), "127.0.0.2", 1.0)
    ring.answer(BadMessage("unknown message 'HELLO'"), "127.0.0.5", 0.0)
    ring.answer(BadMessage("REGISTER with 1 fields, not 2"), "127.0.0.5", 0.0)
    ring.answer(BadMessage("REGISTER: not (text, int)"), "127.0.0.5", 0.0)
    ring.answer(UpdateNbr("x", "127.0.0.1", 1), "127.0.0.5", 0.0)
    ring.join("bob", "127.0.0.3", 9999, 1.0)
    ring.answer(Join("dave", 9404), "127.0.0.5", 1.0, registers=1)
    small = Ring(DB, per_address=1)
    small.listener = heard.append
    small.join("erin", "127.0.0.6", 9405, 0.0)
    small.join("fred", "127.0.0.6", 9406, 0.0)
    refused = [(e.ip, e.handle, e.why) for e in heard if e.kind == "refused"]
    assert refused == [
        ("127.0.0.9", "alice", "asked to join as 'alice', a handle 127.0.0.2 holds"),
        ("127.0.0.3", "", "asked to join as '': an empty handle"),
        ("127.0.0.3", "bob", "asked to join as 'bob': port 0 is not in 1..65535"),
        ("127.0.0.4", "carol", "asked to join as 'carol', but the ring is full (2)"),
        ("127.0.0.9", "alice", "said 'alice' holds 4 items, but that peer is at 127.0.0.2"),
        ("127.0.0.2", "alice", "said 'alice' holds 6 items, of 5"),
        (
            "127.0.0.2",
            "nobody",
            "said 'nobody' holds 1 items, but no peer of that name is in the ring",
        ),
        ("127.0.0.5", "", "sent 'HELLO', a message the tracker does not know"),
        ("127.0.0.5", "", "sent 'REGISTER' with 1 field: it takes 2"),
        ("127.0.0.5", "", "sent 'REGISTER' with fields that are not (text, int)"),
        ("127.0.0.5", "", "sent 'UPDATE_NBR', which the tracker does not take"),
        (
            "127.0.0.3",
            "bob",
            "asked to join as 'bob' with port 9999, but that handle listens on port 9402 of"
            " this address: taken only once that port stops answering (it is PINGed now)",
        ),
        (
            "127.0.0.5",
            "dave",
            "asked to join as 'dave' in REGISTER 2 of one connection: 1 a connection",
        ),
        (
            "127.0.0.6",
            "fred",
            "asked to join as 'fred', but 127.0.0.6 has 1 peers in the ring, the most one"
            " address may",
        ),
    ]
    assert ring.counters.refused + small.counters.refused == len(refused)


def test_a_handle_is_quoted_and_cut_in_the_words() -> None:
    ring = Ring(DB)
    heard = listening(ring)
    ring.join("x" * 65, "127.0.0.3", 9401, 0.0)
    ring.join("a\nb", "127.0.0.3", 9401, 0.0)
    assert [e.why for e in heard] == [
        "asked to join as 'xxxxxxxxxxxxxxxxxxxxxxx\u2026': a handle over 64 characters",
        "asked to join as 'a\\nb': a handle with unprintable characters",
    ]


def test_bad_message_words() -> None:
    assert (
        bad_message_words("not a tuple") == "sent a message the tracker cannot read (not a tuple)"
    )
