"""cs457p2p.core.trace: what ``--trace`` prints. Streams cut into messages however they
are read (each shown once, whole), what each message is, and the lines themselves."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.decoder import decode
from cs457p2p.core.py2 import dumps_py2
from cs457p2p.core.trace import (
    BYTES_SHOWN,
    MessageSplitter,
    Piece,
    Tracer,
    meaning,
    peer_name,
    split_datagram,
    trace_line,
)
from cs457p2p.core.wire import BAD_REQUEST, REGISTER, encode, encode_count, encode_item
from pickles import FAST, cut
from standins import evil_pickle

# ------------------------------------------------------------------------ splitting


def feed_all(chunks: list[bytes]) -> list[Piece]:
    s = MessageSplitter()
    out: list[Piece] = []
    for c in chunks:
        out += s.feed(c)
    return out + s.end()


_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | st.binary(max_size=10),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3),
    max_leaves=8,
)
#: whole messages as senders write them: REGISTER, and pickles of every kind
_MESSAGE = st.one_of(
    st.just(REGISTER),
    st.builds(lambda v, p: pickle.dumps(v, protocol=p), _VALUE, st.integers(3, 5)),
    st.builds(dumps_py2, st.integers(-1000, 10**6) | st.text(max_size=10)),
    st.builds(encode, st.tuples(st.sampled_from(["QUERY", "PING"]), st.integers(0, 99))),
)


@FAST
@given(messages=st.lists(_MESSAGE, min_size=1, max_size=6), cuts=st.lists(st.integers()))
def test_each_message_once_whole_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(messages)
    pieces = feed_all(cut(stream, cuts))
    assert [p.raw for p in pieces] == messages
    for p, m in zip(pieces, messages, strict=True):
        if m == REGISTER:
            assert p.form == "raw" and p.value == "REGISTER"
        else:
            assert p.form == "pickle" and p.value == decode(m)


@FAST
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(), max_size=8))
def test_any_bytes_are_all_shown_and_nothing_raises(data: bytes, cuts: list[int]) -> None:
    pieces = feed_all(cut(data, cuts))
    assert b"".join(p.raw for p in pieces) == data
    for p in pieces:
        line = trace_line(False, "tcp", "127.0.0.1:7777", p, request=True)
        assert "\n" not in line and line.startswith("trace <- tcp 127.0.0.1:7777 ")


def test_a_message_in_pieces_is_shown_with_the_read_that_completes_it() -> None:
    s = MessageSplitter()
    item = encode_item(12, "of")
    assert s.feed(item[:5]) == []
    assert s.feed(item[5:-1]) == []
    (piece,) = s.feed(item[-1:] + b"REGI")
    assert piece.value == (12, "of") and piece.protocol == 2 and piece.raw == item
    assert s.feed(b"ST") == []
    assert [p.form for p in s.feed(b"ER")] == ["raw"]
    assert s.end() == []


def test_ascii_digits_and_separators() -> None:
    # A digit run at the end of a read is whole (one recv of the course's tracker).
    assert [(p.form, p.value, p.raw) for p in feed_all([b"5\n1", b"2 \r\n", b"7"])] == [
        ("digits", 5, b"5\n"),
        ("digits", 1, b"1"),
        ("digits", 2, b"2 \r\n"),
        ("digits", 7, b"7"),
    ]
    (piece,) = split_datagram(b"1" * 21)
    assert piece.form == "bad" and "20 digits" in piece.reason


def test_separators_alone_and_a_message_cut_short() -> None:
    assert [p.form for p in feed_all([b"  \n"])] == ["space"]
    s = MessageSplitter()
    assert s.feed(encode_item(3, "time")[:7]) == []
    (piece,) = s.end()
    assert piece.form == "cut" and len(piece.raw) == 7
    assert meaning(piece, request=False).kind == "malformed"


def test_after_bytes_that_are_no_message_the_rest_is_shown_unread() -> None:
    s = MessageSplitter()
    assert [p.form for p in s.feed(b"\x80\x02K\x01.hello\n")] == ["pickle", "bad"]
    pieces = s.feed(encode_count(3))
    assert [p.form for p in pieces] == ["after"]
    assert s.end() == []


def test_a_datagram_of_several_answers_with_padding() -> None:
    data = encode_item(1, "is") + encode_item(0, "Now") + b"    "
    pieces = split_datagram(data)
    assert [p.value for p in pieces] == [(1, "is"), (0, "Now")]
    assert pieces[1].raw.endswith(b"    ")


# ------------------------------------------------------------------ dangerous or not


@pytest.mark.parametrize("protocol", [0, 4])
def test_a_pickle_that_would_run_code_is_dangerous(protocol: int) -> None:
    (piece,) = split_datagram(evil_pickle("echo hi", protocol))
    assert piece.form == "bad" and piece.code
    what = meaning(piece, request=True)
    assert what.kind == "dangerous"
    line = trace_line(False, "tcp", "127.0.0.1:5000", piece, request=True)
    assert ": DANGEROUS, would run code if unpickled: refused opcode " in line


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"No data sent!", "text"),  # the sample peer's answer: NONE, then OBJ
        (b"Rubbish", "text"),  # REDUCE of nothing
        (b"hello", "text"),
        (b"\x00\x01\x02", "malformed"),
        (pickle.dumps({"a": 1}, protocol=2), "malformed"),  # a dict: refused, not code
    ],
)
def test_bytes_that_are_no_message_are_said_so(data: bytes, kind: str) -> None:
    (piece,) = split_datagram(data)
    assert not piece.code
    assert meaning(piece, request=False).kind == kind


# ------------------------------------------------------------------------ meaning


def _meaning(value: Any, request: bool) -> tuple[str, int | None, dict[str, Any]]:
    (piece,) = split_datagram(encode(value))
    m = meaning(piece, request)
    return m.kind, m.part, m.fields


def test_part1_by_role() -> None:
    assert _meaning(5, True) == ("position", 1, {"position": 5})
    assert _meaning(16, False) == ("count", 1, {"n": 16})
    assert _meaning((12, "of"), False) == ("item", 1, {"seqnum": 12, "value": "of"})
    assert _meaning((12, "of"), True)[0] == "other"
    assert _meaning("REGISTER", True) == ("register", 1, {"command": "REGISTER"})
    assert _meaning("Bad request", False) == ("bad_request", 1, {"text": "Bad request"})
    assert _meaning(True, True)[0] == "other"  # a bool is no position
    assert _meaning(2**40, True) == ("position", 1, {})  # beyond the 32-bit field
    (piece,) = split_datagram(REGISTER)
    assert meaning(piece, True).fields == {"command": "REGISTER"}
    assert split_datagram(BAD_REQUEST)[0].value == "Bad request"


@pytest.mark.parametrize(
    ("value", "is_request", "fields"),
    [
        (("ECHO", "alice"), True, {"handle": "alice"}),
        (("REGISTER", "alice", 9401), True, {"handle": "alice", "port": 9401}),
        (
            ("REG_INIT", "bob", "127.0.0.2", 9402, 5, (4, "peaks")),
            False,
            {
                "handle": "bob",
                "ip": "127.0.0.2",
                "port": 9402,
                "n": 5,
                "seqnum": 4,
                "value": "peaks",
            },
        ),
        (("REG_INIT", None, None, None, 5, None), False, {"n": 5}),
        (
            ("UPDATE_NBR", "bob", "127.0.0.2", 9402),
            True,
            {"handle": "bob", "ip": "127.0.0.2", "port": 9402},
        ),
        (("PING", "Mon Jan  1 00:00:00 2024"), True, {"stamp": "Mon Jan  1 00:00:00 2024"}),
        (("PING", "alice"), False, {"handle": "alice"}),
        (("ACK", "alice"), False, {"handle": "alice"}),
        (("QUERY", 3), True, {"seqnum": 3}),
        (("QUERY_RESULT", (3, "time")), False, {"seqnum": 3, "value": "time"}),
        (("QUERY_RESULT", (None, None)), False, {}),
        (("HELD", "alice", 7), True, {"handle": "alice", "count": 7}),
        (("[Tracker]", "Bad request"), False, {"sender": "[Tracker]", "text": "Bad request"}),
    ],
)
def test_part2_fields(value: tuple[Any, ...], is_request: bool, fields: dict[str, Any]) -> None:
    assert _meaning(value, is_request) == ("part2", 2, {"command": value[0], **fields})


def test_an_unknown_tuple_is_no_message() -> None:
    assert _meaning(("FOO", 1, 2), True)[:2] == ("other", 2)


# -------------------------------------------------------------------------- lines


def test_the_lines() -> None:
    def line(data: bytes, sent: bool, request: bool) -> str:
        (piece,) = split_datagram(data)
        return trace_line(sent, "tcp", "127.0.0.1:7777", piece, request)

    assert line(REGISTER, True, True) == (
        "trace -> tcp 127.0.0.1:7777 8 B b'REGISTER': REGISTER [raw bytes]"
    )
    assert line(encode_count(16), False, False) == (
        "trace <- tcp 127.0.0.1:7777 5 B b'\\x80\\x02K\\x10.': N = 16 [pickle protocol 2]"
    )
    assert line(dumps_py2((12, "of")), False, False) == (
        "trace <- tcp 127.0.0.1:7777 19 B b\"(I12\\nS'of'\\np0\\ntp1\\n.\":"
        " item (12, 'of') [pickle protocol 0 or 1]"
    )
    assert line(b"5\n", True, True) == (
        "trace -> tcp 127.0.0.1:7777 2 B b'5\\n': position 5 [ASCII digits]"
    )
    long = line(encode_item(1, "x" * 100), False, False)
    assert f"...(+{114 - BYTES_SHOWN} B): item (1, 'xxx" in long
    assert long.endswith("xxx... [pickle protocol 2]") and len(long) < 240
    assert line(encode(7) + b" " * 174, True, True) == (
        "trace -> tcp 127.0.0.1:7777 179 B b'\\x80\\x02K\\x07.' + 174 B of padding:"
        " position 7 [pickle protocol 2]"
    )
    assert "[pickle" not in line(b"hello", False, True)
    assert line(b"hello", False, True).endswith(
        ": text 'hello', not a pickle (memo GET before any PUT at byte 0)"
    )


def test_a_connection_and_datagrams() -> None:
    lines: list[str] = []
    tracer = Tracer(lines.append)
    c = tracer.connection("127.0.0.1:7777", initiated=True)
    c.sent(REGISTER)
    item = encode_item(3, "time")
    c.received(item[:4])
    c.received(item[4:] + encode_count(1)[:2])
    c.closed()
    c.closed()
    assert lines == [
        "trace -> tcp 127.0.0.1:7777 8 B b'REGISTER': REGISTER [raw bytes]",
        f"trace <- tcp 127.0.0.1:7777 18 B {item!r}: item (3, 'time') [pickle protocol 2]",
        "trace <- tcp 127.0.0.1:7777 2 B b'\\x80\\x02': no message: cut short: the"
        " connection ended inside it",
    ]
    lines.clear()
    served = tracer.connection("127.0.0.2:40000", initiated=False)
    served.received(encode(5))
    served.sent(encode_item(9, "review"))
    assert [x.split(": ", 1)[1] for x in lines] == [
        "position 5 [pickle protocol 2]",
        "item (9, 'review') [pickle protocol 2]",
    ]
    lines.clear()
    tracer.datagram("127.0.0.1:7777", encode(1) + encode(2), sent=True, request=True)
    tracer.datagram("127.0.0.1:7777", encode_count(16), sent=False, request=False)
    assert [x.split(": ", 1)[1] for x in lines] == [
        "position 1 [pickle protocol 2]",
        "position 2 [pickle protocol 2]",
        "N = 16 [pickle protocol 2]",
    ]
    assert all(x.startswith("trace ") and " udp 127.0.0.1:7777 " in x for x in lines)


def test_peer_name() -> None:
    assert peer_name(("127.0.0.1", 7777)) == "127.0.0.1:7777"
    assert peer_name(("::1", 7777, 0, 0)) == "[::1]:7777"
    assert peer_name(None) == "None"
