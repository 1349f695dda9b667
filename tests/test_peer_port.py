"""cs457p2p.core.peer_port: what a peer's port answers, through the same connection
rules as the tracker's, byte by byte and with the time passed in. Each Part 2 message is
answered when a step takes it, and acted on exactly once, however many steps it waits."""

from __future__ import annotations

import pytest

from cs457p2p.core.connection_rules import CLOSE, ConnectionRules, Limits
from cs457p2p.core.errors import LocalProtocolError
from cs457p2p.core.peer_port import PeerPort
from cs457p2p.core.peer_state import Neighbour, PeerState
from cs457p2p.core.requests import PositionRun
from cs457p2p.core.wire import REGISTER, encode_position
from cs457p2p.core.wire2 import (
    Ping,
    Pong,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    encode_message,
)

TRACKER_IP = "127.0.0.1"


def registered(value: str = "peaks") -> PeerState:
    state = PeerState("alice", patience=1.0)
    state.registered_with(RegInit("bob", "127.0.0.3", 9402, 5, (4, value)), 0.0)
    state.tracker_addresses = frozenset({TRACKER_IP})
    return state


def port_rules(state: PeerState, sender: str = TRACKER_IP, **limits: int) -> ConnectionRules:
    return ConnectionRules(Limits(**limits), PeerPort(state), 0.0, peer=sender)


def written(*steps: object) -> bytes:
    return b"".join(bytes(a) for step in steps for a in step.answers)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sender", "counter"), [(TRACKER_IP, "updates"), ("127.0.0.66", "untrusted_updates")]
)
def test_an_update_nbr_through_the_peers_port_is_taken_once(sender: str, counter: str) -> None:
    """An UPDATE_NBR has nothing to send back (its answer is b""): it was once taken a
    second time when its (empty, so falsy) stored answer was sent, counted twice."""
    state = registered()
    rules = port_rules(state, sender)
    update = encode_message(UpdateNbr("carol", "127.0.0.4", 9403))
    steps = [rules.received(update, 0.1), rules.ended()]
    while rules.has_work:
        steps.append(rules.resume(0.2))
    assert written(*steps) == b""  # (nothing to send back)
    assert getattr(state.counters, counter) == 1
    assert state.counters.updates + state.counters.untrusted_updates == 1
    trusted = sender == TRACKER_IP
    assert (state.neighbour == Neighbour("carol", "127.0.0.4", 9403)) == trusted


def test_a_message_is_acted_on_when_its_answer_is_taken_not_when_parsed() -> None:
    state = registered()
    rules = port_rules(state)
    both = encode_message(UpdateNbr("carol", "127.0.0.4", 9403)) + encode_message(Ping("t"))
    step = rules.received(both, 0.1, spare=0)  # no room at all: nothing is taken
    assert step.answers == [] and state.counters.updates == 0
    assert state.neighbour == Neighbour("bob", "127.0.0.3", 9402)
    step = rules.resume(0.2)
    assert written(step) == encode_message(Pong("alice"))
    assert state.counters.updates == 1 and state.neighbour is not None
    assert state.neighbour.handle == "carol"


def test_an_answer_made_that_does_not_fit_waits_and_is_not_made_again() -> None:
    """A QUERY_RESULT larger than the room left in the client's queue is made (counted as
    answered), kept, and given on the turn that has room, not asked of the state again."""
    state = registered("x" * 500)
    rules = port_rules(state, queue=1000)
    queries = encode_message(Query(0)) + encode_message(Query(4))
    step = rules.received(queries, 0.1, queued=600)  # room for (None, None), not VALUE 4
    assert written(step) == encode_message(QueryResult(None, None))
    assert state.counters.queries_answered == 2  # both made
    assert rules.resume(0.2, queued=600).answers == []
    assert state.counters.queries_answered == 2  # the second not made again
    step = rules.resume(0.3, queued=0)
    assert written(step) == encode_message(QueryResult(4, "x" * 500))
    assert state.counters.queries_answered == 2


def test_a_part_1_request_is_refused_in_part_2_words() -> None:
    state = registered()
    rules = port_rules(state)
    step = rules.received(REGISTER, 0.1)
    assert written(step) == encode_message(Said("[alice]", "Bad request"))
    assert step.then == CLOSE  # one request alone: its answer, then close


def test_the_port_parses_no_runs_of_positions() -> None:
    port = PeerPort(registered())
    assert port.run_limit == 0
    rules = ConnectionRules(Limits(), port, 0.0)
    step = rules.received(b"".join(encode_position(i) for i in range(4)), 0.1)
    assert len(step.requests) == 4 and not any(isinstance(r, PositionRun) for r in step.requests)
    with pytest.raises(LocalProtocolError):
        port.run_fitting(PositionRun(0, 2), 100)
