"""cs457p2p.core.course_model and core.py2's reader: the course's programs as rules,
byte by byte (pure; held to Python 2.7 stand-ins in tests/test_course_tracker.py)."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.course_model import (
    COURSE_P1_DB,
    COURSE_P2_DB,
    CourseRing,
    SamplePeer,
    p1_answer,
)
from cs457p2p.core.py2 import Py2Unicode, dumps_py2, loads_py2

BAD = b"S'Bad request'\np0\n."


def test_python2_reads_protocols_0_to_2_only() -> None:
    for protocol in (0, 1, 2):
        assert loads_py2(pickle.dumps(7, protocol)).value == 7
    for protocol in (3, 4, 5):
        read = loads_py2(pickle.dumps(7, protocol))
        assert not read.ok and read.error == f"ValueError: unsupported pickle protocol: {protocol}"
    assert not loads_py2(b"7").ok  # (ASCII digits: no pickle)
    assert not loads_py2(b"").ok
    code = loads_py2(b"cos\nsystem\n(S'true'\ntR.")
    assert not code.ok and code.runs_code


def test_python2_keeps_unicode_apart() -> None:
    value = loads_py2(pickle.dumps(("ECHO", "bob"), 2)).value
    assert isinstance(value, tuple) and isinstance(value[1], Py2Unicode)
    plain = loads_py2(b"(S'ECHO'\np0\nS'bob'\np1\ntp2\n.").value
    assert isinstance(plain, tuple) and type(plain[1]) is str
    assert dumps_py2(Py2Unicode("a\\b\nc")) == b"Va\\u005cb\\u000ac\np0\n."


def test_the_part_1_tracker() -> None:
    assert p1_answer(b"REGISTER").reply == b"I16\n."
    assert p1_answer(pickle.dumps(0, 0)).reply == b"(I12\nS'of'\np0\ntp1\n."
    assert p1_answer(pickle.dumps(-1, 2)).reply == dumps_py2((13, "threads"))  # -1 leaks
    assert p1_answer(pickle.dumps(True, 2)).reply == dumps_py2(COURSE_P1_DB[1])  # bool: int
    for refused in (
        pickle.dumps(16, 2),
        pickle.dumps(-17, 2),
        pickle.dumps(3, 4),  # Python 3's default
        b"3",  # ASCII digits
        b"REGISTER\n",
        pickle.dumps("3", 2),
        pickle.dumps(2.0, 2),
        b"",
    ):
        assert p1_answer(refused).reply == BAD, refused
    code = p1_answer(b"cos\nsystem\n(S'true'\ntR.")
    assert code.reply == BAD and "would have run it" in code.note


@given(st.binary(max_size=64))
def test_the_part_1_tracker_answers_any_bytes(data: bytes) -> None:
    answer = p1_answer(data)
    assert answer.reply is not None and not answer.fatal
    assert answer.reply == BAD or loads_py2(answer.reply).ok


def _reg(handle: str, port: int) -> bytes:
    return pickle.dumps(("REGISTER", handle, port), 2)


def test_the_part_2_tracker_ring() -> None:
    ring = CourseRing()
    first, updates = ring.receive(_reg("alice", 9001), "127.0.0.2")
    # a lone peer is its own neighbour; it hosts position 0; no UPDATE_NBR while alone
    assert first.reply == dumps_py2(
        ("REG_INIT", Py2Unicode("alice"), "127.0.0.2", 9001, 5, COURSE_P2_DB[0])
    )
    assert updates == []
    second, updates = ring.receive(_reg("bob", 9002), "127.0.0.3")
    assert second.reply == dumps_py2(
        ("REG_INIT", Py2Unicode("alice"), "127.0.0.2", 9001, 5, COURSE_P2_DB[1])
    )
    # every peer is told its predecessor, the first one the last peer
    assert [(p[0], m) for p, m in updates] == [
        ("alice", dumps_py2(("UPDATE_NBR", Py2Unicode("bob"), "127.0.0.3", 9002))),
        ("bob", dumps_py2(("UPDATE_NBR", Py2Unicode("alice"), "127.0.0.2", 9001))),
    ]
    # a taken handle: no neighbour, the item handed out last
    taken, updates = ring.receive(_reg("alice", 9009), "127.0.0.9")
    assert taken.reply == dumps_py2(("REG_INIT", None, None, None, 5, COURSE_P2_DB[1]))
    assert len(updates) == 2
    for k in range(3, 7):
        ring.receive(_reg(f"p{k}", 9000 + k), "127.0.0.1")
    assert ring.last_item == COURSE_P2_DB[5 % 5]  # the sixth peer: position 5 % 5
    # a port that is no port is kept (the course's code raises only when it connects)
    kept, updates = ring.receive(_reg("x", "9000"), "127.0.0.1")  # type: ignore[arg-type]
    assert kept.reply is not None and len(updates) == len(ring.peers) - 1


def test_the_part_2_tracker_echo_and_refusals() -> None:
    ring = CourseRing()
    echo, _ = ring.receive(pickle.dumps(("ECHO", "bob"), 2), "127.0.0.1")
    text = "Hi bob, Welcome to the network. Register to get started."
    assert echo.reply == dumps_py2(("[Tracker]", Py2Unicode(text)))
    byte_echo, _ = ring.receive(b"(S'ECHO'\np0\nS'bob'\np1\ntp2\n.", "127.0.0.1")
    assert byte_echo.reply == dumps_py2(("[Tracker]", text))
    other, _ = ring.receive(pickle.dumps(("HELLO", 1), 2), "127.0.0.1")
    assert other.reply == dumps_py2(("[Tracker]", "Bad request"))
    for fatal in (b"\xff\xfe garbage", b"", pickle.dumps(("REGISTER", "a"), 2), pickle.dumps(5)):
        answer, _ = ring.receive(fatal, "127.0.0.1")
        assert answer.reply is None and answer.fatal, fatal


def test_the_part_2_tracker_prunes_the_silent() -> None:
    ring = CourseRing()
    for k in range(3):
        ring.receive(_reg(f"p{k}", 9000 + k), "127.0.0.1")
    updates = ring.prune([True, False, True])
    assert [p[0] for p in ring.peers] == ["p0", "p2"]
    assert [p[0] for p, _ in updates] == ["p0", "p2"]
    assert ring.prune([True, True]) == []


def test_the_sample_peer() -> None:
    peer = SamplePeer("sam", {0: "blue", 3: "snowy"})
    assert peer.receive(pickle.dumps(("PING", "now"), 2)).reply == dumps_py2(("ACK", "sam"))
    hit = peer.receive(pickle.dumps(("QUERY", 3), 2)).reply
    assert hit == dumps_py2(("QUERY_RESULT", (3, "snowy")))
    miss = peer.receive(pickle.dumps(("QUERY", 1), 2)).reply
    assert miss == dumps_py2(("QUERY_RESULT", (None, None)))
    assert peer.receive(pickle.dumps(("UPDATE_NBR", "b", "127.0.0.1", 9), 2)).reply is None
    assert peer.neighbour == ("b", "127.0.0.1", 9)
    assert peer.receive(pickle.dumps(("HELLO",), 2)).reply == b"No data sent!"
    assert peer.receive(b"garbage").fatal
    assert peer.receive(pickle.dumps(("QUERY", "x"), 2)).fatal  # int('x') raises
