"""cs457p2p.core.wire2: the Part 2 tuples, written as pickles any reader reads, and
parsed back from ours and from the course's Python 2 bytes."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.decoder import decode
from cs457p2p.core.wire2 import (
    BadMessage,
    Echo,
    Held,
    Join,
    Message,
    Ping,
    Pong,
    Query,
    QueryResult,
    RegInit,
    Said,
    UpdateNbr,
    as_pong,
    encode_message,
    handle_problem,
    parse,
    port_problem,
    welcome,
)

_text = st.text(max_size=40)
_TAGS = {"ECHO", "HELD", "REGISTER", "REG_INIT", "UPDATE_NBR", "PING", "QUERY", "QUERY_RESULT"}
_int = st.integers(min_value=-(2**40), max_value=2**40)
_item = st.tuples(_int, _text)
_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Echo, _text),
    st.builds(Join, _text, _int),
    st.builds(Held, _text, _int),
    st.builds(RegInit, _text, _text, _int, st.integers(min_value=0, max_value=10**6), _item),
    st.builds(RegInit, st.none(), st.none(), st.none(), st.integers(0, 100), st.none() | _item),
    st.builds(UpdateNbr, _text, _text, _int),
    st.builds(Ping, _text),
    st.builds(Query, _int),
    st.builds(QueryResult, _int, _text),
    st.just(QueryResult(None, None)),
    st.builds(Said, _text.filter(lambda t: t not in _TAGS), _text),
)

EXPECTED: list[tuple[Message, tuple[Any, ...]]] = [
    (Echo("alice"), ("ECHO", "alice")),
    (Join("alice", 9401), ("REGISTER", "alice", 9401)),
    (Held("alice", 3), ("HELD", "alice", 3)),
    (
        RegInit("bob", "127.0.0.2", 9402, 5, (4, "peaks")),
        ("REG_INIT", "bob", "127.0.0.2", 9402, 5, (4, "peaks")),
    ),
    (UpdateNbr("bob", "127.0.0.2", 9402), ("UPDATE_NBR", "bob", "127.0.0.2", 9402)),
    (Ping("Mon Nov 30 12:00:00 2026"), ("PING", "Mon Nov 30 12:00:00 2026")),
    (Pong("alice"), ("PING", "alice")),
    (Pong("alice", "ACK"), ("ACK", "alice")),
    (Query(3), ("QUERY", 3)),
    (QueryResult(3, "snowy"), ("QUERY_RESULT", (3, "snowy"))),
    (QueryResult(None, None), ("QUERY_RESULT", (None, None))),
    (welcome("alice"), ("[Tracker]", "Hi alice, Welcome to the network. Register to get started.")),
]  # fmt: skip


@pytest.mark.parametrize(("message", "as_tuple"), EXPECTED)
def test_each_message_is_the_tuple_pickle_reads(
    message: Message, as_tuple: tuple[Any, ...]
) -> None:
    data = encode_message(message)
    assert data[:2] == b"\x80\x02"  # protocol 2: Python 2 reads it
    assert pickle.loads(data) == as_tuple  # (our own bytes)
    assert decode(data) == as_tuple


@given(_messages)
def test_what_we_write_parses_back(message: Message) -> None:
    assert parse(decode(encode_message(message))) == message


def test_the_course_python_2_bytes_parse() -> None:
    """Protocol 0 with byte strings, as observed from the course's tracker."""
    reg_init = (
        b"(S'REG_INIT'\np0\nS'alice'\np1\nS'127.0.0.1'\np2\nI9401\nI5\n"
        b"(I4\nS'peaks'\np3\ntp4\ntp5\n."
    )
    assert parse(decode(reg_init)) == RegInit("alice", "127.0.0.1", 9401, 5, (4, "peaks"))
    update = b"(S'UPDATE_NBR'\np0\nS'bob'\np1\nS'127.0.0.1'\np2\nI9402\ntp3\n."
    assert parse(decode(update)) == UpdateNbr("bob", "127.0.0.1", 9402)
    taken = b"(S'REG_INIT'\np0\nNNNI5\n(I4\nS'peaks'\np1\ntp2\ntp3\n."
    assert parse(decode(taken)) == RegInit(None, None, None, 5, (4, "peaks"))
    assert as_pong(parse(decode(b"(S'ACK'\np0\nS'carol'\np1\ntp2\n."))) == Pong("carol", "ACK")
    assert as_pong(parse(("PING", "carol"))) == Pong("carol", "PING")
    assert parse(decode(b"(S'[Tracker]'\np0\nS'Bad request'\np1\ntp2\n.")) == Said(
        "[Tracker]", "Bad request"
    )


def test_python_3_bytes_strings_are_text() -> None:
    assert parse(("REGISTER", b"alice", 9401)) == Join("alice", 9401)
    assert parse([b"QUERY", 2]) == Query(2)
    assert parse(("ECHO", b"\xff\xfe")) == BadMessage("ECHO: the handle is not text")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (5, "not a tuple"),
        ((), "not a tuple"),
        ((1, 2), "the first item is not text"),
        (("REGISTER", "alice"), "REGISTER with 1 fields, not 2"),
        (("REGISTER", "alice", "9401"), "REGISTER: not (text, int)"),
        (("REGISTER", "alice", True), "REGISTER: not (text, int)"),
        (("QUERY", 1.0), "QUERY: the SEQNUM is not an int"),
        (("QUERY_RESULT", (1, 2)), "QUERY_RESULT: not (int, text)"),
        (("QUERY_RESULT", (1, "a", 2)), "QUERY_RESULT: not a pair"),
        (("UPDATE_NBR", "bob", None, 1), "UPDATE_NBR: not (text, text, int)"),
        (("REG_INIT", "a", "b", 1, -1, None), "REG_INIT: N is not an int >= 0"),
        (("REG_INIT", "a", None, 1, 5, None), "REG_INIT: the neighbour is not (text, text, int)"),
        (("REG_INIT", "a", "b", 1, 5, (1,)), "REG_INIT: the item is not a pair"),
        (("NOPE", 1, 2), "unknown message 'NOPE'"),
        (("x" * 100, 1), "unknown message 'xxxxxxxxxxxxxxxxxxxx'"),
    ],
)
def test_malformed_values_say_why(value: Any, reason: str) -> None:
    assert parse(value) == BadMessage(reason)


def test_handles_and_ports() -> None:
    assert handle_problem("alice") is None
    assert handle_problem("a" * 64) is None
    assert handle_problem("") == "an empty handle"
    assert handle_problem("a" * 65) == "a handle over 64 characters"
    assert handle_problem("al\nice") == "a handle with unprintable characters"
    assert port_problem(1) is None and port_problem(65535) is None
    assert port_problem(0) == "port 0 is not in 1..65535"
    assert port_problem(65536) == "port 65536 is not in 1..65535"
